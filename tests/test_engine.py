"""The measurement engine with the fake backend: scheduling, interleaving, faults, interruption, files.

Nothing here asserts on a duration: the fake backend's waits only make the runs realistic; the
assertions are about order, counts, statuses, reasons and what reaches the disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
from perfkit.backends.numpy import NumpyBackend

from perfkit.errors import BackendUnavailable, InputError
from perfkit.measure.protocol import Protocol, calibrate_loops, should_stop
from perfkit.measure.timers import CpuTimer, cpu_timer_info
from perfkit.measure.verdict import Verdict, compare_samples
from perfkit.model.stages import vocoder_fine_stages, vocoder_stages
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.run import BackendRef, CaseRequest, Observer, WorkerSettings, make_plan, run_plan
from perfkit.run.fake_backend import TARGET
from perfkit.run.plan import worker_environment
from perfkit.run.process import describe_exit
from perfkit.run.summary import series_overhead, stage_timing_overhead, summarize_case
from perfkit.store import load_run, result_files
from perfkit.store.records import SeriesRecord, StageRecord

TINY = vocoder_preset("tiny")
# warm-up 1: set-up runs 3 series x 2 passes = passes 1..6; each visit of 2 samples runs 6 more passes
FOUR = Protocol(warmup_rounds=1, min_samples=4, max_samples=4, round_samples=2, budget_s=600,
                target_rel_iqr=0)
SECOND_VISIT = 16  # a pass inside a variant's second visit (passes 13..18)


def fake(spec: str) -> BackendRef:
    return BackendRef(f"fake:{spec}", TARGET)


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def live_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if alive(p)]


# ----------------------------------------------------------------------------- pure parts
def test_cpu_timer_spans_laps_and_syncs():
    syncs = []
    t = CpuTimer(lambda: syncs.append(1))
    t.start()
    t.lap("a")
    t.lap("b")
    t.lap("a")  # a repeated span accumulates
    t.end("c")
    spans = t.read()
    assert list(spans) == ["a", "b", "c"]
    assert all(isinstance(v, int) and v >= 0 for v in spans.values())
    assert len(syncs) == 4  # one per lap, and the one at the end
    info = cpu_timer_info()
    assert info.kind == "perf_counter_ns" and info.resolution_ns >= 1


def test_calibrate_loops():
    assert calibrate_loops(1e6, 50, 100, 1000) == 1  # 1 ms span >> 100 x 50 ns
    assert calibrate_loops(1000, 50, 100, 1000) == 5  # 5 us needed from 1 us spans
    assert calibrate_loops(1, 50, 100, 1000) == 1000  # clipped
    assert calibrate_loops(0, 50, 100, 7) == 7


def test_stopping_rule():
    p = Protocol(min_samples=3, max_samples=6, budget_s=10, target_rel_iqr=0.05)
    noisy = [100, 150, 80]
    steady = [100, 101, 100, 99]
    assert not should_stop(p, {"e2e": [100, 100]}, spent_s=99)  # below min_samples, whatever the budget
    assert should_stop(p, {"e2e": steady}, spent_s=0)  # quiet enough
    assert not should_stop(p, {"e2e": steady, "stages": noisy}, spent_s=0)  # every series must be quiet
    assert should_stop(p, {"e2e": noisy}, spent_s=10)  # budget spent
    assert should_stop(p, {"e2e": noisy * 2}, spent_s=0)  # max_samples


def test_protocol_override_moves_the_other_bound():
    base = Protocol(min_samples=10, max_samples=200)
    assert base.override(min_samples=500).max_samples == 500
    assert base.override(max_samples=4).min_samples == 4
    assert base.override(budget_s=None) == base  # None: not given
    assert base.override(budget_s=2.0).budget_s == 2.0


def test_protocol_refuses_nonsense():
    with pytest.raises(InputError, match="max_samples"):
        Protocol(min_samples=10, max_samples=5)


def test_protocol_visit_warmup_defaults_to_one_and_older_runs_had_none():
    assert Protocol().visit_warmup == 1
    assert Protocol.from_dict(Protocol(visit_warmup=3).to_dict()).visit_warmup == 3
    stored = {k: v for k, v in Protocol().to_dict().items() if k != "visit_warmup"}  # a run before the field
    assert Protocol.from_dict(stored).visit_warmup == 0
    with pytest.raises(InputError, match="visit_warmup"):
        Protocol(visit_warmup=-1)


@pytest.mark.parametrize("visit_warmup", [0, 1, 3])
def test_a_visit_runs_its_warmup_passes_of_the_first_series_untimed(visit_warmup):
    """A round of 2 samples of the stages suite's 3 series with ``warmup`` k runs 6 timed passes plus k
    discarded ones (the fake runner counts its passes), and returns 2 samples per series either way."""
    from perfkit.run.worker import WorkerState
    from perfkit.store.records import Case

    worker = WorkerState()
    protocol = Protocol(warmup_rounds=1, min_samples=2, max_samples=2, round_samples=2)
    worker.setup({"suite": "stages", "case": Case("tiny", (("frames", 1), ("seed", 0))).to_dict(),
                  "backend": {"spec": "fake:clock=virtual", "target": TARGET}, "threads": None,
                  "protocol": protocol.to_dict()})
    runner = worker.workload.runner
    for _ in range(2):
        before = runner.passes
        reply = worker.round({"samples": 2, "warmup": visit_warmup})
        assert runner.passes - before == 6 + visit_warmup
        assert {name: len(s) for name, s in reply["samples"].items()} == {"e2e": 2, "stages": 2, "coarse": 2}


def test_a_worker_older_than_the_visit_warmup_is_warmed_by_a_discarded_round():
    """This tree's workers (and a source tree's of the current protocol) get the warm-up in the round
    request; an older source tree's worker, which would ignore it, first gets a round of one sample whose
    reply is dropped; with no warm-up asked, one round either way."""
    from perfkit.run.engine import visit_requests
    from perfkit.run.worker import PROTOCOL_VERSION

    assert visit_requests(3, 1, None) == [{"op": "round", "samples": 3, "warmup": 1}]
    assert visit_requests(3, 2, PROTOCOL_VERSION) == [{"op": "round", "samples": 3, "warmup": 2}]
    for old in (0, PROTOCOL_VERSION - 1):
        assert visit_requests(3, 1, old) == [{"op": "round", "samples": 1},
                                             {"op": "round", "samples": 3, "warmup": 0}]
        assert visit_requests(3, 0, old) == [{"op": "round", "samples": 3, "warmup": 0}]


def test_describe_exit():
    assert describe_exit(-signal.SIGSEGV) == "killed by signal SIGSEGV (Segmentation fault)"
    assert describe_exit(3) == "exited with code 3"


def test_stage_timing_overhead():
    assert stage_timing_overhead([30, 60], 100) == pytest.approx(-0.1)
    assert stage_timing_overhead([60, 60], 100) == pytest.approx(0.2)


def _series(name: str, columns: dict[str, list[int]], covers: str | None = None) -> SeriesRecord:
    n = len(next(iter(columns.values())))
    return SeriesRecord(name, covers is not None, 1, tuple(range(n)),
                        tuple(StageRecord(stage, tuple(v)) for stage, v in columns.items()), covers)


def test_overhead_interval_excludes_zero_only_when_the_overhead_stands_out_of_the_noise():
    rng = np.random.default_rng(3)
    e2e = _series("e2e", {"decode": list(rng.integers(990, 1010, 40))})
    # two stages that add up to 10% more than the end-to-end passes, with 1% noise: told apart
    slow = _series("stages", {"a": list(rng.integers(545, 555, 40)), "b": list(rng.integers(545, 555, 40))},
                   covers="e2e")
    o = series_overhead(slow, e2e)
    assert o.estimate == pytest.approx(0.1, abs=0.01)
    assert o.low <= o.estimate <= o.high and o.confidence == pytest.approx(0.99)
    assert o.low > 0.05 and o.distinguishable
    # the same sum with +-40% noise and six passes: the interval spans zero
    noisy = _series("stages", {"a": [300, 700, 450, 650, 350, 500], "b": [500, 320, 690, 480, 610, 400]},
                    covers="e2e")
    o = series_overhead(noisy, _series("e2e", {"decode": [700, 1300, 1000, 900, 1200, 1050]}))
    assert o.low < 0.0 < o.high and not o.distinguishable
    # seeded: the same samples give the same interval
    assert series_overhead(noisy, e2e) == series_overhead(noisy, e2e)


def test_plan_resolves_variants_and_skips_unavailable(monkeypatch):
    from perfkit.backends.numpy import NumpyBackend

    def check(cls, options):
        if options["dtype"] == "float64":
            raise BackendUnavailable("float64 switched off for this test")

    monkeypatch.setattr(NumpyBackend, "check_available", classmethod(check))
    plan = make_plan("stages", ["numpy", "numpy:dtype=float32", "numpy:dtype=float64"],
                     CaseRequest("tiny", frames=(3, 3, 5), seed=7))
    # defaults spelled out, duplicates merged
    assert [v.spec for v in plan.variants] == ["numpy:dtype=float32"]
    assert [(s.variant, s.reason) for s in plan.skipped] == [("numpy:dtype=float64",
                                                               "float64 switched off for this test")]
    assert [c.name for c in plan.cases] == ["tiny/frames=3/seed=7", "tiny/frames=5/seed=7"]
    with pytest.raises(InputError, match="unknown backend"):
        make_plan("stages", ["nosuch"], CaseRequest("tiny"))
    with pytest.raises(InputError, match="unknown suite"):
        make_plan("nosuch", ["numpy"], CaseRequest("tiny"))
    with pytest.raises(InputError, match="no option"):
        make_plan("stages", ["numpy:colour=red"], CaseRequest("tiny"))


def test_worker_settings():
    env = WorkerSettings(threads=3).worker_env({"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "3"
    assert WorkerSettings().worker_env({"PATH": "/bin"}) == {"PATH": "/bin"}
    wanted = {"OPENBLAS_THREAD_TIMEOUT": "4", "PATH": "/usr/bin"}
    assert WorkerSettings().worker_env({"PATH": "/bin"}, backend=wanted) == {"PATH": "/bin",
                                                                           "OPENBLAS_THREAD_TIMEOUT": "4"}
    assert worker_environment("fake", TARGET) == {"PERFKIT_FAKE_MARK": "this tree"}
    assert worker_environment("numpy") == dict(NumpyBackend.worker_environment)
    assert worker_environment("fake", "perfkit.run.nosuch:Backend") == {}
    with pytest.raises(InputError):
        WorkerSettings(threads=0)
    with pytest.raises(InputError):
        WorkerSettings(memory_limit_bytes=1000)


# ----------------------------------------------------------------------------- runs
def test_interleaved_run_is_recorded(tmp_path):
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1, 2)), protocol=FOUR,
                     settings=WorkerSettings(threads=1, timeout_s=120),
                     extra=[fake("tag=a"), fake("tag=b,slow_stage=block_1,slow_factor=3")])
    outcome = run_plan(plan, tmp_path, command=["perfkit", "run"])

    assert outcome.path.parent == tmp_path and result_files(tmp_path) == [outcome.path]
    assert load_run(outcome.path) == outcome.run
    run = outcome.run
    assert run.status == "complete" and run.suite == "stages" and run.command == ("perfkit", "run")
    assert run.environment.source_hashes["backend:fake"] and run.environment.source_hashes["suite:stages"]
    # variants x cases, case by case
    b = "fake:slow_factor=3,slow_stage=block_1,tag=b"
    assert [(c.case.name, c.variant) for c in run.cases] == [
        ("tiny/frames=1/seed=0", "fake:tag=a"), ("tiny/frames=1/seed=0", b),
        ("tiny/frames=2/seed=0", "fake:tag=a"), ("tiny/frames=2/seed=0", b),
    ]
    for i, rec in enumerate(run.cases):
        assert rec.status == "ok" and rec.failures == ()
        # A B A B: visits are numbered across the case, each visit gives 2 samples of every series
        expected = (0, 0, 2, 2) if i % 2 == 0 else (1, 1, 3, 3)
        assert [s.name for s in rec.series] == ["e2e", "stages", "coarse"]
        for s in rec.series:
            assert s.visits == expected and s.loops >= 1
        stages = rec.series_named("stages")
        assert stages.stage_names == vocoder_fine_stages(TINY) and stages.covers == "e2e" and stages.synced
        assert rec.series_named("coarse").stage_names == vocoder_stages(TINY)
        assert rec.series_named("e2e").stage_names == ("decode",) and not rec.series_named("e2e").synced
        # first call and load stored apart from the samples
        assert rec.first_call_ns > 0 and rec.load_ns > 0
        assert all(st.first_call_ns > 0 and len(st.wall_ns) == 4 for s in rec.series for st in s.stages)
        assert rec.weight_bytes == VocoderModel.synthetic(TINY).weight_bytes
        assert rec.timer.kind == "perf_counter_ns" and rec.device == "cpu"
        assert rec.threads["requested"] == 1 and rec.threads["env"]["OMP_NUM_THREADS"] == "1"
        assert all(tp["num_threads"] == 1 for tp in rec.threads["threadpools"])
        assert rec.source_hash == run.environment.source_hashes["backend:fake"]
        assert rec.memory is None
        overheads = {s.name: s.overhead for s in summarize_case(rec)}
        assert overheads["e2e"] is None and overheads["stages"] is not None
    assert live_children() == []


def test_memory_pass(tmp_path):
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=FOUR, memory=True,
                     settings=WorkerSettings(timeout_s=120), extra=[fake("tag=a")])
    rec = run_plan(plan, tmp_path).run.cases[0]
    m = rec.memory
    assert rec.status == "ok" and m is not None
    assert 0 < m.baseline_rss_bytes <= m.rss_after_load_bytes <= m.peak_rss_bytes <= m.ru_maxrss_bytes
    assert m.peak_uss_bytes is None or 0 < m.peak_uss_bytes <= m.peak_rss_bytes
    assert m.weight_bytes == VocoderModel.synthetic(TINY).weight_bytes
    assert m.passes == 1 + FOUR.memory_passes and m.polls >= 2
    assert m.cuda_peak_allocated_bytes is None


def test_faults_are_isolated_recorded_and_the_run_goes_on(tmp_path):
    variants = [fake("tag=ok"), fake("fault=raise,fault_at=load"),
                fake(f"fault=exit,fault_at={SECOND_VISIT}"),
                fake(f"fault=segv,fault_at={SECOND_VISIT}"), fake(f"fault=hang,fault_at={SECOND_VISIT}"),
                fake("fault=oom,fault_at=load")]
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=FOUR, extra=variants,
                     settings=WorkerSettings(timeout_s=10, memory_limit_bytes=2 * 2**30))
    outcome = run_plan(plan, tmp_path)
    run = outcome.run
    assert run.status == "complete" and load_run(outcome.path) == run
    by = {c.variant.removeprefix("fake:"): c for c in run.cases}

    ok = by["tag=ok"]
    assert ok.status == "ok" and ok.series_named("e2e").n == 4

    def failure(key):
        rec = by[key]
        assert rec.status == "failed" and len(rec.failures) == 1
        return rec, rec.failures[0]

    rec, f = failure("fault=raise,fault_at=load")
    assert (f.kind, f.phase) == ("error", "setup") and "injected failure while loading" in f.message
    assert "RuntimeError" in f.detail and rec.series == ()

    rec, f = failure(f"fault=exit,fault_at={SECOND_VISIT}")
    assert (f.kind, f.phase, f.message) == ("crash", "round", "worker exited with code 3")
    assert all(s.n == 2 for s in rec.series)  # the first visit's samples are kept

    rec, f = failure(f"fault=segv,fault_at={SECOND_VISIT}")
    assert (f.kind, f.phase) == ("crash", "round") and "SIGSEGV" in f.message
    assert "Segmentation fault" in f.detail and "fake_backend.py" in f.detail  # faulthandler's traceback
    assert all(s.n == 2 for s in rec.series)

    rec, f = failure(f"fault=hang,fault_at={SECOND_VISIT}")
    assert (f.kind, f.phase) == ("timeout", "round") and "no reply within 10 s" in f.message
    assert all(s.n == 2 for s in rec.series)

    rec, f = failure("fault=oom,fault_at=load")
    assert (f.kind, f.phase) == ("oom", "setup") and "out of memory" in f.message
    assert live_children() == []



class _WorkerWatch(Observer):
    """At every visit's end: each live worker's status and CPU time (``psutil``)."""

    def __init__(self) -> None:
        self.views: list[dict[int, tuple[str, float]]] = []

    def samples_added(self, case, variant, n, visit):
        view = {}
        for p in live_children():
            try:
                if "perfkit.run.worker" in " ".join(p.cmdline()):
                    t = p.cpu_times()
                    view[p.pid] = (p.status(), t.user + t.system)
            except psutil.NoSuchProcess:
                pass
        self.views.append(view)


def _watched_run(tmp_path, protocol: Protocol, *specs: str):
    """Two or more fake variants on tiny, one frame, with a :class:`_WorkerWatch`: ``(run, watch)``."""
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=protocol,
                     settings=WorkerSettings(timeout_s=120), extra=[fake(spec) for spec in specs])
    watch = _WorkerWatch()
    return run_plan(plan, tmp_path, observer=watch).run, watch


def test_workers_wait_stopped_between_visits_and_visits_rotate_over_them(tmp_path):
    """Between visits every worker is stopped (its spinning thread pools cannot slow the one measured);
    with ``workers=2`` each variant has two processes and the visits go to each of them in turn."""
    protocol = Protocol(warmup_rounds=0, min_samples=8, max_samples=8, round_samples=1, budget_s=600,
                        target_rel_iqr=0, workers=2)
    run, watch = _watched_run(tmp_path, protocol, "tag=a,wait=spin,stage_us=300", "tag=b,wait=spin,stage_us=300")
    assert [c.status for c in run.cases] == ["ok", "ok"]
    assert all(len(c.series_named("stages").visits) == 8 for c in run.cases)
    # 2 variants x 2 workers alive (in the last visit, the first variant has finished and closed its own)
    assert len(watch.views) == 16 and all(len(v) == 4 for v in watch.views[:-1]) and len(watch.views[-1]) == 2
    for view in watch.views:
        assert {status for status, _ in view.values()} == {psutil.STATUS_STOPPED}
    ran = []  # the worker whose CPU time grew the most during each visit
    for before, after in zip(watch.views, watch.views[1:], strict=False):
        ran.append(max(after, key=lambda pid: after[pid][1] - before.get(pid, ("", 0.0))[1]))
    assert len(set(ran)) == 4  # every worker process was visited
    assert all(a != b for a, b in zip(ran, ran[1:], strict=False))  # never the same one twice running
    assert live_children() == []


def test_worker_visits_replaces_each_worker_by_a_fresh_one(tmp_path):
    """``worker_visits=2``: after two visits a variant's worker is closed and a fresh one set up, so its 6
    samples (one per visit) come from 3 processes, with never more than one per variant alive; no worker
    is started for a variant that has finished."""
    protocol = Protocol(warmup_rounds=0, min_samples=6, max_samples=6, round_samples=1, budget_s=600,
                        target_rel_iqr=0, worker_visits=2)
    run, watch = _watched_run(tmp_path, protocol, "tag=a,clock=virtual", "tag=b,clock=virtual")
    assert [c.status for c in run.cases] == ["ok", "ok"]
    assert run.cases[0].series_named("stages").visits == (0, 2, 4, 6, 8, 10)
    assert len(watch.views) == 12 and all(len(v) <= 2 for v in watch.views)
    pids = [set(v) for v in watch.views]
    assert len(set().union(*pids)) == 6  # 2 variants x 3 processes
    assert pids[0] == pids[1] == pids[2]  # each variant's first two visits: its first process
    assert pids[2].isdisjoint(pids[4])  # both replaced after them
    assert live_children() == []


_INTERRUPTIBLE = textwrap.dedent("""
    import sys
    from perfkit.measure.protocol import Protocol
    from perfkit.run import BackendRef, CaseRequest, Observer, WorkerSettings, make_plan, run_plan
    from perfkit.run.fake_backend import TARGET

    class Announce(Observer):
        def variant_ready(self, case, variant, setup):
            print("ready", variant, flush=True)

        def samples_added(self, case, variant, n, visit):
            print("visit", visit, variant, n, flush=True)

    protocol = Protocol(warmup_rounds=0, min_samples=100000, max_samples=100000, round_samples=1,
                        budget_s=1e6)
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=protocol,
                     settings=WorkerSettings(timeout_s=120),
                     extra=[BackendRef("fake:tag=a,stage_us=500", TARGET),
                            BackendRef("fake:tag=b,stage_us=500", TARGET)])
    out = run_plan(plan, sys.argv[1], observer=Announce())
    print("saved", out.path, out.run.status, flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_saves_every_completed_visit(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTIBLE, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    announced: dict[str, int] = {}
    workers: list[psutil.Process] = []
    try:
        for line in proc.stdout:
            words = line.split()
            if words[0] == "ready" and not workers:
                workers = psutil.Process(proc.pid).children()
            if words[0] == "visit":
                announced[words[2]] = announced.get(words[2], 0) + int(words[3])
                if sum(announced.values()) >= 5:
                    workers = psutil.Process(proc.pid).children() or workers
                    os.kill(proc.pid, sig)
                    break
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "saved" in rest and rest.strip().endswith("interrupted")
    [path] = result_files(tmp_path)
    run = load_run(path)
    assert run.status == "interrupted"
    assert {c.variant for c in run.cases} == {"fake:stage_us=500,tag=a", "fake:stage_us=500,tag=b"}
    for rec in run.cases:
        assert rec.status == "interrupted"
        reason = f"run interrupted by {signal.Signals(sig).name}"
        assert [(f.kind, f.message) for f in rec.failures] == [("interrupted", reason)]
        kept = rec.series_named("e2e").n
        assert kept >= announced.get(rec.variant, 0)  # nothing announced as measured is lost
        assert all(s.n == kept for s in rec.series)
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) == 2 and not any(alive(w) for w in workers)


# ----------------------------------------------------------------------------- known speed ratios
# The fake backend on its virtual clock: samples are exactly the configured stage durations (with seeded
# log-normal noise), whatever the machine's load, so engine + statistics must recover the true ratio.
KNOWN = Protocol(warmup_rounds=1, min_samples=30, max_samples=30, round_samples=5, budget_s=600,
                 target_rel_iqr=0)


def virtual(stage_us: int, seed: int, jitter: float = 0.05) -> BackendRef:
    return fake(f"clock=virtual,jitter={jitter},seed={seed},stage_us={stage_us}")


def known_ratio_run(tmp_path, base: BackendRef, head: BackendRef, protocol: Protocol = KNOWN):
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=protocol,
                     settings=WorkerSettings(timeout_s=120), extra=[base, head])
    run = run_plan(plan, tmp_path).run
    assert [c.status for c in run.cases] == ["ok", "ok"]
    return run.cases


