"""The work of every stage, counted from the config: FLOPs and bytes moved (framework-free, pure).

Used for roofline reporting (:func:`perfkit.measure.peak.roofline`): achieved GFLOP/s = ``flops / seconds``,
achieved GB/s = ``(weight_bytes + activation_bytes) / seconds``.

What is counted (``b`` = bytes per element of the compute dtype, 4 for float32, 2 for bfloat16):

- **Convolution** ``Conv1d(Cin -> Cout, k, groups g)`` over ``L`` output samples:
  ``2 * (Cin/g) * Cout * k * L`` FLOPs (a multiply-add is 2 FLOPs; the dilation changes which
  inputs are read, not how many) ``+ Cout * L`` for the bias.
- **Transposed convolution** ``ConvTranspose1d(Cin -> Cout, k, stride s)`` over ``L_in`` input samples
  (``L_in * s`` output samples kept, the overlap carried to the next chunk):
  ``2 * Cin * Cout * k * L_in + Cout * L_in * s`` (every input sample meets ``k`` taps; as GEMM +
  col2im the GEMM does ``2 Cin Cout k L_in`` and col2im folds the overlaps).
- **Linear** ``(rows, din) -> (rows, dout)``: ``2 * rows * din * dout`` ``(+ rows * dout`` with a bias).
- **Attention** (causal, sliding window ``W``, ``P`` positions already in the cache): query ``i``
  (``0 <= i < T``, absolute position ``P + i``) attends ``n_i = min(P + i + 1, W)`` keys;
  with ``S = sum_i n_i``, ``QK^T`` and ``PV`` are ``2 * heads * head_dim * S`` FLOPs each, and the
  softmax (scale, max, subtract, exp, sum, divide) ``6 * heads * S``. RoPE: ``3`` FLOPs per element
  of ``q`` and ``k`` (``x cos + rot(x) sin``).
- **Elementwise** work, a transcendental (``sin``, ``exp``, ``erf``) counting as one FLOP (it costs
  10-20 instructions, which is why elementwise layers run far below the GEMM peak):
  SnakeBeta ``5``/element (``x a``, ``sin``, square, ``* 1/b``, ``+ x``; ``exp(alpha)`` and
  ``1/(exp(beta)+eps)`` are per channel and not counted); RMSNorm ``4``/element; LayerNorm ``7``;
  exact GELU ``5``; SiLU-gated product ``silu(g) * u`` ``5``; LayerScale + residual ``2``; residual
  add ``1``; clamp ``1``.
- **RVQ decode**: ``(Q - groups) * T * D/2`` adds summing the looked-up codebook rows, two
  ``1x1`` projections ``2 * codebook_dim * D/2 * T`` each, and one add of the two.

Bytes (a layer-by-layer model, as every backend runs today: each layer reads its inputs and writes its
output once, intermediate results included; caches are not modelled):

- ``weight_bytes``: every parameter the stage reads, once, times ``b``. For ``rvq_decode`` only the
  looked-up codebook rows (``min(T, rows) * D/2`` per quantizer, an upper bound when codes repeat).
- ``activation_bytes``: per layer, input elements read + output elements written, times ``b``
  (codes are int64: 8 bytes; the attention reads ``q``, the distinct keys and values, writes its output).

The published geometry (``qwen3-tts-12hz``) comes to about 4.98 GFLOP per frame (0.06 in the
pre-transformer, 0.11 in the two ConvNeXt upsamplers, 4.8 in the decoder: the twelve residual
units alone are 4.0), matching the issue's "about 5 GFLOP per frame".

The generator (:func:`generator_frame_costs`) is counted the same way per frame (one talker position
and the code predictor's ``G - 1`` sequential steps); there the weights dominate the bytes, and
``weight_bytes`` per frame over the measured memory bandwidth is the memory-bound limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .generator_config import GeneratorConfig
from .stages import parent_stage, vocoder_fine_stages, vocoder_stages
from .vocoder_config import VocoderConfig

#: Elementwise FLOPs per element (see the module docstring).
SNAKE_FLOPS = 5
RMS_NORM_FLOPS = 4
LAYER_NORM_FLOPS = 7
GELU_FLOPS = 5
SILU_GATE_FLOPS = 5
ROPE_FLOPS = 3
SOFTMAX_FLOPS = 6
LAYER_SCALE_RESIDUAL_FLOPS = 2
RESIDUAL_FLOPS = 1
CLAMP_FLOPS = 1

CODE_BYTES = 8  # int64 codes
RESIDUAL_DILATIONS = (1, 3, 9)
CONVNEXT_EXPANSION = 4
DWCONV_KERNEL = 7
RESUNIT_KERNEL = 7
DECODER_IN_KERNEL = 7
FINAL_KERNEL = 7
PRE_CONV_KERNEL = 3


@dataclass(frozen=True)
class StageCost:
    """Work of one stage: ``flops``, ``weight_bytes`` (parameters read), ``activation_bytes`` (the rest)."""

    flops: int = 0
    weight_bytes: int = 0
    activation_bytes: int = 0

    @property
    def bytes(self) -> int:
        """Total bytes moved: ``weight_bytes + activation_bytes``."""
        return self.weight_bytes + self.activation_bytes

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved (``inf`` for a stage that moves nothing)."""
        return self.flops / self.bytes if self.bytes else math.inf

    def __add__(self, other: StageCost) -> StageCost:
        return StageCost(self.flops + other.flops, self.weight_bytes + other.weight_bytes,
                         self.activation_bytes + other.activation_bytes)

    def times(self, n: int) -> StageCost:
        """The same work done ``n`` times."""
        return StageCost(self.flops * n, self.weight_bytes * n, self.activation_bytes * n)


