"""The vocoder's tensors: official names and shapes, and synthetic weights from a seed.

Names are the official ``Qwen3TTSTokenizerV2Decoder`` state-dict keys *without* the
``decoder.`` prefix a tokenizer checkpoint stores them under (see :mod:`perfkit.model.checkpoint`).
PyTorch layouts are kept: ``Conv1d`` weights are ``(out, in, k)``, ``ConvTranspose1d``
weights ``(in, out, k)``, ``Linear`` weights ``(out, in)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .vocoder_config import VocoderConfig

Shape = tuple[int, ...]

#: Tensors the official checkpoint carries that decoding never reads (the RVQ encoder-side projections).
UNUSED_SUFFIXES: tuple[str, ...] = (".input_proj.weight",)


def _conv(prefix: str, cout: int, cin: int, k: int) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.conv.weight", (cout, cin, k)
    yield f"{prefix}.conv.bias", (cout,)


def _tconv(prefix: str, cin: int, cout: int, k: int) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.conv.weight", (cin, cout, k)
    yield f"{prefix}.conv.bias", (cout,)


def _snake(prefix: str, c: int) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.alpha", (c,)
    yield f"{prefix}.beta", (c,)


def _rvq(cfg: VocoderConfig) -> Iterator[tuple[str, Shape]]:
    half = cfg.codebook_half_dim
    groups = (("rvq_first", 0, cfg.num_semantic_quantizers), ("rvq_rest", cfg.num_semantic_quantizers,
                                                              cfg.num_acoustic_quantizers))
    for group, first, count in groups:
        for i in range(count):
            rows = cfg.codebook_size_of(first + i)
            yield f"quantizer.{group}.vq.layers.{i}._codebook.embedding_sum", (rows, half)
            yield f"quantizer.{group}.vq.layers.{i}._codebook.cluster_usage", (rows,)
        yield f"quantizer.{group}.output_proj.weight", (cfg.codebook_dim, half, 1)


def _transformer(cfg: VocoderConfig) -> Iterator[tuple[str, Shape]]:
    h, lat = cfg.hidden_size, cfg.latent_dim
    q_out = cfg.num_attention_heads * cfg.head_dim
    kv_out = cfg.num_key_value_heads * cfg.head_dim
    yield "pre_transformer.input_proj.weight", (h, lat)
    yield "pre_transformer.input_proj.bias", (h,)
    for n in range(cfg.num_hidden_layers):
        p = f"pre_transformer.layers.{n}"
        yield f"{p}.input_layernorm.weight", (h,)
        for name, out in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
            yield f"{p}.self_attn.{name}.weight", (out, h)
            if cfg.attention_bias:
                yield f"{p}.self_attn.{name}.bias", (out,)
        yield f"{p}.self_attn.o_proj.weight", (h, q_out)
        if cfg.attention_bias:
            yield f"{p}.self_attn.o_proj.bias", (h,)
        yield f"{p}.self_attn_layer_scale.scale", (h,)
        yield f"{p}.post_attention_layernorm.weight", (h,)
        yield f"{p}.mlp.gate_proj.weight", (cfg.intermediate_size, h)
        yield f"{p}.mlp.up_proj.weight", (cfg.intermediate_size, h)
        yield f"{p}.mlp.down_proj.weight", (h, cfg.intermediate_size)
        yield f"{p}.mlp_layer_scale.scale", (h,)
    yield "pre_transformer.norm.weight", (h,)
    yield "pre_transformer.output_proj.weight", (lat, h)
    yield "pre_transformer.output_proj.bias", (lat,)


def _upsample(cfg: VocoderConfig) -> Iterator[tuple[str, Shape]]:
    d = cfg.latent_dim
    for i, ratio in enumerate(cfg.upsampling_ratios):
        yield from _tconv(f"upsample.{i}.0", d, d, ratio)
        p = f"upsample.{i}.1"
        yield from _conv(f"{p}.dwconv", d, 1, 7)
        yield f"{p}.norm.weight", (d,)
        yield f"{p}.norm.bias", (d,)
        yield f"{p}.pwconv1.weight", (4 * d, d)
        yield f"{p}.pwconv1.bias", (4 * d,)
        yield f"{p}.pwconv2.weight", (d, 4 * d)
        yield f"{p}.pwconv2.bias", (d,)
        yield f"{p}.gamma", (d,)


def _decoder(cfg: VocoderConfig) -> Iterator[tuple[str, Shape]]:
    yield from _conv("decoder.0", cfg.decoder_dim, cfg.latent_dim, 7)
    for i, rate in enumerate(cfg.upsample_rates):
        cin, cout = cfg.block_dims(i)
        p = f"decoder.{i + 1}.block"
        yield from _snake(f"{p}.0", cin)
        yield from _tconv(f"{p}.1", cin, cout, 2 * rate)
        for u in range(3):
            yield from _snake(f"{p}.{u + 2}.act1", cout)
            yield from _conv(f"{p}.{u + 2}.conv1", cout, cout, 7)
            yield from _snake(f"{p}.{u + 2}.act2", cout)
            yield from _conv(f"{p}.{u + 2}.conv2", cout, cout, 1)
    n = cfg.num_blocks
    yield from _snake(f"decoder.{n + 1}", cfg.output_dim)
    yield from _conv(f"decoder.{n + 2}", 1, cfg.output_dim, 7)


def vocoder_tensor_shapes(cfg: VocoderConfig) -> dict[str, Shape]:
    """Every tensor decoding reads, name -> shape, in module order."""
    out: dict[str, Shape] = {}
    for part in (_rvq, lambda c: _conv("pre_conv", c.latent_dim, c.codebook_dim, 3), _transformer, _upsample,
                 _decoder):
        out.update(part(cfg))
    return out


def vocoder_parameter_count(cfg: VocoderConfig) -> int:
    return sum(int(np.prod(s)) for s in vocoder_tensor_shapes(cfg).values())


def _is_transposed(name: str) -> bool:
    """ConvTranspose1d weights, laid out ``(in, out, k)``."""
    return (name.startswith("upsample.") and name.endswith(".0.conv.weight")) or ".block.1.conv.weight" in name


# --------------------------------------------------------------------------- synthetic weights
def _synthetic_tensor(name: str, shape: Shape, cfg: VocoderConfig, rng: np.random.Generator) -> np.ndarray:
    """One tensor with a scale that keeps every stage's activations healthy.

    Linear / conv weights are ``N(0, gain / fan_in)`` (variance preserving); norms are
    ``1 + N(0, 0.05)``; residual scales (LayerScale, ConvNeXt gamma) are ``~0.1`` so the
    residual stream neither vanishes nor explodes; SnakeBeta log-parameters ``N(0, 0.1)``
    (so ``exp(alpha) ~ 1``, ``1/exp(beta) ~ 1``); codebook rows ``N(0, 1)`` after the
    ``embedding_sum / cluster_usage`` division.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "cluster_usage":
        return rng.uniform(0.5, 2.0, size=shape)
    if leaf == "embedding_sum":
        return rng.standard_normal(shape)  # rescaled by cluster_usage in build_synthetic
    if leaf in ("alpha", "beta"):
        return 0.1 * rng.standard_normal(shape)
    if leaf in ("scale", "gamma"):
        return 0.1 * (1.0 + 0.1 * rng.standard_normal(shape))
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        return 1.0 + 0.05 * rng.standard_normal(shape)
    if leaf == "bias":
        return 0.02 * rng.standard_normal(shape)
    # weights: fan-in of a Linear (out, in), a Conv1d (out, in, k) or a ConvTranspose1d (in, out, k)
    if _is_transposed(name):
        cin, _, k = shape
        stride = k if name.startswith("upsample.") else k // 2
        fan_in = cin * (k // stride)  # taps contributing to one output sample
    elif len(shape) == 3:
        fan_in = shape[1] * shape[2]
    else:
        fan_in = shape[1]
    gain = 1.0
    if name.startswith("quantizer.rvq_rest.output_proj"):
        gain = 1.0 / cfg.num_acoustic_quantizers  # sum of many quantizers stays O(1)
    if ".conv2.conv.weight" in name:
        gain = 0.05  # residual-unit branches add ~5% variance each, so the stream stays O(1)
    if name == f"decoder.{cfg.num_blocks + 2}.conv.weight":
        gain = 0.004  # waveform RMS ~0.1-0.2 with (almost) no clipping
    return rng.standard_normal(shape) * np.sqrt(gain / fan_in)


def synthetic_vocoder_weights(cfg: VocoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic float32 weights for ``cfg`` from ``seed``, identical on every machine and backend."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x70C0DE]))
    weights: dict[str, np.ndarray] = {}
    for name, shape in vocoder_tensor_shapes(cfg).items():
        weights[name] = _synthetic_tensor(name, shape, cfg, rng)
    # embedding_sum is stored un-normalised: rows become N(0, 1) after dividing by cluster_usage.
    for name in list(weights):
        if name.endswith("embedding_sum"):
            usage = weights[name.replace("embedding_sum", "cluster_usage")]
            weights[name] = weights[name] * usage[:, None]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