@pytest.mark.parametrize(
    ("base_us", "head_us", "verdict"),
    [(1000, 1300, Verdict.SLOWER), (1300, 1000, Verdict.FASTER), (1000, 1000, Verdict.NO_CHANGE)],
    ids=["1.3x-slower", "1.3x-faster", "equal"],
)
def test_known_speed_ratio_gives_the_right_verdict(tmp_path, base_us, head_us, verdict):
    base, head = known_ratio_run(tmp_path, virtual(base_us, seed=1), virtual(head_us, seed=2))
    assert base.timer.kind == head.timer.kind == "virtual"
    true_ratio = head_us / base_us
    for name in ("e2e", "stages", "coarse"):
        b, h = base.series_named(name), head.series_named(name)
        assert b.n == h.n == 30
        c = compare_samples(b.totals_ns(), h.totals_ns())
        assert c.verdict is verdict, (name, c)
        assert c.ci_low <= true_ratio <= c.ci_high
        assert c.ratio == pytest.approx(true_ratio, rel=0.03)


def test_adaptive_stop_follows_the_spread(tmp_path):
    """Quiet samples stop at ``min_samples``; noisy ones run on to ``max_samples``."""
    adaptive = Protocol(warmup_rounds=0, min_samples=10, max_samples=40, round_samples=5, budget_s=600,
                        target_rel_iqr=0.02)
    quiet, noisy = known_ratio_run(tmp_path, virtual(1000, seed=1, jitter=0),
                                   virtual(1000, seed=2, jitter=0.5), adaptive)
    assert {s.n for s in quiet.series} == {10}
    assert {s.n for s in noisy.series} == {40}
    # visits still alternate while both measure, then the noisy one goes on alone
    assert quiet.series_named("e2e").visits == (0,) * 5 + (2,) * 5
    assert noisy.series_named("e2e").visits[:10] == (1,) * 5 + (3,) * 5


