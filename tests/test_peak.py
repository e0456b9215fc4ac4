"""Machine peaks: fingerprint and cache logic, roofline arithmetic on injected numbers, a tiny real run."""

from __future__ import annotations

import json
import math

import pytest

from perfkit.errors import InputError
from perfkit.measure import peak
from perfkit.measure.peak import (
    COPY,
    GEMM,
    NUMPY,
    TORCH,
    TORCH_CUDA,
    TRIAD,
    Fingerprint,
    MachinePeaks,
    PeakMeasurement,
    machine_peaks,
    peak_library,
    roofline,
)
from perfkit.model.flops import StageCost


def _fp(threads: int = 2, **changes) -> Fingerprint:
    base = dict(cpu_model="Test CPU", cpu_count_logical=4, cpu_count_usable=2, threads=threads,
                machine="x86_64", libraries=(("numpy", "2.0"), ("torch", "2.13")))
    base.update(changes)
    return Fingerprint(**base)


def _m(kind: str, library: str, dtype: str, *rates: float) -> PeakMeasurement:
    return PeakMeasurement(kind, library, dtype, 1024, tuple(rates), tuple(1.0 for _ in rates), 2)


def _peaks(fp: Fingerprint | None = None) -> MachinePeaks:
    """GEMM float32 100 GFLOP/s (torch), numpy float32 80, bfloat16 400; CPU bandwidth 10 GB/s."""
    return MachinePeaks(fp or _fp(), "2025-01-01T00:00:00+00:00", (
        _m(GEMM, NUMPY, "float32", 70.0, 80.0, 75.0),
        _m(GEMM, TORCH, "float32", 90.0, 100.0, 95.0),
        _m(GEMM, TORCH, "bfloat16", 400.0),
        _m(COPY, NUMPY, "float32", 6.0, 7.0),
        _m(TRIAD, TORCH, "float32", 9.0, 10.0, 8.0),
    ))


class Counter:
    """An injected ``measure(threads)`` that records its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, threads: int) -> tuple[PeakMeasurement, ...]:
        self.calls.append(threads)
        return _peaks().measurements


# --------------------------------------------------------------------------- fingerprint
def test_fingerprint_key_is_stable_and_covers_every_field():
    a = _fp()
    assert a.key == _fp().key and len(a.key) == 16
    different = [_fp(threads=1), _fp(cpu_model="Other"), _fp(cpu_count_usable=1), _fp(machine="aarch64"),
                 _fp(libraries=(("numpy", "2.1"), ("torch", "2.13"))), _fp(libraries=(("numpy", "2.0"),))]
    assert len({a.key, *(d.key for d in different)}) == 1 + len(different)
    assert Fingerprint.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_machine_fingerprint_of_this_machine():
    fp = peak.machine_fingerprint(threads=1)
    assert fp.threads == 1 and fp.cpu_count_usable >= 1 and fp.cpu_model
    assert "numpy" in fp.library_dict
    assert peak.machine_fingerprint(threads=1).key == fp.key
    assert peak.machine_fingerprint(threads=3).key != fp.key
    with pytest.raises(InputError):
        peak.machine_fingerprint(threads=0)


# --------------------------------------------------------------------------- cache
def test_measures_once_then_reads_the_cache(tmp_path):
    measure = Counter()
    first = machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure)
    assert measure.calls == [2] and not first.from_cache
    second = machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure)
    assert measure.calls == [2] and second.from_cache
    assert second == first  # from_cache is not compared
    assert second.gemm_gflops(TORCH, "float32") == 100.0


def test_refresh_measures_again_and_replaces_the_entry(tmp_path):
    measure = Counter()
    machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure)
    again = machine_peaks(refresh=True, directory=tmp_path, fingerprint=_fp(), measure=measure)
    assert measure.calls == [2, 2] and not again.from_cache
    data = json.loads((tmp_path / peak.CACHE_FILE).read_text())
    assert list(data["machines"]) == [_fp().key]


def test_the_recorded_load_is_read_before_measuring_not_after(tmp_path, monkeypatch):
    """The measurement's own threads raise the load average; the warning must see only other work."""
    busy = False

    def load() -> tuple[float, float, float]:
        return (1.9, 1.2, 0.8) if busy else (0.05, 0.1, 0.2)

    def measure(threads: int) -> tuple[PeakMeasurement, ...]:
        nonlocal busy
        busy = True  # what the kernels' threads do to the load average
        return _peaks().measurements

    monkeypatch.setattr(peak.os, "getloadavg", load)
    peaks = machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure)
    assert busy and peaks.load_avg == (0.05, 0.1, 0.2)
    assert peak.cached_peaks(_fp(), tmp_path).load_avg == (0.05, 0.1, 0.2)


