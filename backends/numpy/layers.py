"""The vocoder's layers as plain NumPy functions on ``(channels, time)`` arrays.

Every function that looks back in time takes a ``tail`` (the last inputs of the previous chunk,
zeros at the start of an utterance) and returns the new tail with its output, so the same code
decodes offline (one chunk) and streams (many chunks) with identical results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.special import erf

from perfkit.model.snake import snake_factors

from .blas import gemm
from .row_threads import RowRunner, serial_rows

LAYER_NORM_EPS = 1e-6
INV_SQRT2 = math.sqrt(0.5)  # 1 / sqrt(2), correctly rounded
TCONV_GEMM_ROWS = 2048
"""Rows of a transposed convolution's ``cols (Cout*k, T)`` per GEMM call. OpenBLAS packs the whole
"N" side of a GEMM (the rows of a row-major output) into a per-thread buffer that stays resident once
touched: block 0's 12288 rows in one call raised RSS by 23.7 MiB, calls of 3072 or 1536 rows by 7.9
or 5.3 MiB, in the same time (``reports/optimizations/numpy-tconv-gemm-rows``)."""


def _own(tail: np.ndarray) -> np.ndarray:
    """A carried tail as an array of its own: a view would keep the whole padded input alive in the
    state (every conv's full activation, for as long as the stream lives)."""
    return tail.copy()


def causal_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, tail: np.ndarray, dilation: int = 1
                ) -> tuple[np.ndarray, np.ndarray]:
    """Causal Conv1d. ``x (Cin, T)``, ``w (Cout, Cin, k)``, ``tail (Cin, (k-1)*dilation)``.

    ``y[:, t] = b + sum_j w[:, :, j] @ xp[:, t + j*dilation]`` with ``xp = [tail, x]`` (left padding only).
    Returns ``y (Cout, T)`` and the new tail.
    """
    xp = np.concatenate([tail, x], axis=1)  # (Cin, pad + T)
    return conv_padded(xp, w, b, dilation), _own(xp[:, xp.shape[1] - tail.shape[1]:])


def conv_padded(xp: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int = 1, out: np.ndarray | None = None
                ) -> np.ndarray:
    """:func:`causal_conv` on an input that already carries its look-back: ``xp (Cin, (k-1)*dilation + T)``.

    ``y = b + sum_j w[:, :, j] @ xp[:, j*d : j*d + T]``: ``y`` filled with the bias, then ``k`` BLAS
    GEMMs on shifted windows of ``xp`` that add into it (``beta = 1``, :func:`~.blas.gemm`): an implicit
    GEMM, no im2col copy and no pass over ``y`` per tap besides its GEMM. ``out (Cout, T)`` (a new array
    when None) must not overlap ``xp``. A :func:`tap_major` weight's taps are read where they lie; in
    another layout each tap is copied first. For long inputs, whose im2col would be ``k`` copies of the
    input (:func:`conv_im2col` is the other way).
    """
    k = w.shape[2]
    t = xp.shape[1] - (k - 1) * dilation
    y = np.empty((w.shape[0], t), dtype=xp.dtype) if out is None else out
    np.copyto(y, b[:, None])
    for j in range(k):
        gemm(_rows_contiguous(w[:, :, j]), xp[:, j * dilation: j * dilation + t], y)
    return y


def _rows_contiguous(m: np.ndarray) -> np.ndarray:
    """``m`` itself when its rows are contiguous (a BLAS operand as it lies), else a contiguous copy."""
    return m if m.strides[1] == m.itemsize else np.ascontiguousarray(m)


def tap_major(w: np.ndarray) -> np.ndarray:
    """A conv weight ``w (Cout, Cin, k)`` stored tap-major, ``(Cout, k, Cin)`` in memory, and returned as a
    ``(Cout, Cin, k)`` view of that storage (same values, same indexing).

    Each tap ``w[:, :, j]`` is then a matrix with contiguous rows, which BLAS reads where it lies (in the
    official layout a tap has stride ``k`` along ``Cin``), and :func:`conv_im2col` reads the weight as
    ``(Cout, k*Cin)`` without a copy.
    """
    return np.ascontiguousarray(w.transpose(0, 2, 1)).transpose(0, 2, 1)


