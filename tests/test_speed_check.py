"""The speed check: cached peaks measured again before a run, recorded with it, and warned about when stale."""

from __future__ import annotations

import dataclasses

import pytest

from perfkit.measure import speed_check
from perfkit.measure.peak import COPY, GEMM, NUMPY, TORCH, Fingerprint, MachinePeaks, PeakMeasurement
from perfkit.measure.speed_check import (
    SpeedCheck,
    check_speed,
    checked_speed,
    recorded_checks,
    remeasure,
    speed_note,
    speed_ratios,
    speed_shift,
    speed_warning,
)

CACHED_UTC = "2026-12-01T19:25:46+00:00"


def _fp() -> Fingerprint:
    return Fingerprint("Test CPU", 2, 2, 2, "x86_64", (("numpy", "2.0"),))


def _m(kind: str, library: str, dtype: str, best: float, size: int = 2048) -> PeakMeasurement:
    return PeakMeasurement(kind, library, dtype, size, (best / 2, best), (1.0, 0.5), 2)


def _peaks(gemm: float = 146.0, copy: float = 21.4) -> MachinePeaks:
    return MachinePeaks(_fp(), CACHED_UTC, (
        _m(GEMM, NUMPY, "float32", gemm), _m(GEMM, NUMPY, "float64", 73.0), _m(GEMM, TORCH, "float32", 150.0),
        _m(COPY, NUMPY, "float32", copy, 2**28),
    ))


class Rates:
    """An injected re-measurement: the given best rate per kind, recording what it was asked to measure."""

    def __init__(self, **best: float) -> None:
        self.best = best
        self.asked: list[tuple[str, str, str, int, int]] = []

    def __call__(self, cached: PeakMeasurement) -> PeakMeasurement:
        self.asked.append((cached.kind, cached.library, cached.dtype, cached.size, cached.threads))
        rate = self.best[cached.kind]
        return PeakMeasurement(cached.kind, cached.library, cached.dtype, cached.size, (rate,), (1.0,),
                               cached.threads)


def test_a_machine_at_a_third_of_its_cached_speed_is_warned_about():
    """The figures of the day this was written: 146 GFLOP/s cached, 48.5 now; copy 21.4 GB/s cached, 19 now."""
    measure = Rates(gemm=48.5, copy=19.0)
    checks = check_speed(_peaks(), measure)
    assert measure.asked == [(GEMM, NUMPY, "float32", 2048, 2), (COPY, NUMPY, "float32", 2**28, 2)]
    gemm, copy = checks
    assert gemm.ratio == pytest.approx(48.5 / 146.0) and not gemm.within_tolerance
    assert copy.ratio == pytest.approx(19.0 / 21.4) and copy.within_tolerance
    warning = speed_warning(checks)
    assert "runs slower than when its peaks were measured (2026-12-01T19:25:46+00:00)" in warning
    assert "NumPy float32 GEMM at 48.5 GFLOP/s, 33% of the 146.0 cached" in warning
    assert "copy" not in warning  # within tolerance: not named
    assert "reads too low" in warning and "perfkit machine --refresh" in warning
    assert speed_ratios(checks) == "speed against the cached peaks: NumPy float32 GEMM 33%, NumPy copy 89%"
    note = speed_note(checks)
    assert note.startswith("**The peaks are stale for this run**") and "33% (NumPy float32 GEMM)" in note


def test_a_faster_machine_reads_too_high_and_a_steady_one_passes():
    faster = check_speed(_peaks(gemm=50.0, copy=10.0), Rates(gemm=100.0, copy=25.0))
    assert "runs faster than" in speed_warning(faster) and "reads too high" in speed_warning(faster)
    mixed = check_speed(_peaks(gemm=50.0, copy=10.0), Rates(gemm=25.0, copy=25.0))
    assert "at another speed than" in speed_warning(mixed) and "reads wrong" in speed_warning(mixed)
    steady = check_speed(_peaks(), Rates(gemm=146.0 * 0.81, copy=21.4 * 1.24))
    assert all(c.within_tolerance for c in steady)
    assert speed_warning(steady) == "" and speed_note(steady) == ""
    assert speed_ratios(steady) == "speed against the cached peaks: NumPy float32 GEMM 81%, NumPy copy 124%"


