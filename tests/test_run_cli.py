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
                         "--preset", "tiny", "--results", tmp_path, *QUICK)
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
    assert run.settings["threads"] == 1 and run.protocol["max_samples"] == 3

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
