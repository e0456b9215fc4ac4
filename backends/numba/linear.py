"""GEMMs across numba's threads, and linear layers on top of them.

:func:`pgemm` splits ``C = op(A) @ op(B)`` into one block of rows of ``C`` per thread (columns,
when ``C`` is wider than tall), each a single-threaded BLAS call on views: the threads never share
an output element, so no synchronisation beyond the end of the parallel loop. Small products
(``M N K < 2**18``) stay on the calling thread. A one-row product with ``B`` transposed (a linear
layer on one position: the generator's frame loop) is a matrix-vector product, BLAS ``gemv`` on
row blocks of ``B`` (``gemm`` with one row packs the whole block first). Linear layers keep the
PyTorch ``(out, in)`` weight layout; BLAS reads it transposed in place, the bias is pre-filled and
accumulated (``beta = 1``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .blas import gemm, gemv
from .elementwise import fill_bias, fill_rows
from .jit import kernel, parallel_kernel

#: Below this many multiply-adds a GEMM runs on the calling thread (a parallel launch costs more).
PARALLEL_MIN_MACS = 1 << 18


@kernel
def _product(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float, trans_a: bool, trans_b: bool) -> None:
    """One thread's block of :func:`pgemm`: BLAS ``gemm``, or ``gemv`` for one row of ``c`` with ``b``
    transposed (``c[0] = b @ a[0] + beta c[0]``)."""
    if c.shape[0] == 1 and trans_b and not trans_a:
        gemv(b, a[0], c[0], beta)
    else:
        gemm(a, b, c, beta, trans_a, trans_b)


@parallel_kernel
def pgemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float, trans_a: bool, trans_b: bool,
          threads: int) -> None:
    """``c = op(a) @ op(b) + beta * c`` (see :func:`.blas.gemm`), split over ``threads`` of numba's threads.

    ``threads`` comes from the caller (``numba.get_num_threads()`` in Python): read inside compiled
    code it would keep the function out of the disk cache.
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if threads == 1 or m * n * k < PARALLEL_MIN_MACS:
        _product(a, b, c, beta, trans_a, trans_b)
        return
    if m >= n:  # blocks of rows of c (multiples of 16, the microkernels' height)
        chunk = ((m + threads - 1) // threads + 15) // 16 * 16
        for i in prange((m + chunk - 1) // chunk):
            m0 = i * chunk
            m1 = min(m, m0 + chunk)
            if trans_a:
                _product(a[:, m0:m1], b, c[m0:m1], beta, True, trans_b)
            else:
                _product(a[m0:m1], b, c[m0:m1], beta, False, trans_b)
    else:  # blocks of columns of c
        chunk = ((n + threads - 1) // threads + 15) // 16 * 16
        for i in prange((n + chunk - 1) // chunk):
            n0 = i * chunk
            n1 = min(n, n0 + chunk)
            if trans_b:
                _product(a, b[n0:n1], c[:, n0:n1], beta, trans_a, True)
            else:
                _product(a, b[:, n0:n1], c[:, n0:n1], beta, trans_a, False)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: np.ndarray, trans_x: bool = False) -> None:
    """Time-major ``y (T, out) = x @ w.T + b``; ``x (T, in)``, or ``x (in, T)`` when ``trans_x``."""
    if b is not None:
        fill_rows(y, b)
    pgemm(x, w, y, 0.0 if b is None else 1.0, trans_x, True, numba.get_num_threads())


def linear_t(w: np.ndarray, x: np.ndarray, b: np.ndarray | None, y: np.ndarray,
             accumulate: bool = False) -> None:
    """Channel-major ``y (out, T) = w @ x.T + b[:, None]`` (``+= `` when ``accumulate``); ``x (T, in)``."""
    if b is not None:
        if accumulate:
            raise ValueError("linear_t: a bias with accumulate=True is ambiguous")
        fill_bias(y, b)
    pgemm(w, x, y, 1.0 if (accumulate or b is not None) else 0.0, False, True, numba.get_num_threads())
