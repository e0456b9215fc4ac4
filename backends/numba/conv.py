"""Causal convolutions as BLAS GEMMs plus fused memory-bound kernels, on ``(channels, time)`` arrays.

Every convolution looks back in time through a ``tail`` (the last inputs of the previous chunk,
zeros at the start of an utterance, kept in the streaming state and updated in place), so one
chunk or many give identical results.

- :func:`causal_conv`: implicit GEMM, ``y = b + sum_j W_j @ xp[:, j*d : j*d + T]`` with
  ``xp = [tail, x]`` (``k`` GEMMs on strided windows of ``xp``; no ``im2col`` buffer).
- :func:`conv_transpose`: one GEMM ``cols (Cout*k, T) = W^T @ x`` then :func:`col2im`, the
  overlap-add ``z[:, t*s + j] += cols[(., j), t]`` written as a gather (each output sample sums its
  ``ceil(k/s)`` contributions; no scatter, no zero fill).
- :func:`depthwise_conv_time_major`: the ConvNeXt depthwise conv, written transposed ``(T, C)``
  for the row-wise LayerNorm and the pointwise GEMMs that follow.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .blas import gemm
from .jit import kernel, parallel_kernel
from .linear import PARALLEL_MIN_MACS, pgemm


@kernel
def conv_taps(xp: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int, y: np.ndarray) -> None:
    """``y (Cout, T) = b + sum_j w[j] @ xp[:, j*d : j*d + T]``; ``w (k, Cout, Cin)``, ``xp (Cin, P + T)``.

    ``k`` BLAS GEMMs on strided windows of ``xp``, accumulating into ``y`` (``beta = 1``).
    """
    length = y.shape[1]
    for c in range(y.shape[0]):
        bc = b[c]
        for t in range(length):
            y[c, t] = bc
    for j in range(w.shape[0]):
        gemm(w[j], xp[:, j * dilation: j * dilation + length], y, 1.0)


@parallel_kernel
def conv_taps_parallel(xp: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int, y: np.ndarray,
                       threads: int) -> None:
    """:func:`conv_taps` with the output channels split into one block per thread (``threads`` of them)."""
    cout = y.shape[0]
    if threads == 1 or cout * y.shape[1] * w.shape[0] * w.shape[2] < PARALLEL_MIN_MACS:
        conv_taps(xp, w, b, dilation, y)
        return
    chunk = ((cout + threads - 1) // threads + 15) // 16 * 16
    for i in prange((cout + chunk - 1) // chunk):
        m0 = i * chunk
        m1 = min(cout, m0 + chunk)
        conv_taps(xp, w[:, m0:m1], b[m0:m1], dilation, y[m0:m1])


@kernel
def causal_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, tail: np.ndarray, dilation: int,
                xp: np.ndarray, y: np.ndarray, threads: int) -> None:
    """Causal Conv1d ``y (Cout, T)`` of ``x (Cin, T)``; ``tail (Cin, (k-1)*d)`` updated in place.

    ``xp (Cin, (k-1)*d + T)`` is scratch.
    """
    pad = tail.shape[1]
    length = x.shape[1]
    for c in range(x.shape[0]):  # xp = [tail, x]
        for i in range(pad):
            xp[c, i] = tail[c, i]
        for t in range(length):
            xp[c, pad + t] = x[c, t]
    conv_taps_parallel(xp, w, b, dilation, y, threads)
    for c in range(x.shape[0]):  # the next chunk's look-back: the last `pad` columns of xp
        for i in range(pad):
            tail[c, i] = xp[c, length + i]


@parallel_kernel
def col2im(cols: np.ndarray, b: np.ndarray, stride: int, tail: np.ndarray, y: np.ndarray) -> None:
    """Overlap-add of a transposed convolution with the causal right trim.

    ``cols (Cout, k, T)``, ``tail (Cout, k - s)`` (updated in place), ``y (Cout, T*s)``. The full
    output is ``z[c, m] = [m < k-s] tail[c, m] + sum_{j = m mod s (+s, +2s ...), t = (m - j)/s in [0, T)}
    cols[c, j, t]`` for ``m < (T-1)*s + k``; ``y = z[:, :T*s] + b``, the new tail ``z[:, T*s:]``.
    Ascending ``m`` reads ``tail[c, m]`` before it is overwritten (writes go to ``m - T*s < m``).
    """
    cout, k, length = cols.shape
    overlap = tail.shape[1]
    n_out = length * stride
    n_full = (length - 1) * stride + k
    for c in prange(cout):
        bc = b[c]
        for m in range(n_full):
            acc = tail[c, m] if m < overlap else 0.0
            j = m % stride
            t = m // stride
            while j < k and t >= 0:
                if t < length:
                    acc += cols[c, j, t]
                j += stride
                t -= 1
            if m < n_out:
                y[c, m] = acc + bc
            else:
                tail[c, m - n_out] = acc


@kernel
def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, tail: np.ndarray,
                   cols: np.ndarray, y: np.ndarray, threads: int) -> None:
    """Causal ConvTranspose1d: ``x (Cin, T)``, ``w (Cout*k, Cin)`` (transposed at load), ``y (Cout, T*s)``.

    ``cols (Cout, k, T)`` is scratch: ``cols = w @ x`` (one GEMM, split over the threads), then :func:`col2im`.
    """
    cout, k, length = cols.shape
    pgemm(w, x, cols.reshape((cout * k, length)), 0.0, False, False, threads)
    col2im(cols, b, stride, tail, y)


@parallel_kernel
def depthwise_conv_time_major(x: np.ndarray, w: np.ndarray, b: np.ndarray, tail: np.ndarray,
                              y_t: np.ndarray) -> None:
    """Depthwise causal conv ``y_t[t, c] = b[c] + sum_j w[c, j] * xp[c, t + j]``, ``xp = [tail, x]``.

    ``x (C, T)``, ``w (C, k)``, ``tail (C, k-1)`` updated in place, ``y_t (T, C)`` time-major.
    """
    channels, length = x.shape
    k = w.shape[1]
    pad = k - 1
    for c in prange(channels):
        bc = b[c]
        for t in range(length):
            acc = bc
            for j in range(k):
                i = t + j
                acc += w[c, j] * (tail[c, i] if i < pad else x[c, i - pad])
            y_t[t, c] = acc
        for i in range(pad):  # new tail: last `pad` samples of [tail, x]; reads index length+i > i
            src = length + i
            tail[c, i] = tail[c, src] if src < pad else x[c, src - pad]
