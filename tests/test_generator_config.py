"""Generator config: the published geometry, official config.json round trips, validation."""

from __future__ import annotations

import dataclasses

import pytest

from perfkit.errors import ConfigError
from perfkit.model.generator_config import (
    GENERATOR_PRESETS,
    CodePredictorConfig,
    GeneratorConfig,
    generator_preset,
)
from perfkit.model.generator_weights import generator_parameter_count, generator_tensor_shapes

#: The talker_config of the published Qwen3-TTS-12Hz-0.6B config.json, as the official code writes it.
OFFICIAL_0_6B = {
    "model_type": "qwen3_tts", "tts_model_type": "base", "tokenizer_type": "qwen3_tts_tokenizer_12hz",
    "im_start_token_id": 151644, "im_end_token_id": 151645, "tts_pad_token_id": 151671,
    "tts_bos_token_id": 151672, "tts_eos_token_id": 151673, "assistant_token_id": 77091,
    "speaker_encoder_config": {"enc_dim": 1024, "sample_rate": 24000},
    "talker_config": {
        "attention_bias": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
        "intermediate_size": 3072, "max_position_embeddings": 32768, "num_attention_heads": 16,
        "num_code_groups": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
        "position_id_per_seconds": 13, "rms_norm_eps": 1e-06, "rope_theta": 1000000,
        "text_hidden_size": 2048, "text_vocab_size": 151936, "vocab_size": 3072, "codec_bos_id": 2149,
        "codec_eos_token_id": 2150, "codec_think_id": 2154, "codec_nothink_id": 2155, "codec_pad_id": 2148,
        "codec_think_bos_id": 2156, "codec_think_eos_id": 2157,
        "codec_language_id": {"english": 2050}, "spk_id": {},
        "rope_scaling": {"interleaved": True, "mrope_section": [24, 20, 20], "rope_type": "default"},
        "code_predictor_config": {
            "attention_bias": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
            "intermediate_size": 3072, "max_length": 20, "max_position_embeddings": 65536,
            "num_attention_heads": 16, "num_code_groups": 16, "num_hidden_layers": 5,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_theta": 1000000, "vocab_size": 2048,
        },
    },
}


def test_published_presets_have_the_issue_geometry():
    small = generator_preset("qwen3-tts-0.6b")
    assert (small.num_hidden_layers, small.hidden_size, small.intermediate_size) == (28, 1024, 3072)
    assert (small.num_attention_heads, small.num_key_value_heads, small.head_dim) == (16, 8, 128)
    assert (small.rope_theta, small.rms_norm_eps) == (1e6, 1e-6)
    assert (small.vocab_size, small.text_vocab_size, small.text_hidden_size) == (3072, 151936, 2048)
    assert small.num_code_groups == 16
    cp = small.code_predictor_config
    assert (cp.num_hidden_layers, cp.hidden_size, cp.intermediate_size) == (5, 1024, 3072)
    assert (cp.num_attention_heads, cp.num_key_value_heads, cp.head_dim, cp.vocab_size) == (16, 8, 128, 2048)
    assert not small.has_projection
    big = generator_preset("qwen3-tts-1.7b")
    assert (big.hidden_size, big.intermediate_size) == (2048, 6144)
    assert big.code_predictor_config == cp
    assert big.has_projection
    shapes = generator_tensor_shapes(big)
    assert shapes["code_predictor.small_to_mtp_projection.weight"] == (1024, 2048)
    assert shapes["code_predictor.model.codec_embedding.0.weight"] == (2048, 2048)  # talker width


def test_published_parameter_count():
    """The official 0.6B Base state dict holds 914,643,008 values in 478 tensors; its speaker encoder
    (enc_dim 1024, counted with the official module) 8,854,336 in 76 — the rest is the generator."""
    cfg = generator_preset("qwen3-tts-0.6b")
    assert generator_parameter_count(cfg) == 914_643_008 - 8_854_336
    assert len(generator_tensor_shapes(cfg)) == 478 - 76


def test_official_config_json_is_the_0_6b_preset():
    assert GeneratorConfig.from_dict(OFFICIAL_0_6B) == generator_preset("qwen3-tts-0.6b")


@pytest.mark.parametrize("name", list(GENERATOR_PRESETS))
def test_round_trip_through_the_official_layout(name):
    cfg = generator_preset(name)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    bare = {**cfg.talker_dict(), **{k: v for k, v in cfg.to_dict().items() if k != "talker_config"}}
    assert GeneratorConfig.from_dict(bare) == cfg  # a bare talker config with the text ids beside it


