"""Schema versions: a stored version-1 file is upgraded; newer and foreign files are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from perfkit.store import SCHEMA_VERSION, ResultFileError, load_run, load_runs
from perfkit.store.schema import MIGRATIONS, upgrade

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "result-v1.json"


def test_every_older_version_has_a_migration():
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))


def test_stored_v1_file_is_upgraded():
    before = V1.read_bytes()
    run = load_run(V1)
    assert V1.read_bytes() == before  # reading never rewrites a file

    assert run.run_id == "20250301T101500Z-stages-4242-0a1b2c"
    assert run.suite == "stages" and run.status == "complete"
    assert run.started_utc == run.finished_utc == "2025-03-01T10:15:00+00:00"
    assert run.environment.cpu_model == "Example CPU @ 2.10GHz"
    assert run.environment.load_avg == (0.12, 0.10, 0.05)
    assert run.environment.git_commit.startswith("0123456789")
    assert run.protocol["min_samples"] == 3
    assert [c.variant for c in run.cases] == ["numpy:dtype=float32", "numpy:dtype=float64", "numba"]

    f32 = run.cases[0]
    assert f32.backend == "numpy" and f32.options == (("dtype", "float32"),)
    assert f32.case.name == "tiny/frames=8/seed=0" and f32.case.param("frames") == 8
    assert f32.status == "ok" and f32.load_ns == 500_000
    assert f32.first_call_ns == 80_125_000  # the e2e first call
    e2e, stages = f32.series_named("e2e"), f32.series_named("stages")
    assert e2e.synced is False and e2e.covers is None
    assert stages.synced is True and stages.covers == "e2e"
    assert e2e.stage("decode").wall_ns == (41_500_000, 40_250_000, 42_000_000)  # ms floats -> int ns
    assert stages.stage_names == ("rvq_decode", "final")
    assert stages.stage("rvq_decode").wall_ns == (100_000, 105_000, 99_500)
    assert stages.stage("final").first_call_ns == 1_000_000
    assert stages.visits == (0, 1, 2)  # v1 did not record the interleaving order

    f64 = run.cases[1]
    assert f64.series_named("e2e").loops == 2 and f64.series_named("stages") is None

    numba = run.cases[2]
    assert numba.status == "failed" and numba.series == ()
    assert numba.failures[0].kind == "error" and "TypingError" in numba.failures[0].message


def test_upgrade_does_not_modify_its_input():
    doc = json.loads(V1.read_text())
    original = copy.deepcopy(doc)
    upgraded = upgrade(doc)
    assert doc == original
    assert upgraded["schema_version"] == SCHEMA_VERSION


def test_newer_version_is_refused_with_advice():
    with pytest.raises(ResultFileError, match=r"schema 99, newer than this perfkit reads.*upgrade perfkit"):
        load_run(FIXTURES / "result-v99.json")


def test_foreign_json_is_refused():
    with pytest.raises(ResultFileError, match="not a perfkit result file"):
        load_run(FIXTURES / "pytest-benchmark.json")


@pytest.mark.parametrize("version", [0, -1, "2", None, True, 1.5])
def test_bad_version_field_is_refused(version):
    doc = json.loads(V1.read_text())
    doc["schema_version"] = version
    with pytest.raises(ResultFileError, match="schema_version"):
        upgrade(doc)


def test_malformed_v1_is_refused_not_crashed(tmp_path):
    doc = json.loads(V1.read_text())
    del doc["id"]
    doc["results"][0]["samples_ms"] = ["fast"]
    p = tmp_path / "bad-v1.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ResultFileError, match="malformed schema 1"):
        load_run(p)


def test_loader_mixes_versions_and_skips_refusals():
    loaded = load_runs(FIXTURES)
    ids = {r.run_id for r in loaded.runs}
    assert "20250301T101500Z-stages-4242-0a1b2c" in ids
    skipped = {s.path.name for s in loaded.skipped}
    assert {"result-v99.json", "pytest-benchmark.json"} <= skipped


def test_stored_current_version_file_still_loads():
    """A file written by the current engine (a fake-backend run); when the schema moves on, this file is
    the fixture of the next migration."""
    run = load_run(FIXTURES / "result-v2.json")
    assert run.run_id == "20261122T030000Z-stages-1000-abcdef" and run.status == "complete"
    ok, failed = run.cases
    assert ok.status == "ok" and [s.name for s in ok.series] == ["e2e", "stages", "coarse"]
    assert all(s.n == 3 for s in ok.series) and ok.memory is not None and ok.threads["requested"] == 1
    assert failed.status == "failed" and failed.failures[0].message == "worker exited with code 3"
