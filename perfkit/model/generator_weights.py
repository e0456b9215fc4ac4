"""The generator's tensors: official names and shapes, and synthetic weights from a seed.

Names are the official ``Qwen3TTSTalkerForConditionalGeneration`` state-dict keys *without* the
``talker.`` prefix a checkpoint stores them under (see :mod:`perfkit.model.checkpoint`); PyTorch
layouts are kept (``Linear`` weights ``(out, in)``, ``Embedding`` weights ``(rows, dim)``).
With ``H`` the talker width, ``Hc`` the code predictor's, ``V`` the codec vocabulary, ``C`` the codes
per group, ``G`` the code groups, ``Dt`` / ``Vt`` the text width / vocabulary:

- ``model.text_embedding.weight (Vt, Dt)``; ``text_projection.linear_fc1 (Dt, Dt) + bias``,
  ``text_projection.linear_fc2 (H, Dt) + bias``;
- ``model.codec_embedding.weight (V, H)``; ``codec_head.weight (V, H)``; ``model.norm.weight (H,)``;
- per layer ``model.layers.N.``: ``input_layernorm``, ``self_attn.{q,k,v,o}_proj``,
  ``self_attn.{q,k}_norm (head_dim,)``, ``post_attention_layernorm``, ``mlp.{gate,up,down}_proj``;
- ``code_predictor.model.layers.N.…`` (the same layer at width ``Hc``), ``code_predictor.model.norm``,
  ``code_predictor.model.codec_embedding.{g} (C, H)`` and ``code_predictor.lm_head.{g} (C, Hc)`` for
  ``g = 0 … G-2`` (group ``g + 1``), and ``code_predictor.small_to_mtp_projection (Hc, H) + bias``
  only when ``Hc != H``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .generator_config import GeneratorConfig

Shape = tuple[int, ...]

PREFIX = "talker."

#: Synthetic EOS behaviour (see :func:`synthetic_generator_weights`).
_PAD_GATE = 8.0  # pre-activation of the pad "gate" unit for the tts_pad token
_GATE_BIAS = 8.0  # its bias: about -_GATE_BIAS for every other token, so the gate stays shut
_GATE_WRITE = 1.5  # the gate unit writes _GATE_WRITE * silu(pre-activation) along the EOS direction
_STREAM_OFFSET = 6.0  # constant negative offset of every text embedding along the EOS direction
_EOS_GAIN = 5.0  # EOS row of codec_head = _EOS_GAIN * that direction
_LOGIT_STD = 2.0  # other logits: N(0, ~_LOGIT_STD**2) for a unit-RMS final hidden state


def _decoder_layer(prefix: str, hidden: int, inter: int, heads: int, kv_heads: int, head_dim: int, bias: bool
                   ) -> Iterator[tuple[str, Shape]]:
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    yield f"{prefix}.input_layernorm.weight", (hidden,)
    for name, out in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
        yield f"{prefix}.self_attn.{name}.weight", (out, hidden)
        if bias:
            yield f"{prefix}.self_attn.{name}.bias", (out,)
    yield f"{prefix}.self_attn.o_proj.weight", (hidden, q_out)
    if bias:
        yield f"{prefix}.self_attn.o_proj.bias", (hidden,)
    yield f"{prefix}.self_attn.q_norm.weight", (head_dim,)
    yield f"{prefix}.self_attn.k_norm.weight", (head_dim,)
    yield f"{prefix}.post_attention_layernorm.weight", (hidden,)
    yield f"{prefix}.mlp.gate_proj.weight", (inter, hidden)
    yield f"{prefix}.mlp.up_proj.weight", (inter, hidden)
    yield f"{prefix}.mlp.down_proj.weight", (hidden, inter)


def talker_tensor_shapes(cfg: GeneratorConfig) -> dict[str, Shape]:
    """The talker's own tensors (everything outside ``code_predictor.``), name -> shape."""
    h, dt = cfg.hidden_size, cfg.text_hidden_size
    out: dict[str, Shape] = {
        "model.text_embedding.weight": (cfg.text_vocab_size, dt),
        "text_projection.linear_fc1.weight": (dt, dt),
        "text_projection.linear_fc1.bias": (dt,),
        "text_projection.linear_fc2.weight": (h, dt),
        "text_projection.linear_fc2.bias": (h,),
        "model.codec_embedding.weight": (cfg.vocab_size, h),
    }
    for n in range(cfg.num_hidden_layers):
        out.update(_decoder_layer(f"model.layers.{n}", h, cfg.intermediate_size, cfg.num_attention_heads,
                                  cfg.num_key_value_heads, cfg.head_dim, cfg.attention_bias))
    out["model.norm.weight"] = (h,)
    out["codec_head.weight"] = (cfg.vocab_size, h)
    return out


