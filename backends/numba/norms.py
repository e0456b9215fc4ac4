"""Row-wise normalisations on time-major ``(T, C)`` arrays, one row per thread, float64 accumulation.

- RMSNorm: ``y = w * x / sqrt(mean(x**2) + eps)``;
- LayerNorm: ``y = (x - mean) / sqrt(mean((x - mean)**2) + eps) * w + b`` (two passes, as the reference).

Sums accumulate in float64 whatever the dtype (rows are short; the result is rounded once).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .jit import kernel, parallel_kernel


@kernel
def rms_norm_rows(x: np.ndarray, w: np.ndarray, eps: float, out: np.ndarray) -> None:
    """``out[t] = w * x[t] / sqrt(mean(x[t]**2) + eps)``; ``x, out (T, C)`` (may alias)."""
    rows, cols = x.shape
    for r in range(rows):
        ss = 0.0
        for c in range(cols):
            v = np.float64(x[r, c])
            ss += v * v
        inv = 1.0 / math.sqrt(ss / cols + eps)
        for c in range(cols):
            out[r, c] = w[c] * (x[r, c] * inv)


@parallel_kernel
def layer_norm_rows(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float, out: np.ndarray) -> None:
    """``out[t] = (x[t] - mean) / sqrt(var + eps) * w + b``; ``x, out (T, C)`` (may alias)."""
    rows, cols = x.shape
    for r in prange(rows):
        s = 0.0
        for c in range(cols):
            s += np.float64(x[r, c])
        mean = s / cols
        ss = 0.0
        for c in range(cols):
            d = np.float64(x[r, c]) - mean
            ss += d * d
        inv = 1.0 / math.sqrt(ss / cols + eps)
        for c in range(cols):
            out[r, c] = (np.float64(x[r, c]) - mean) * inv * w[c] + b[c]
