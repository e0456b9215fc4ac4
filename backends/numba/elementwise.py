"""Small fused elementwise kernels: bias fills and adds, LayerScale residuals, copies, clipping.

Layouts are stated per kernel: ``(C, T)`` channel-major (the vocoder's convolutional part) or
``(T, C)`` time-major (transformer rows). Each is one serial pass over memory: they run on
small arrays (transformer rows, biases).
"""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def fill_bias(y: np.ndarray, b: np.ndarray) -> None:
    """``y[c, :] = b[c]`` for ``y (C, T)``."""
    for c in range(y.shape[0]):
        bc = b[c]
        for t in range(y.shape[1]):
            y[c, t] = bc


@kernel
def fill_rows(y: np.ndarray, b: np.ndarray) -> None:
    """``y[t, :] = b`` for ``y (T, C)``."""
    for t in range(y.shape[0]):
        for c in range(y.shape[1]):
            y[t, c] = b[c]


@kernel
def add_bias(y: np.ndarray, b: np.ndarray) -> None:
    """``y[c, :] += b[c]`` for ``y (C, T)``."""
    for c in range(y.shape[0]):
        bc = b[c]
        for t in range(y.shape[1]):
            y[c, t] += bc


@kernel
def add_bias_to(x: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[c, :] = x[c, :] + b[c]`` for ``x, out (C, T)``."""
    for c in range(x.shape[0]):
        bc = b[c]
        for t in range(x.shape[1]):
            out[c, t] = x[c, t] + bc


@kernel
def residual_scale_add(h: np.ndarray, scale: np.ndarray, a: np.ndarray) -> None:
    """LayerScale residual ``h[t, c] += scale[c] * a[t, c]`` for ``h, a (T, C)``."""
    for t in range(h.shape[0]):
        for c in range(h.shape[1]):
            h[t, c] += scale[c] * a[t, c]


@kernel
def copy_columns(src: np.ndarray, src0: int, dst: np.ndarray, dst0: int, width: int) -> None:
    """``dst[:, dst0:dst0+width] = src[:, src0:src0+width]``, ascending (in-place left shift safe)."""
    for c in range(src.shape[0]):
        for i in range(width):
            dst[c, dst0 + i] = src[c, src0 + i]


@kernel
def clip_row(y: np.ndarray, out: np.ndarray, lo: float, hi: float) -> None:
    """``out[t] = clip(y[0, t], lo, hi)`` (NaN stays NaN), in parallel chunks of 4096 samples."""
    length = out.shape[0]
    chunk = 4096
    for blk in range((length + chunk - 1) // chunk):
        for t in range(blk * chunk, min(length, (blk + 1) * chunk)):
            v = y[0, t]
            out[t] = lo if v < lo else (hi if v > hi else v)