def test_one_entry_per_fingerprint(tmp_path):
    measure = Counter()
    machine_peaks(directory=tmp_path, fingerprint=_fp(threads=2), measure=measure)
    machine_peaks(directory=tmp_path, fingerprint=_fp(threads=1), measure=measure)
    machine_peaks(directory=tmp_path, fingerprint=_fp(threads=2), measure=measure)
    assert measure.calls == [2, 1]
    data = json.loads((tmp_path / peak.CACHE_FILE).read_text())
    assert set(data["machines"]) == {_fp(threads=1).key, _fp(threads=2).key}
    assert data["schema"] == peak.SCHEMA


@pytest.mark.parametrize("content", ["not json", json.dumps({"schema": 999, "machines": {}}), "[1, 2]"])
def test_unreadable_cache_is_remeasured_and_rewritten(tmp_path, content):
    (tmp_path / peak.CACHE_FILE).write_text(content)
    measure = Counter()
    peaks = machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure)
    assert measure.calls == [2] and not peaks.from_cache
    assert machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure).from_cache


def test_peaks_of_an_older_method_are_measured_again(tmp_path):
    """A complete entry for this very fingerprint, written under schema 1 (torch's GEMM as ``a @ b``,
    which made torch's CPU bfloat16 peak a scalar loop's), is not used."""
    machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=Counter())
    path = tmp_path / peak.CACHE_FILE
    data = json.loads(path.read_text())
    # 2: torch's CPU float32 on MKL only, which read ~100 GFLOP/s where oneDNN did ~150; 3: its bfloat16 on
    # torch's default engine only, where an AMX CPU's packed oneDNN product is faster
    for old in (1, 2, 3):
        path.write_text(json.dumps({**data, "schema": old}))
        measure = Counter()
        assert not machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure).from_cache
        assert measure.calls == [2]
    assert peak.SCHEMA == 4