def total_cost(costs: Iterable[StageCost]) -> StageCost:
    """Sum of stage costs."""
    out = StageCost()
    for c in costs:
        out = out + c
    return out


# --------------------------------------------------------------------------- layers
def conv1d_cost(cin: int, cout: int, k: int, length: int, *, groups: int = 1, bias: bool = True,
                bytes_per_element: int = 4) -> StageCost:
    """``Conv1d(cin -> cout, k, groups)`` producing ``length`` samples (any dilation, causal padding).

    FLOPs ``2 (cin/groups) cout k L (+ cout L)``; weights ``(cin/groups) cout k (+ cout)``;
    activations ``cin L + cout L`` elements.
    """
    b = bytes_per_element
    macs = (cin // groups) * cout * k * length
    params = (cin // groups) * cout * k + (cout if bias else 0)
    return StageCost(2 * macs + (cout * length if bias else 0), params * b, (cin + cout) * length * b)


def conv_transpose1d_cost(cin: int, cout: int, k: int, stride: int, length_in: int, *, bias: bool = True,
                          bytes_per_element: int = 4) -> StageCost:
    """Causal ``ConvTranspose1d(cin -> cout, k, stride)`` on ``length_in`` samples -> ``length_in * stride``.

    FLOPs ``2 cin cout k L_in (+ cout L_in s)``; weights ``cin cout k (+ cout)``; activations
    ``cin L_in + cout L_in s`` elements.
    """
    b = bytes_per_element
    out_len = length_in * stride
    params = cin * cout * k + (cout if bias else 0)
    return StageCost(2 * cin * cout * k * length_in + (cout * out_len if bias else 0), params * b,
                     (cin * length_in + cout * out_len) * b)


def linear_cost(rows: int, din: int, dout: int, *, bias: bool = False,
                bytes_per_element: int = 4) -> StageCost:
    """``(rows, din) @ W.T (+ bias) -> (rows, dout)``: FLOPs ``2 rows din dout (+ rows dout)``."""
    b = bytes_per_element
    params = din * dout + (dout if bias else 0)
    flops = 2 * rows * din * dout + (rows * dout if bias else 0)
    return StageCost(flops, params * b, rows * (din + dout) * b)


def elementwise_cost(elements: int, flops_per_element: int, *, reads: int = 1, writes: int = 1,
                     params: int = 0, bytes_per_element: int = 4) -> StageCost:
    """An elementwise layer over ``elements``: ``reads`` input and ``writes`` output arrays of that size."""
    b = bytes_per_element
    return StageCost(elements * flops_per_element, params * b, elements * (reads + writes) * b)


def attended_keys(queries: int, window: int, past: int = 0) -> int:
    """``S = sum_{i < queries} min(past + i + 1, window)``: the (query, key) pairs of causal
    sliding-window attention."""
    total = 0
    for i in range(queries):
        total += min(past + i + 1, window)
    return total


def attention_cost(queries: int, heads: int, kv_heads: int, head_dim: int, window: int, *, past: int = 0,
                   bytes_per_element: int = 4) -> StageCost:
    """Scores, softmax and weighted sum of causal sliding-window attention (projections not included).

    FLOPs ``4 heads head_dim S + 6 heads S`` with ``S = attended_keys(queries, window, past)``;
    activations: ``q`` and the output ``(queries, heads, head_dim)``, the distinct keys and values
    ``(min(past, window - 1) + queries, kv_heads, head_dim)`` each.
    """
    s = attended_keys(queries, window, past)
    keys = min(past, window - 1) + queries
    elements = 2 * queries * heads * head_dim + 2 * keys * kv_heads * head_dim
    return StageCost(4 * heads * head_dim * s + SOFTMAX_FLOPS * heads * s, 0, elements * bytes_per_element)


# --------------------------------------------------------------------------- vocoder stages
def _snake(channels: int, length: int, b: int) -> StageCost:
    return elementwise_cost(channels * length, SNAKE_FLOPS, params=2 * channels, bytes_per_element=b)


def rvq_decode_cost(cfg: VocoderConfig, frames: int, b: int = 4) -> StageCost:
    """Codebook lookups, the per-group sums, two ``1x1`` output projections and their sum."""
    half, t = cfg.codebook_half_dim, frames
    rows_read = sum(min(t, cfg.codebook_size_of(q)) for q in range(cfg.num_quantizers)) * half
    adds = (cfg.num_quantizers - 2) * t * half
    cost = StageCost(adds, rows_read * b, cfg.num_quantizers * t * CODE_BYTES + 2 * t * half * b)
    for _ in range(2):
        cost = cost + linear_cost(t, half, cfg.codebook_dim, bytes_per_element=b)
    return cost + elementwise_cost(cfg.codebook_dim * t, 1, reads=2, bytes_per_element=b)


def transformer_layer_cost(cfg: VocoderConfig, frames: int, past: int = 0, b: int = 4) -> StageCost:
    """One pre-transformer layer on ``frames`` positions (``past`` already cached)."""
    t, h, hd = frames, cfg.hidden_size, cfg.head_dim
    q_out, kv_out = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    bias = cfg.attention_bias
    cost = elementwise_cost(t * h, RMS_NORM_FLOPS, params=h, bytes_per_element=b)
    for out in (q_out, kv_out, kv_out):
        cost = cost + linear_cost(t, h, out, bias=bias, bytes_per_element=b)
    cost = cost + elementwise_cost(t * (q_out + kv_out), ROPE_FLOPS, bytes_per_element=b)
    cost = cost + attention_cost(t, cfg.num_attention_heads, cfg.num_key_value_heads, hd, cfg.sliding_window,
                                 past=past, bytes_per_element=b)
    cost = cost + linear_cost(t, q_out, h, bias=bias, bytes_per_element=b)
    cost = cost + elementwise_cost(t * h, LAYER_SCALE_RESIDUAL_FLOPS, reads=2, params=h, bytes_per_element=b)
    cost = cost + elementwise_cost(t * h, RMS_NORM_FLOPS, params=h, bytes_per_element=b)
    cost = cost + linear_cost(t, h, cfg.intermediate_size, bytes_per_element=b).times(2)
    cost = cost + elementwise_cost(t * cfg.intermediate_size, SILU_GATE_FLOPS, reads=2, bytes_per_element=b)
    cost = cost + linear_cost(t, cfg.intermediate_size, h, bytes_per_element=b)
    return cost + elementwise_cost(t * h, LAYER_SCALE_RESIDUAL_FLOPS, reads=2, params=h, bytes_per_element=b)


def pre_transformer_cost(cfg: VocoderConfig, frames: int, past: int = 0, b: int = 4) -> StageCost:
    """input_proj, the layers, the final RMSNorm, output_proj."""
    t, h = frames, cfg.hidden_size
    cost = linear_cost(t, cfg.latent_dim, h, bias=True, bytes_per_element=b)
    cost = cost + transformer_layer_cost(cfg, frames, past, b).times(cfg.num_hidden_layers)
    cost = cost + elementwise_cost(t * h, RMS_NORM_FLOPS, params=h, bytes_per_element=b)
    return cost + linear_cost(t, h, cfg.latent_dim, bias=True, bytes_per_element=b)


def upsample_cost(cfg: VocoderConfig, i: int, frames: int, b: int = 4) -> StageCost:
    """Transposed conv (``k = stride = ratio``) then a ConvNeXt block at the new length."""
    d = cfg.latent_dim
    ratio = cfg.upsampling_ratios[i]
    length_in = frames * math.prod(cfg.upsampling_ratios[:i])
    length = length_in * ratio
    wide = CONVNEXT_EXPANSION * d
    return (conv_transpose1d_cost(d, d, ratio, ratio, length_in, bytes_per_element=b)
            + conv1d_cost(d, d, DWCONV_KERNEL, length, groups=d, bytes_per_element=b)
            + elementwise_cost(d * length, LAYER_NORM_FLOPS, params=2 * d, bytes_per_element=b)
            + linear_cost(length, d, wide, bias=True, bytes_per_element=b)
            + elementwise_cost(wide * length, GELU_FLOPS, bytes_per_element=b)
            + linear_cost(length, wide, d, bias=True, bytes_per_element=b)
            + elementwise_cost(d * length, LAYER_SCALE_RESIDUAL_FLOPS, reads=2, params=d,
                               bytes_per_element=b))


def decoder_length(cfg: VocoderConfig, frames: int, block: int) -> int:
    """Samples entering decoder block ``block`` (``block = num_blocks``: entering ``final``)."""
    return frames * math.prod(cfg.upsampling_ratios) * math.prod(cfg.upsample_rates[:block])


def block_tconv_cost(cfg: VocoderConfig, i: int, frames: int, b: int = 4) -> StageCost:
    """SnakeBeta on ``(Cin, L)`` then ``ConvTranspose1d(Cin -> Cout, 2 r, stride r)``."""
    cin, cout = cfg.block_dims(i)
    rate = cfg.upsample_rates[i]
    length = decoder_length(cfg, frames, i)
    tconv = conv_transpose1d_cost(cin, cout, 2 * rate, rate, length, bytes_per_element=b)
    return _snake(cin, length, b) + tconv


def block_resunits_cost(cfg: VocoderConfig, i: int, frames: int, b: int = 4) -> StageCost:
    """Three residual units at ``(Cout, L r)``: snake, conv k7 (dilated), snake, conv k1, residual add."""
    _, c = cfg.block_dims(i)
    length = decoder_length(cfg, frames, i + 1)
    unit = (_snake(c, length, b) + conv1d_cost(c, c, RESUNIT_KERNEL, length, bytes_per_element=b)
            + _snake(c, length, b) + conv1d_cost(c, c, 1, length, bytes_per_element=b)
            + elementwise_cost(c * length, RESIDUAL_FLOPS, reads=2, bytes_per_element=b))
    return unit.times(len(RESIDUAL_DILATIONS))


def final_cost(cfg: VocoderConfig, frames: int, b: int = 4) -> StageCost:
    """SnakeBeta, ``Conv1d(C -> 1, 7)``, clamp."""
    c = cfg.output_dim
    length = decoder_length(cfg, frames, cfg.num_blocks)
    return (_snake(c, length, b) + conv1d_cost(c, 1, FINAL_KERNEL, length, bytes_per_element=b)
            + elementwise_cost(length, CLAMP_FLOPS, bytes_per_element=b))


def vocoder_stage_costs(config: VocoderConfig, frames: int, *, past_frames: int = 0,
                        bytes_per_element: int = 4) -> dict[str, StageCost]:
    """Cost of every *fine* stage (in execution order) for a chunk of ``frames`` frames.

    ``past_frames``: frames of the utterance decoded before this chunk (only the attention depends on
    it: a query attends ``min(position + 1, sliding_window)`` keys). ``bytes_per_element``: 4 for
    float32, 2 for bfloat16, 8 for float64.
    """
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}")
    cfg, t, b = config, frames, bytes_per_element
    costs: dict[str, StageCost] = {
        "rvq_decode": rvq_decode_cost(cfg, t, b),
        "pre_conv": conv1d_cost(cfg.codebook_dim, cfg.latent_dim, PRE_CONV_KERNEL, t, bytes_per_element=b),
        "pre_transformer": pre_transformer_cost(cfg, t, past_frames, b),
    }
    for i in range(len(cfg.upsampling_ratios)):
        costs[f"upsample_{i}"] = upsample_cost(cfg, i, t, b)
    costs["decoder_in"] = conv1d_cost(cfg.latent_dim, cfg.decoder_dim, DECODER_IN_KERNEL,
                                      decoder_length(cfg, t, 0), bytes_per_element=b)
    for i in range(cfg.num_blocks):
        costs[f"block_{i}.tconv"] = block_tconv_cost(cfg, i, t, b)
        costs[f"block_{i}.resunits"] = block_resunits_cost(cfg, i, t, b)
    costs["final"] = final_cost(cfg, t, b)
    assert tuple(costs) == vocoder_fine_stages(cfg), "stage list out of sync with perfkit.model.stages"
    return costs


def coarse_costs(fine: Mapping[str, StageCost]) -> dict[str, StageCost]:
    """Fine stage costs summed into their coarse stages (``block_i.tconv + block_i.resunits = block_i``)."""
    out: dict[str, StageCost] = {}
    for stage, cost in fine.items():
        parent = parent_stage(stage)
        out[parent] = out.get(parent, StageCost()) + cost
    return out


def vocoder_coarse_costs(config: VocoderConfig, frames: int, *, past_frames: int = 0,
                         bytes_per_element: int = 4) -> dict[str, StageCost]:
    """Cost of every *coarse* stage: :func:`vocoder_stage_costs` summed per parent stage."""
    costs = coarse_costs(vocoder_stage_costs(config, frames, past_frames=past_frames,
                                             bytes_per_element=bytes_per_element))
    assert tuple(costs) == vocoder_stages(config)
    return costs


def vocoder_flops_per_frame(config: VocoderConfig, frames: int = 1) -> float:
    """Total FLOPs of a ``frames``-frame decode over ``frames`` (the attention makes it vary slightly)."""
    return total_cost(vocoder_stage_costs(config, frames).values()).flops / frames


# --------------------------------------------------------------------------- generator, per frame
def _decoder_layer_cost(hidden: int, inter: int, heads: int, kv_heads: int, head_dim: int, bias: bool,
                        queries: int, context: int, b: int) -> StageCost:
    """One Qwen3 decoder layer on ``queries`` new positions after ``context`` cached ones (full causal)."""
    t = queries
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    cost = elementwise_cost(t * hidden, RMS_NORM_FLOPS, params=hidden, bytes_per_element=b)
    for out in (q_out, kv_out, kv_out):
        cost = cost + linear_cost(t, hidden, out, bias=bias, bytes_per_element=b)
    cost = cost + elementwise_cost(t * (q_out + kv_out), RMS_NORM_FLOPS, params=2 * head_dim,
                                   bytes_per_element=b)  # q_norm, k_norm: one (head_dim,) weight each
    cost = cost + elementwise_cost(t * (q_out + kv_out), ROPE_FLOPS, bytes_per_element=b)
    # full causal attention: the window never binds (it is larger than any context)
    cost = cost + attention_cost(t, heads, kv_heads, head_dim, context + t, past=context, bytes_per_element=b)
    cost = cost + linear_cost(t, q_out, hidden, bias=bias, bytes_per_element=b)
    cost = cost + elementwise_cost(t * hidden, RESIDUAL_FLOPS, reads=2, bytes_per_element=b)
    cost = cost + elementwise_cost(t * hidden, RMS_NORM_FLOPS, params=hidden, bytes_per_element=b)
    cost = cost + linear_cost(t, hidden, inter, bytes_per_element=b).times(2)
    cost = cost + elementwise_cost(t * inter, SILU_GATE_FLOPS, reads=2, bytes_per_element=b)
    cost = cost + linear_cost(t, inter, hidden, bytes_per_element=b)
    return cost + elementwise_cost(t * hidden, RESIDUAL_FLOPS, reads=2, bytes_per_element=b)


def talker_step_cost(config: GeneratorConfig, context: int, bytes_per_element: int = 4) -> StageCost:
    """One talker position after ``context`` cached positions: input sum, layers, norm, ``codec_head``.

    The input is the sum of ``G`` codec-embedding rows and the text stream's row (its
    ``text_projection`` can be computed for the whole text at prefill, so it is not counted here).
    """
    cfg, b = config, bytes_per_element
    h, g = cfg.hidden_size, cfg.num_code_groups
    cost = StageCost(g * h, g * h * b, h * b)  # G embedding rows summed with the text row
    layer = _decoder_layer_cost(h, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads,
                                cfg.head_dim, cfg.attention_bias, 1, context, b)
    cost = cost + layer.times(cfg.num_hidden_layers)
    cost = cost + elementwise_cost(h, RMS_NORM_FLOPS, params=h, bytes_per_element=b)
    return cost + linear_cost(1, h, cfg.vocab_size, bytes_per_element=b)


def code_predictor_cost(config: GeneratorConfig, bytes_per_element: int = 4) -> StageCost:
    """Groups ``1 … G-1`` of one frame: ``G - 1`` sequential forward passes of the code predictor.

    Pass 1 takes 2 positions (talker hidden state, group-0 embedding), pass ``j >= 2`` one (the
    embedding of group ``j - 1``); every pass reads all the predictor's layer weights, then its
    ``lm_head[j - 1]`` (``C x Hc``). With a ``small_to_mtp_projection`` (``Hc != H``) each input
    position goes through it (its weights read once per pass).
    """
    cfg, b = config, bytes_per_element
    cp = cfg.code_predictor_config
    hc, g = cp.hidden_size, cfg.num_code_groups
    cost = StageCost(0, (g - 2) * cfg.hidden_size * b, 0)  # embedding rows of groups 1 … G-2 looked up
    context = 0
    for step in range(1, g):
        queries = 2 if step == 1 else 1
        if cfg.has_projection:
            cost = cost + linear_cost(queries, cfg.hidden_size, hc, bias=True, bytes_per_element=b)
        layer = _decoder_layer_cost(hc, cp.intermediate_size, cp.num_attention_heads, cp.num_key_value_heads,
                                    cp.head_dim, cp.attention_bias, queries, context, b)
        cost = cost + layer.times(cp.num_hidden_layers)
        # the norm and the head only on the last position
        cost = cost + elementwise_cost(hc, RMS_NORM_FLOPS, params=hc, bytes_per_element=b)
        cost = cost + linear_cost(1, hc, cp.vocab_size, bytes_per_element=b)
        context += queries
    return cost


def generator_frame_costs(config: GeneratorConfig, context: int = 0, *,
                          bytes_per_element: int = 4) -> dict[str, StageCost]:
    """Per-frame work of the generator: ``{"talker_step": …, "code_predictor": …}``.

    ``context``: positions in the talker's KV cache before this frame's (prompt + earlier frames); it
    only changes the attention (``4 heads head_dim (context + 1)`` FLOPs and the cached keys/values
    read per layer). ``weight_bytes`` summed over both is what one frame must stream from memory at
    batch 1, so ``weight_bytes / bandwidth`` is the per-frame memory-bound limit. The code predictor's
    ``G - 1`` passes read the same layers each time (0.6B: 315 MB float32, 157 MB bfloat16 per pass,
    4.8 GB float32 per frame); a last-level cache that holds them serves the re-reads, which makes the
    DRAM bound pessimistic on such a CPU.
    """
    if context < 0:
        raise ValueError(f"context must be non-negative, got {context}")
    return {"talker_step": talker_step_cost(config, context, bytes_per_element),
            "code_predictor": code_predictor_cost(config, bytes_per_element)}
