"""Base and head in one interleaved run (``perfkit compare --base-source DIR``), each worker running the
code of its own tree, split into the two result files ``perfkit journal`` compares.

The "other commit" is a copy of this repository's ``perfkit/``, ``backends/`` and ``suites/`` with one
observable edit. Timings that are asserted come from the fake backend's virtual clock (exact, whatever
the machine's load); nothing asserts on a real duration.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_support import section, table_rows

from perfkit.measure.environment import git_state, source_hash
from perfkit.measure.protocol import Protocol
from perfkit.run import BackendRef, CaseRequest, WorkerSettings, make_plan, run_plan
from perfkit.run.fake_backend import TARGET
from perfkit.run.paired import base_failures, split_run
from perfkit.run.plan import paired_plan
from perfkit.run.process import WorkerProcess
from perfkit.run.source_tree import source_tree
from perfkit.store.files import load_runs

REPO = Path(__file__).resolve().parents[1]
FOUR = Protocol(warmup_rounds=1, min_samples=4, max_samples=4, round_samples=2, budget_s=600, target_rel_iqr=0)
STAGE_LINE = "        us = b.stage_us * (b.slow_factor if b.slow_stage in (stage, parent_stage(stage)) else 1.0)\n"


def copy_tree(dest: Path) -> Path:
    """This repository's packages (and the pyproject that maps them) under ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("perfkit", "backends", "suites"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def edit(tree: Path, path: str, old: str, new: str) -> None:
    file = tree / path
    text = file.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}: update the test"
    file.write_text(text.replace(old, new))


def fake(spec: str) -> BackendRef:
    return BackendRef(f"fake:{spec}", TARGET)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return copy_tree(tmp_path / "base-tree")


def paired_run(tree: Path, ref: BackendRef, timeout_s: float = 120):
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=FOUR,
                     settings=WorkerSettings(timeout_s=timeout_s), extra=[ref])
    return plan, run_plan(paired_plan(plan, str(tree)), None).run


# ----------------------------------------------------------------------------- the worker's code
def test_a_worker_with_a_source_imports_that_trees_packages(tree: Path) -> None:
    env = WorkerSettings().worker_env()
    with WorkerProcess(source_tree(str(tree)).worker_env(env)) as w:
        there = w.request({"op": "hello"}, 60)["modules"]
    with WorkerProcess(env) as w:
        here = w.request({"op": "hello"}, 60)["modules"]
    assert there == {"perfkit": str(tree / "perfkit" / "__init__.py"),
                     "perfkit.backends": str(tree / "backends" / "__init__.py"),
                     "perfkit.suites": str(tree / "suites" / "__init__.py")}
    assert here == {"perfkit": str(REPO / "perfkit" / "__init__.py"),
                    "perfkit.backends": str(REPO / "backends" / "__init__.py"),
                    "perfkit.suites": str(REPO / "suites" / "__init__.py")}


def test_the_trees_source_hash_is_the_environments_for_the_same_files(tree: Path) -> None:
    here, there = source_tree(str(REPO)), source_tree(str(tree))
    for module in ("perfkit.run.fake_backend", "perfkit.backends.numpy", "perfkit.suites.stages"):
        assert here.source_hash(module) == source_hash(module) == there.source_hash(module) is not None
    edit(tree, "perfkit/run/fake_backend.py", STAGE_LINE, STAGE_LINE + "        us *= 1.0\n")
    assert there.source_hash("perfkit.run.fake_backend") != source_hash("perfkit.run.fake_backend")
    assert there.source_hash("perfkit.nosuch") is None


def test_base_and_head_are_interleaved_and_each_runs_its_own_code(tree: Path) -> None:
    edit(tree, "perfkit/run/fake_backend.py", STAGE_LINE, STAGE_LINE + "        us *= 2\n")
    plan, run = paired_run(tree, fake("clock=virtual,stage_us=100"))
    base, head = run.cases
    assert (base.variant, head.variant) == ("fake:clock=virtual,stage_us=100@base", "fake:clock=virtual,stage_us=100")
    assert base.status == head.status == "ok"
    for b, h in zip(base.series, head.series, strict=True):
        assert b.visits == (0, 0, 2, 2) and h.visits == (1, 1, 3, 3)  # A@base A A@base A
        for sb, sh in zip(b.stages, h.stages, strict=True):  # exact: the virtual clock, no jitter
            (span,) = set(sh.wall_ns)  # a whole number of 100 us stages
            assert span > 0 and span % 100_000 == 0 and sb.wall_ns == (2 * span,) * 4, (b.name, sb.name)
    assert base.source_hash == source_tree(str(tree)).source_hash("perfkit.run.fake_backend")
    assert head.source_hash == source_hash("perfkit.run.fake_backend") != base.source_hash

    split = split_run(run, str(tree), {"backend:fake": "perfkit.run.fake_backend"})
    (b,), (h,) = split.base.cases, split.head.cases
    assert b.variant == h.variant == "fake:clock=virtual,stage_us=100"
    assert b.series == base.series and h == head
    assert [v["spec"] for v in split.base.settings["variants"]] == ["fake:clock=virtual,stage_us=100"]
    assert "source" not in split.base.settings["variants"][0]
    assert split.base.environment.source_hashes == {"backend:fake": base.source_hash}
    assert (split.base.environment.git_commit, split.base.environment.git_dirty) == git_state(tree)
    assert split.head.environment == run.environment
    assert split.base.run_id == run.run_id + "-base" and split.head.run_id == run.run_id + "-head"


