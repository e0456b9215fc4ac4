"""The vocoder's layers as plain NumPy functions on ``(channels, time)`` arrays.

Every function that looks back in time takes a ``tail`` (the last inputs of the previous chunk,
zeros at the start of an utterance) and returns the new tail with its output, so the same code
decodes offline (one chunk) and streams (many chunks) with identical results.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

SNAKE_EPS = 1e-9
LAYER_NORM_EPS = 1e-6


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
    k = w.shape[2]
    t = x.shape[1]
    xp = np.concatenate([tail, x], axis=1)  # (Cin, pad + T)
    y = np.empty((w.shape[0], t), dtype=x.dtype)
    y[:] = b[:, None]
    for j in range(k):
        y += w[:, :, j] @ xp[:, j * dilation: j * dilation + t]
    return y, _own(xp[:, xp.shape[1] - tail.shape[1]:])


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


def causal_conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, tail: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Causal ConvTranspose1d (the official right-trim of ``k - stride`` samples) as GEMM + col2im.

    ``x (Cin, T)``, ``w (Cin, Cout, k)``. Full output: ``z[:, t*stride + j] += w[:, :, j].T @ x[:, t]``,
    length ``(T-1)*stride + k``. The first ``T*stride`` samples (plus the previous chunk's overlap
    ``tail (Cout, k - stride)``, plus bias) are returned; the rest, without bias, is the new tail.
    """
    cin, cout, k = w.shape
    t = x.shape[1]
    cols = w.reshape(cin, cout * k).T @ x  # (Cout*k, T)
    cols = cols.reshape(cout, k, t)
    full = np.zeros((cout, (t - 1) * stride + k), dtype=x.dtype)
    for j in range(k):
        full[:, j: j + stride * t: stride] += cols[:, j, :]
    overlap = k - stride
    full[:, :overlap] += tail
    y = full[:, : t * stride] + b[:, None]
    return y, _own(full[:, t * stride:])


def snake_beta(x: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """SnakeBeta: ``x + 1/(exp(beta) + 1e-9) * sin(exp(alpha) * x)**2``, per channel; ``x (C, T)``."""
    a = np.exp(alpha)[:, None]
    inv_b = (1.0 / (np.exp(beta) + SNAKE_EPS))[:, None]
    return x + inv_b * np.sin(x * a) ** 2


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """``weight * x / sqrt(mean(x**2, -1) + eps)`` over the last axis; ``x (T, C)``."""
    var = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(var + eps))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """LayerNorm over the last axis; ``x (T, C)``."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)).astype(x.dtype))


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
