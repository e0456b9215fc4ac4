"""Activations as fused, vectorizable kernels: SnakeBeta (polynomial ``sin**2``), GELU, SiLU-gate.

SnakeBeta, per channel ``c`` (``x (C, T)``)::

    y = x + inv_b[c] * sin(a[c] * x)**2,   a = exp(alpha),  inv_b = 1 / (exp(beta) + 1e-9)

with ``a`` and ``inv_b`` precomputed once per layer (:func:`snake_params`). numba has no vector
``sin`` without Intel SVML, so ``sin**2`` is a branch-free polynomial LLVM can vectorize:

- range reduction (Cody-Waite, three-part ``pi/2``): ``n = round(r * 2/pi)``,
  ``y = r - n * pi/2`` with ``|y| <= pi/4``;
- ``sin(r)**2 = sin(y)**2`` for even ``n``, ``cos(y)**2 = 1 - sin(y)**2`` for odd ``n`` (the sign
  is squared away), so one odd polynomial ``sin(y) = y + y**3 * P(y**2)`` suffices;
- Cephes' double-precision coefficients (error below 1 ulp of float64 on ``|y| <= pi/4``), so the
  same kernel serves float32 and float64: all constants come in a small array of the compute
  dtype (:func:`sin_constants`), so float32 stays float32 throughout (no float64 promotion).

Accuracy: relative error of ``sin**2`` a few ulp of the dtype for ``|a x| < 2**20``; beyond that
the reduction loses digits (activations of the vocoder are O(10)).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from perfkit.model.snake import snake_factors

from .jit import fma_kernel, kernel, parallel_fma_kernel, parallel_kernel

# Cody-Waite split of pi/2 (Cephes ``DP1..DP3`` for pi/4, doubled); float32 gets a shorter split.
_PIO2_F64 = (1.570796251296997070312500, 7.549789948768648e-08, 5.390302529957765e-15)
_PIO2_F32 = (1.5703125, 4.8351287841796875e-4, 3.1385570764541626e-7 - 6.077100628276710e-11)
# sin(y) = y + y^3 * (S0 + S1 y^2 + ... + S5 y^10) on |y| <= pi/4 (Cephes sin.c)
_SIN_COEF = (-1.66666666666666307295e-1, 8.33333333332211858878e-3, -1.98412698295895385996e-4,
             2.75573136213857245213e-6, -2.50507477628578072866e-8, 1.58962301576546568060e-10)


def sin_constants(dtype: np.dtype) -> np.ndarray:
    """``[2/pi, pio2_1, pio2_2, pio2_3, S0..S5, 0.5, 1, 2]`` in ``dtype`` (see the module docstring)."""
    pio2 = _PIO2_F32 if np.dtype(dtype) == np.float32 else _PIO2_F64
    return np.array([2.0 / math.pi, *pio2, *_SIN_COEF, 0.5, 1.0, 2.0], dtype=dtype)


def snake_params(alpha: np.ndarray, beta: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(exp(alpha), 1 / (exp(beta) + 1e-9))`` per channel (:func:`~perfkit.model.snake.snake_factors`),
    in ``dtype``."""
    a, inv_b = snake_factors(alpha, beta)
    return a.astype(dtype), inv_b.astype(dtype)


@fma_kernel
def snake_row(x: np.ndarray, a: float, inv_b: float, k: np.ndarray, out: np.ndarray) -> None:
    """One channel: ``out[t] = x[t] + inv_b * sin(a * x[t])**2`` for ``x, out (T,)`` (may alias); serial, vectorized.

    ``a, inv_b`` scalars of the dtype, ``k = sin_constants(dtype)`` (loaded into registers first).
    """
    two_over_pi, p1, p2, p3 = k[0], k[1], k[2], k[3]
    s0, s1, s2, s3, s4, s5 = k[4], k[5], k[6], k[7], k[8], k[9]
    half, one, two = k[10], k[11], k[12]
    for t in range(x.shape[0]):
        xv = x[t]
        r = a * xv
        n = np.floor(r * two_over_pi + half)
        y = ((r - n * p1) - n * p2) - n * p3
        z = y * y
        s = y + y * z * (s0 + z * (s1 + z * (s2 + z * (s3 + z * (s4 + z * s5)))))
        sq = s * s
        odd = n - two * np.floor(n * half)
        out[t] = xv + inv_b * (sq + odd * (one - two * sq))


@kernel
def snake_columns(x: np.ndarray, x0: int, a: np.ndarray, inv_b: np.ndarray, k: np.ndarray,
                  out: np.ndarray, o0: int, width: int) -> None:
    """``out[c, o0:o0+w] = snake_c(x[c, x0:x0+w])`` for every channel of ``x, out (C, *)``, ``w = width``,
    on the calling thread.

    The windows are taken row by row, ``x[c, x0:x0+w]``, which numba types contiguous when ``x`` is; a
    2-D window ``x[:, x0:x0+w]`` is not, and its rows run as scalar code (a block-3 tile, 96 x 1344:
    0.385 ms against 0.052 vectorized, one thread).
    """
    for c in range(x.shape[0]):
        snake_row(x[c, x0:x0 + width], a[c], inv_b[c], k, out[c, o0:o0 + width])


@parallel_kernel
def snake(x: np.ndarray, x0: int, a: np.ndarray, inv_b: np.ndarray, k: np.ndarray, out: np.ndarray) -> None:
    """``out (C, w) = snake(x[:, x0:x0+w])``, the channels spread over the threads (rows as in
    :func:`snake_columns`)."""
    width = out.shape[1]
    for c in prange(x.shape[0]):
        snake_row(x[c, x0:x0 + width], a[c], inv_b[c], k, out[c])


@parallel_fma_kernel
def gelu_inplace(x: np.ndarray) -> None:
    """Exact GELU on ``x (R, C)`` in place: ``x * (1 + erf(x / sqrt(2))) / 2`` (erf in float64)."""
    rows, cols = x.shape
    for r in prange(rows):
        for c in range(cols):
            v = np.float64(x[r, c])
            x[r, c] = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))


@kernel
def silu_gate(gate_up: np.ndarray, out: np.ndarray) -> None:
    """SwiGLU gate: ``out = silu(g) * u`` with ``[g | u] = gate_up (T, 2I)``, ``out (T, I)``.

    ``silu(g) = g / (1 + exp(-g))``, evaluated in float64.
    """
    rows, inter = out.shape
    for r in range(rows):
        for c in range(inter):
            g = np.float64(gate_up[r, c])
            out[r, c] = g / (1.0 + math.exp(-g)) * gate_up[r, inter + c]


@kernel
def silu_inplace(x: np.ndarray) -> None:
    """``x = x / (1 + exp(-x))`` on ``x (R, C)`` in place, evaluated in float64."""
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = np.float64(x[r, c])
            x[r, c] = v / (1.0 + math.exp(-v))