def test_bare_small_talker_config_gets_text_ids_at_the_top_of_its_vocabulary():
    tiny = generator_preset("tiny")
    assert GeneratorConfig.from_dict(tiny.talker_dict()) == tiny  # no text ids written anywhere


def test_head_dim_defaults_as_the_official_attention():
    talker = {k: v for k, v in OFFICIAL_0_6B["talker_config"].items()
              if k not in ("head_dim", "rope_scaling")}
    cfg = GeneratorConfig.from_dict({**OFFICIAL_0_6B, "talker_config": talker})
    assert cfg.head_dim == 1024 // 16


def test_tiny_matches_the_tiny_vocoder_codebooks():
    tiny = generator_preset("tiny")
    assert tiny.num_codes == 64 and tiny.num_code_groups == 16
    assert tiny.codec_eos_token_id == 64 + 102  # the published offset above the codes
    assert tiny.has_projection  # tests exercise small_to_mtp_projection


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="unknown generator preset 'huge'.*tiny, small, qwen3-tts-0.6b"):
        generator_preset("huge")


@pytest.mark.parametrize(
    "change,match",
    [
        ({"num_key_value_heads": 3}, "multiple of num_key_value_heads"),
        ({"head_dim": 15}, "head_dim must be even"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"codec_eos_token_id": 5}, "codec_eos_token_id=5 must be a special id"),
        ({"codec_pad_id": 10_000}, "codec_pad_id=10000 must be a special id"),
        ({"tts_pad_token_id": 999}, "tts_pad_token_id=999 is outside the text vocabulary"),
        ({"num_code_groups": 8}, "num_code_groups is 8 but the code predictor's is 16"),
        ({"vocab_size": 64}, "must hold the 64 audio codes plus the special ids"),
        ({"hidden_act": "gelu"}, "only hidden_act='silu'"),
        ({"mrope_section": (4, 4, 4)}, "must sum to head_dim / 2"),
    ],
)
def test_validation_errors(change, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(generator_preset("tiny"), **change)


def test_code_predictor_validation_and_bad_json_values():
    with pytest.raises(ConfigError, match="code_predictor_config: num_attention_heads"):
        CodePredictorConfig(num_attention_heads=6, num_key_value_heads=4)
    with pytest.raises(ConfigError, match="rope_scaling type 'yarn' is not supported"):
        GeneratorConfig.from_dict({"talker_config": {"rope_scaling": {"rope_type": "yarn"}}})
    with pytest.raises(ConfigError, match="talker_config must be an object"):
        GeneratorConfig.from_dict({"talker_config": [1, 2]})
    with pytest.raises(ConfigError, match="hidden_size must be a positive integer"):
        GeneratorConfig.from_dict({"talker_config": {"hidden_size": "wide"}})


@pytest.mark.parametrize(
    "talker,match",
    [
        ({"use_sliding_window": True, "sliding_window": 4096}, "generator config: use_sliding_window=true"),
        ({"code_predictor_config": {"use_sliding_window": True}},
         "code_predictor_config: use_sliding_window=true"),
        ({"code_predictor_config": {"layer_types": ["full_attention", "sliding_attention"]}},
         r"layer_types \['sliding_attention'\] are not supported"),
        ({"code_predictor_config": {"layer_types": "full_attention"}}, "layer_types must be a list"),
    ],
)
def test_sliding_window_attention_is_refused_not_ignored(talker, match):
    """The official classes can be configured for sliding-window attention; perfkit computes full causal
    attention only, so such a config.json is an error rather than a silently different model."""
    with pytest.raises(ConfigError, match=match):
        GeneratorConfig.from_dict({"talker_config": talker})


def test_full_attention_flags_as_the_official_writer_spells_them_load():
    cp = {"use_sliding_window": False, "sliding_window": None, "layer_types": ["full_attention"] * 5}
    talker = {**OFFICIAL_0_6B["talker_config"], "use_sliding_window": False, "sliding_window": None}
    talker["code_predictor_config"] = {**talker["code_predictor_config"], **cp}
    assert GeneratorConfig.from_dict({**OFFICIAL_0_6B, "talker_config": talker}) == generator_preset("qwen3-tts-0.6b")
