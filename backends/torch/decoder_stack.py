"""The Qwen3 decoder stack shared by the talker and the code predictor, with a preallocated KV cache.

One layer on rows ``x (T, D)`` (``h``/``kv`` query/KV heads of width ``d``; mirrors
:mod:`perfkit.backends.numpy.generator`)::

    a = RMSNorm(x)                                              (T, D)
    q, k, v = split(a @ Wqkv)                                   one fused GEMM
    q = RoPE(RMSNorm_d(q))  (h, T, d);  k = RoPE(RMSNorm_d(k))  (kv, T, d)
    cache[positions] = k, v                                     index_copy_, no growth
    o = softmax(q k^T / sqrt(d) + causal) v                     SDPA, GQA, float32 softmax
    x = x + o @ Wo;   x = x + down(silu(gate) * up)(RMSNorm(x)) fused gate/up GEMM

The residual stream, the norms and RoPE are float32; the projections run in the compute dtype and
the KV cache is kept in it. Positions come as a device tensor, so a step needs no host value
except, in the dynamic form, how many cache rows to read (``end``); the static form reads the
whole cache under a mask instead (fixed shapes, as CUDA-graph capture needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .layers import Linear, Tensor, rms_norm, to_tensor
from .rope import RopeTable, apply_rope


@dataclass(frozen=True)
class StackGeometry:
    """What differs between the talker's and the code predictor's stacks."""

    prefix: str  # "model" or "code_predictor.model"
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    theta: float
    max_positions: int


@dataclass(frozen=True)
class DecoderLayer:
    attn_norm: Tensor  # (D,) float32
    qkv: Linear  # D -> (h + 2*kv) * d
    q_norm: Tensor  # (d,) float32
    k_norm: Tensor  # (d,) float32
    o: Linear  # h*d -> D
    mlp_norm: Tensor  # (D,) float32
    gate_up: Linear  # D -> 2*I
    down: Linear  # I -> D

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], p: str, dtype: torch.dtype, device: torch.device,
             rows: int | None = None) -> DecoderLayer:
        """``rows``: the projections' packing hint (:meth:`.layers.Linear.pack`)."""
        a = f"{p}.self_attn"
        fused = {f"{a}.qkv.weight": np.concatenate([w[f"{a}.{x}_proj.weight"] for x in "qkv"], axis=0),
                 f"{p}.mlp.gate_up.weight": np.concatenate([w[f"{p}.mlp.gate_proj.weight"],
                                                            w[f"{p}.mlp.up_proj.weight"]], axis=0)}
        if f"{a}.q_proj.bias" in w:
            fused[f"{a}.qkv.bias"] = np.concatenate([w[f"{a}.{x}_proj.bias"] for x in "qkv"])
        f32 = torch.float32
        return cls(
            attn_norm=to_tensor(w[f"{p}.input_layernorm.weight"], f32, device),
            qkv=Linear.pack(fused, f"{a}.qkv", dtype, device, rows=rows),
            q_norm=to_tensor(w[f"{a}.q_norm.weight"], f32, device),
            k_norm=to_tensor(w[f"{a}.k_norm.weight"], f32, device),
            o=Linear.pack(w, f"{a}.o_proj", dtype, device, rows=rows),
            mlp_norm=to_tensor(w[f"{p}.post_attention_layernorm.weight"], f32, device),
            gate_up=Linear.pack(fused, f"{p}.mlp.gate_up", dtype, device, rows=rows),
            down=Linear.pack(w, f"{p}.mlp.down_proj", dtype, device, rows=rows),
        )


@dataclass(frozen=True)
class KVCache:
    """Keys and values ``(layers, kv_heads, capacity, d)`` in the compute dtype, allocated once per utterance."""

    k: Tensor
    v: Tensor

    @classmethod
    def allocate(cls, geo: StackGeometry, capacity: int, dtype: torch.dtype, device: torch.device) -> KVCache:
        shape = (geo.layers, geo.kv_heads, capacity, geo.head_dim)
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @property
    def capacity(self) -> int:
        return int(self.k.shape[2])


