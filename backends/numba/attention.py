"""Causal sliding-window grouped-query attention with RoPE and a rolling KV cache.

Time-major rows. Query ``i`` at position ``p_i`` attends to keys at positions ``(p_i - W, p_i]``
(``W`` the sliding window); the cache keeps the last ``W - 1`` post-RoPE keys and values of the
earlier chunks. Shapes: ``qkv (T, (Hq + 2 Hkv) d)`` fused projections, keys/values of the chunk
appended to the cache in ``k_all, v_all (Hkv, S, d)`` with ``S = past + T``, output ``(T, Hq d)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .jit import kernel, parallel_kernel


def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """``theta ** (-arange(0, d, 2) / d)`` in float64, ``(d/2,)``."""
    return 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))


@kernel
def rope_table(pos0: int, inv_freq: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> None:
    """``cos[t, i], sin[t, i]`` of ``(pos0 + t) * inv_freq[i]`` (float64, stored in the arrays' dtype)."""
    for t in range(cos.shape[0]):
        pos = np.float64(pos0 + t)
        for i in range(cos.shape[1]):
            ang = pos * inv_freq[i]
            cos[t, i] = math.cos(ang)
            sin[t, i] = math.sin(ang)


@kernel
def rope_inplace(x: np.ndarray, col0: int, heads: int, cos: np.ndarray, sin: np.ndarray) -> None:
    """Rotary embedding (rotate-half) on ``heads`` heads of ``x (T, .)`` starting at column ``col0``.

    ``cos, sin (T, d/2)`` from :func:`rope_table`; with ``(x1, x2)`` the two halves of a head:
    ``(x1 cos - x2 sin, x2 cos + x1 sin)``.
    """
    rows, half = cos.shape
    head_dim = 2 * half
    for t in range(rows):
        for h in range(heads):
            base = col0 + h * head_dim
            for i in range(half):
                c = cos[t, i]
                s = sin[t, i]
                x1 = x[t, base + i]
                x2 = x[t, base + half + i]
                x[t, base + i] = x1 * c - x2 * s
                x[t, base + half + i] = x2 * c + x1 * s


@kernel
def kv_append(qkv: np.ndarray, k_col0: int, v_col0: int, cache_k: np.ndarray, cache_v: np.ndarray, past: int,
              k_all: np.ndarray, v_all: np.ndarray) -> None:
    """``k_all[h] = [cache_k[h, :past], k of the chunk]`` (same for values); ``k_all (Hkv, past + T, d)``.

    The chunk's keys are ``qkv[:, k_col0 + h*d : k_col0 + (h+1)*d]`` (already rotated), values likewise.
    """
    kv_heads, _, head_dim = k_all.shape
    rows = qkv.shape[0]
    for h in range(kv_heads):
        for s in range(past):
            for i in range(head_dim):
                k_all[h, s, i] = cache_k[h, s, i]
                v_all[h, s, i] = cache_v[h, s, i]
        for t in range(rows):
            for i in range(head_dim):
                k_all[h, past + t, i] = qkv[t, k_col0 + h * head_dim + i]
                v_all[h, past + t, i] = qkv[t, v_col0 + h * head_dim + i]


@kernel
def kv_keep(k_all: np.ndarray, v_all: np.ndarray, cache_k: np.ndarray, cache_v: np.ndarray) -> int:
    """Roll the cache: its first ``keep = min(W - 1, S)`` rows become the last ``keep`` of ``k_all, v_all``."""
    kv_heads, total, head_dim = k_all.shape
    keep = min(cache_k.shape[1], total)
    for h in range(kv_heads):
        for s in range(keep):
            for i in range(head_dim):
                cache_k[h, s, i] = k_all[h, total - keep + s, i]
                cache_v[h, s, i] = v_all[h, total - keep + s, i]
    return keep


@parallel_kernel
def sliding_window_attention(qkv: np.ndarray, heads: int, k_all: np.ndarray, v_all: np.ndarray, pos0: int,
                             window: int, scores: np.ndarray, out: np.ndarray) -> None:
    """``out[t, h*d:(h+1)*d] = softmax_s(q_t . k_s / sqrt(d)) @ v`` over the keys query ``t`` may see.

    Queries ``qkv[:, :heads*d]`` at positions ``pos0 + t``; keys ``k_all (Hkv, S, d)`` end at the last
    query's position, so key ``s`` is at ``pos0 + T - S + s``; query head ``h`` reads key head
    ``h // (heads / Hkv)``. Visible: ``p - W < key position <= p``. Scores, softmax and the weighted
    sum in float64; ``scores (heads, T, S)`` scratch.
    """
    kv_heads, total, head_dim = k_all.shape
    rows = qkv.shape[0]
    groups = heads // kv_heads
    key0 = pos0 + rows - total  # position of key 0
    scale = 1.0 / math.sqrt(head_dim)
    for job in prange(heads * rows):
        h = job // rows
        t = job % rows
        g = h // groups
        p = pos0 + t
        lo = max(0, p - window + 1 - key0)
        hi = p - key0  # inclusive
        m = -np.inf
        for s in range(lo, hi + 1):
            acc = 0.0
            for i in range(head_dim):
                acc += np.float64(qkv[t, h * head_dim + i]) * k_all[g, s, i]
            acc *= scale
            scores[h, t, s] = acc
            m = max(m, acc)
        denom = 0.0
        for s in range(lo, hi + 1):
            e = math.exp(np.float64(scores[h, t, s]) - m)
            scores[h, t, s] = e
            denom += e
        for i in range(head_dim):
            acc = 0.0
            for s in range(lo, hi + 1):
                acc += np.float64(scores[h, t, s]) * v_all[g, s, i]
            out[t, h * head_dim + i] = acc / denom