def test_only_the_cached_numpy_measurements_are_checked():
    torch_only = MachinePeaks(_fp(), CACHED_UTC, (_m(GEMM, TORCH, "float32", 150.0),))
    measure = Rates(gemm=1.0, copy=1.0)
    assert check_speed(torch_only, measure) == () and measure.asked == []
    assert speed_warning(()) == "" and speed_note(()) == "" and speed_ratios(()) == ""


def test_remeasure_runs_the_cached_kernel_at_its_size_and_threads():
    """A real, small GEMM and copy: the re-measurement keeps the cached size and threads, three repetitions."""
    gemm = remeasure(PeakMeasurement(GEMM, NUMPY, "float32", 64, (1.0,), (1.0,), 1))
    copy = remeasure(PeakMeasurement(COPY, NUMPY, "float32", 2**20, (1.0,), (1.0,), 1))
    for m, kind, size in ((gemm, GEMM, 64), (copy, COPY, 2**20)):
        assert (m.kind, m.library, m.size, m.threads) == (kind, NUMPY, size, 1)
        assert len(m.rates) == speed_check.CHECK_REPEATS and min(m.rates) > 0


def test_checked_speed_measures_once_per_process_and_entry(monkeypatch):
    calls = []

    def fake(peaks: MachinePeaks) -> tuple[SpeedCheck, ...]:
        calls.append(peaks.measured_utc)
        return ()

    monkeypatch.setattr(speed_check, "check_speed", fake)
    speed_check._checked.cache_clear()
    try:
        entry = _peaks().to_dict()
        checked_speed(entry)
        checked_speed(dict(entry))
        assert calls == [CACHED_UTC]
        checked_speed({**entry, "measured_utc": "2026-12-02T00:00:00+00:00"})  # a refreshed entry
        assert calls == [CACHED_UTC, "2026-12-02T00:00:00+00:00"]
    finally:
        speed_check._checked.cache_clear()


def test_recorded_checks_round_trip_and_tolerate_older_runs():
    checks = check_speed(_peaks(), Rates(gemm=48.5, copy=19.0))
    assert recorded_checks({"machine_speed": [c.to_dict() for c in checks]}) == checks
    assert recorded_checks({}) == ()  # a run from before the check
    assert recorded_checks({"machine_speed": [{"kind": "gemm"}]}) == ()  # unreadable: as if absent


def test_a_run_on_a_slower_machine_records_the_check_and_its_report_says_the_peaks_are_stale(
        tmp_path, monkeypatch):
    """Cached peaks no machine reaches (a 64 x 64 GEMM at 1e6 GFLOP/s): the run warns, stores the checks,
    and the comparison report puts the stale-peak sentence under the % peak column."""
    from perfkit.measure.peak import machine_fingerprint, store_peaks
    from perfkit.measure.protocol import Protocol
    from perfkit.report.comparison import render_comparison
    from perfkit.report.sources import ResultSet
    from perfkit.run import CaseRequest, WorkerSettings, make_plan, run_plan

    monkeypatch.setenv("PERFKIT_CACHE_DIR", str(tmp_path / "cache"))
    fake = (PeakMeasurement(GEMM, NUMPY, "float32", 64, (1e6,), (1e-9,), 1),
            PeakMeasurement(COPY, NUMPY, "float32", 2**20, (1e6,), (1e-9,), 1))
    store_peaks(MachinePeaks(machine_fingerprint(1), CACHED_UTC, fake))
    plan = make_plan("stages", ["numpy"], CaseRequest("tiny", frames=(2,)),
                     protocol=Protocol(warmup_rounds=0, min_samples=3, max_samples=3, round_samples=3),
                     settings=WorkerSettings(threads=1))
    run = run_plan(plan, results_dir=None).run
    checks = recorded_checks(run.settings)
    assert [c.kind for c in checks] == [GEMM, COPY] and all(c.ratio < 0.01 for c in checks)
    assert any("runs slower than when its peaks were measured" in w for w in run.warnings)
    report = render_comparison(ResultSet((run,))).markdown
    assert "**The peaks are stale for this run**" in report
    assert "speed against the cached peaks: NumPy float32 GEMM 0%, NumPy copy 0%" in report


