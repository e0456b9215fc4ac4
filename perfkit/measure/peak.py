"""The machine's limits, measured: peak GEMM throughput per library and dtype, and memory bandwidth.

:func:`machine_peaks` returns a :class:`MachinePeaks` for this machine, measured once and cached per
:class:`Fingerprint` (CPU model, cores, threads used, library versions) in a JSON file under the
cache directory (``$PERFKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/perfkit``, else ``~/.cache/perfkit``).
:func:`roofline` puts a stage's measured time against them.

What is measured (each a best-of-``repeats``; the median and the spread are stored too):

- **GEMM**: ``C = A @ B`` for square ``n x n`` operands, ``2 n**3`` FLOPs per product (torch: ``B`` stored
  transposed, ``A @ Bt.T``, the operand layout of ``F.linear``, the only one in which torch's bfloat16
  kernels on a CPU without AVX-512-BF16 are not a scalar loop: 0.3 against 19 GFLOP/s here): NumPy (its BLAS)
  float32 and float64, torch float32 and bfloat16 on the CPU (AMX where the CPU has it) and
  float32 (TF32 off), bfloat16, float16 on CUDA when a device is visible. torch's CPU float32 has two GEMM
  engines, each measured (``engine``): MKL's ``sgemm`` behind ``torch.mm`` (``""``, the library's default,
  as for every other entry) and oneDNN's, on a weight packed once (``"onednn"``, the kernel of ``conv2d``
  and of perfkit's torch linears); so has its bfloat16 where oneDNN has vectorised bfloat16 kernels for the
  CPU (:func:`onednn_gemm_available`). On the development machine's AMD EPYC MKL reached about 100 GFLOP/s
  and oneDNN about 150 at ``n = 2048``; a library's peak (:meth:`MachinePeaks.gemm`) is its fastest engine's,
  so a stage's "% of peak" is against the best that library does on this machine. ``n`` is adapted so that one
  product takes about ``target_s`` (a probe at ``n = 512`` sets it: ``n = cbrt(rate * target_s / 2)``,
  rounded to a multiple of 256 in ``[2048, max_n]``: below 2048 a GEMM is not at its peak, and a
  busy machine would make the probe pick too small an ``n``); a repetition that is still shorter than
  ``target_s`` (a fast GPU) runs the product several times back to back.
- **Memory bandwidth**, STREAM convention (bytes the kernel reads and writes, write-allocate traffic
  not counted): ``copy`` ``dst = src`` moves ``2 N`` bytes, ``triad`` ``a = b + s c`` moves ``3 N``, for
  arrays of ``N`` bytes larger than the last-level cache (``max(2 x L3, 256 MiB)``, at most 1 GiB and an
  eighth of the free memory). NumPy's copy runs on one thread; torch's copy and triad on ``threads``.
  The CPU bandwidth is the best of them.

Results are rates: ``rate = work / seconds`` per repetition (GFLOP/s = 1e9 FLOP/s, GB/s = 1e9 B/s).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..model.flops import StageCost
from .environment import cpu_model, gpus, load_average, package_versions

CACHE_ENV = "PERFKIT_CACHE_DIR"
CACHE_FILE = "machine_peaks.json"
SCHEMA = 4  # 2: torch's GEMM with B transposed; 3: torch's CPU float32 on oneDNN too; 4: and bfloat16 where
# oneDNN has vectorised bfloat16 kernels (older: measured again)

GEMM = "gemm"
COPY = "copy"
TRIAD = "triad"
#: Bytes moved per byte of one array, STREAM convention.
BANDWIDTH_TRAFFIC = {COPY: 2, TRIAD: 3}

NUMPY = "numpy"
TORCH = "torch"
TORCH_CUDA = "torch-cuda"
#: GEMM dtypes measured per library (CUDA ones only with a device).
GEMM_DTYPES: dict[str, tuple[str, ...]] = {
    NUMPY: ("float32", "float64"),
    TORCH: ("float32", "bfloat16"),
    TORCH_CUDA: ("float32", "bfloat16", "float16"),
}
LIBRARY_DEVICE = {NUMPY: "cpu", TORCH: "cpu", TORCH_CUDA: "cuda"}
DEFAULT_ENGINE = ""
ONEDNN = "onednn"
#: torch CPU dtypes whose GEMM oneDNN can run on a packed weight (:func:`onednn_gemm_available`).
ONEDNN_DTYPES = ("float32", "bfloat16")

DEFAULT_TARGET_S = 0.25
DEFAULT_REPEATS = 5
PROBE_N = 512
MIN_N = 2048
MAX_N = 4096
SLOW_GEMM_S = 2.0
"""A library/dtype whose ``MIN_N`` product would take longer than this (an emulated dtype: bfloat16
without AVX512-BF16/AMX runs at well under 1 GFLOP/s) is measured at the size ``target_s`` asks for,
down to ``PROBE_N``, instead: the rate is what matters, and minutes of one slow kernel are not."""
MIN_BANDWIDTH_BYTES = 256 * 2**20
MAX_BANDWIDTH_BYTES = 2**30

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- fingerprint
@dataclass(frozen=True)
class Fingerprint:
    """What a measured peak depends on; equal fingerprints (machine and settings) share a cache entry."""

    cpu_model: str
    cpu_count_logical: int
    cpu_count_usable: int
    threads: int
    machine: str
    libraries: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of every field."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def library_dict(self) -> dict[str, str]:
        return dict(self.libraries)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu_model": self.cpu_model, "cpu_count_logical": self.cpu_count_logical,
                "cpu_count_usable": self.cpu_count_usable, "threads": self.threads, "machine": self.machine,
                "libraries": {k: v for k, v in self.libraries}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        return cls(str(data["cpu_model"]), int(data["cpu_count_logical"]), int(data["cpu_count_usable"]),
                   int(data["threads"]), str(data["machine"]),
                   tuple(sorted((str(k), str(v)) for k, v in dict(data.get("libraries", {})).items())))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else the logical count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def cuda_device_name() -> str | None:
    """The first CUDA device's name when torch sees one (imports torch), else ``None``."""
    if not torch_importable():
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def fingerprint_gpu() -> str | None:
    """The first GPU's name from ``nvidia-smi``, or from torch when torch is already imported (importing it
    just for the fingerprint would cost seconds); ``None`` without one."""
    found = gpus(probe_torch="torch" in sys.modules)
    return str(found[0]["name"]) if found else None


