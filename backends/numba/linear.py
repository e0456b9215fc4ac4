"""Linear layers as single BLAS GEMMs with the bias pre-filled (``beta = 1``).

Weights keep the PyTorch ``(out, in)`` layout; BLAS reads them transposed in place.
"""

from __future__ import annotations

import numpy as np

from .blas import gemm
from .elementwise import fill_bias, fill_rows
from .jit import kernel


@kernel
def matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float, trans_a: bool, trans_b: bool) -> None:
    """``c = op(a) @ op(b) + beta * c`` (see :func:`.blas.gemm`)."""
    gemm(a, b, c, beta, trans_a, trans_b)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: np.ndarray, trans_x: bool = False) -> None:
    """Time-major ``y (T, out) = x @ w.T + b``; ``x (T, in)``, or ``x (in, T)`` when ``trans_x``."""
    if b is not None:
        fill_rows(y, b)
    matmul(x, w, y, 0.0 if b is None else 1.0, trans_x, True)


def linear_t(w: np.ndarray, x: np.ndarray, b: np.ndarray | None, y: np.ndarray,
             accumulate: bool = False) -> None:
    """Channel-major ``y (out, T) = w @ x.T + b[:, None]`` (``+= `` when ``accumulate``); ``x (T, in)``."""
    if b is not None:
        if accumulate:
            raise ValueError("linear_t: a bias with accumulate=True is ambiguous")
        fill_bias(y, b)
    matmul(w, x, y, 1.0 if (accumulate or b is not None) else 0.0, False, True)