def test_a_corrupt_entry_is_a_miss(tmp_path):
    peak.write_cache(tmp_path / peak.CACHE_FILE, {_fp().key: {"fingerprint": _fp().to_dict()}})
    measure = Counter()
    machine_peaks(directory=tmp_path, fingerprint=_fp(), measure=measure)
    assert measure.calls == [2]


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(peak.CACHE_ENV, str(tmp_path / "explicit"))
    assert peak.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(peak.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert peak.cache_dir() == tmp_path / "xdg" / "perfkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert peak.cache_dir() == tmp_path / "home" / ".cache" / "perfkit"


def test_peaks_round_trip_through_json():
    p = _peaks()
    again = MachinePeaks.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    m = again.gemm(NUMPY, "float32")
    assert (m.best, m.median, m.unit) == (80.0, 75.0, "GFLOP/s")
    assert m.spread == pytest.approx(10 / 75)


# --------------------------------------------------------------------------- lookups and roofline
def test_peak_lookups():
    p = _peaks()
    assert p.gemm_gflops(TORCH, "bfloat16") == 400.0
    assert p.bandwidth_gbs("cpu") == 10.0  # the best CPU kernel (torch triad), not NumPy's one-thread copy
    assert p.ridge_point(TORCH, "float32") == 10.0
    assert p.has_gemm(NUMPY, "float32") and not p.has_gemm(NUMPY, "bfloat16")
    with pytest.raises(InputError, match="numpy/bfloat16"):
        p.gemm_gflops(NUMPY, "bfloat16")
    with pytest.raises(InputError, match="cuda"):
        p.bandwidth_gbs("cuda")


def test_roofline_compute_bound():
    # 50 GFLOP moving 1 GB (intensity 50 >= ridge 10) in 1 s: 50 GFLOP/s of a 100 GFLOP/s peak
    r = roofline(StageCost(50 * 10**9, 4 * 10**8, 6 * 10**8), 1.0, _peaks(), "float32", TORCH)
    assert r.bound == "compute"
    assert r.achieved_gflops == pytest.approx(50.0) and r.achieved_gbs == pytest.approx(1.0)
    assert r.arithmetic_intensity == pytest.approx(50.0) and r.ridge_point == pytest.approx(10.0)
    assert r.percent_of_peak == pytest.approx(50.0)
    assert r.attainable_gflops == pytest.approx(100.0) and r.percent_of_attainable == pytest.approx(50.0)


def test_roofline_memory_bound():
    # 1 GFLOP moving 1 GB (intensity 1 < ridge 10) in 0.25 s: 4 GB/s of a 10 GB/s bandwidth
    r = roofline(StageCost(10**9, 0, 10**9), 0.25, _peaks(), "float32", TORCH)
    assert r.bound == "memory"
    assert r.achieved_gbs == pytest.approx(4.0) and r.achieved_gflops == pytest.approx(4.0)
    assert r.percent_of_peak == pytest.approx(40.0)
    assert r.attainable_gflops == pytest.approx(10.0) and r.percent_of_attainable == pytest.approx(40.0)


def test_roofline_uses_the_library_and_dtype_peak():
    cost = StageCost(10**9, 0, 10**6)  # intensity 1000: compute-bound everywhere
    assert roofline(cost, 0.1, _peaks(), "float32", NUMPY).percent_of_peak == pytest.approx(10 / 80 * 100)
    assert roofline(cost, 0.1, _peaks(), "bfloat16", TORCH).percent_of_peak == pytest.approx(2.5)
    assert roofline(cost, 0.1, _peaks(), "bfloat16", TORCH).ridge_point == pytest.approx(40.0)
    with pytest.raises(ValueError):
        roofline(cost, 0.0, _peaks(), "float32", TORCH)
    with pytest.raises(InputError):
        roofline(cost, 1.0, _peaks(), "float32", TORCH_CUDA)


def test_peak_library():
    assert peak_library("numpy") == NUMPY and peak_library("numba") == NUMPY
    assert peak_library("torch") == TORCH and peak_library("qwen-tts") == TORCH
    assert peak_library("torch", "cuda") == TORCH_CUDA and peak_library("qwen-tts", "cuda:0") == TORCH_CUDA


def test_plan():
    plan = peak.planned_measurements(with_torch=False, with_cuda=False)
    assert plan == [(GEMM, NUMPY, "float32", ""), (GEMM, NUMPY, "float64", ""), (COPY, NUMPY, "float32", "")]
    full = peak.planned_measurements(with_torch=True, with_cuda=True, onednn_dtypes=("float32",))
    assert (GEMM, TORCH, "bfloat16", "") in full and (TRIAD, TORCH_CUDA, "float32", "") in full
    torch_f32 = [e for kind, lib, dt, e in full if (kind, lib, dt) == (GEMM, TORCH, "float32")]
    assert torch_f32 == ["", peak.ONEDNN]  # MKL and oneDNN; CUDA's and, here, bfloat16's one engine each
    assert [e for kind, lib, dt, e in full if (kind, lib, dt) == (GEMM, TORCH, "bfloat16")] == [""]
    assert [e for kind, lib, dt, e in full if lib == TORCH_CUDA and kind == GEMM] == ["", "", ""]
    amx = peak.planned_measurements(with_torch=True, with_cuda=False, onednn_dtypes=("float32", "bfloat16"))
    assert [e for kind, lib, dt, e in amx if (kind, lib, dt) == (GEMM, TORCH, "bfloat16")] == ["", peak.ONEDNN]
    no_onednn = peak.planned_measurements(with_torch=True, with_cuda=False)
    assert [e for kind, lib, dt, e in no_onednn if (kind, lib, dt) == (GEMM, TORCH, "float32")] == [""]


def test_onednn_dtypes():
    """float32 and bfloat16 only; bfloat16 exactly where torch reports native oneDNN bfloat16 (AVX-512, AMX)."""
    assert not peak.onednn_gemm_available("float64") and not peak.onednn_gemm_available("float16")
    torch = pytest.importorskip("torch")
    if peak.onednn_gemm_available("float32"):
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        assert peak.onednn_gemm_available("bfloat16") == native


def test_a_library_peak_is_its_fastest_engine():
    """torch's CPU float32 measured on MKL (100) and oneDNN (150): the peak, the ridge point and every
    roofline use 150; both engines survive the JSON round trip."""
    fast = PeakMeasurement(GEMM, TORCH, "float32", 1024, (140.0, 150.0), (1.0, 1.0), 2, peak.ONEDNN)
    p = MachinePeaks(_fp(), "2025-01-01T00:00:00+00:00", (*_peaks().measurements, fast))
    assert p.gemm(TORCH, "float32").engine == peak.ONEDNN and p.gemm_gflops(TORCH, "float32") == 150.0
    assert p.ridge_point(TORCH, "float32") == 15.0
    r = roofline(StageCost(75 * 10**9, 0, 10**6), 1.0, p, "float32", TORCH)
    assert r.percent_of_peak == pytest.approx(50.0)
    again = MachinePeaks.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p and [m.engine for m in again.measurements if m.library == TORCH][:2] == ["", ""]
    older = {k: v for k, v in fast.to_dict().items() if k != "engine"}  # written before engines existed
    assert PeakMeasurement.from_dict(older).engine == ""


# --------------------------------------------------------------------------- a real, tiny measurement
def test_tiny_real_measurement_is_positive_and_finite(tmp_path):
    """Proves the code path (NumPy and, when importable, torch); no timing is asserted."""

    def tiny(threads: int) -> tuple[PeakMeasurement, ...]:
        return peak.measure_machine(threads, target_s=0.001, repeats=2, max_n=64, bandwidth_bytes=2**20,
                                    with_cuda=False)

    peaks = machine_peaks(threads=1, directory=tmp_path, measure=tiny)
    assert peaks.fingerprint.threads == 1
    kinds = {(m.kind, m.library, m.dtype) for m in peaks.measurements}
    assert (GEMM, NUMPY, "float64") in kinds and (COPY, NUMPY, "float32") in kinds
    for m in peaks.measurements:
        assert len(m.rates) == 2
        assert all(math.isfinite(r) and r > 0 for r in m.rates), m
        assert m.size == (64 if m.kind == GEMM else 2**20)
    assert peaks.ridge_point(NUMPY, "float32") > 0
    for dtype in ("float32", "bfloat16"):
        if peak.torch_importable() and peak.onednn_gemm_available(dtype):  # the packed oneDNN GEMM ran too
            engines = [m.engine for m in peaks.measurements if (m.kind, m.library, m.dtype) == (GEMM, TORCH, dtype)]
            assert engines == ["", peak.ONEDNN], dtype
    assert machine_peaks(threads=1, directory=tmp_path, measure=tiny).from_cache


def test_machine_command_prints_the_cached_table(cli, tmp_path, monkeypatch):
    monkeypatch.setenv(peak.CACHE_ENV, str(tmp_path))
    measure = Counter()
    monkeypatch.setattr(peak, "measure_machine", lambda threads, **_: measure(threads))
    fp = peak.machine_fingerprint()
    onednn = PeakMeasurement(GEMM, TORCH, "float32", 1024, (150.0,), (1.0,), 2, peak.ONEDNN)
    peak.store_peaks(MachinePeaks(fp, "2025-01-01T00:00:00+00:00", (*_peaks(fp).measurements, onednn)), tmp_path)
    code, out, _ = cli("machine")
    assert code == 0 and measure.calls == []  # cached: nothing measured
    assert "gemm" in out and "bfloat16" in out and "GFLOP/s" in out and fp.key in out and "triad" in out
    assert "torch (onednn)" in out and "15.0" in out  # its own row, its ridge 150 / 10 GB/s
    code, out, _ = cli("machine", "--json")
    assert code == 0 and json.loads(out)["key"] == fp.key
    code, _, err = cli("machine", "--refresh", "--threads", "1")
    assert code == 0 and measure.calls == [1] and "measuring" not in err  # the fake reports no progress
    code, _, err = cli("machine", "--threads", "0")
    assert code == 2 and "--threads must be positive" in err


def test_a_run_records_the_cached_peaks_and_reports_percent_of_peak(tmp_path, monkeypatch):
    """With this machine's peaks cached, a stages run stores them and its report has a % peak column whose
    figures are the roofline's; without them there is no column (a run never measures peaks itself)."""
    from perfkit.measure.peak import MachinePeaks, machine_fingerprint, recorded_peaks, store_peaks
    from perfkit.measure.protocol import Protocol
    from perfkit.report.comparison import stage_medians
    from perfkit.report.stage_tables import timing_table
    from perfkit.report.stage_work import percent_of_peak, stage_costs
    from perfkit.report.timing import case_timing
    from perfkit.run import CaseRequest, WorkerSettings, make_plan, run_plan

    monkeypatch.setenv("PERFKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert recorded_peaks(1) is None
    fp = machine_fingerprint(1)
    fake = (PeakMeasurement("gemm", "numpy", "float32", 64, (100.0,), (0.01,), 1),
            PeakMeasurement("copy", "numpy", "", 2**20, (10.0,), (0.01,), 1))
    store_peaks(MachinePeaks(fp, "2026-01-01T00:00:00+00:00", fake))
    assert recorded_peaks(1) is not None
    plan = make_plan("stages", ["numpy"], CaseRequest("tiny", frames=(2,)),
                     protocol=Protocol(warmup_rounds=0, min_samples=3, max_samples=3, round_samples=3),
                     settings=WorkerSettings(threads=1))
    run = run_plan(plan, results_dir=None).run
    assert run.settings["machine_peaks"]["key"] == fp.key
    [case] = run.cases
    timing = case_timing(case)
    medians = stage_medians(timing)
    costs = stage_costs(case, "stages")
    cells = percent_of_peak(case, costs, medians, run.settings["machine_peaks"])
    cost = costs["decode"]
    expected = roofline(cost, medians["decode"] / 1e9, MachinePeaks.from_dict(run.settings["machine_peaks"]),
                        "float32", "numpy")
    assert cells["decode"] == f"{expected.percent_of_peak:.0f}% {'C' if expected.bound == 'compute' else 'M'}"
    assert "% peak" in timing_table(timing, {"decode": cost.flops, "pre_conv": 1}, "", cells)
    assert "% peak" not in timing_table(timing, {"decode": cost.flops, "pre_conv": 1}, "", {})
    assert percent_of_peak(case, costs, medians, None) == {}


def test_a_slow_dtype_is_measured_at_a_small_size(monkeypatch):
    """An emulated dtype (well under 1 GFLOP/s) is not run at MIN_N for minutes: the probe's rate sizes it."""
    import time as _time

    sizes = []

    def fake_kernel(library, dtype, n, engine=""):  # 0.2 GFLOP/s: MIN_N would take 86 s per product
        sizes.append(n)
        return (lambda: _time.sleep(2 * n**3 / 0.2e9)), (lambda: None)

    monkeypatch.setattr(peak, "_gemm_kernel", fake_kernel)
    m = peak.measure_gemm("torch", "bfloat16", 1, target_s=0.05, repeats=1)
    assert m.size == peak.PROBE_N < peak.MIN_N and max(sizes) == peak.PROBE_N
    assert 0.1 < m.best < 0.25  # the rate is still measured


def test_peaks_measured_under_load_are_flagged():
    from perfkit.commands.machine import load_warning

    fp = peak.machine_fingerprint(1)
    busy = peak.MachinePeaks(fp, "2026-01-01T00:00:00+00:00", (), load_avg=(3.0 * fp.cpu_count_usable, 1.0, 1.0))
    quiet = peak.MachinePeaks(fp, "2026-01-01T00:00:00+00:00", (), load_avg=(0.1, 0.1, 0.1))
    assert "--refresh" in load_warning(busy) and load_warning(quiet) == ""