def numpy_blas() -> str | None:
    """NumPy's own BLAS, ``"name version"``: from NumPy's build configuration, else the threadpoolctl pool
    loaded from NumPy's directory (not SciPy's or torch's, which may or may not be loaded yet)."""
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]  # type: ignore[attr-defined]
        if blas.get("found"):
            return f"{blas.get('name')} {blas.get('version')}".strip()
    except (AttributeError, KeyError, TypeError):
        pass
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas" and "numpy" in str(pool.get("filepath", "")):
                return f"{pool.get('internal_api')} {pool.get('version')}"
    except Exception:  # noqa: BLE001 - threadpoolctl inspects native libraries; a fingerprint never fails
        pass
    return None


def machine_fingerprint(threads: int | None = None) -> Fingerprint:
    """This machine's fingerprint for ``threads`` compute threads (default: every usable CPU)."""
    usable = usable_cpus()
    threads = usable if threads is None else int(threads)
    if threads <= 0:
        raise InputError(f"threads must be positive, got {threads}")
    libs: dict[str, str] = {k: v for k, v in package_versions(("numpy", "torch")).items() if v}
    blas = numpy_blas()
    if blas:
        libs["numpy_blas"] = blas
    cuda = fingerprint_gpu()
    if cuda:
        libs["cuda_device"] = cuda
    return Fingerprint(cpu_model() or platform.processor() or "unknown", os.cpu_count() or 1, usable, threads,
                       platform.machine(), tuple(sorted(libs.items())))


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PeakMeasurement:
    """One measured rate: ``kind`` (``gemm``, ``copy``, ``triad``) of ``library`` in ``dtype``.

    ``size``: ``n`` of the ``n x n`` GEMM, or the bytes of one bandwidth array. ``rates``: one rate per
    repetition (GFLOP/s for ``gemm``, GB/s otherwise); ``seconds``: their durations.
    """

    kind: str
    library: str
    dtype: str
    size: int
    rates: tuple[float, ...]
    seconds: tuple[float, ...]
    threads: int
    engine: str = DEFAULT_ENGINE  # "" (the library's default GEMM) or "onednn" (torch's packed CPU GEMM)

    @property
    def unit(self) -> str:
        return "GFLOP/s" if self.kind == GEMM else "GB/s"

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return float(np.median(self.rates))

    @property
    def spread(self) -> float:
        """``(max - min) / median`` of the rates (0 for one repetition)."""
        return (max(self.rates) - min(self.rates)) / self.median if self.median > 0 else math.nan

    @property
    def device(self) -> str:
        return LIBRARY_DEVICE.get(self.library, "cpu")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "library": self.library, "dtype": self.dtype, "size": self.size,
                "rates": list(self.rates), "seconds": list(self.seconds), "threads": self.threads,
                "engine": self.engine, "best": self.best, "median": self.median, "spread": self.spread,
                "unit": self.unit}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PeakMeasurement:
        return cls(str(data["kind"]), str(data["library"]), str(data["dtype"]), int(data["size"]),
                   tuple(float(r) for r in data["rates"]), tuple(float(s) for s in data["seconds"]),
                   int(data["threads"]), str(data.get("engine", DEFAULT_ENGINE)))


