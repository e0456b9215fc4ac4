"""Generator checkpoints: round trip, an independent writer with the official names, malformed directories,
and the combined model directory (generator + speech_tokenizer/)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfkit import registry
from perfkit.errors import CheckpointError, ConfigError
from perfkit.model.generator_config import generator_preset
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.generator_weights import generator_tensor_shapes
from perfkit.model.prompt import encode_prompt
from perfkit.model.sampling import SamplingOptions
from perfkit.model.tts_model import SPEECH_TOKENIZER_DIR, TTSModel, check_pair
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.synthesis import Synthesizer


@pytest.fixture(scope="module")
def tiny_generator() -> GeneratorModel:
    return GeneratorModel.synthetic(generator_preset("tiny"), seed=0)


def greedy_codes(model: GeneratorModel, frames: int = 6) -> np.ndarray:
    from perfkit.model.text import ByteTokenizer
    from perfkit.synthesis import run_frames

    backend = registry.create("numpy:dtype=float64")
    runner = backend.load_generator(model)
    session = runner.new_session(encode_prompt(model.config, ByteTokenizer(model.config), "Round trip."),
                                 SamplingOptions(greedy=True, fixed_frames=frames))
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    return runner.codes(session, 0, frames)


def test_official_tensor_names(tiny_generator):
    names = set(tiny_generator.weights)
    for name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.0.self_attn.k_norm.weight",
                 "codec_head.weight", "model.text_embedding.weight", "text_projection.linear_fc2.bias",
                 "code_predictor.model.layers.1.mlp.down_proj.weight", "code_predictor.lm_head.14.weight",
                 "code_predictor.model.codec_embedding.14.weight",
                 "code_predictor.small_to_mtp_projection.bias"):
        assert name in names
    assert "code_predictor.lm_head.15.weight" not in names
    assert all(w.dtype == np.float32 for w in tiny_generator.weights.values())
    no_proj = generator_preset("qwen3-tts-0.6b")
    assert not any("small_to_mtp" in n for n in generator_tensor_shapes(no_proj))


def test_round_trip(tmp_path, tiny_generator):
    tiny_generator.save(tmp_path / "gen")
    raw = json.loads((tmp_path / "gen" / "config.json").read_text())
    assert raw["model_type"] == "qwen3_tts" and "code_predictor_config" in raw["talker_config"]
    loaded = GeneratorModel.load(tmp_path / "gen")
    assert loaded.config == tiny_generator.config
    assert set(loaded.weights) == set(tiny_generator.weights)
    for name, w in tiny_generator.weights.items():
        assert np.array_equal(loaded.weights[name], w), name
    assert np.array_equal(greedy_codes(loaded), greedy_codes(tiny_generator))


def test_independent_writer_with_official_names(tmp_path, tiny_generator):
    """A checkpoint written with torch's safetensors writer, bfloat16 like the published files, the official
    config layout, and tensors perfkit does not use (speaker encoder) beside the talker's."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    tensors = {f"talker.{k}": torch.from_numpy(v).to(torch.bfloat16)
               for k, v in tiny_generator.weights.items()}
    tensors["speaker_encoder.fc.weight"] = torch.zeros(4, 4, dtype=torch.bfloat16)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    cfg = tiny_generator.config
    config = {"architectures": ["Qwen3TTSForConditionalGeneration"], "model_type": "qwen3_tts",
              "tts_model_type": "base", "im_start_token_id": cfg.im_start_token_id,
              "im_end_token_id": cfg.im_end_token_id, "tts_pad_token_id": cfg.tts_pad_token_id,
              "tts_bos_token_id": cfg.tts_bos_token_id, "tts_eos_token_id": cfg.tts_eos_token_id,
              "talker_config": {**cfg.talker_dict(), "spk_id": {}, "codec_language_id": {"english": 70},
                                "position_id_per_seconds": 13, "initializer_range": 0.02}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GeneratorModel.load(tmp_path)
    assert loaded.config == cfg
    name = "model.layers.0.mlp.up_proj.weight"
    expected = torch.from_numpy(tiny_generator.weights[name]).to(torch.bfloat16).float().numpy()
    assert np.array_equal(loaded.weights[name], expected)


def _write(tmp_path, tiny_generator, *, drop=None, reshape=None, extra=None, nan=None):
    from safetensors.numpy import save_file

    weights = {k: v for k, v in tiny_generator.weights.items() if k != drop}
    if reshape:
        weights[reshape] = np.zeros((3, 3), dtype=np.float32)
    if extra:
        weights[extra] = np.zeros(2, dtype=np.float32)
    if nan:
        weights[nan] = weights[nan].copy()
        weights[nan][0] = np.nan
    save_file({f"talker.{k}": v for k, v in weights.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(tiny_generator.config.to_dict()))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"drop": "codec_head.weight"}, "missing tensor 'codec_head.weight', expected shape"),
        ({"reshape": "model.norm.weight"}, r"'model.norm.weight' has shape \(3, 3\), expected \(64,\)"),
        ({"extra": "model.layers.9.mlp.up_proj.weight"},
         "unexpected tensor 'model.layers.9.mlp.up_proj.weight'"),
        ({"nan": "code_predictor.lm_head.0.weight"}, "holds NaN or Inf"),
    ],
)
def test_malformed_tensors(tmp_path, tiny_generator, kwargs, match):
    _write(tmp_path, tiny_generator, **kwargs)
    with pytest.raises(CheckpointError, match=match):
        GeneratorModel.load(tmp_path)


