"""The Qwen3 decoder stack (the talker and the code predictor) as one compiled call per forward pass.

Per layer ``n``, on time-major rows ``x (T, D)`` at positions ``pos0 … pos0 + T - 1``::

    a   = RMSNorm(x)                                          (T, D)
    qkv = a @ Wqkv[n]^T (+ b)                                  (T, (h + 2 kv) d)   one GEMM (q, k, v stacked)
    q, k = RoPE(RMSNorm_d(q)), RoPE(RMSNorm_d(k))              per head, in place
    cache[n, :, pos0 : pos0 + T] = k, v                        the preallocated KV cache
    x  += softmax(q k^T / sqrt(d) + causal) v @ Wo[n]^T        GQA, attention in float64; GEMM with beta = 1
    x  += down(silu(gate(RMSNorm(x))) * up(RMSNorm(x)))       gate/up one GEMM; down with beta = 1

then the final RMSNorm into ``out (T, D)``. Weights of all layers are stacked (``(L, out, in)``) so
the whole stack is one ``njit`` call: no Python between layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .activations import silu_gate
from .attention import causal_attention, kv_write, qk_norm_rope, rope_inv_freq, rope_table
from .elementwise import fill_rows
from .jit import kernel
from .linear import pgemm
from .norms import rms_norm_rows


@dataclass(frozen=True)
class DecoderWeights:
    """One decoder stack's weights, stacked over layers, in the compute dtype.

    ``qkv (L, (h + 2 kv) d, D)``, ``qkv_b (L, (h + 2 kv) d)`` or ``(L, 0)`` without biases, ``o (L, D, h d)``,
    ``o_b (L, D)`` or ``(L, 0)``, ``q_norm, k_norm (L, d)``, ``ln1, ln2 (L, D)``, ``gate_up (L, 2 I, D)``,
    ``down (L, D, I)``, ``norm (D,)``; ``inv_freq (d/2,)`` float64.
    """

    ln1: np.ndarray
    qkv: np.ndarray
    qkv_b: np.ndarray
    q_norm: np.ndarray
    k_norm: np.ndarray
    o: np.ndarray
    o_b: np.ndarray
    ln2: np.ndarray
    gate_up: np.ndarray
    down: np.ndarray
    norm: np.ndarray
    inv_freq: np.ndarray
    heads: int
    kv_heads: int
    head_dim: int
    eps: float

    @classmethod
    def from_weights(cls, w: Mapping[str, np.ndarray], prefix: str, layers: int, heads: int, kv_heads: int,
                     head_dim: int, eps: float, theta: float, bias: bool, dtype: np.dtype) -> DecoderWeights:
        """Stack ``{prefix}.layers.N.*`` (official names) for ``N < layers``."""
        def stack(fn) -> np.ndarray:  # noqa: ANN001
            rows = [fn(f"{prefix}.layers.{n}") for n in range(layers)]
            return np.ascontiguousarray(np.stack(rows), dtype=dtype)

        def cat(p: str, names: tuple[str, ...], leaf: str) -> np.ndarray:
            return np.concatenate([w[f"{p}.{name}.{leaf}"] for name in names])

        qkv_names = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
        empty = np.zeros((layers, 0), dtype=dtype)
        return cls(
            ln1=stack(lambda p: w[f"{p}.input_layernorm.weight"]),
            qkv=stack(lambda p: cat(p, qkv_names, "weight")),
            qkv_b=stack(lambda p: cat(p, qkv_names, "bias")) if bias else empty,
            q_norm=stack(lambda p: w[f"{p}.self_attn.q_norm.weight"]),
            k_norm=stack(lambda p: w[f"{p}.self_attn.k_norm.weight"]),
            o=stack(lambda p: w[f"{p}.self_attn.o_proj.weight"]),
            o_b=stack(lambda p: w[f"{p}.self_attn.o_proj.bias"]) if bias else empty,
            ln2=stack(lambda p: w[f"{p}.post_attention_layernorm.weight"]),
            gate_up=stack(lambda p: cat(p, ("mlp.gate_proj", "mlp.up_proj"), "weight")),
            down=stack(lambda p: w[f"{p}.mlp.down_proj.weight"]),
            norm=np.ascontiguousarray(w[f"{prefix}.norm.weight"], dtype=dtype),
            inv_freq=rope_inv_freq(head_dim, theta),
            heads=heads, kv_heads=kv_heads, head_dim=head_dim, eps=float(eps),
        )

    @property
    def layers(self) -> int:
        return int(self.qkv.shape[0])

    @property
    def width(self) -> int:
        return int(self.qkv.shape[2])

    @property
    def intermediate(self) -> int:
        return int(self.down.shape[2])

    def new_cache(self, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed keys and values ``(L, kv, capacity, d)``."""
        shape = (self.layers, self.kv_heads, capacity, self.head_dim)
        return np.zeros(shape, dtype=self.qkv.dtype), np.zeros(shape, dtype=self.qkv.dtype)


