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

from .blas import gemm
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
    """Roll the cache: its first ``keep = min(W - 1, S)`` rows := the last ``keep`` of ``k_all, v_all``."""
    kv_heads, total, head_dim = k_all.shape
    keep = min(cache_k.shape[1], total)
    for h in range(kv_heads):
        for s in range(keep):
            for i in range(head_dim):
                cache_k[h, s, i] = k_all[h, total - keep + s, i]
                cache_v[h, s, i] = v_all[h, total - keep + s, i]
    return keep


@parallel_kernel
def causal_attention(qkv: np.ndarray, heads: int, k_all: np.ndarray, v_all: np.ndarray, total: int, pos0: int,
                     window: int, scores: np.ndarray, out: np.ndarray) -> None:
    """``out[t, h*d:(h+1)*d] = softmax_s(q_t . k_s / sqrt(d)) @ v`` over the keys query ``t`` may see.

    Queries ``qkv[:, :heads*d]`` at positions ``pos0 + t``; keys ``k_all[:, :S]`` of ``(Hkv, >= S, d)``
    (``S = total``) end at the last query's position, so key ``s`` is at ``pos0 + T - S + s``; query
    head ``h`` reads key head ``h // (heads / Hkv)`` (GQA). Visible: ``p - W < key position <= p``
    (``W = window``; plain causal attention with ``W > S``). Per head, two BLAS GEMMs in the dtype
    (``Q K^T`` and ``P V``, as the reference computes them) around a softmax with float64 sums; the
    heads spread over the threads. ``scores (heads, T, >= S)`` scratch.
    """
    kv_heads, _, head_dim = k_all.shape
    rows = qkv.shape[0]
    groups = heads // kv_heads
    key0 = pos0 + rows - total  # position of key 0
    scale = 1.0 / math.sqrt(head_dim)
    for h in prange(heads):
        g = h // groups
        sc = scores[h, :, :total]
        gemm(qkv[:, h * head_dim:(h + 1) * head_dim], k_all[g, :total], sc, 0.0, False, True)
        for t in range(rows):
            p = pos0 + t
            lo = max(0, p - window + 1 - key0)
            hi = p - key0  # inclusive
            m = -np.inf
            for s in range(lo, hi + 1):
                m = max(m, np.float64(sc[t, s]) * scale)
            denom = 0.0
            for s in range(lo, hi + 1):
                denom += math.exp(np.float64(sc[t, s]) * scale - m)
            for s in range(total):
                sc[t, s] = math.exp(np.float64(sc[t, s]) * scale - m) / denom if lo <= s <= hi else 0.0
        gemm(sc, v_all[g, :total], out[:, h * head_dim:(h + 1) * head_dim], 0.0, False, False)


@kernel
def qk_norm_rope(qkv: np.ndarray, heads: int, kv_heads: int, q_norm: np.ndarray, k_norm: np.ndarray,
                 eps: float,
                 cos: np.ndarray, sin: np.ndarray) -> None:
    """Qwen3's per-head RMSNorm of queries and keys (``w * x / sqrt(mean_d(x**2) + eps)``), then RoPE.

    In place on ``qkv (T, (h + 2 kv) d)``: the ``h`` query heads then the ``kv`` key heads; ``q_norm,
    k_norm (d,)``; ``cos, sin (T, d/2)`` from :func:`rope_table`. Sums in float64.
    """
    rows, half = cos.shape
    d = 2 * half
    for t in range(rows):
        for head in range(heads + kv_heads):
            base = head * d
            w = q_norm if head < heads else k_norm
            ss = 0.0
            for i in range(d):
                v = np.float64(qkv[t, base + i])
                ss += v * v
            inv = 1.0 / math.sqrt(ss / d + eps)
            for i in range(d):
                qkv[t, base + i] = w[i] * (qkv[t, base + i] * inv)
            for i in range(half):
                c = cos[t, i]
                s = sin[t, i]
                x1 = qkv[t, base + i]
                x2 = qkv[t, base + half + i]
                qkv[t, base + i] = x1 * c - x2 * s
                qkv[t, base + half + i] = x2 * c + x1 * s


@kernel
def kv_write(qkv: np.ndarray, k_col0: int, v_col0: int, k_cache: np.ndarray, v_cache: np.ndarray, start: int
             ) -> None:
    """Keys and values of ``qkv (T, .)`` into ``k_cache, v_cache (kv, capacity, d)`` at ``start …``."""
    kv_heads, _, head_dim = k_cache.shape
    for t in range(qkv.shape[0]):
        for h in range(kv_heads):
            for i in range(head_dim):
                k_cache[h, start + t, i] = qkv[t, k_col0 + h * head_dim + i]
                v_cache[h, start + t, i] = qkv[t, v_col0 + h * head_dim + i]