def test_malformed_directories(tmp_path, tiny_generator):
    with pytest.raises(CheckpointError, match="model directory not found"):
        GeneratorModel.load(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        GeneratorModel.load(tmp_path)
    bad = tiny_generator.config.to_dict()
    bad["talker_config"]["num_key_value_heads"] = 3
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="config.json: generator config: num_attention_heads"):
        GeneratorModel.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(tiny_generator.config.to_dict()))
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        GeneratorModel.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        GeneratorModel.load(tmp_path)
    VocoderModel.synthetic(vocoder_preset("tiny")).save(tmp_path)  # a vocoder directory, not a generator
    with pytest.raises(CheckpointError, match="no tensors named 'talker.\\*'"):
        GeneratorModel.load(tmp_path)


# ------------------------------------------------------------------ the combined model directory
def test_tts_directory_round_trip(tmp_path):
    model = TTSModel.synthetic("tiny", seed=2)
    model.save(tmp_path)
    assert (tmp_path / SPEECH_TOKENIZER_DIR / "model.safetensors").is_file()
    loaded = TTSModel.load(tmp_path, seed=99)  # the seed is unused: both parts are on disk
    for name, w in model.vocoder.weights.items():
        assert np.array_equal(loaded.vocoder.weights[name], w)
    backend = registry.create("numpy")
    opts = SamplingOptions(seed=1, fixed_frames=5)
    a = Synthesizer.load(backend, model).synthesize("Same audio.", opts)
    b = Synthesizer.load(backend, loaded).synthesize("Same audio.", opts)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.audio, b.audio)


def test_directory_without_a_vocoder_gets_the_matching_synthetic_one(tmp_path, tiny_generator):
    tiny_generator.save(tmp_path)
    loaded = TTSModel.load(tmp_path, seed=4)
    assert loaded.vocoder.config == vocoder_preset("tiny")
    assert loaded.vocoder.source == "synthetic(seed=4)"


def test_mismatched_pairs_are_refused(tmp_path, tiny_generator):
    with pytest.raises(ConfigError, match="codebook size is 64, the vocoder's 512"):
        check_pair(tiny_generator.config, vocoder_preset("small"))
    tiny_generator.save(tmp_path)
    VocoderModel.synthetic(vocoder_preset("small")).save(tmp_path / SPEECH_TOKENIZER_DIR)
    with pytest.raises(CheckpointError, match="generator and vocoder do not match"):
        TTSModel.load(tmp_path)
    odd = tiny_generator.config.replace(
        vocab_size=40 + 1024, code_predictor_config=tiny_generator.config.code_predictor_config.__class__(
            vocab_size=40, hidden_size=48, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, head_dim=12),
        codec_eos_token_id=142, codec_pad_id=140, codec_bos_id=141, codec_think_id=146, codec_nothink_id=147,
        codec_think_bos_id=148, codec_think_eos_id=149)
    GeneratorModel.synthetic(odd).save(tmp_path / "odd")
    with pytest.raises(CheckpointError, match="no vocoder preset matches .* 16 code groups of 40 codes"):
        TTSModel.load(tmp_path / "odd")


def test_unknown_preset_for_synthesis():
    with pytest.raises(ConfigError, match="unknown generator preset"):
        TTSModel.synthetic("medium")