class DecoderStack:
    """Layers then the final RMSNorm, ``(T, D) -> (T, D)`` float32, writing keys/values at ``positions``."""

    def __init__(self, w: Mapping[str, np.ndarray], geo: StackGeometry, dtype: torch.dtype,
                 device: torch.device, rows: int | None = None) -> None:
        self.geo, self.dtype, self.device = geo, dtype, device
        self.layers = [DecoderLayer.pack(w, f"{geo.prefix}.layers.{n}", dtype, device, rows)
                       for n in range(geo.layers)]
        self.norm = to_tensor(w[f"{geo.prefix}.norm.weight"], torch.float32, device)
        self.rope = RopeTable(geo.head_dim, geo.theta, device, geo.max_positions)

    def __call__(self, x: Tensor, cache: KVCache, positions: Tensor, end: int | None = None,
                 valid: Tensor | None = None) -> Tensor:
        """``x (T, D)`` float32 at ``positions (T,)`` (device int64) -> normed ``(T, D)`` float32.

        Dynamic form: ``end`` = the number of cache rows to attend to (the positions are the last
        ``T`` of them). Static form: ``end=None`` and ``valid (capacity,)`` bool marks the rows to attend
        to (one query, ``T == 1``).
        """
        geo = self.geo
        t = x.shape[0]
        cos = self.rope.cos.index_select(0, positions)  # (T, d)
        sin = self.rope.sin.index_select(0, positions)
        mask = None
        if end is None:
            mask = valid[None, :]  # (1, capacity)
        elif t > 1:
            k_pos = torch.arange(end, device=x.device)[None, :]  # (1, end)
            mask = k_pos <= positions[:, None]  # (T, end) causal
        for n, layer in enumerate(self.layers):
            a = rms_norm(x, layer.attn_norm, geo.eps).to(self.dtype)  # (T, D)
            x = x + layer.o(self._attention(layer, n, a, cache, positions, cos, sin, end, mask)).float()
            m = rms_norm(x, layer.mlp_norm, geo.eps).to(self.dtype)
            gate, up = layer.gate_up(m).chunk(2, dim=-1)  # (T, I) each
            x = x + layer.down(F.silu(gate) * up).float()
        return rms_norm(x, self.norm, geo.eps)

    def _attention(self, layer: DecoderLayer, n: int, a: Tensor, cache: KVCache, positions: Tensor, cos: Tensor,
                   sin: Tensor, end: int | None, mask: Tensor | None) -> Tensor:
        """``a (T, D)`` -> ``(T, h*d)``: q/k per-head RMSNorm and RoPE, cache write, GQA attention."""
        geo = self.geo
        t, d, h, kv = a.shape[0], geo.head_dim, geo.heads, geo.kv_heads
        q, k, v = layer.qkv(a).float().split([h * d, kv * d, kv * d], dim=-1)
        q = apply_rope(rms_norm(q.view(t, h, d), layer.q_norm, geo.eps).transpose(0, 1), cos, sin)  # (h, T, d)
        k = apply_rope(rms_norm(k.view(t, kv, d), layer.k_norm, geo.eps).transpose(0, 1), cos, sin)  # (kv, T, d)
        cache.k[n].index_copy_(1, positions, k.to(self.dtype))
        cache.v[n].index_copy_(1, positions, v.view(t, kv, d).transpose(0, 1).to(self.dtype))
        keys, values = (cache.k[n], cache.v[n]) if end is None else (cache.k[n, :, :end], cache.v[n, :, :end])
        out = F.scaled_dot_product_attention(q.to(self.dtype)[None], keys[None], values[None], attn_mask=mask,
                                             enable_gqa=h != kv)  # (1, h, T, d)
        return out[0].transpose(0, 1).reshape(t, h * d)
