"""FLOP and byte counts of :mod:`perfkit.model.flops`: layers by hand, stage sums, the published geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perfkit.model.flops import (
    SNAKE_FLOPS,
    SOFTMAX_FLOPS,
    StageCost,
    attended_keys,
    attention_cost,
    coarse_costs,
    conv1d_cost,
    conv_transpose1d_cost,
    generator_frame_costs,
    linear_cost,
    total_cost,
    vocoder_coarse_costs,
    vocoder_flops_per_frame,
    vocoder_stage_costs,
)
from perfkit.model.generator_config import generator_preset
from perfkit.model.generator_weights import code_predictor_tensor_shapes, talker_tensor_shapes
from perfkit.model.stages import vocoder_fine_stages, vocoder_stages
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_weights import vocoder_tensor_shapes


def _params(shapes) -> int:
    return sum(int(np.prod(s)) for s in shapes)


# --------------------------------------------------------------------------- layers, by hand
def test_single_conv():
    # Conv1d(3 -> 4, k=5) over 10 samples: 2*3*4*5*10 MAC-FLOPs + 4*10 bias adds
    c = conv1d_cost(3, 4, 5, 10)
    assert c == StageCost(flops=1240, weight_bytes=(60 + 4) * 4, activation_bytes=(3 + 4) * 10 * 4)
    # the dilation is not a parameter: a dilated conv does the same work; bfloat16 halves the bytes
    assert conv1d_cost(3, 4, 5, 10, bytes_per_element=2) == StageCost(1240, 128, 140)


def test_depthwise_conv_and_no_bias():
    # depthwise: each of the 8 channels has its own 7 taps
    assert conv1d_cost(8, 8, 7, 10, groups=8).flops == 2 * 8 * 7 * 10 + 8 * 10
    assert conv1d_cost(3, 4, 1, 10, bias=False).flops == 2 * 3 * 4 * 10


def test_transposed_conv():
    # ConvTranspose1d(2 -> 3, k=4, stride=2) on 5 samples -> 10 kept: 2*2*3*4*5 + 3*10
    c = conv_transpose1d_cost(2, 3, 4, 2, 5)
    assert c.flops == 270
    assert c.weight_bytes == (2 * 3 * 4 + 3) * 4
    assert c.activation_bytes == (2 * 5 + 3 * 10) * 4


def test_transposed_conv_counts_every_tap():
    """Brute force: every (input sample, tap, cin, cout) is one multiply-add of the full transposed conv."""
    cin, cout, k, s, n = 2, 3, 6, 3, 4
    macs = sum(1 for _t in range(n) for _j in range(k) for _i in range(cin) for _o in range(cout))
    assert conv_transpose1d_cost(cin, cout, k, s, n, bias=False).flops == 2 * macs


def test_linear():
    assert linear_cost(7, 5, 3) == StageCost(2 * 7 * 5 * 3, 15 * 4, 7 * (5 + 3) * 4)
    assert linear_cost(7, 5, 3, bias=True).flops == 2 * 7 * 5 * 3 + 7 * 3


def test_attention_with_window():
    # 5 queries, window 3: keys attended 1, 2, 3, 3, 3 -> S = 12
    assert attended_keys(5, 3) == 12
    # after 10 cached positions every query sees the full window
    assert attended_keys(5, 3, past=10) == 15
    # window larger than the sequence: plain causal, T(T+1)/2
    assert attended_keys(6, 100) == 21
    c = attention_cost(5, heads=2, kv_heads=1, head_dim=4, window=3)
    assert c.flops == 4 * 2 * 4 * 12 + SOFTMAX_FLOPS * 2 * 12  # QK^T + PV + softmax = 528
    assert c.weight_bytes == 0
    # q and output (5, 2, 4) each; keys and values (5 distinct, 1 head, 4) each
    assert c.activation_bytes == (2 * 5 * 2 * 4 + 2 * 5 * 1 * 4) * 4
    # with a cache, the distinct keys are the window - 1 kept plus the new ones
    assert attention_cost(5, 2, 1, 4, 3, past=10).activation_bytes == (2 * 5 * 2 * 4 + 2 * 7 * 1 * 4) * 4


def test_stage_cost_arithmetic():
    a, b = StageCost(10, 2, 3), StageCost(1, 1, 1)
    assert a + b == StageCost(11, 3, 4)
    assert a.times(3) == StageCost(30, 6, 9)
    assert a.bytes == 5 and a.arithmetic_intensity == 2.0
    assert StageCost(5, 0, 0).arithmetic_intensity == math.inf
    assert total_cost([a, b, b]) == StageCost(12, 4, 5)


# --------------------------------------------------------------------------- vocoder stages
def test_stage_names_and_coarse_sums():
    cfg = vocoder_preset("tiny")
    fine = vocoder_stage_costs(cfg, 4)
    assert tuple(fine) == vocoder_fine_stages(cfg)
    coarse = vocoder_coarse_costs(cfg, 4)
    assert tuple(coarse) == vocoder_stages(cfg)
    assert coarse == coarse_costs(fine)
    assert coarse["block_1"] == fine["block_1.tconv"] + fine["block_1.resunits"]
    assert total_cost(coarse.values()) == total_cost(fine.values())


def test_final_stage_by_hand():
    cfg = vocoder_preset("tiny")  # output_dim 4, 1920 samples per frame
    c, n = cfg.output_dim, 2 * 1920
    expected = SNAKE_FLOPS * c * n + (2 * c * 7 * n + n) + n  # snake, conv k7 to one channel + bias, clamp
    assert vocoder_stage_costs(cfg, 2)["final"].flops == expected


def test_resunits_by_hand():
    cfg = vocoder_preset("tiny")
    _, c = cfg.block_dims(0)
    n = 3 * cfg.total_upsample // math.prod(cfg.upsample_rates[1:])  # length after block 0, 3 frames
    unit = 2 * (SNAKE_FLOPS * c * n) + (2 * c * c * 7 * n + c * n) + (2 * c * c * n + c * n) + c * n
    assert vocoder_stage_costs(cfg, 3)["block_0.resunits"].flops == 3 * unit


def test_weights_read_once_per_stage():
    """Every parameter is read by exactly one stage; of the codebooks only the looked-up rows."""
    cfg = vocoder_preset("small")
    frames = 5
    shapes = vocoder_tensor_shapes(cfg)
    books = [s for n, s in shapes.items() if "_codebook." in n]
    others = _params(s for n, s in shapes.items() if "_codebook." not in n)
    rows = frames * cfg.codebook_half_dim * cfg.num_quantizers
    total = total_cost(vocoder_stage_costs(cfg, frames).values())
    assert len(books) == 2 * cfg.num_quantizers
    assert total.weight_bytes == 4 * (others + rows)


@pytest.mark.parametrize("preset", ["tiny", "small", "qwen3-tts-12hz"])
def test_totals_grow_with_frames(preset):
    cfg = vocoder_preset(preset)
    totals = [total_cost(vocoder_stage_costs(cfg, t).values()) for t in (1, 2, 5, 20, 100)]
    for a, b in zip(totals, totals[1:], strict=False):
        assert b.flops > a.flops and b.activation_bytes > a.activation_bytes
        assert b.weight_bytes >= a.weight_bytes
    # a streamed chunk deep in the utterance attends the full window: more work than the first chunk
    first = vocoder_stage_costs(cfg, 4)["pre_transformer"].flops
    later = vocoder_stage_costs(cfg, 4, past_frames=200)["pre_transformer"].flops
    assert later > first


def test_published_geometry_is_about_5_gflop_per_frame():
    cfg = vocoder_preset("qwen3-tts-12hz")
    per_frame = vocoder_flops_per_frame(cfg, 50)
    assert 4.9e9 <= per_frame <= 5.1e9  # the issue: "about 5 GFLOP per frame"
    costs = vocoder_stage_costs(cfg, 50)
    resunits = sum(c.flops for s, c in costs.items() if s.endswith(".resunits"))
    assert 0.75 < resunits / (50 * per_frame) < 0.85  # the residual units are ~80% of the work
    assert costs["block_0.resunits"].arithmetic_intensity > 50  # compute-bound GEMM work
    assert costs["rvq_decode"].flops < 1e-3 * 50 * per_frame


def test_bfloat16_halves_bytes_not_flops():
    cfg = vocoder_preset("tiny")
    f32, bf16 = vocoder_stage_costs(cfg, 3), vocoder_stage_costs(cfg, 3, bytes_per_element=2)
    for stage in f32:
        assert bf16[stage].flops == f32[stage].flops
        assert bf16[stage].weight_bytes * 2 == f32[stage].weight_bytes
    with pytest.raises(ValueError, match="frames must be positive"):
        vocoder_stage_costs(cfg, 0)


# --------------------------------------------------------------------------- generator, per frame
@pytest.mark.parametrize("preset", ["tiny", "qwen3-tts-0.6b"])
def test_generator_weight_bytes_per_frame(preset):
    cfg = generator_preset(preset)
    cp = cfg.code_predictor_config
    costs = generator_frame_costs(cfg, context=10)
    g, h = cfg.num_code_groups, cfg.hidden_size
    talker = talker_tensor_shapes(cfg)
    talker_read = _params(s for n, s in talker.items() if n.startswith("model.layers.")
                          or n in ("model.norm.weight", "codec_head.weight"))
    assert costs["talker_step"].weight_bytes == 4 * (talker_read + g * h)
    shapes = code_predictor_tensor_shapes(cfg)
    per_pass = _params(s for n, s in shapes.items() if ".layers." in n or n.endswith("model.norm.weight")
                       or "small_to_mtp" in n)
    heads = _params(s for n, s in shapes.items() if ".lm_head." in n)
    assert costs["code_predictor"].weight_bytes == 4 * ((g - 1) * per_pass + heads + (g - 2) * h)
    assert cfg.has_projection == (preset == "tiny")
    assert cp.num_code_groups == g


def test_generator_flops_are_about_two_per_weight():
    cfg = generator_preset("qwen3-tts-0.6b")
    costs = generator_frame_costs(cfg, context=0)
    talker = costs["talker_step"]
    # one position: 2 FLOPs per matrix weight, counted from the official tensor shapes (not from flops.py),
    # plus the norms, RoPE, residuals and the one-key attention: a few FLOPs per activation element
    shapes = talker_tensor_shapes(cfg)
    matrices = _params(s for n, s in shapes.items() if len(s) == 2 and (n.startswith("model.layers.")
                                                                      or n == "codec_head.weight"))
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    per_layer = 2 * cfg.hidden_size + q + kv + cfg.intermediate_size  # activation elements of one layer
    per_layer += 4 * q  # scores and weighted sum against the one cached key/value
    assert 2 * matrices < talker.flops < 2 * matrices + 16 * per_layer * cfg.num_hidden_layers
    # 16 positions through the predictor's layers in 15 passes
    cp = costs["code_predictor"]
    assert 2.0 < cp.flops / (cp.weight_bytes / 4) < 2.3
    # the context only adds attention work
    assert generator_frame_costs(cfg, context=500)["talker_step"].flops > talker.flops
    assert generator_frame_costs(cfg, context=500)["talker_step"].weight_bytes == talker.weight_bytes
    with pytest.raises(ValueError):
        generator_frame_costs(cfg, context=-1)
