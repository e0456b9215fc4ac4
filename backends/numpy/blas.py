"""GEMM that accumulates into a strided output: ``c = a @ b + beta * c`` on views, which ``np.matmul`` cannot do.

``np.matmul(a, b, out=c)`` overwrites ``c``, so a convolution's taps, summed over ``k`` GEMMs, each cost
one more pass over the output (``np.add``); and NumPy copies an operand whose rows are not contiguous
in memory into a buffer first. BLAS does both inside the GEMM: ``beta = 1`` adds into ``C``, and a
leading dimension lets every operand be a window of a larger array (a tap ``w[:, :, j]`` of a
tap-major weight, a shifted window ``xp[:, s : s + T]`` of a padded signal).

:func:`gemm` calls the CBLAS ``gemm`` (``gemv`` for one output row) of *NumPy's own* BLAS library, the
one ``np.matmul`` runs on, through ``ctypes`` (which releases the GIL for the call). One library
matters: a second BLAS (SciPy's) has a second pool of threads, and on two cores each pool's idle
spinning stalls the other (the 50-frame vocoder took 1.5 s with SciPy's ``sgemm`` for the convs and
NumPy's for the rest, against 1.2 s before). Where NumPy's library or its CBLAS symbols are not found
(NumPy on another BLAS than its wheels' OpenBLAS), :func:`gemm` computes the same with ``np.matmul``
and a temporary.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enums
_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
_SCALAR = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}
#: CBLAS names as NumPy's libraries export them: ``(before, after, integer)`` around ``sgemm``.
_NAMINGS = (("scipy_cblas_", "64_", ctypes.c_int64),  # NumPy's wheels (scipy-openblas64)
            ("cblas_", "64_", ctypes.c_int64), ("cblas_", "", ctypes.c_int))


@dataclass(frozen=True)
class Cblas:
    """A loaded BLAS library and how its CBLAS routines are named (``before + "sgemm" + after``)."""

    library: Any
    before: str
    after: str
    integer: type

    def routine(self, dtype: np.dtype, name: str) -> Any:
        """``cblas_?gemm`` / ``cblas_?gemv`` for ``dtype``, its argument types set."""
        fn = getattr(self.library, f"{self.before}{_PREFIX[dtype]}{name}{self.after}")
        i, s, p = self.integer, _SCALAR[dtype], ctypes.c_void_p
        e = ctypes.c_int  # the enums
        fn.argtypes = ([e, e, e, i, i, i, s, p, i, p, i, s, p, i] if name == "gemm"
                       else [e, e, i, i, s, p, i, p, i, s, p, i])
        fn.restype = None
        return fn


@cache
def numpy_cblas() -> Cblas | None:
    """NumPy's own BLAS library (threadpoolctl's entry that lies in NumPy's install), or ``None``."""
    from threadpoolctl import threadpool_info

    here = Path(np.__file__).resolve().parent
    own = (here, here.parent / "numpy.libs", here / ".dylibs")
    for info in threadpool_info():
        path = Path(info.get("filepath") or "")
        if info.get("user_api") != "blas" or path.resolve().parent not in own:
            continue
        library = ctypes.CDLL(str(path))
        for before, after, integer in _NAMINGS:
            if hasattr(library, f"{before}sgemm{after}") and hasattr(library, f"{before}dgemv{after}"):
                return Cblas(library, before, after, integer)
    return None


@cache
def _routine(dtype: np.dtype, name: str) -> Any:
    blas = numpy_cblas()
    return None if blas is None else blas.routine(dtype, name)


def _row_stride(x: np.ndarray, name: str) -> int:
    """The row stride of a 2-D matrix in elements; :class:`ValueError` unless its rows are contiguous
    and do not overlap."""
    overlap = x.ndim == 2 and x.shape[0] > 1 and x.strides[0] < x.shape[1] * x.itemsize
    if x.ndim != 2 or (x.shape[1] > 1 and x.strides[1] != x.itemsize) or x.strides[0] % x.itemsize or overlap:
        raise ValueError(f"{name} must be a 2-D matrix with contiguous, non-overlapping rows, got shape "
                         f"{x.shape}, strides {x.strides}")
    return x.strides[0] // x.itemsize if x.shape[0] > 1 else max(x.shape[1], 1)


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """``c[...] = a @ b + beta * c`` in place and returned: ``a (M, K)``, ``b (K, N)``, ``c (M, N)``.

    Any 2-D views whose rows are contiguous (unit stride along the last axis), float32 or float64,
    all of one dtype; ``c`` must not overlap ``a`` or ``b``. With ``beta = 0`` ``c``'s old values are
    never read (BLAS semantics), so it may be uninitialised.
    """
    m, k = a.shape
    n = c.shape[1] if c.ndim == 2 else -1
    if b.shape != (k, n) or c.shape != (m, n):
        raise ValueError(f"gemm shapes do not agree: a {a.shape} @ b {b.shape} into c {c.shape}")
    if not (a.dtype == b.dtype == c.dtype) or a.dtype not in _PREFIX:
        raise ValueError(f"gemm needs one dtype of float32 or float64, got {a.dtype}, {b.dtype}, {c.dtype}")
    if not c.flags.writeable:
        raise ValueError("gemm's c must be writeable")
    lda, ldb, ldc = _row_stride(a, "a"), _row_stride(b, "b"), _row_stride(c, "c")
    if m == 0 or n == 0:
        return c
    if m == 1 and (gemv := _routine(a.dtype, "gemv")) is not None:  # c^T = b^T a^T; GEMM is slow on one row
        gemv(ROW_MAJOR, TRANS, k, n, 1.0, b.ctypes.data, ldb, a.ctypes.data, 1, beta, c.ctypes.data, 1)
    elif (routine := _routine(a.dtype, "gemm")) is not None:
        routine(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
                c.ctypes.data, ldc)
    elif beta == 0:
        np.matmul(a, b, out=c)
    else:
        c *= beta
        c += a @ b
    return c