def copy_rows(src: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = src``: :func:`conv_im2col`'s default ``gather`` (a row-threaded one splits axis 0)."""
    np.copyto(out, src)


def conv_im2col(xp: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int = 1, out: np.ndarray | None = None,
                cols: np.ndarray | None = None,
                gather: Callable[[np.ndarray, np.ndarray], None] = copy_rows) -> np.ndarray:
    """:func:`conv_padded`'s convolution as one GEMM of depth ``k*Cin``: ``y = W @ cols + b``.

    ``cols (k, Cin, T)`` (a buffer of at least that many elements; a new one when None) holds
    ``xp[c, t + j*d]`` at ``[j, c, t]``, and ``W (Cout, k*Cin)`` is ``w`` with its taps first
    (``W[o, j*Cin + c] = w[o, c, j]``): a view of a :func:`tap_major` weight, a copy of any other. For
    short inputs with many channels, where ``k`` GEMMs of ``T`` columns each leave BLAS little work per
    call. ``gather(window, cols)`` copies the ``(k, Cin, T)`` window view of ``xp``.
    """
    cout, cin, k = w.shape
    t = xp.shape[1] - (k - 1) * dilation
    y = np.empty((cout, t), dtype=xp.dtype) if out is None else out
    c = np.empty((k, cin, t), dtype=xp.dtype) if cols is None else cols.reshape(-1)[: k * cin * t].reshape(k, cin, t)
    gather(as_strided(xp, (k, cin, t), (dilation * xp.itemsize, xp.strides[0], xp.itemsize), writeable=False), c)
    np.matmul(w.transpose(0, 2, 1).reshape(cout, k * cin), c.reshape(k * cin, t), out=y)
    y += b[:, None]
    return y


def causal_depthwise_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, tail: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Depthwise causal conv: ``w (C, 1, k)``; ``y[c, t] = b[c] + sum_j w[c, 0, j] * xp[c, t + j]``."""
    k = w.shape[2]
    t = x.shape[1]
    xp = np.concatenate([tail, x], axis=1)
    y = np.empty_like(x)
    y[:] = b[:, None]
    for j in range(k):
        y += w[:, 0, j:j + 1] * xp[:, j:j + t]
    return y, _own(xp[:, xp.shape[1] - tail.shape[1]:])


def causal_conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, tail: np.ndarray,
                          cols: np.ndarray | None = None, out: np.ndarray | None = None,
                          rows: RowRunner = serial_rows) -> tuple[np.ndarray, np.ndarray]:
    """Causal ConvTranspose1d (the official right-trim of ``k - stride`` samples) as GEMM + col2im.

    ``x (Cin, T)``, ``w (Cin, Cout, k)``. ``cols = W^T x`` of ``(Cout, k, T)`` (into ``cols`` when given;
    GEMMs of :data:`TCONV_GEMM_ROWS` rows), then :func:`col2im` into ``y (Cout, T*stride)``, run by
    ``rows`` (split over output channels by a row-threaded runner: every channel is independent). ``y``
    is written into ``out`` when given (any view whose time axis has unit stride, e.g. a column slice).
    Returns ``y`` and the new pending tail ``(Cout, k - stride)``.
    """
    cin, cout, k = w.shape
    t = x.shape[1]
    wt = w.reshape(cin, cout * k).T  # (Cout*k, Cin)
    gemm_out = np.empty((cout * k, t), dtype=x.dtype) if cols is None else cols.reshape(cout * k, t)
    for r in range(0, cout * k, TCONV_GEMM_ROWS):
        np.matmul(wt[r: r + TCONV_GEMM_ROWS], x, out=gemm_out[r: r + TCONV_GEMM_ROWS])
    y = np.empty((cout, t * stride), dtype=x.dtype) if out is None else out
    if y.shape != (cout, t * stride) or y.strides[1] != y.itemsize:
        raise ValueError(f"out must be ({cout}, {t * stride}) with a unit-stride time axis")
    pending = np.zeros((cout, k - stride), dtype=x.dtype)  # samples t*stride + p, p < k - stride
    rows(functools.partial(col2im, stride=stride), gemm_out.reshape(cout, k, t), b[:, None], tail, pending, out=y)
    return y, pending


def col2im(cols: np.ndarray, b: np.ndarray, tail: np.ndarray, pending: np.ndarray, y: np.ndarray, *,
           stride: int) -> None:
    """Overlap-add of a transposed convolution's columns: ``cols (C, k, T)``, ``b (C, 1)``, ``tail`` and
    ``pending (C, k - stride)``, ``y (C, T*stride)``; every channel row independent of the others.

    Tap ``j`` of frame ``s`` is output sample ``s*stride + j``, i.e. phase ``j % stride`` of frame
    ``s + j // stride``: each tap's row is added into its phase of ``y`` (the bias once, with the taps
    ``j < stride``); the previous chunk's pending ``tail`` (no bias) lands on the first samples, and what
    lands past this chunk is added into ``pending`` (zeros on entry).
    """
    cout, k, t = cols.shape
    row, item = y.strides
    frames = as_strided(y, (cout, t, stride), (row, stride * item, item))  # frames[:, s, r] = sample s*stride + r
    for j in range(stride):
        np.add(cols[:, j], b, out=frames[:, :, j])
    overlap = k - stride
    for j in range(stride, k):
        q, r = divmod(j, stride)
        frames[:, q:, r] += cols[:, j, : max(0, t - q)]
        for s in range(max(0, t - q), t):
            pending[:, s * stride + j - t * stride] += cols[:, j, s]
    n = min(overlap, t * stride)
    y[:, :n] += tail[:, :n]
    pending[:, : overlap - n] += tail[:, n:]


def snake_params(alpha: np.ndarray, beta: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """SnakeBeta's per-channel factors (:func:`~perfkit.model.snake.snake_factors`) as ``(C, 1)`` columns of
    ``dtype``, which broadcast along time."""
    a, inv_b = snake_factors(alpha, beta)
    return a.astype(dtype)[:, None], inv_b.astype(dtype)[:, None]


def snake_beta(x: np.ndarray, a: np.ndarray, inv_b: np.ndarray, out: np.ndarray) -> None:
    """SnakeBeta ``out = x + inv_b * sin(a * x)**2`` per channel; ``x, out (C, T)``, ``a, inv_b (C, 1)``.

    Five in-place passes over ``out`` (no temporaries); ``out`` must not be ``x``.
    """
    np.multiply(x, a, out=out)
    np.sin(out, out=out)
    np.square(out, out=out)
    out *= inv_b
    out += x


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """``weight * x / sqrt(mean(x**2, -1) + eps)`` over the last axis; ``x (T, C)``."""
    var = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(var + eps))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """LayerNorm over the last axis; ``x (T, C)``."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Exact GELU ``out = x * (1 + erf(x / sqrt(2))) / 2``, in ``x``'s dtype; ``out`` may be ``x``.

    SciPy's ``erf`` has float32 and float64 loops, so a float32 input is never widened (a float64
    ``sqrt(2)`` would make it a float64 array and a cast back). Elementwise, so a
    :class:`~.row_threads.RowThreads` kernel: ``erf`` is a scalar loop, the ConvNeXt blocks' slowest
    step (about 14 ns an element in float32 on the 2-core Xeon), and runs on one core unless split.
    """
    e = np.multiply(x, x.dtype.type(INV_SQRT2))
    erf(e, out=e)
    e += 1.0
    e *= 0.5
    return np.multiply(x, e, out=out)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def rope(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """Rotary embedding on ``x (heads, T, d)`` at integer ``positions (T,)`` (rotate-half convention).

    ``inv_freq = theta ** (-arange(0, d, 2) / d)``, angle ``pos * inv_freq`` duplicated over both halves;
    ``x * cos + rotate_half(x) * sin`` with ``rotate_half([a, b]) = [-b, a]``.
    """
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    ang = positions.astype(np.float64)[:, None] * inv_freq[None, :]  # (T, d/2)
    ang = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(ang).astype(x.dtype), np.sin(ang).astype(x.dtype)
    half = d // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)