def code_predictor_tensor_shapes(cfg: GeneratorConfig) -> dict[str, Shape]:
    """The code predictor's tensors (names start with ``code_predictor.``), name -> shape."""
    cp = cfg.code_predictor_config
    hc = cp.hidden_size
    out: dict[str, Shape] = {}
    if cfg.has_projection:
        out["code_predictor.small_to_mtp_projection.weight"] = (hc, cfg.hidden_size)
        out["code_predictor.small_to_mtp_projection.bias"] = (hc,)
    for g in range(cfg.num_code_groups - 1):
        out[f"code_predictor.model.codec_embedding.{g}.weight"] = (cp.vocab_size, cfg.hidden_size)
    for n in range(cp.num_hidden_layers):
        out.update(_decoder_layer(f"code_predictor.model.layers.{n}", hc, cp.intermediate_size,
                                  cp.num_attention_heads, cp.num_key_value_heads, cp.head_dim,
                                  cp.attention_bias))
    out["code_predictor.model.norm.weight"] = (hc,)
    for g in range(cfg.num_code_groups - 1):
        out[f"code_predictor.lm_head.{g}.weight"] = (cp.vocab_size, hc)
    return out


def generator_tensor_shapes(cfg: GeneratorConfig) -> dict[str, Shape]:
    """Every tensor generation reads, name (without ``talker.``) -> shape, in module order."""
    return {**talker_tensor_shapes(cfg), **code_predictor_tensor_shapes(cfg)}


def generator_parameter_count(cfg: GeneratorConfig) -> int:
    return sum(int(np.prod(s)) for s in generator_tensor_shapes(cfg).values())


# --------------------------------------------------------------------------- synthetic weights
def _synthetic_tensor(name: str, shape: Shape, cfg: GeneratorConfig, rng: np.random.Generator) -> np.ndarray:
    """One tensor with a scale that keeps activations and logits healthy.

    Linear weights ``N(0, gain / fan_in)``: gain 1, except 0.5 for the residual branches
    (``o_proj``, ``down_proj``) and ``_LOGIT_STD**2`` for the heads, so logits are ``N(0, ~4)``
    for a unit-RMS hidden state — peaked enough to sample from, flat enough that codes vary.
    Norm weights ``1 + N(0, 0.05)``; biases ``N(0, 0.02)``; text embedding rows ``N(0, 1)``;
    codec embedding rows ``N(0, 1/G)`` so the sum of a frame's ``G`` embeddings is ``O(1)``.
    """
    leaf = name.rsplit(".", 1)[-1]
    x = rng.standard_normal(shape, dtype=np.float32)  # float32 draws: the 0.6B text embedding alone is 311 M
    if name.endswith("norm.weight"):
        return 1.0 + 0.05 * x
    if leaf == "bias":
        return 0.02 * x
    if name == "model.text_embedding.weight":
        return x
    if "codec_embedding" in name:
        return x * np.float32(1.0 / np.sqrt(cfg.num_code_groups))
    gain = 1.0
    if name.endswith(("o_proj.weight", "down_proj.weight")):
        gain = 0.5
    if name == "codec_head.weight" or ".lm_head." in name:
        gain = _LOGIT_STD**2
    x *= np.float32(np.sqrt(gain / shape[1]))
    return x


def _shape_eos(weights: dict[str, np.ndarray], cfg: GeneratorConfig, rng: np.random.Generator) -> None:
    """Make EOS follow the text, as a trained model's does, using only the official tensors.

    A unit direction ``d`` of the talker width is chosen. The text projection's first hidden unit
    is a gate that fires (pre-activation ``_PAD_GATE``) for the ``tts_pad`` token only (about
    ``-_GATE_BIAS`` for the others, where SiLU is ~0) and writes
    ``_GATE_WRITE * silu(.) * d`` through ``linear_fc2``; the fc2 bias carries ``-_STREAM_OFFSET * d``
    for every token. So the text stream's embedding points along ``-d`` (about -6) while text is
    being read and along ``+d`` (about +6) once it is consumed (the pad embedding), and the EOS row
    of ``codec_head`` is ``_EOS_GAIN * d``. Measured on ``tiny`` and ``small``, seeds 0-5: while text
    remains the EOS logit stays 8 or more below the best code; an utterance of ``N`` text tokens ends
    with EOS after exactly ``N + 1`` frames, greedy and sampled alike.
    """
    d = rng.standard_normal(cfg.hidden_size)
    d /= np.linalg.norm(d)
    emb = weights["model.text_embedding.weight"]
    pad = emb[cfg.tts_pad_token_id].astype(np.float64)
    fc1 = weights["text_projection.linear_fc1.weight"]
    # pre-activation: _PAD_GATE for pad, ~N(-_GATE_BIAS, (_PAD_GATE + _GATE_BIAS)**2 / Dt) for other tokens
    fc1[0] = (_PAD_GATE + _GATE_BIAS) * pad / float(pad @ pad)
    weights["text_projection.linear_fc1.bias"][0] = -_GATE_BIAS
    weights["text_projection.linear_fc2.weight"][:, 0] = _GATE_WRITE * d
    weights["text_projection.linear_fc2.bias"] -= _STREAM_OFFSET * d
    weights["codec_head.weight"][cfg.codec_eos_token_id] = _EOS_GAIN * d


def synthetic_generator_weights(cfg: GeneratorConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic float32 weights for ``cfg`` from ``seed``, identical on every machine and backend.

    Every tensor is drawn in :func:`generator_tensor_shapes` order from one seeded generator (scales
    in :func:`_synthetic_tensor`), then the EOS behaviour is shaped (:func:`_shape_eos`).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A1C3E]))
    shapes = generator_tensor_shapes(cfg)
    weights = {name: _synthetic_tensor(name, shape, cfg, rng) for name, shape in shapes.items()}
    _shape_eos(weights, cfg, rng)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