_THREADS = textwrap.dedent("""
    import json, numba, torch
    from perfkit.run.worker import apply_threads, thread_report
    from perfkit.run.fake_backend import FakeBackend
    apply_threads(1)
    print(json.dumps(thread_report(FakeBackend(), 1)))
""")


def test_worker_sets_and_records_numba_and_torch_threads():
    """In a worker's environment (thread variables set before start), every loaded pool runs 1 thread."""
    import json

    pytest.importorskip("numba")
    pytest.importorskip("torch")
    env = WorkerSettings(threads=1).worker_env()
    done = subprocess.run([sys.executable, "-c", _THREADS], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["requested"] == 1 and report["numba"] == 1 and report["torch"] == 1
    assert report["env"]["OMP_NUM_THREADS"] == report["env"]["NUMBA_NUM_THREADS"] == "1"
    assert report["threadpools"] and all(tp["num_threads"] == 1 for tp in report["threadpools"])


def memory_of(tmp_path, spec: str):
    """The memory record of one fake variant's memory pass (the stages suite, tiny preset, 1 frame)."""
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=FOUR, memory=True,
                     settings=WorkerSettings(timeout_s=120), extra=[fake(spec)])
    return run_plan(plan, tmp_path).run.cases[0].memory


def test_memory_pass_separates_the_load_from_the_run(tmp_path):
    """A backend that keeps 96 MiB from its load and needs 64 MiB while it runs: the after-load RSS holds
    the 96, the working memory the 64 (plus the tiny model's weights), and the load peak is its own."""
    held, scratch = 96, 64
    m = memory_of(tmp_path, f"hold_mib={held},scratch_mib={scratch},stage_us=2000")
    assert m is not None and m.load_peak_rss_bytes is not None and m.run_peak_rss_bytes is not None
    mib = 2**20
    assert m.rss_after_load_bytes - m.baseline_rss_bytes >= held * mib
    assert m.load_peak_rss_bytes >= m.rss_after_load_bytes - mib  # the held copy was made during the load
    assert m.run_peak_rss_bytes - m.rss_after_load_bytes >= scratch * mib * 0.9
    assert m.peak_rss_bytes == max(m.load_peak_rss_bytes, m.run_peak_rss_bytes)
    working = m.working_bytes(None)
    assert (held + scratch * 0.9) * mib <= working <= (held + scratch + 48) * mib


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="psutil reports file-backed RSS on Linux")
def test_memory_pass_reports_the_file_backed_part_of_the_working_memory(tmp_path):
    """A backend whose first call pages in 48 MiB of a mapped file (as a library's code is) and allocates
    32 MiB: the working memory holds both, its file-backed part the 48 only."""
    mapped, scratch = 48, 32
    m = memory_of(tmp_path, f"mapped_mib={mapped},scratch_mib={scratch},stage_us=2000")
    assert m is not None and m.baseline_file_rss_bytes is not None and m.run_peak_file_rss_bytes is not None
    mib = 2**20
    assert mapped * mib * 0.9 <= m.file_backed_working_bytes <= (mapped + 16) * mib
    assert m.working_bytes(None) >= (mapped + scratch) * mib * 0.9


def test_memory_pass_without_scratch_reports_little_working_memory(tmp_path):
    m = memory_of(tmp_path, "stage_us=2000")
    assert m is not None and m.run_peak_rss_bytes is not None
    assert m.working_bytes(None) < 32 * 2**20


def test_a_visit_shares_round_samples_out_over_the_workers(tmp_path):
    """``round_samples=4`` over ``workers=2``: visits of 2 samples, so 8 samples come from 4 visits (both
    processes twice) instead of 2 visits of 4 (each process once, a single cluster per process)."""
    assert Protocol(round_samples=4, workers=2).visit_samples == 2
    assert Protocol(round_samples=5, workers=3).visit_samples == 1
    assert Protocol(round_samples=1, workers=3).visit_samples == 1
    protocol = Protocol(warmup_rounds=0, min_samples=8, max_samples=8, round_samples=4, budget_s=600,
                        target_rel_iqr=0, workers=2)
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1,)), protocol=protocol,
                     settings=WorkerSettings(timeout_s=120), extra=[fake("tag=a,clock=virtual")])
    rec = run_plan(plan, tmp_path).run.cases[0]
    assert rec.status == "ok" and rec.series_named("stages").visits == (0, 0, 1, 1, 2, 2, 3, 3)
