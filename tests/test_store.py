"""The result store: records round-trip, atomic never-overwriting writes, defensive loading, frames."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfkit.measure.environment import Environment
from perfkit.measure.timers import TimerInfo
from perfkit.store import (
    SCHEMA_VERSION,
    Case,
    CaseRecord,
    Failure,
    MemoryRecord,
    RecordError,
    ResultFileError,
    Run,
    SeriesRecord,
    Skipped,
    StageRecord,
    load_run,
    load_runs,
    new_run_id,
    result_files,
    samples_frame,
    write_run,
)
from perfkit.store.files import parse_run


def make_case(variant: str = "numpy:dtype=float32", n: int = 4, status: str = "ok") -> CaseRecord:
    visits = tuple(range(0, 2 * n, 2))
    stages = SeriesRecord("stages", True, 1, visits,
                          (StageRecord("pre_conv", tuple(100 + i for i in range(n)), 900),
                           StageRecord("final", tuple(200 + i for i in range(n)), 800)), covers="e2e")
    decode = StageRecord("decode", tuple(290 + i for i in range(n)), 5000)
    e2e = SeriesRecord("e2e", False, 2, visits, (decode,))
    name, _, opts = variant.partition(":")
    options = tuple(sorted(tuple(o.split("=")) for o in opts.split(",") if o))
    return CaseRecord(
        variant=variant, backend=name, options=options, case=Case("tiny", (("frames", 8), ("seed", 0))),
        status=status, failures=(Failure("crash", "round", "worker killed by signal SIGSEGV", "trace"),)
        if status == "failed" else (), device="cpu", timer=TimerInfo("perf_counter_ns", 50.0, 30.0),
        threads={"requested": 1, "env": {"OMP_NUM_THREADS": "1"}}, source_hash="abc123", load_ns=12345,
        first_call_ns=5000, weight_bytes=4096, series=(e2e, stages),
        memory=MemoryRecord(1000, 2000, 3000, 4000, 4096, 1500, None, None, 10, 0.002, 4),
    )


def make_run(run_id: str | None = None, cases: tuple[CaseRecord, ...] | None = None) -> Run:
    return Run(
        run_id=run_id or new_run_id("stages"), suite="stages", status="complete",
        started_utc="2026-01-02T03:04:05+00:00", finished_utc="2026-01-02T03:05:05+00:00",
        perfkit_version="0.1.0",
        command=("perfkit", "run"), protocol={"min_samples": 4}, settings={"threads": 1},
        environment=Environment(captured_utc="2026-01-02T03:04:05+00:00", cpu_model="test cpu",
                                cpu_count_logical=2, load_avg=(0.5, 0.4, 0.3), packages={"numpy": "2.0"},
                                git_commit="f" * 40, git_dirty=False,
                                threadpools=({"internal_api": "openblas", "num_threads": 1},)),
        warnings=("high load",), skipped=(Skipped("torch:device=cuda", "no CUDA device"),),
        cases=(make_case(), make_case("numpy:dtype=float64", status="failed")) if cases is None else cases,
    )


# ----------------------------------------------------------------------------- records
def test_write_then_load_gives_the_same_run(tmp_path):
    run = make_run()
    path = write_run(run, tmp_path)
    assert path == tmp_path / f"{run.run_id}.json"
    assert load_run(path) == run
    doc = json.loads(path.read_text())
    assert doc["format"] == "perfkit.result" and doc["schema_version"] == SCHEMA_VERSION


def test_run_id_names_time_suite_pid_and_random_suffix():
    a, b = new_run_id("stages"), new_run_id("stages")
    assert a != b
    stamp, suite, pid, suffix = a.rsplit("-", 3)
    assert len(stamp) == 16 and stamp.endswith("Z") and suite == "stages"
    assert pid == str(os.getpid()) and len(suffix) == 6
    assert "/" not in new_run_id("../../etc/passwd")


def test_series_totals_samples_and_lookup():
    case = make_case(n=3)
    stages = case.series_named("stages")
    assert stages.totals_ns() == (300, 302, 304)
    rows = list(stages.samples())
    assert len(rows) == 6
    assert rows[0].series == "stages" and rows[0].stage == "pre_conv" and rows[0].visit == 0
    assert rows[-1].wall_ns == 202 and rows[-1].index == 2 and rows[-1].visit == 4
    assert case.series_named("nope") is None


def test_series_refuses_ragged_samples():
    with pytest.raises(RecordError):
        SeriesRecord("x", True, 1, (0, 1), (StageRecord("a", (1,)),))


# ----------------------------------------------------------------------------- writing
def test_never_overwrites_an_existing_file(tmp_path):
    run = make_run()
    first = write_run(run, tmp_path)
    before = first.read_bytes()
    second = write_run(run, tmp_path)  # the same run id again
    assert second != first
    assert first.read_bytes() == before
    assert load_run(second).run_id == second.stem != run.run_id
    assert len(result_files(tmp_path)) == 2


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_run(make_run(), tmp_path)
    assert list(tmp_path.iterdir()) == []


_WRITER = textwrap.dedent("""
    import sys
    from perfkit.store import load_run, write_run
    run = load_run(sys.argv[1])
    print("ready", flush=True)
    for _ in range(int(sys.argv[3])):
        write_run(run, sys.argv[2])
