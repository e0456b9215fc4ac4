"""``perfkit run`` and ``perfkit results`` end to end, on the real NumPy backend (few samples, no timings
asserted) and with unavailable variants, bad input and corrupt result files."""

from __future__ import annotations

import json

import pytest

from perfkit.errors import BackendUnavailable
from perfkit.model.stages import vocoder_fine_stages
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.store import load_runs, result_files

QUICK = ("--frames", "2", "--min-samples", "3", "--max-samples", "3", "--round-samples", "3", "--warmup", "0",
         "--no-memory", "--threads", "1")


@pytest.fixture
def no_float64(monkeypatch):
    from perfkit.backends.numpy import NumpyBackend

    def check(cls, options):
        if options["dtype"] == "float64":
            raise BackendUnavailable("float64 is switched off in this test")

    monkeypatch.setattr(NumpyBackend, "check_available", classmethod(check))


def test_run_writes_a_result_and_prints_the_summary(cli, tmp_path):
    code, out, err = cli("run", "--backend", "numpy", "--backend", "numpy:dtype=float64", "--suite", "stages",
                         "--preset", "tiny", "--results", tmp_path, *QUICK, "--visit-warmup", "2")
    assert code == 0, err
    [path] = result_files(tmp_path)
    assert f"result: {path}" in out
    for stage in (*vocoder_fine_stages(vocoder_preset("tiny")), "block_2", "sum of stage medians",
                  "overhead vs e2e",
                  "first call", "numpy:dtype=float32", "numpy:dtype=float64", "time ratio"):
        assert stage in out, stage
    run = load_runs(tmp_path).runs[0]
    assert run.status == "complete" and [c.status for c in run.cases] == ["ok", "ok"]
    assert run.command[:2] == ("perfkit", "run") or run.command == ("perfkit", "run")
    assert all(s.n == 3 for c in run.cases for s in c.series)
    assert run.settings["threads"] == 1 and run.protocol["max_samples"] == 3 and run.protocol["visit_warmup"] == 2

    code, out, err = cli("results", "--results", tmp_path)
    assert code == 0 and run.run_id in out and "numpy:dtype=float64" in out and "2/2" in out
    code, out, err = cli("results", "--results", tmp_path, run.run_id[:20])
    assert code == 0 and "block_0.tconv" in out
    code, out, err = cli("results", str(path))
    assert code == 0 and "block_0.tconv" in out


def test_unavailable_variant_is_reported_and_skipped(cli, tmp_path, no_float64):
    code, out, err = cli("run", "--backend", "numpy:dtype=float64", "--backend", "numpy", "--results",
                         tmp_path,
                         *QUICK)
    assert code == 0, err
    assert "skipped numpy:dtype=float64: float64 is switched off" in err
    run = load_runs(tmp_path).runs[0]
    assert [c.variant for c in run.cases] == ["numpy:dtype=float32"]
    assert [(s.variant, s.reason) for s in run.skipped] == [("numpy:dtype=float64",
                                                             "float64 is switched off in this test")]


def test_nothing_to_run_is_an_error(cli, tmp_path, no_float64):
    code, out, err = cli("run", "--backend", "numpy:dtype=float64", "--results", tmp_path, *QUICK)
    assert code != 0 and "no backend variant can run here" in err
    assert result_files(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "nosuch"), "unknown backend 'nosuch'"),
        (("--backend", "numpy", "--suite", "nosuch"), "unknown suite 'nosuch'"),
        (("--backend", "numpy", "--preset", "huge"), "unknown vocoder preset 'huge'"),
        (("--backend", "numpy:dtype=float16"), "float16"),
        (("--backend", "numpy", "--frames", "0"), "frames must be positive"),
        (("--backend", "numpy", "--min-samples", "9", "--max-samples", "3"), "max_samples"),
        (("--backend", "numpy", "--threads", "0"), "threads must be at least 1"),
        (("--backend", "numpy", "--param", "x=1"), "takes no parameter"),
    ],
)
def test_bad_input_is_one_line(cli, tmp_path, args, message):
    code, out, err = cli("run", "--results", tmp_path, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert result_files(tmp_path) == []


def test_results_reports_corrupt_files(cli, tmp_path):
    code, out, err = cli("results", "--results", tmp_path)
    assert code == 0 and "no runs stored" in out
    (tmp_path / "broken.json").write_text('{"format": "perfkit.result", "schema_version": 2')
    (tmp_path / "future.json").write_text(json.dumps({"format": "perfkit.result", "schema_version": 9}))
    code, out, err = cli("results", "--results", tmp_path)
    assert code == 0
    assert "broken.json: not valid JSON" in err and "future.json" in err and "newer" in err
    code, out, err = cli("results", "--results", tmp_path, "nomatch")
    assert code == 2 and "no stored run matches" in err


HOSTILE = "[/bold] [blink]x[/blink] [link=file:///etc]y[/link] \\"


def test_names_and_messages_from_results_print_literally(cli, tmp_path, monkeypatch):
    """Rich markup in a variant, stage, case, failure or skip reason is shown as text, never applied (an
    unmatched closing tag would otherwise fail the whole print)."""
    from dataclasses import replace

    from test_store import make_case, make_run

    from perfkit.store import write_run

    monkeypatch.setenv("COLUMNS", "400")
    ok = replace(make_case("numpy:tag=x"), variant=f"numpy:tag={HOSTILE}", options=(("tag", HOSTILE),))
    ok = replace(ok, series=tuple(replace(s, stages=tuple(replace(st, name=f"{st.name}{HOSTILE}")
                                                        for st in s.stages)) for s in ok.series))
    failed = make_case("numpy:dtype=float64", status="failed")
    failed = replace(failed, failures=(replace(failed.failures[0], message=f"boom {HOSTILE}"),))
    run = replace(make_run(cases=(ok, failed)), skipped=(replace(make_run().skipped[0], reason=HOSTILE),))
    path = write_run(run, tmp_path)
    for args in (("results", path), ("results", "--results", tmp_path)):
        code, out, err = cli(*args)
        assert code == 0, err
        flat = " ".join(out.split())
        assert "[/bold] [blink]x[/blink] [link=file:///etc]y[/link]" in flat, out
    code, out, err = cli("results", path)
    assert f"boom {HOSTILE}".strip() in " ".join(out.split())
    assert f"pre_conv{HOSTILE}".strip() in " ".join(out.split())


def test_progress_is_shown_per_variant(tmp_path):
    """The progress bars of a terminal: each variant of the case, loading -> measuring -> done."""
    import io

    from rich.console import Console
    from rich.progress import Progress, TextColumn

    from perfkit.commands.run import ProgressObserver
    from perfkit.measure.protocol import Protocol
    from perfkit.run import BackendRef, CaseRequest, make_plan, run_plan
    from perfkit.run.fake_backend import TARGET

    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)),
                     protocol=Protocol(warmup_rounds=0, min_samples=2, max_samples=2, round_samples=1),
                     extra=[BackendRef(f"fake:clock=virtual,tag={t}", TARGET) for t in "ab"])
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, color_system=None)
    with Progress(TextColumn("{task.description} {task.completed}/{task.total}"), console=console,
                  auto_refresh=False) as progress:
        observer = ProgressObserver(console, progress, plan.protocol.max_samples)
        run_plan(plan, tmp_path, observer=observer)
        final = {t.description: (t.completed, t.total) for t in progress.tasks}
    case = plan.cases[0].name
    assert final == {f"{case} {v.label}: [green]done[/green]": (2, 2) for v in plan.variants}
    assert f"{case} fake:clock=virtual,tag=a: done 2/2" in screen.getvalue()
