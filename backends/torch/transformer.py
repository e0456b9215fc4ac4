"""The vocoder's pre-transformer in torch: sliding-window GQA with RoPE and a streaming KV cache.

Rows are time-major ``(T, H)``. The residual stream, the norms, RoPE, the attention scores and the
softmax stay in float32 (``T`` is the frame count, so this costs nothing); only the projections
run in the compute dtype. LayerScale is folded into ``o_proj`` / ``down_proj`` at load and the
q/k/v and gate/up projections are fused into one GEMM each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from perfkit.interface import State
from perfkit.model.vocoder_config import VocoderConfig

from .layers import Linear, Tensor, rms_norm, to_tensor
from .rope import RopeTable, apply_rope

POS_KEY = "pre_transformer.pos"


@dataclass(frozen=True)
class TransformerLayer:
    """One pre-norm layer: ``h += o(attn(rms(h)))``, ``h += down(silu(gate(rms(h))) * up(rms(h)))``."""

    attn_norm: Tensor  # (H,) float32
    qkv: Linear  # H -> (heads + 2*kv_heads) * head_dim
    o: Linear  # heads*head_dim -> H, LayerScale folded
    mlp_norm: Tensor  # (H,) float32
    gate_up: Linear  # H -> 2*I
    down: Linear  # I -> H, LayerScale folded

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], n: int, dtype: torch.dtype, device: torch.device
             ) -> TransformerLayer:
        p = f"pre_transformer.layers.{n}"
        a = f"{p}.self_attn"
        qkv = {f"{a}.qkv.weight": np.concatenate([w[f"{a}.{x}_proj.weight"] for x in "qkv"], axis=0)}
        if f"{a}.q_proj.bias" in w:
            qkv[f"{a}.qkv.bias"] = np.concatenate([w[f"{a}.{x}_proj.bias"] for x in "qkv"])
        gate_up = {f"{p}.mlp.gate_up.weight": np.concatenate([w[f"{p}.mlp.gate_proj.weight"],
                                                              w[f"{p}.mlp.up_proj.weight"]], axis=0)}
        return cls(
            attn_norm=to_tensor(w[f"{p}.input_layernorm.weight"], torch.float32, device),
            qkv=Linear.pack(qkv, f"{a}.qkv", dtype, device),
            o=Linear.pack(w, f"{a}.o_proj", dtype, device, scale=w[f"{p}.self_attn_layer_scale.scale"]),
            mlp_norm=to_tensor(w[f"{p}.post_attention_layernorm.weight"], torch.float32, device),
            gate_up=Linear.pack(gate_up, f"{p}.mlp.gate_up", dtype, device),
            down=Linear.pack(w, f"{p}.mlp.down_proj", dtype, device, scale=w[f"{p}.mlp_layer_scale.scale"]),
        )


class PreTransformer:
    """``(T, latent)`` -> ``(T, latent)``: input_proj, layers, RMSNorm, output_proj; positions carried in state."""

    def __init__(self, config: VocoderConfig, w: Mapping[str, np.ndarray], dtype: torch.dtype,
                 device: torch.device) -> None:
        self.config, self.dtype, self.device = config, dtype, device
        self.input_proj = Linear.pack(w, "pre_transformer.input_proj", dtype, device)
        self.layers = [TransformerLayer.pack(w, n, dtype, device) for n in range(config.num_hidden_layers)]
        self.norm = to_tensor(w["pre_transformer.norm.weight"], torch.float32, device)
        self.output_proj = Linear.pack(w, "pre_transformer.output_proj", dtype, device)
        self.rope = RopeTable(config.head_dim, config.rope_theta, device, config.max_position_embeddings)

    def __call__(self, x: Tensor, state: State) -> Tensor:
        """``x (T, latent)`` in the compute dtype -> ``(T, latent)``."""
        cfg = self.config
        t = x.shape[0]
        pos0 = int(state.get(POS_KEY, 0))
        cos, sin = self.rope.at(pos0, t)  # (T, d) each
        h = self.input_proj(x).float()  # (T, H) float32 residual stream
        for n, layer in enumerate(self.layers):
            a = rms_norm(h, layer.attn_norm, cfg.rms_norm_eps).to(self.dtype)
            h = h + layer.o(self._attention(layer, n, a, pos0, cos, sin, state)).float()
            m = rms_norm(h, layer.mlp_norm, cfg.rms_norm_eps).to(self.dtype)
            gate, up = layer.gate_up(m).chunk(2, dim=-1)  # (T, I) each
            h = h + layer.down(F.silu(gate) * up).float()
        h = rms_norm(h, self.norm, cfg.rms_norm_eps).to(self.dtype)
        state[POS_KEY] = pos0 + t
        return self.output_proj(h)  # (T, latent)

    def _attention(self, layer: TransformerLayer, n: int, x: Tensor, pos0: int, cos: Tensor, sin: Tensor,
                   state: State) -> Tensor:
        """Causal sliding-window GQA: query at ``p`` sees keys at ``(p - window, p]``; ``x (T, H)`` -> ``(T, heads*d)``.

        The cache keeps the last ``window - 1`` post-RoPE keys and values (float32) of earlier chunks.
        """
        cfg = self.config
        t, d, nh, nkv = x.shape[0], cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
        qkv = layer.qkv(x).float()  # (T, (nh + 2*nkv) * d)
        q, k, v = qkv.split([nh * d, nkv * d, nkv * d], dim=-1)
        q = apply_rope(q.view(t, nh, d).transpose(0, 1), cos, sin)  # (nh, T, d)
        k = apply_rope(k.view(t, nkv, d).transpose(0, 1), cos, sin)  # (nkv, T, d)
        v = v.view(t, nkv, d).transpose(0, 1)  # (nkv, T, d)
        key = f"pre_transformer.kv.{n}"
        if key in state:
            past_k, past_v = state[key]
            k, v = torch.cat([past_k, k], dim=1), torch.cat([past_v, v], dim=1)  # (nkv, S, d)
        s = k.shape[1]
        keep = min(cfg.sliding_window - 1, s)
        state[key] = (k[:, s - keep:].contiguous(), v[:, s - keep:].contiguous())
        q_pos = torch.arange(pos0, pos0 + t, device=x.device)[:, None]  # (T, 1)
        k_pos = torch.arange(pos0 + t - s, pos0 + t, device=x.device)[None, :]  # (1, S)
        allowed = (k_pos <= q_pos) & (k_pos > q_pos - cfg.sliding_window)  # (T, S)
        groups = nh // nkv
        scores = q.view(nkv, groups, t, d) @ k[:, None].transpose(-1, -2)  # (nkv, g, T, S)
        scores = (scores * d ** -0.5).masked_fill_(~allowed, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v[:, None]  # (nkv, g, T, d)
        out = out.reshape(nh, t, d).transpose(0, 1).reshape(t, nh * d)  # (T, heads*d)
        return out.to(self.dtype)
