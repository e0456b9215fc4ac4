"""GEMMs across numba's threads, and linear layers on top of them.

:func:`pgemm` splits ``C = op(A) @ op(B)`` into one block of rows of ``C`` per thread (columns,
when ``C`` is wider than tall), each a single-threaded BLAS call on views: the threads never share
an output element, so no synchronisation beyond the end of the parallel loop. Small products
(``M N K < 2**18``) stay on the calling thread. A product of a few rows with ``B`` transposed (a
linear layer on a few positions: the generator's frame loop, the code predictor's two-position
first pass, a small batch) is one matrix-vector product per row, BLAS ``gemv``, on blocks of ``B``'s
rows small enough to stay in cache between the rows, so ``B`` is read from memory once (``gemm``
with a few rows packs the whole block first: 4-7 GB/s, against 15 for two rows and 20 for one
here). Linear layers keep the
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
#: Up to this many rows of ``C`` a product with ``B`` transposed runs as one ``gemv`` per row (measured
#: here on the generator's shapes: 8 rows still beat ``gemm``, 16 break even).
GEMV_MAX_ROWS = 8
#: Bytes of ``B`` per block that the ``gemv`` of every row reads in turn (it stays in L2 meanwhile).
GEMV_BLOCK_BYTES = 1 << 18


@kernel
def _gemv_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float) -> None:
    """``c[r] = b @ a[r] + beta c[r]`` for every row ``r``: ``a (M, K)``, ``b (N, K)``, ``c (M, N)``.

    One row is one ``gemv`` over all of ``b``. Several rows walk ``b`` in blocks of
    :data:`GEMV_BLOCK_BYTES` (whole multiples of 16 rows), each block read by every row's ``gemv``
    before the next: memory sees ``b`` once.
    """
    m, n = c.shape
    rows = n if m == 1 else max(16, GEMV_BLOCK_BYTES // max(1, b.shape[1] * b.itemsize) // 16 * 16)
    for n0 in range(0, n, rows):
        n1 = min(n, n0 + rows)
        for r in range(m):
            gemv(b[n0:n1], a[r], c[r, n0:n1], beta)


@kernel
def _product(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float, trans_a: bool, trans_b: bool) -> None:
    """One thread's block of :func:`pgemm`: BLAS ``gemm``, or :func:`_gemv_rows` for at most
    :data:`GEMV_MAX_ROWS` rows of ``c`` with ``b`` transposed (and unit-stride rows of ``a`` and ``c``)."""
    unit_rows = (a.shape[1] == 1 or a.strides[1] == a.itemsize) and (c.shape[1] == 1 or c.strides[1] == c.itemsize)
    if c.shape[0] <= GEMV_MAX_ROWS and trans_b and not trans_a and unit_rows:
        _gemv_rows(a, b, c, beta)
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