@kernel
def decoder_stack(x: np.ndarray, pos0: int, ln1: np.ndarray, qkv_w: np.ndarray, qkv_b: np.ndarray,
                  q_norm: np.ndarray, k_norm: np.ndarray, o_w: np.ndarray, o_b: np.ndarray, ln2: np.ndarray,
                  gate_up: np.ndarray, down: np.ndarray, norm: np.ndarray, inv_freq: np.ndarray,
                  heads: int, kv_heads: int, eps: float, k_cache: np.ndarray, v_cache: np.ndarray,
                  a: np.ndarray, qkv: np.ndarray, att: np.ndarray, gu: np.ndarray, m: np.ndarray,
                  cos: np.ndarray, sin: np.ndarray, scores: np.ndarray, out: np.ndarray, threads: int) -> None:
    """Every layer on ``x (T, D)`` (updated in place, the residual stream), then ``out = RMSNorm(x)``.

    ``k_cache, v_cache (L, kv, capacity, d)`` receive positions ``pos0 … pos0 + T - 1``; attention reads
    positions ``0 … pos0 + T - 1``. Scratch: ``a (T, D)``, ``qkv (T, (h + 2 kv) d)``, ``att (T, h d)``,
    ``gu (T, 2 I)``, ``m (T, I)``, ``cos, sin (T, d/2)``, ``scores (h, T, >= pos0 + T)``.
    """
    rows = x.shape[0]
    head_dim = k_cache.shape[3]
    nq = heads * head_dim
    nkv = kv_heads * head_dim
    total = pos0 + rows
    rope_table(pos0, inv_freq, cos, sin)
    for n in range(qkv_w.shape[0]):
        rms_norm_rows(x, ln1[n], eps, a)
        if qkv_b.shape[1] > 0:
            fill_rows(qkv, qkv_b[n])
            pgemm(a, qkv_w[n], qkv, 1.0, False, True, threads)
        else:
            pgemm(a, qkv_w[n], qkv, 0.0, False, True, threads)
        qk_norm_rope(qkv, heads, kv_heads, q_norm[n], k_norm[n], eps, cos, sin)
        kv_write(qkv, nq, nq + nkv, k_cache[n], v_cache[n], pos0)
        causal_attention(qkv, heads, k_cache[n], v_cache[n], total, pos0, total + 1, scores, att)
        pgemm(att, o_w[n], x, 1.0, False, True, threads)
        if o_b.shape[1] > 0:
            for t in range(rows):
                for c in range(x.shape[1]):
                    x[t, c] += o_b[n, c]
        rms_norm_rows(x, ln2[n], eps, a)
        pgemm(a, gate_up[n], gu, 0.0, False, True, threads)
        silu_gate(gu, m)
        pgemm(m, down[n], x, 1.0, False, True, threads)
    rms_norm_rows(x, norm, eps, out)
