"""Parity metrics of a test signal against a reference, computed in float64.

For reference ``r`` and test ``x`` (same shape), with ``e = x - r``:

- ``snr_db = 10 * log10(sum(r**2) / sum(e**2))`` (``inf`` when identical);
- ``correlation`` = Pearson correlation of the flattened arrays;
- ``max_abs_diff = max |e|``;
- ``nmse = sum(e**2) / sum(r**2)``.

NaN or Inf anywhere in ``x``, or a silent ``x`` (all |x| <= 1e-9) while the reference is not, is a
hard failure whatever the tolerance: :attr:`ParityResult.failure` names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SILENCE = 1e-9


@dataclass(frozen=True)
class ParityResult:
    snr_db: float
    correlation: float
    max_abs_diff: float
    nmse: float
    failure: str = ""  # "", "nan", "inf", "silence", "shape"

    @property
    def finite(self) -> bool:
        return not self.failure

    def passes(self, tolerance: Tolerance) -> bool:
        if self.failure:
            return False
        return self.snr_db >= tolerance.min_snr_db and self.correlation >= tolerance.min_correlation


@dataclass(frozen=True)
class Tolerance:
    """Minimum SNR (dB) and correlation a stage must reach for a dtype."""

    min_snr_db: float
    min_correlation: float


#: Tolerances per compute dtype against the float64 NumPy reference (per stage and on the waveform).
TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(120.0, 0.999_999),
    "float32": Tolerance(60.0, 0.999_99),
    "bfloat16": Tolerance(20.0, 0.99),
    "float16": Tolerance(30.0, 0.999),
}


def tolerance_for(dtype: str) -> Tolerance:
    return TOLERANCES.get(dtype, TOLERANCES["float32"])


def compare(test: np.ndarray, reference: np.ndarray) -> ParityResult:
    """All metrics of ``test`` against ``reference``; failures are reported, never raised."""
    x = np.asarray(test, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    nan = math.nan
    if x.shape != r.shape:
        return ParityResult(nan, nan, nan, nan, failure="shape")
    if np.isnan(x).any():
        return ParityResult(nan, nan, nan, nan, failure="nan")
    if np.isinf(x).any():
        return ParityResult(nan, nan, nan, nan, failure="inf")
    if x.size and np.max(np.abs(x)) <= SILENCE < np.max(np.abs(r)):
        return ParityResult(nan, nan, nan, nan, failure="silence")
    e = x - r
    signal, noise = float(np.sum(r * r)), float(np.sum(e * e))
    snr = math.inf if noise == 0.0 else 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf
    nmse = noise / signal if signal > 0 else math.inf
    xf, rf = x.ravel() - x.mean(), r.ravel() - r.mean()
    denom = math.sqrt(float(np.dot(xf, xf)) * float(np.dot(rf, rf)))
    corr = float(np.dot(xf, rf)) / denom if denom > 0 else (1.0 if noise == 0.0 else 0.0)
    return ParityResult(snr, corr, float(np.max(np.abs(e))) if e.size else 0.0, nmse)