@dataclass(frozen=True)
class MachinePeaks:
    """Every measured peak of one machine fingerprint."""

    fingerprint: Fingerprint
    measured_utc: str
    measurements: tuple[PeakMeasurement, ...]
    load_avg: tuple[float, ...] | None = None  # read just before measuring: the load of other work
    from_cache: bool = field(default=False, compare=False)

    def gemm(self, library: str, dtype: str) -> PeakMeasurement:
        """The GEMM measurement of ``library`` in ``dtype`` (of its fastest engine, when several were
        measured); :class:`InputError` listing the measured ones."""
        found = [m for m in self.measurements if m.kind == GEMM and m.library == library and m.dtype == dtype]
        if found:
            return max(found, key=lambda m: m.best)
        have = ", ".join(f"{m.library}/{m.dtype}" for m in self.measurements if m.kind == GEMM) or "none"
        raise InputError(f"no measured GEMM peak for {library}/{dtype} on this machine (measured: {have})")

    def has_gemm(self, library: str, dtype: str) -> bool:
        return any(m.kind == GEMM and m.library == library and m.dtype == dtype for m in self.measurements)

    def gemm_gflops(self, library: str, dtype: str) -> float:
        """Peak GEMM throughput (best repetition), GFLOP/s."""
        return self.gemm(library, dtype).best

    def bandwidth(self, device: str = "cpu") -> PeakMeasurement:
        """The fastest bandwidth measurement on ``device`` (``cpu`` or ``cuda``)."""
        found = [m for m in self.measurements if m.kind != GEMM and m.device == device]
        if not found:
            raise InputError(f"no measured memory bandwidth for device {device!r} on this machine")
        return max(found, key=lambda m: m.best)

    def bandwidth_gbs(self, device: str = "cpu") -> float:
        """Peak memory bandwidth of ``device`` (best repetition of the best kernel), GB/s."""
        return self.bandwidth(device).best

    def ridge_point(self, library: str, dtype: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the roofline turns: ``peak GFLOP/s / peak GB/s``."""
        return self.gemm_gflops(library, dtype) / self.bandwidth_gbs(LIBRARY_DEVICE.get(library, "cpu"))

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint.to_dict(), "key": self.fingerprint.key,
                "measured_utc": self.measured_utc,
                "load_avg": list(self.load_avg) if self.load_avg is not None else None,
                "measurements": [m.to_dict() for m in self.measurements]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], from_cache: bool = False) -> MachinePeaks:
        load = data.get("load_avg")
        return cls(Fingerprint.from_dict(data["fingerprint"]), str(data["measured_utc"]),
                   tuple(PeakMeasurement.from_dict(m) for m in data["measurements"]),
                   tuple(float(x) for x in load) if load is not None else None, from_cache)


# --------------------------------------------------------------------------- roofline
@dataclass(frozen=True)
class Roofline:
    """A stage's achieved rates against the machine's peaks.

    ``arithmetic_intensity = flops / bytes``; ``ridge_point = peak_gflops / peak_gbs``; ``bound`` is
    ``"compute"`` when the intensity is at or above the ridge point, else ``"memory"``;
    ``percent_of_peak`` is ``achieved_gflops / peak_gflops`` for a compute-bound stage and
    ``achieved_gbs / peak_gbs`` for a memory-bound one (times 100). ``attainable_gflops =
    min(peak_gflops, intensity * peak_gbs)`` is the roofline itself.
    """

    flops: int
    bytes: int
    seconds: float
    achieved_gflops: float
    achieved_gbs: float
    peak_gflops: float
    peak_gbs: float
    arithmetic_intensity: float
    ridge_point: float
    bound: str
    percent_of_peak: float
    attainable_gflops: float
    library: str
    dtype: str

    @property
    def percent_of_attainable(self) -> float:
        if not self.attainable_gflops > 0:
            return math.nan
        return 100.0 * self.achieved_gflops / self.attainable_gflops


def roofline(stage_cost: StageCost, seconds: float, peaks: MachinePeaks, dtype: str,
             library: str) -> Roofline:
    """Achieved GFLOP/s and GB/s of ``stage_cost`` done in ``seconds``, against ``library``/``dtype`` peaks.

    ``library`` is the peak to compare with: ``numpy`` (NumPy and Numba backends), ``torch`` (torch and
    the official decoder on the CPU), ``torch-cuda`` (see :func:`peak_library`).
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    peak_gflops = peaks.gemm_gflops(library, dtype)
    peak_gbs = peaks.bandwidth_gbs(LIBRARY_DEVICE.get(library, "cpu"))
    ridge = peak_gflops / peak_gbs
    intensity = stage_cost.arithmetic_intensity
    gflops = stage_cost.flops / seconds / 1e9
    gbs = stage_cost.bytes / seconds / 1e9
    bound = "compute" if intensity >= ridge else "memory"
    percent = 100.0 * (gflops / peak_gflops if bound == "compute" else gbs / peak_gbs)
    attainable = min(peak_gflops, intensity * peak_gbs)
    return Roofline(stage_cost.flops, stage_cost.bytes, seconds, gflops, gbs, peak_gflops, peak_gbs,
                    intensity, ridge, bound, percent, attainable, library, dtype)


def peak_library(backend: str, device: str = "cpu") -> str:
    """The measured library a backend's rates compare with: ``numpy`` for ``numpy`` and ``numba`` (both
    call NumPy's BLAS or compete with it), ``torch-cuda`` on a CUDA device, else ``torch``."""
    if device.startswith("cuda"):
        return TORCH_CUDA
    return NUMPY if backend in ("numpy", "numba") else TORCH


# --------------------------------------------------------------------------- measuring
@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """BLAS/OpenMP pools limited to ``threads`` (threadpoolctl) and ``torch.set_num_threads(threads)``
    when torch is loaded; restored on exit."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)


def _round_n(n: float, max_n: int) -> int:
    """``n`` rounded to a multiple of 256, within ``[min(MIN_N, max_n), max_n]``."""
    return int(min(max(min(MIN_N, max_n), round(n / 256) * 256), max_n))


@functools.cache
def onednn_gemm_available(dtype: str = "float32") -> bool:
    """Whether this torch can pack a ``dtype`` weight for oneDNN's CPU GEMM: float32 on a CPU build with
    oneDNN; bfloat16 where oneDNN also has vectorised bfloat16 kernels for this CPU
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``: AVX-512, AVX512-BF16 or AMX; not an AVX2-only CPU, where
    torch's bfloat16 products are its own). The engine measured here, and the layout the torch backend packs
    its CPU linears in; asked once per dtype per process (the backend asks for every layer it packs)."""
    import torch

    if dtype not in ONEDNN_DTYPES:
        return False
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return False
    return dtype == "float32" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def gemm_engines(library: str, dtype: str, onednn_dtypes: Collection[str] = ()) -> tuple[str, ...]:
    """The engines measured for ``library`` in ``dtype``: the default, and oneDNN for torch's CPU dtypes in
    ``onednn_dtypes`` (those :func:`onednn_gemm_available` accepts on this machine)."""
    if library == TORCH and dtype in onednn_dtypes:
        return (DEFAULT_ENGINE, ONEDNN)
    return (DEFAULT_ENGINE,)


def _gemm_kernel(library: str, dtype: str, n: int, engine: str = DEFAULT_ENGINE
                 ) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(run, sync)`` computing one ``n x n`` product into a preallocated output (oneDNN: a new one)."""
    if library == NUMPY:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        c = np.empty((n, n), dtype=dtype)
        return (lambda: np.matmul(a, b, out=c)), (lambda: None)
    import torch

    device = "cuda" if library == TORCH_CUDA else "cpu"
    tdtype = getattr(torch, dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=tdtype)
    bt = torch.randn(n, n, generator=gen).to(device=device, dtype=tdtype)  # B^T, row-major
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if engine == ONEDNN:
        packed = torch.ops.mkldnn._reorder_linear_weight(bt, None)  # B^T in oneDNN's blocked layout
        return (lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")), sync
    c = torch.empty(n, n, device=device, dtype=tdtype)
    return (lambda: torch.mm(a, bt.t(), out=c)), sync


def _time_reps(run: Callable[[], None], sync: Callable[[], None], inner: int, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(inner):
            run()
        sync()
        out.append((time.perf_counter() - start) / inner)
    return out


def _single(run: Callable[[], None], sync: Callable[[], None]) -> float:
    return _time_reps(run, sync, 1, 1)[0]


@contextlib.contextmanager
def _cuda_float32_exact(library: str) -> Iterator[None]:
    """float32 means float32 on CUDA: no TF32 while measuring."""
    if library != TORCH_CUDA:
        yield
        return
    import torch

    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def measure_gemm(library: str, dtype: str, threads: int, *, n: int | None = None,
                 target_s: float = DEFAULT_TARGET_S, repeats: int = DEFAULT_REPEATS,
                 max_n: int = MAX_N, engine: str = DEFAULT_ENGINE) -> PeakMeasurement:
    """Best-of-``repeats`` GFLOP/s of an ``n x n`` GEMM (``n`` adapted to ``target_s`` when not given)."""
    with thread_limit(threads), _cuda_float32_exact(library):
        if n is None:
            probe_n = min(PROBE_N, max_n)
            run, sync = _gemm_kernel(library, dtype, probe_n, engine)
            run()  # warm-up: library initialisation, page faults
            probe_s = _single(run, sync)
            rate = 2 * probe_n**3 / max(probe_s, 1e-9)
            fit = (rate * target_s / 2) ** (1 / 3)
            slow = 2 * min(MIN_N, max_n) ** 3 / rate > SLOW_GEMM_S
            n = max(probe_n, round(fit / 256) * 256) if slow else _round_n(fit, max_n)
        run, sync = _gemm_kernel(library, dtype, n, engine)
        run()
        first = _single(run, sync)
        inner = max(1, math.ceil(target_s / max(first, 1e-9))) if first < target_s / 2 else 1
        seconds = _time_reps(run, sync, inner, repeats)
    flops = 2 * n**3
    return PeakMeasurement(GEMM, library, dtype, n, tuple(flops / s / 1e9 for s in seconds), tuple(seconds),
                           threads, engine)


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache (sysfs), or ``None``."""
    best = None
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in base.glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
        digits = text[:-1] if text[-1:].isalpha() else text
        if digits.isdigit():
            size = int(digits) * scale
            best = size if best is None else max(best, size)
    return best


def default_bandwidth_bytes() -> int:
    """``max(2 x LLC, 256 MiB)``, at most 1 GiB and an eighth of the available memory."""
    import psutil

    llc = last_level_cache_bytes() or 0
    size = min(max(2 * llc, MIN_BANDWIDTH_BYTES), MAX_BANDWIDTH_BYTES, psutil.virtual_memory().available // 8)
    return max(int(size), 2**20)


def _bandwidth_kernel(library: str, kind: str, nbytes: int) -> tuple[Callable[[], None], Callable[[], None]]:
    count = nbytes // 4
    if library == NUMPY:
        if kind != COPY:
            raise ValueError("NumPy measures copy only (its triad would take two passes)")
        src = np.ones(count, dtype=np.float32)
        dst = np.zeros(count, dtype=np.float32)
        return (lambda: np.copyto(dst, src)), (lambda: None)
    import torch

    device = "cuda" if library == TORCH_CUDA else "cpu"
    b = torch.ones(count, dtype=torch.float32, device=device)
    a = torch.zeros(count, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if kind == COPY:
        return (lambda: a.copy_(b)), sync
    c = torch.full((count,), 2.0, dtype=torch.float32, device=device)
    return (lambda: torch.add(b, c, alpha=3.0, out=a)), sync


def measure_bandwidth(library: str, kind: str, threads: int, *, nbytes: int | None = None,
                      repeats: int = DEFAULT_REPEATS, target_s: float = DEFAULT_TARGET_S) -> PeakMeasurement:
    """Best-of-``repeats`` GB/s of ``kind`` (``copy`` or ``triad``) over arrays of ``nbytes``."""
    nbytes = default_bandwidth_bytes() if nbytes is None else int(nbytes)
    nbytes -= nbytes % 4
    with thread_limit(threads):
        run, sync = _bandwidth_kernel(library, kind, nbytes)
        run()  # first touch
        first = _single(run, sync)
        inner = max(1, math.ceil(target_s / max(first, 1e-9))) if first < target_s / 2 else 1
        seconds = _time_reps(run, sync, inner, repeats)
    moved = BANDWIDTH_TRAFFIC[kind] * nbytes
    used = 1 if library == NUMPY else threads
    return PeakMeasurement(kind, library, "float32", nbytes, tuple(moved / s / 1e9 for s in seconds),
                           tuple(seconds), used)


def planned_measurements(with_torch: bool, with_cuda: bool, onednn_dtypes: Collection[str] = ()
                          ) -> list[tuple[str, str, str, str]]:
    """``(kind, library, dtype, engine)`` in measuring order (the bandwidth ``dtype`` is its array's, float32;
    ``engine`` is ``""`` but for torch's CPU GEMMs on oneDNN, in the dtypes of ``onednn_dtypes``)."""
    plan = [(GEMM, NUMPY, dt, DEFAULT_ENGINE) for dt in GEMM_DTYPES[NUMPY]]
    if with_torch:
        plan += [(GEMM, TORCH, dt, e) for dt in GEMM_DTYPES[TORCH] for e in gemm_engines(TORCH, dt, onednn_dtypes)]
    if with_cuda:
        plan += [(GEMM, TORCH_CUDA, dt, DEFAULT_ENGINE) for dt in GEMM_DTYPES[TORCH_CUDA]]
    plan.append((COPY, NUMPY, "float32", DEFAULT_ENGINE))
    if with_torch:
        plan += [(COPY, TORCH, "float32", DEFAULT_ENGINE), (TRIAD, TORCH, "float32", DEFAULT_ENGINE)]
    if with_cuda:
        plan += [(COPY, TORCH_CUDA, "float32", DEFAULT_ENGINE), (TRIAD, TORCH_CUDA, "float32", DEFAULT_ENGINE)]
    return plan


def measure_machine(threads: int, *, target_s: float = DEFAULT_TARGET_S, repeats: int = DEFAULT_REPEATS,
                    max_n: int = MAX_N, bandwidth_bytes: int | None = None, with_torch: bool | None = None,
                    with_cuda: bool | None = None,
                    progress: Progress | None = None) -> tuple[PeakMeasurement, ...]:
    """Every peak of :func:`planned_measurements`: torch when importable (its CPU GEMMs on oneDNN too, in
    the dtypes this build and CPU pack for it), CUDA when a device is visible."""
    with_torch = torch_importable() if with_torch is None else with_torch
    with_cuda = (with_torch and cuda_device_name() is not None) if with_cuda is None else with_cuda
    onednn_dtypes = tuple(dt for dt in GEMM_DTYPES[TORCH] if onednn_gemm_available(dt)) if with_torch else ()
    out = []
    for kind, library, dtype, engine in planned_measurements(with_torch, with_cuda, onednn_dtypes):
        if progress:
            progress(f"{kind} {library} {dtype}" + (f" ({engine})" if engine else ""))
        if kind == GEMM:
            out.append(measure_gemm(library, dtype, threads, target_s=target_s, repeats=repeats, max_n=max_n,
                                    engine=engine))
        else:
            out.append(measure_bandwidth(library, kind, threads, nbytes=bandwidth_bytes, repeats=repeats,
                                         target_s=target_s))
    return tuple(out)


# --------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """``$PERFKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/perfkit``, else ``~/.cache/perfkit``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "perfkit"


def cache_path(directory: str | os.PathLike[str] | None = None) -> Path:
    return Path(directory if directory is not None else cache_dir()) / CACHE_FILE


def read_cache(path: Path) -> dict[str, Any]:
    """``{key: MachinePeaks dict}`` from ``path``; an absent, unreadable or foreign file is an empty cache."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return {}
    if not isinstance(data.get("machines"), dict):
        return {}
    return dict(data["machines"])


def write_cache(path: Path, machines: Mapping[str, Any]) -> None:
    """Write atomically (temporary file + rename), so concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".machine_peaks.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"schema": SCHEMA, "machines": dict(machines)}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cached_peaks(fingerprint: Fingerprint,
                 directory: str | os.PathLike[str] | None = None) -> MachinePeaks | None:
    """The cached entry for ``fingerprint``, or ``None`` (absent or unreadable)."""
    entry = read_cache(cache_path(directory)).get(fingerprint.key)
    if entry is None:
        return None
    try:
        peaks = MachinePeaks.from_dict(entry, from_cache=True)
    except (KeyError, TypeError, ValueError):
        return None
    return peaks if peaks.fingerprint == fingerprint else None


def recorded_peaks(threads: int | None = None,
                   directory: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The cached peaks of this machine for ``threads`` as a dict, for a run to record; ``None`` when
    ``perfkit machine`` has not measured them (a run never measures them itself: that takes minutes)."""
    try:
        hit = cached_peaks(machine_fingerprint(threads), directory)
    except (InputError, OSError):
        return None
    return hit.to_dict() if hit is not None else None


def store_peaks(peaks: MachinePeaks, directory: str | os.PathLike[str] | None = None) -> Path:
    """Add or replace ``peaks``' entry, keeping the other machines'."""
    path = cache_path(directory)
    machines = read_cache(path)
    machines[peaks.fingerprint.key] = peaks.to_dict()
    write_cache(path, machines)
    return path


def machine_peaks(refresh: bool = False, threads: int | None = None, *,
                  directory: str | os.PathLike[str] | None = None, fingerprint: Fingerprint | None = None,
                  measure: Callable[[int], Sequence[PeakMeasurement]] | None = None,
                  progress: Progress | None = None) -> MachinePeaks:
    """This machine's peaks for ``threads`` threads: from the cache, or measured (and cached) when absent
    or ``refresh``. ``fingerprint`` and ``measure(threads)`` are injectable (tests)."""
    fp = fingerprint if fingerprint is not None else machine_fingerprint(threads)
    if not refresh:
        hit = cached_peaks(fp, directory)
        if hit is not None:
            return hit
    load = load_average()  # before measuring: the load of others, not of the measurement's own threads
    if measure is None:
        measurements = measure_machine(fp.threads, progress=progress)
    else:
        measurements = tuple(measure(fp.threads))
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    peaks = MachinePeaks(fp, now, tuple(measurements), load)
    store_peaks(peaks, directory)
    return peaks
