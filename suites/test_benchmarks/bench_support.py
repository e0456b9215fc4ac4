"""Shared settings and helpers of the pytest-benchmark wrappers (see ``conftest.py``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from perfkit.interface import Backend, VocoderRunner
from perfkit.measure.parity import ParityResult, tolerance_for

BACKENDS = tuple(
    b.strip() for b in os.environ.get("PERFKIT_BENCH_BACKENDS", "numpy,numba,torch").split(",") if b.strip()
)
PRESET = os.environ.get("PERFKIT_BENCH_PRESET", "tiny")
FRAMES = int(os.environ.get("PERFKIT_BENCH_FRAMES", "25"))
ROUNDS = int(os.environ.get("PERFKIT_BENCH_ROUNDS", "15"))
SEED = 0
REFERENCE = "numpy:dtype=float64"


@dataclass
class LoadedVocoder:
    backend: Backend
    runner: VocoderRunner
    uploaded: Any
    label: str


def parity_info(result: ParityResult, dtype: str) -> dict[str, Any]:
    """What a benchmark records about its parity check: whether it passed, a readable line, and the
    metrics (non-finite values as strings) that perfkit's importer turns into a parity record."""
    from perfkit.store.parity_records import encode_float

    ok = result.passes(tolerance_for(dtype))
    if result.failure:
        metrics = "failure " + result.failure
    else:
        metrics = f"SNR {result.snr_db:.1f} dB, correlation {result.correlation:.6f}"
        metrics += f", max diff {result.max_abs_diff:.2e}"
    numbers = {k: encode_float(getattr(result, k)) for k in ("snr_db", "correlation", "max_abs_diff", "nmse")}
    return {
        "parity_passed": bool(ok),
        "parity": metrics,
        "parity_metrics": {**numbers, "failure": result.failure, "dtype": dtype, "reference": REFERENCE},
    }


def base_info(label: str, suite: str, series: str, stage: str, **case: Any) -> dict[str, Any]:
    """The ``extra_info`` perfkit's importer reads: where the benchmark belongs in a perfkit run."""
    return {
        "suite": suite,
        "variant": label,
        "preset": PRESET,
        "series": series,
        "stage": stage,
        "case": {"frames": FRAMES, "seed": SEED, **case},
    }