def test_each_side_starts_with_its_own_trees_worker_environment(tree: Path) -> None:
    mark = '{"PERFKIT_FAKE_MARK": "this tree"}'
    edit(tree, "perfkit/run/fake_backend.py", mark, '{"PERFKIT_FAKE_MARK": "the base tree"}')
    _, run = paired_run(tree, fake("clock=virtual,stage_us=100"))
    base, head = run.cases
    assert base.status == head.status == "ok"
    assert base.threads["env"]["PERFKIT_FAKE_MARK"] == "the base tree"
    assert head.threads["env"]["PERFKIT_FAKE_MARK"] == "this tree"


def test_a_base_worker_older_than_the_handshake_is_still_measured(tree: Path) -> None:
    edit(tree, "perfkit/run/worker.py", 'if op == "hello":', 'if op == "hello-not-yet":')
    _, run = paired_run(tree, fake("clock=virtual,stage_us=100"))
    assert [c.status for c in run.cases] == ["ok", "ok"] and base_failures([run]) == []


def test_the_handshake_records_the_workers_protocol(tree: Path) -> None:
    from perfkit.run.engine import check_origin
    from perfkit.run.worker import PROTOCOL_VERSION

    env = source_tree(str(tree)).worker_env(WorkerSettings().worker_env())
    with WorkerProcess(env) as w:
        check_origin(w, str(tree), 60)
        assert w.protocol_version == PROTOCOL_VERSION
    edit(tree, "perfkit/run/worker.py", "PROTOCOL_VERSION = 2", "PROTOCOL_VERSION = 1")
    with WorkerProcess(env) as w:
        check_origin(w, str(tree), 60)
        assert w.protocol_version == 1


def test_a_base_worker_older_than_the_visit_warmup_gets_a_discarded_round(tree: Path) -> None:
    """A version-1 base worker ignores ``warmup``, so each of its visits starts with a round of one sample
    that is dropped: 6 set-up passes, then per visit 3 discarded + 6 measured, 24 passes over two visits,
    where the head's worker runs 6 + 2 x (1 + 6) = 20. A fault at pass 22 therefore fails the base alone,
    and the base still has every sample of its first visit."""
    edit(tree, "perfkit/run/worker.py", "PROTOCOL_VERSION = 2", "PROTOCOL_VERSION = 1")
    edit(tree, "perfkit/run/worker.py", 'int(req.get("warmup", 0))', "0")
    _, run = paired_run(tree, fake("clock=virtual,stage_us=100,fault=raise,fault_at=22"))
    base, head = run.cases
    assert head.status == "ok" and all(s.n == 4 for s in head.series)
    assert base.status == "failed" and [(f.kind, f.phase) for f in base.failures] == [("error", "round")]
    assert all(s.n == 2 for s in base.series)


#: A base tree's worker.py, the failure kind and message, the request timeout (a hang costs all of it).
BROKEN_WORKERS = {
    "garbage": ("import sys\nfor line in sys.stdin:\n    print('this is not json', flush=True)\n",
                "error", "failed the handshake: worker sent an unreadable reply", 120),
    "exit": ("import sys\nsys.exit(5)\n", "crash", "failed the handshake: worker exited with code 5", 120),
    "hang": ("import time\ntime.sleep(600)\n", "timeout", "failed the handshake: no reply within 8 s", 8),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_WORKERS))
def test_a_base_worker_that_cannot_serve_fails_clearly(tree: Path, kind: str) -> None:
    code, fault, message, timeout_s = BROKEN_WORKERS[kind]
    (tree / "perfkit" / "run" / "worker.py").write_text(code)
    _, run = paired_run(tree, fake("clock=virtual,stage_us=100"), timeout_s=timeout_s)
    base, head = run.cases
    assert head.status == "ok" and base.status == "failed" and base.series == ()
    (f,) = base.failures
    assert (f.kind, f.phase) == (fault, "setup") and message in f.message and str(tree) in f.message
    [(suite, variant, case, failure)] = base_failures([run])
    assert (suite, variant, failure) == ("stages", "fake:clock=virtual,stage_us=100", f)