def test_perfkit_machine_shows_the_speed_check_for_cached_peaks(cli, tmp_path, monkeypatch):
    from perfkit.measure.peak import machine_fingerprint, store_peaks

    monkeypatch.setenv("PERFKIT_CACHE_DIR", str(tmp_path))
    fake = (PeakMeasurement(GEMM, NUMPY, "float32", 64, (1e6,), (1e-9,), 2),
            PeakMeasurement(COPY, NUMPY, "float32", 2**20, (1e6,), (1e-9,), 1))
    store_peaks(MachinePeaks(machine_fingerprint(), CACHED_UTC, fake))
    code, out, err = cli("machine")
    assert code == 0
    assert "speed against the cached peaks: NumPy float32 GEMM 0%, NumPy copy 0%" in out
    assert "warning: this machine runs slower than when its peaks were measured" in err
    code, out, _ = cli("machine", "--json")
    assert code == 0 and "speed against" not in out  # the JSON is the cached entry, unchanged


def _checks(gemm_now: float, copy_now: float = 19.0) -> tuple[SpeedCheck, ...]:
    return check_speed(_peaks(), Rates(gemm=gemm_now, copy=copy_now))


def test_speed_shift_names_the_kernels_that_ran_at_another_speed_on_each_side():
    """Each side's rate is the median over its runs; only kernels outside the tolerance are named."""
    shift = speed_shift([_checks(146.0), _checks(140.0), _checks(150.0)], [_checks(48.5)])
    assert shift.startswith("**The machine ran at another speed for the two sides' runs**")
    assert "NumPy float32 GEMM 146.0 GFLOP/s before, 48.5 after (0.33x)" in shift
    assert "copy" not in shift and "--base-source" in shift
    assert speed_shift([_checks(146.0)], [_checks(146.0 * 1.2)]) == ""  # within the tolerance
    assert speed_shift([_checks(146.0)], [()]) == ""  # the other side's run predates the check
    other_size = MachinePeaks(_fp(), CACHED_UTC, (_m(GEMM, NUMPY, "float32", 146.0, 1024),))
    assert speed_shift([_checks(146.0)], [check_speed(other_size, Rates(gemm=10.0))]) == ""  # another kernel


def test_a_journal_across_runs_at_different_speeds_says_so_and_an_interleaved_one_does_not():
    from synthetic_runs import NUMPY as NUMPY_VARIANT
    from synthetic_runs import stage_case, stages_run

    from perfkit.report.journal import JournalEntry, render_journal
    from perfkit.report.sources import ResultSet

    def side(run_id: str, commit: str, gemm_now: float, seed: int) -> ResultSet:
        run = stages_run(run_id, commit, [stage_case(NUMPY_VARIANT, seed)])
        settings = {**run.settings, "machine_speed": [c.to_dict() for c in _checks(gemm_now)]}
        return ResultSet.of([dataclasses.replace(run, settings=settings)])

    apart = render_journal([JournalEntry("before", side("b", "aaaa", 146.0, 1)),
                            JournalEntry("after", side("h", "bbbb", 48.5, 2))]).markdown
    summary = apart.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "**The machine ran at another speed for the two sides' runs**" in summary
    assert "speed against the cached peaks: NumPy float32 GEMM 33%" in apart  # the environment block
    together = render_journal([JournalEntry("before", side("b", "aaaa", 146.0, 1)),
                               JournalEntry("after", side("h", "bbbb", 146.0, 2))]).markdown
    assert "another speed" not in together


def test_a_stage_above_its_peak_says_the_peak_is_stale():
    """The four-way run of this session: the official decoder's block 0 residual units at 141% of a peak
    cached in a slow moment. Below 100% nothing is said."""
    from perfkit.measure.peak import roofline
    from perfkit.model.flops import StageCost
    from perfkit.report.comparison import above_peak_note

    peaks = _peaks()  # torch float32 150 GFLOP/s, bandwidth 21.4 GB/s
    cost = StageCost(45 * 10**9, 10**8, 10**8)  # compute-bound
    fast = roofline(cost, 45 / (1.41 * 150.0), peaks, "float32", TORCH)
    slow = roofline(cost, 1.0, peaks, "float32", TORCH)
    note = above_peak_note({"block_0.resunits": fast, "decode": slow})
    assert note.startswith("**Above the measured peak**: block 0 resunits reached 141% of it.")
    assert "perfkit machine --refresh" in note
    assert above_peak_note({"decode": slow}) == "" and above_peak_note({}) == ""
