"""``perfkit compare`` end to end on the tiny preset: the NumPy backend and a fake backend that computes
nothing (so it fails parity), with short budgets; then the errors a user can make."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import pytest
from report_support import section, table_rows

from perfkit import registry
from perfkit.cli import main
from perfkit.commands import compare
from perfkit.errors import BackendUnavailable
from perfkit.measure.protocol import Protocol
from perfkit.run.fake_backend import TARGET
from perfkit.run.suite import get_suite
from perfkit.store.files import load_runs

FAKE = f"fake:stage_us=50@{TARGET}"
QUICK = ("--preset", "tiny", "--frames", "4", "--budget", "0.2", "--min-samples", "3", "--max-samples", "3")


def _cuda_spec() -> list[str]:
    """``torch:device=cuda`` where it cannot run (it is then reported and skipped), else nothing."""
    try:
        registry.create("torch:device=cuda")
    except BackendUnavailable:
        return ["torch:device=cuda"]
    except Exception:  # noqa: BLE001 - torch not installed, option unknown: leave it out
        return []
    return []


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("compare")
    extra = _cuda_spec()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compare", "numpy", *extra, *QUICK, "--suite", "parity", "--suite", "stages",
                     "--extra-backend", FAKE, "--results", str(tmp / "results"), "--reports", str(tmp / "reports")])
    return code, out.getvalue(), err.getvalue(), tmp, extra


def test_compare_stores_runs_and_writes_the_report(compare_run) -> None:
    code, out, err, tmp, _ = compare_run
    assert code == 0, err
    loaded = load_runs(tmp / "results")
    assert sorted(r.suite for r in loaded.runs) == ["parity", "stages"]
    stages = next(r for r in loaded.runs if r.suite == "stages")
    assert {c.variant for c in stages.cases} == {"numpy:dtype=float32", "fake:stage_us=50"}
    assert all(c.memory is not None for c in stages.cases)  # the stages suite's memory pass
    (report_dir,) = (tmp / "reports").iterdir()
    assert f"report: {report_dir / 'report.md'}" in out
    assert {p.name for p in (report_dir / "plots").iterdir()} >= {"stages.png", "stages.svg", "memory.png"}


def test_too_few_samples_to_decide_are_warned_about(compare_run) -> None:
    """``--max-samples 3``: 3 against 3 samples cannot reach p < 0.01, and compare says so up front."""
    _, _, err, _, _ = compare_run
    assert "at most 3 samples per variant in stages: no difference can be significant" in " ".join(err.split())


def test_parity_failure_marks_the_fake_invalid_everywhere(compare_run) -> None:
    _, out, _, tmp, _ = compare_run
    (report_dir,) = (tmp / "reports").iterdir()
    md = (report_dir / "report.md").read_text()
    summary = {r[0]: r for r in table_rows(section(md, "## Summary"))}
    assert summary["fake:stage\\_us=50"][1] == "INVALID" and summary["numpy:dtype=float32"][1] == "PASS"
    fake_table = table_rows(section(md, "#### fake:stage\\_us=50"))
    assert fake_table and all(r[-1] == "INVALID" for r in fake_table)
    memory = {r[0]: r[-1] for r in table_rows(section(md, "## Memory"))}
    assert memory == {"numpy:dtype=float32": "PASS", "fake:stage\\_us=50": "INVALID"}
    terminal = next(line for line in out.splitlines() if line.startswith("│ fake"))
    assert "FAIL" in terminal and "INVALID" in terminal


def test_unavailable_backends_are_reported_and_skipped(compare_run) -> None:
    _, _, err, tmp, extra = compare_run
    if not extra:
        pytest.skip("torch:device=cuda can run here (or torch is absent): nothing to skip")
    assert "skipped torch:device=cuda" in err
    (report_dir,) = (tmp / "reports").iterdir()
    assert "Skipped (not available here):" in (report_dir / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("numpy", "--suite", "nope"), "unknown suite 'nope'"),
        (("numpy", "--param", "frames_per_word=1"), "is not SUITE.KEY=VALUE"),
        (("numpy", "--param", "rtf.frames_per_word=1"), "names suite 'rtf', which is not being run"),
        (("nosuchbackend",), "unknown backend 'nosuchbackend'"),
        (("numpy", "--suite", "stages", "--param", "stages.bogus=1"), "takes no parameter"),
    ],
)
def test_user_errors_are_one_line(cli, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = cli("compare", *args, "--results", str(tmp_path), "--reports", str(tmp_path))
    assert code == 2 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_a_generator_only_comparison_summarises_the_synthesis(tmp_path: Path) -> None:
    """Without the stages suite the summary is the generator's end-to-end synthesis, never an empty table."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compare", "numpy", "numpy:dtype=float64", *QUICK, "--suite", "generator", "--no-memory",
                     "--no-plots", "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")])
    assert code == 0, err.getvalue()
    assert "synthesis (ms)" in out.getvalue()
    (report_dir,) = (tmp_path / "reports").iterdir()
    summary = section((report_dir / "report.md").read_text(encoding="utf-8"), "## Summary")
    assert "| Synthesis (ms) |" in summary and "| RTF (synthesis) |" in summary
    body = {r[0]: r for r in table_rows(summary)}
    assert set(body) == {"numpy:dtype=float32", "numpy:dtype=float64"}
    assert all(float(r[2]) > 0 for r in body.values())
    assert body["numpy:dtype=float32"][6] == "baseline" and body["numpy:dtype=float64"][6] != "-"


def test_protocol_flags_reach_every_plan() -> None:
    """``--warmup``, ``--round-samples``, ``--target-iqr``, ``--worker-visits`` and ``--visit-warmup`` mean
    what they mean for ``perfkit run``; left out, each suite keeps its own."""
    parser = argparse.ArgumentParser()
    compare.register(parser.add_subparsers())
    given = parser.parse_args(["compare", "numpy", "--suite", "stages", "--suite", "parity", "--warmup", "0",
                               "--round-samples", "2", "--target-iqr", "0.5", "--min-samples", "4",
                               "--worker-visits", "3", "--visit-warmup", "2"])
    plans = compare.build_plans(given)
    assert sorted(p.suite for p in plans) == ["parity", "stages"]
    for plan in plans:
        assert (plan.protocol.warmup_rounds, plan.protocol.round_samples, plan.protocol.target_rel_iqr,
                plan.protocol.min_samples, plan.protocol.worker_visits, plan.protocol.visit_warmup
                ) == (0, 2, 0.5, 4, 3, 2)
    default = compare.build_plans(parser.parse_args(["compare", "numpy", "--suite", "stages"]))[0]
    assert default.protocol.worker_visits == 0 and default.protocol.visit_warmup == 1
    assert default.protocol.warmup_rounds == (get_suite("stages").protocol or Protocol()).warmup_rounds