def test_a_worker_that_imports_the_wrong_tree_is_refused(tree: Path) -> None:
    """The handshake catches a base worker that says it runs another tree's code."""
    edit(tree, "perfkit/run/worker.py", 'reply = {"ok": True, "protocol": PROTOCOL_VERSION, "modules": modules,',
         f'modules["perfkit"] = {str(REPO / "perfkit" / "__init__.py")!r}\n'
         '    reply = {"ok": True, "protocol": PROTOCOL_VERSION, "modules": modules,')
    _, run = paired_run(tree, fake("clock=virtual,stage_us=100"))
    (f,) = run.cases[0].failures
    assert f.phase == "setup" and f"imported perfkit from {REPO / 'perfkit' / '__init__.py'}" in f.message


# ----------------------------------------------------------------------------- compare + journal
FAKE = "fake:clock=virtual,jitter=0.05,stage_us=100"
QUICK = ("--preset", "tiny", "--frames", "1", "--budget", "600", "--min-samples", "30", "--max-samples", "30",
         "--no-memory", "--no-plots")


def test_compare_with_a_base_source_feeds_the_journal(cli, tree: Path, tmp_path: Path) -> None:
    """The copy's ``upsample_0`` takes 1/1.5 of the time: the head is 1.5x slower there, and only there."""
    edit(tree, "perfkit/run/fake_backend.py", STAGE_LINE,
         STAGE_LINE + '        us /= 1.5 if stage.startswith("upsample_0") else 1.0\n')
    results = tmp_path / "results"
    code, out, err = cli("compare", "numpy", *QUICK, "--suite", "stages", "--extra-backend", f"{FAKE}@{TARGET}",
                         "--base-source", tree, "--results", results, "--reports", tmp_path / "reports")
    assert code == 0, err
    assert f"{FAKE}@base" in out and "numpy:dtype=float32@base" in out  # the compare table shows both
    base, head = load_runs(results / "base").runs, load_runs(results / "head").runs
    assert [r.suite for r in base] == [r.suite for r in head] == ["stages"]
    assert {c.variant for c in base[0].cases} == {c.variant for c in head[0].cases} == {"numpy:dtype=float32", FAKE}
    assert base[0].environment.source_hashes["backend:numpy"] == source_tree(str(tree)).source_hash(
        "perfkit.backends.numpy")
    assert base[0].environment.git_commit == git_state(tree)[0]

    code, journal, err = cli("journal", "--base", results / "base", "--head", results / "head", "--no-plots",
                             "--fail-on-regression")
    assert code == 1
    rows = table_rows(section(journal, f"### stages · {FAKE.replace('_', chr(92) + '_')}"))
    changed = [(r[0], r[7]) for r in rows if r[7].strip("*") != "no significant change"]
    assert rows and changed == [("Upsample 0", "**slower**")]
    fake_regressions = [line for line in err.splitlines() if "regression:" in line and FAKE in line]
    assert fake_regressions == [f"perfkit: regression: stages {FAKE} tiny/frames=1/seed=0: Upsample 0 1.50x slower"]


def test_the_parity_suite_checks_the_base_with_the_base_trees_code(cli, tree: Path, tmp_path: Path) -> None:
    edit(tree, "suites/parity.py", 'note = "not checked for this preset (gen_frames=0)"',
         'note = "checked by the base tree"')
    results = tmp_path / "results"
    code, _, err = cli("compare", "numpy", "--preset", "tiny", "--frames", "1", "--suite", "parity",
                       "--param", "parity.gen_frames=0", "--no-plots", "--base-source", tree,
                       "--results", results, "--reports", tmp_path / "reports")
    assert code == 0, err

    def notes(side: str) -> list[tuple[str, str]]:
        (run,) = load_runs(results / side).runs
        assert [c.status for c in run.cases] == ["ok"]
        return [(r["variant"], r["generator_note"]) for r in run.settings["parity"]]

    assert notes("base") == [("numpy:dtype=float32", "checked by the base tree")]
    assert notes("head") == [("numpy:dtype=float32", "not checked for this preset (gen_frames=0)")]


def test_compare_says_when_the_base_cannot_be_measured(cli, tree: Path, tmp_path: Path) -> None:
    (tree / "perfkit" / "run" / "worker.py").write_text("import sys\nsys.exit(5)\n")
    results = tmp_path / "results"
    code, _, err = cli("compare", "numpy", *QUICK, "--suite", "stages", "--suite", "generator", "--base-source", tree,
                       "--results", results, "--reports", tmp_path / "reports")
    assert code == 3, err
    assert f"the base tree {tree} could not be measured" in " ".join(err.split())
    assert "numpy:dtype=float32@base tiny/frames=1/seed=0: crash in setup" in err
    assert "worker exited with code 5" in err
    head = load_runs(results / "head").runs
    assert [r.suite for r in head] == ["stages"]  # stopped after the first suite
    assert json.loads((next((results / "head").glob("*.json"))).read_text())["cases"][0]["status"] == "ok"


def test_a_base_source_that_is_not_perfkit_is_a_one_line_error(cli, tmp_path: Path) -> None:
    code, _, err = cli("compare", "numpy", "--base-source", tmp_path, "--results", tmp_path / "r",
                       "--reports", tmp_path / "p")
    assert code == 2 and "not a perfkit source tree" in err and "Traceback" not in err
