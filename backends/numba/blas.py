"""BLAS GEMM callable from ``njit`` code, with leading dimensions.

``np.dot`` inside ``njit`` needs contiguous operands; the convolutions here want GEMMs on
*strided* views (a window ``xp[:, j*d : j*d + T]`` of a padded signal, a column block of the
output), accumulating into the output (``beta = 1``). :func:`gemm` calls the same BLAS that
numba's ``np.dot`` calls (SciPy's ``cython_blas`` ``sgemm``/``dgemm``, through numba's own
``numba_xxgemm`` helper, resolved by symbol name so on-disk caching keeps working) with the row
strides of the views as leading dimensions.

Row-major bookkeeping: a row-major ``(M, N)`` matrix with row stride ``ld`` is, to Fortran BLAS,
the column-major ``(N, M)`` transpose with the same ``ld``. So ``C = op(A) @ op(B)`` is computed
as the Fortran ``C^T = op(B)^T @ op(A)^T``: operands swapped, transpose flags kept.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.linalg import ensure_blas


def _xxgemm_type(dtype: types.Float) -> types.ExternalFunction:
    """numba's C helper ``numba_xxgemm``.

    ``(kind, transa, transb, m, n, k, *alpha, *a, lda, *b, ldb, *beta, *c, ldc) -> int``, Fortran
    BLAS semantics.
    """
    ptr = types.CPointer(dtype)
    sig = types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                     ptr, ptr, types.intp, ptr, types.intp, ptr, ptr, types.intp)
    return types.ExternalFunction("numba_xxgemm", sig)


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float = 0.0,
         trans_a: bool = False, trans_b: bool = False) -> None:
    """``c[:] = op(a) @ op(b) + beta * c`` in place (``op`` transposes when asked); njit only.

    ``op(a) (M, K)``, ``op(b) (K, N)``, ``c (M, N)``; each operand 2-D with unit stride along its
    last axis (any row stride: views of larger buffers are fine, nothing is copied).
    """
    raise NotImplementedError("gemm is only callable from numba-compiled code")


@overload(gemm)
def _gemm_overload(a, b, c, beta=0.0, trans_a=False, trans_b=False):  # noqa: ANN001 - numba typing
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, c)):
        raise TypingError("gemm: a, b and c must be 2-D arrays")
    if not (a.dtype == b.dtype == c.dtype) or a.dtype not in (types.float32, types.float64):
        raise TypingError(f"gemm: a, b, c must share dtype float32 or float64, got "
                          f"{a.dtype}, {b.dtype}, {c.dtype}")
    ensure_blas()
    dtype = a.dtype
    np_dtype = np.dtype(str(dtype))
    xxgemm = _xxgemm_type(dtype)
    kind = ord("s" if dtype == types.float32 else "d")
    n_char, t_char = ord("N"), ord("T")

    def impl(a, b, c, beta=0.0, trans_a=False, trans_b=False):  # noqa: ANN001
        size = a.itemsize
        # a last axis of length 1 may carry any stride (NumPy calls such a view contiguous)
        if (a.shape[1] > 1 and a.strides[1] != size) or (b.shape[1] > 1 and b.strides[1] != size) or \
                (c.shape[1] > 1 and c.strides[1] != size):
            raise ValueError("gemm: operands need unit stride along their last axis")
        m, n = c.shape
        k = a.shape[0] if trans_a else a.shape[1]
        if (a.shape[1] if trans_a else a.shape[0]) != m or (b.shape[0] if trans_b else b.shape[1]) != n or \
                (b.shape[1] if trans_b else b.shape[0]) != k:
            raise ValueError("gemm: operand shapes do not match")
        if m == 0 or n == 0:
            return
        scalars = np.empty(2, dtype=np_dtype)
        scalars[0] = 1.0
        scalars[1] = beta
        lda = max(a.strides[0] // size, a.shape[1], 1)
        ldb = max(b.strides[0] // size, b.shape[1], 1)
        ldc = max(c.strides[0] // size, c.shape[1], 1)
        # Fortran view: C^T (n, m) = op(B)^T (n, k) @ op(A)^T (k, m)
        status = xxgemm(kind, t_char if trans_b else n_char, t_char if trans_a else n_char, n, m, k,
                        scalars[0:].ctypes, b.ctypes, ldb, a.ctypes, lda, scalars[1:].ctypes, c.ctypes, ldc)
        if status != 0:
            raise RuntimeError("gemm: BLAS call failed")

    return impl


def _xxgemv_type(dtype: types.Float) -> types.ExternalFunction:
    """numba's C helper ``numba_xxgemv``: ``(kind, trans, m, n, *alpha, *a, lda, *x, *beta, *y) -> int``,
    Fortran BLAS semantics with unit increments."""
    ptr = types.CPointer(dtype)
    sig = types.intc(types.char, types.char, types.intp, types.intp, ptr, ptr, types.intp, ptr, ptr, ptr)
    return types.ExternalFunction("numba_xxgemv", sig)


def gemv(a: np.ndarray, x: np.ndarray, y: np.ndarray, beta: float = 0.0) -> None:
    """``y[:] = a @ x + beta * y`` in place; njit only. ``a (N, K)`` with unit stride along its last axis
    (any row stride), ``x (K,)`` and ``y (N,)`` contiguous.

    The one-row product :func:`gemm` would otherwise run: BLAS ``sgemm`` with one row packs the whole
    ``a`` first, where ``sgemv`` streams it once (1.5 against 17 GB/s for the talker's shapes here).
    To Fortran BLAS ``a`` is the column-major ``(K, N)`` ``A`` with the same leading dimension, so this is
    ``y = A^T x``.
    """
    raise NotImplementedError("gemv is only callable from numba-compiled code")


@overload(gemv)
def _gemv_overload(a, x, y, beta=0.0):  # noqa: ANN001 - numba typing
    if not (isinstance(a, types.Array) and a.ndim == 2 and isinstance(x, types.Array) and x.ndim == 1
            and isinstance(y, types.Array) and y.ndim == 1):
        raise TypingError("gemv: a must be 2-D, x and y 1-D")
    if not (a.dtype == x.dtype == y.dtype) or a.dtype not in (types.float32, types.float64):
        raise TypingError(f"gemv: a, x, y must share dtype float32 or float64, got {a.dtype}, {x.dtype}, {y.dtype}")
    ensure_blas()
    dtype = a.dtype
    np_dtype = np.dtype(str(dtype))
    xxgemv = _xxgemv_type(dtype)
    kind = ord("s" if dtype == types.float32 else "d")
    t_char = ord("T")

    def impl(a, x, y, beta=0.0):  # noqa: ANN001
        size = a.itemsize
        if (a.shape[1] > 1 and a.strides[1] != size) or (x.shape[0] > 1 and x.strides[0] != size) or \
                (y.shape[0] > 1 and y.strides[0] != size):
            raise ValueError("gemv: a needs unit stride along its last axis, x and y unit stride")
        n, k = a.shape
        if x.shape[0] != k or y.shape[0] != n:
            raise ValueError("gemv: operand shapes do not match")
        if n == 0:
            return
        if k == 0:
            y[:] *= beta
            return
        scalars = np.empty(2, dtype=np_dtype)
        scalars[0] = 1.0
        scalars[1] = beta
        lda = max(a.strides[0] // size, k, 1)
        status = xxgemv(kind, t_char, k, n, scalars[0:].ctypes, a.ctypes, lda, x.ctypes, scalars[1:].ctypes,
                        y.ctypes)
        if status != 0:
            raise RuntimeError("gemv: BLAS call failed")
    return impl