""")


def test_killed_writer_leaves_only_complete_files(tmp_path):
    big = tuple(make_case(f"numpy:dtype=float32,tag={i}", n=5000) for i in range(4))
    source = write_run(make_run(cases=big), tmp_path / "source")
    out = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(source), str(out), "1000000"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(result_files(out)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.037)  # likely in the middle of a later write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    files = result_files(out)
    assert len(files) >= 2
    loaded = load_runs(out)
    assert loaded.skipped == ()  # every *.json is complete; a torn write can only be a hidden .tmp
    assert len(loaded.runs) == len(files)


def test_concurrent_writers_keep_everything(tmp_path):
    source = write_run(make_run(), tmp_path / "source")
    out = tmp_path / "results"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(source), str(out), "10"],
                              stdout=subprocess.DEVNULL)
             for _ in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    loaded = load_runs(out)
    assert len(loaded.runs) == 30 and loaded.skipped == ()
    assert len({r.run_id for r in loaded.runs}) == 30  # same run, same second: names still never collide


# ----------------------------------------------------------------------------- reading
def test_loader_reports_and_skips_unreadable_files(tmp_path):
    good = write_run(make_run(), tmp_path)
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "truncated.json").write_text(good.read_text()[:200])
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "foreign.json").write_text(json.dumps({"benchmarks": []}))
    newer = json.loads(good.read_text())
    newer["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    bad_type = json.loads(good.read_text())
    bad_type["cases"][0]["series"][0]["stages"][0]["wall_ns"][0] = "fast"
    (tmp_path / "badtype.json").write_text(json.dumps(bad_type))
    (tmp_path / "dir.json").mkdir()
    (tmp_path / ".hidden.tmp").write_text("{")
    (tmp_path / "notes.txt").write_text("not a result")

    loaded = load_runs([tmp_path, tmp_path / "missing.json"])
    assert [r.run_id for r in loaded.runs] == [good.stem]
    reasons = {p.name: r for p, r in ((s.path, s.reason) for s in loaded.skipped)}
    assert set(reasons) == {"empty.json", "truncated.json", "binary.json", "foreign.json", "newer.json",
                            "badtype.json", "missing.json"}
    assert "empty" in reasons["empty.json"]
    assert "not valid JSON" in reasons["truncated.json"]
    assert "UTF-8" in reasons["binary.json"]
    assert "not a perfkit result" in reasons["foreign.json"]
    assert "newer" in reasons["newer.json"]
    assert "wall_ns" in reasons["badtype.json"]
    assert "no such file" in reasons["missing.json"]


def test_load_run_raises_with_the_path(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2")
    with pytest.raises(ResultFileError, match="x.json: not valid JSON"):
        load_run(p)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                      max_size=4),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(_json)
def test_arbitrary_json_is_refused_cleanly(doc):
    try:
        parse_run(json.dumps(doc))
    except ResultFileError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_perturbed_result_is_loaded_or_refused_cleanly(data):
    doc = json.loads(json.dumps({"format": "perfkit.result", "schema_version": SCHEMA_VERSION,
                                 **make_run("r").to_dict()}))
    node = doc
    for _ in range(data.draw(st.integers(0, 6))):  # walk down to a random container
        inner = [k for k in (node if isinstance(node, dict) else range(len(node)))
                 if isinstance(node[k], dict | list) and len(node[k])]
        if not inner:
            break
        node = node[data.draw(st.sampled_from(inner))]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    node[data.draw(st.sampled_from(keys))] = data.draw(_json)  # and replace one of its children
    try:
        run = parse_run(json.dumps(doc))
    except ResultFileError:
        return
    assert isinstance(run, Run)


# ----------------------------------------------------------------------------- frames
def test_frame_has_one_row_per_sample(tmp_path):
    write_run(make_run(), tmp_path)
    (tmp_path / "junk.json").write_text("nope")
    from perfkit.store.frame import COLUMNS, load_frame

    frame, skipped = load_frame(tmp_path)
    assert [s.path.name for s in skipped] == ["junk.json"]
    assert tuple(frame.columns) == COLUMNS
    # two cases x (e2e: 1 stage + stages: 2 stages) x 4 samples
    assert len(frame) == 2 * 3 * 4
    one = frame[(frame.variant == "numpy:dtype=float32") & (frame.stage == "final")]
    assert one.wall_ns.tolist() == [200, 201, 202, 203]
    assert one.visit.tolist() == [0, 2, 4, 6]
    assert set(one.dtype) == {"float32"} and set(one.series) == {"stages"}
    assert frame.wall_ns.dtype == "int64"
    assert set(frame.case_status) == {"ok", "failed"}


def test_frame_of_nothing_is_empty_with_columns():
    frame = samples_frame([])
    assert len(frame) == 0 and "wall_ns" in frame.columns


def test_pooling_concatenates_samples_and_keeps_visits_distinct():
    from synthetic_runs import NUMPY, stage_case, stages_run

    from perfkit.store.pooling import pool_cases, pool_series, poolable

    a = SeriesRecord("e2e", False, 1, (0, 2), (StageRecord("decode", (10, 12), 99),))
    b = SeriesRecord("e2e", False, 1, (0, 1), (StageRecord("decode", (20, 22), 77),))
    pooled = pool_series([a, b])
    assert pooled.visits == (0, 2, 3, 4) and pooled.stage("decode").wall_ns == (10, 12, 20, 22)
    assert pooled.stage("decode").first_call_ns == 77  # the latest run's

    first_run = stages_run("r0", "c0", [stage_case(NUMPY, 1, n=3)])
    first = (first_run, first_run.cases[0])
    latest_run = stages_run("r1", "c0", [stage_case(NUMPY, 2, n=5, memory_peak=200 * 2**20)])
    latest = (latest_run, latest_run.cases[0])
    run, case, n = pool_cases([first, latest])
    assert run is latest_run and n == 2 and case.memory == latest[1].memory
    assert all(s.n == 8 for s in case.series)
    other_host = dataclasses.replace(first[0], environment=dataclasses.replace(first[0].environment,
                                                                               hostname="elsewhere"))
    assert not poolable((other_host, first[1]), latest)
    assert pool_cases([(other_host, first[1]), latest]) == (latest_run, latest[1], 1)
