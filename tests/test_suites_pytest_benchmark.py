"""pytest-benchmark interop: a JSON file recorded from ``pytest suites/ --benchmark-only`` read by perfkit —
imported into the store, and rendered by the journal with its parity line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from report_support import FIXTURES, section, table_rows

from perfkit.report.journal import JournalEntry, render_journal
from perfkit.report.sources import load_results
from perfkit.store.files import load_run, load_runs
from perfkit.store.parity_records import parity_records
from perfkit.store.pytest_benchmark import is_pytest_benchmark, runs_from_pytest_benchmark
from perfkit.store.schema import ResultFileError

RECORDED = FIXTURES / "pytest-benchmark-stages.json"


@pytest.fixture
def doc() -> dict:
    return json.loads(RECORDED.read_text())


def test_recorded_file_becomes_a_stages_run(doc: dict) -> None:
    assert is_pytest_benchmark(doc)
    (run,) = runs_from_pytest_benchmark(doc, str(RECORDED))
    assert run.suite == "stages" and run.status == "complete"
    assert run.environment.git_commit == doc["commit_info"]["id"]
    (case,) = run.cases
    assert case.variant == "numpy:dtype=float32" and case.case.name == "tiny/frames=25/seed=0"
    stages = case.series_named("stages")
    assert stages is not None and len(stages.stages) == 15 and stages.n == 5
    e2e = case.series_named("e2e")
    data = next(b for b in doc["benchmarks"] if b["name"] == "test_decode[numpy]")["stats"]["data"]
    assert e2e is not None and e2e.stages[0].wall_ns == tuple(round(x * 1e9) for x in data)
    (record,) = parity_records(run)
    assert record.passed and len(record.stages) == 15 and record.waveform is not None


def test_import_is_stable(doc: dict) -> None:
    assert runs_from_pytest_benchmark(doc) == runs_from_pytest_benchmark(copy.deepcopy(doc))


def test_parity_failure_in_extra_info_marks_timings_invalid(doc: dict) -> None:
    bad = copy.deepcopy(doc)
    for b in bad["benchmarks"]:
        if b["name"] == "test_stage[numpy-final]":
            b["extra_info"].update(parity_passed=False, parity="failure nan")
            b["extra_info"]["parity_metrics"].update(snr_db="nan", correlation="nan", failure="nan")
    (good_run,) = runs_from_pytest_benchmark(doc)
    (bad_run,) = runs_from_pytest_benchmark(bad)
    assert bad_run.cases[0].status == "failed" and bad_run.cases[0].failures[0].phase == "parity"
    j = render_journal([JournalEntry("base", load_results([str(RECORDED)])),
                        JournalEntry("head", type(load_results([str(RECORDED)])).of([bad_run]))])
    rows = table_rows(section(j.markdown, "### stages · numpy:dtype=float32"))
    assert rows and all(r[7] == "INVALID (parity)" for r in rows)
    assert j.invalid


def test_without_raw_samples_the_median_stands_in(doc: dict) -> None:
    thin = copy.deepcopy(doc)
    for b in thin["benchmarks"]:
        del b["stats"]["data"]
    (run,) = runs_from_pytest_benchmark(thin)
    assert all(st.wall_ns == (round(b["stats"]["median"] * 1e9),)
               for b, st in zip(thin["benchmarks"][1:], run.cases[0].series_named("stages").stages, strict=False))
    assert any("--benchmark-save-data" in w for w in run.warnings)


def test_several_suites_become_several_runs(doc: dict) -> None:
    mixed = copy.deepcopy(doc)
    mixed["benchmarks"][0]["extra_info"]["suite"] = "generator"
    mixed["benchmarks"].append({"name": "test_plain", "stats": {"data": [0.001, 0.002], "median": 0.0015}})
    runs = runs_from_pytest_benchmark(mixed)
    assert [r.suite for r in runs] == ["generator", "pytest-benchmark", "stages"]
    plain = runs[1].cases[0]
    assert plain.variant == "pytest" and plain.case.name == "pytest/test=test_plain"
    assert len({r.run_id for r in runs}) == 3


def test_foreign_files_are_refused() -> None:
    with pytest.raises(ResultFileError):
        runs_from_pytest_benchmark({"benchmarks": "no"})
    with pytest.raises(ResultFileError):
        runs_from_pytest_benchmark({"machine_info": {}, "benchmarks": [{"name": "x"}]})


def test_import_command_stores_once(cli, tmp_path: Path) -> None:
    code, out, _ = cli("import", str(RECORDED), "--results", str(tmp_path))
    assert code == 0 and "suite stages" in out
    code, out, _ = cli("import", str(RECORDED), "--results", str(tmp_path))
    assert code == 0 and "already stored" in out
    loaded = load_runs(tmp_path)
    assert len(loaded.runs) == 1 and not loaded.skipped
    assert load_run(loaded.paths[0]) == runs_from_pytest_benchmark(json.loads(RECORDED.read_text()), str(RECORDED))[0]
    code, _, err = cli("import", str(FIXTURES / "base" / "20260101T000000Z-stages-base.json"), "--results",
                       str(tmp_path))
    assert code != 0 and "not a pytest-benchmark file" in err


def test_journal_reads_pytest_benchmark_json_directly(cli) -> None:
    code, out, _ = cli("journal", "--base", str(RECORDED), "--head", str(RECORDED), "--no-plots")
    assert code == 0
    assert "### stages · numpy:dtype=float32 · tiny/frames=25/seed=0" in out
    assert "Parity (after) vs numpy:dtype=float64 (waveform)" in out and "— PASS" in out


def test_pytest_suites_benchmark_only_writes_importable_json(tmp_path: Path) -> None:
    """The documented command works under the project's ``--benchmark-disable`` addopts, and its JSON
    (raw samples kept by the wrappers' conftest) imports into perfkit."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    env = {**os.environ, "PERFKIT_BENCH_BACKENDS": "numpy", "PERFKIT_BENCH_ROUNDS": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/", "--benchmark-only", f"--benchmark-json={out}", "-q",
         "-p", "no:cacheprovider", "-k", "test_decode or (test_stage and pre_conv)"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = runs_from_pytest_benchmark(json.loads(out.read_text()), str(out))
    (case,) = run.cases
    assert case.series_named("e2e").n == 3 and case.series_named("stages").stage_names == ("pre_conv",)
    assert parity_records(run)[0].passed
