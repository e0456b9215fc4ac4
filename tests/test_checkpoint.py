"""Model directories: round trip, the official layout, and clear errors for malformed checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from perfkit import registry
from perfkit.errors import CheckpointError
from perfkit.interface import decode_to_host
from perfkit.model.vocoder_model import VocoderModel
from perfkit.model.vocoder_weights import vocoder_tensor_shapes


def decode(model, codes):
    backend = registry.create("numpy:dtype=float32")
    return decode_to_host(backend, backend.load_vocoder(model), codes)


def write_official(directory, model, *, extra=None, drop=None, config=None):
    """An independent writer: the official tokenizer layout, encoder tensors included."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"decoder.{k}": v for k, v in model.weights.items() if k != drop}
    tensors["encoder.conv.weight"] = np.ones((4, 4), np.float32)
    tensors["decoder.quantizer.rvq_first.input_proj.weight"] = np.zeros(
        (model.config.codebook_half_dim, model.config.codebook_dim, 1), np.float32)
    tensors.update(extra or {})
    save_file(tensors, str(directory / "model.safetensors"))
    cfg = config if config is not None else {
        "model_type": "qwen3_tts_tokenizer_12hz", "encoder_config": {"hidden_size": 4},
        "decoder_config": model.config.to_dict()}
    (directory / "config.json").write_text(json.dumps(cfg))
    return directory


def test_round_trip_identical_output(tmp_path, tiny_vocoder, tiny_codes):
    tiny_vocoder.save(tmp_path / "m")
    loaded = VocoderModel.load(tmp_path / "m")
    assert loaded.config == tiny_vocoder.config
    assert np.array_equal(decode(loaded, tiny_codes), decode(tiny_vocoder, tiny_codes))


def test_official_layout_and_bare_decoder_config(tmp_path, tiny_vocoder, tiny_codes):
    expected = decode(tiny_vocoder, tiny_codes)
    official = VocoderModel.load(write_official(tmp_path / "tok", tiny_vocoder))
    assert np.array_equal(decode(official, tiny_codes), expected)
    bare = write_official(tmp_path / "bare", tiny_vocoder, config=tiny_vocoder.config.to_dict())
    assert np.array_equal(decode(VocoderModel.load(bare), tiny_codes), expected)


def test_codebook_sizes_follow_the_tensors(tmp_path, tiny_vocoder):
    cfg = tiny_vocoder.config.replace(codebook_size=48, semantic_codebook_size=80)
    model = VocoderModel.synthetic(cfg, seed=3)
    # config.json claims the preset's sizes; the tensors say 48 and 80
    write_official(tmp_path / "m", model, config={"decoder_config": tiny_vocoder.config.to_dict()})
    loaded = VocoderModel.load(tmp_path / "m")
    assert (loaded.config.codebook_size, loaded.config.semantic_codebook_size) == (48, 80)


def test_other_geometry_loads(tmp_path):
    from perfkit.model.vocoder_config import VocoderConfig

    cfg = VocoderConfig(codebook_size=32, semantic_codebook_size=32, codebook_dim=16, latent_dim=24, hidden_size=16,
                        intermediate_size=40, head_dim=4, num_attention_heads=4, num_key_value_heads=1,
                        num_hidden_layers=1, num_quantizers=4, sliding_window=5, decoder_dim=32,
                        upsample_rates=(2, 3), upsampling_ratios=(2,), attention_bias=True)
    model = VocoderModel.synthetic(cfg, seed=0)
    model.save(tmp_path / "g")
    loaded = VocoderModel.load(tmp_path / "g")
    codes = np.zeros((4, 3), np.int64)
    assert decode(loaded, codes).shape == (3 * 12,)


def _break(tmp_path, model, **kw):
    return write_official(tmp_path / "broken", model, **kw)


def test_missing_tensor_named(tmp_path, tiny_vocoder):
    d = _break(tmp_path, tiny_vocoder, drop="pre_conv.conv.bias")
    with pytest.raises(CheckpointError, match=r"missing tensor 'decoder\.pre_conv\.conv\.bias'.*\(32,\)"):
        VocoderModel.load(d)


def test_unexpected_tensor_named(tmp_path, tiny_vocoder):
    d = _break(tmp_path, tiny_vocoder, extra={"decoder.bogus.weight": np.ones(3, np.float32)})
    with pytest.raises(CheckpointError, match="unexpected tensor 'decoder.bogus.weight'"):
        VocoderModel.load(d)


def test_misshaped_tensor_names_both_shapes(tmp_path, tiny_vocoder):
    d = _break(tmp_path, tiny_vocoder, extra={"decoder.pre_conv.conv.weight": np.ones((32, 32, 5), np.float32)})
    expected = r"'decoder\.pre_conv\.conv\.weight' has shape \(32, 32, 5\), expected \(32, 32, 3\)"
    with pytest.raises(CheckpointError, match=expected):
        VocoderModel.load(d)


def test_non_finite_tensor(tmp_path, tiny_vocoder):
    bad = tiny_vocoder.weights["decoder.0.conv.bias"].copy()
    bad[3] = np.nan
    d = _break(tmp_path, tiny_vocoder, extra={"decoder.decoder.0.conv.bias": bad})
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        VocoderModel.load(d)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no_weights", "no_config", "bad_json", "not_object"])
def test_unreadable_directories(tmp_path, tiny_vocoder, damage):
    d = tmp_path / "m"
    tiny_vocoder.save(d)
    st, cfg = d / "model.safetensors", d / "config.json"
    if damage == "truncate":
        st.write_bytes(st.read_bytes()[:1000])
    elif damage == "garbage":
        st.write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 10)
    elif damage == "no_weights":
        st.unlink()
    elif damage == "no_config":
        cfg.unlink()
    elif damage == "bad_json":
        cfg.write_text("{not json")
    else:
        cfg.write_text("[1, 2]")
    with pytest.raises(CheckpointError):
        VocoderModel.load(d)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        VocoderModel.load(tmp_path / "nope")


def test_tensor_spec_matches_synthetic(tiny_vocoder):
    shapes = vocoder_tensor_shapes(tiny_vocoder.config)
    assert set(shapes) == set(tiny_vocoder.weights)
    assert all(tiny_vocoder.weights[k].shape == s for k, s in shapes.items())
    assert shapes["decoder.1.block.1.conv.weight"] == (64, 32, 16)  # ConvTranspose (in, out, 2*rate)


def test_bfloat16_checkpoint_is_widened(tmp_path, tiny_vocoder, tiny_codes):
    """The published checkpoints are bfloat16; NumPy has none, so they are read through torch."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    d = tmp_path / "bf16"
    tiny_vocoder.save(d)
    save_torch({f"decoder.{k}": torch.from_numpy(v).to(torch.bfloat16) for k, v in tiny_vocoder.weights.items()},
               str(d / "model.safetensors"))
    loaded = VocoderModel.load(d)
    name = "pre_conv.conv.weight"
    assert loaded.weights[name].dtype == np.float32
    np.testing.assert_allclose(loaded.weights[name], tiny_vocoder.weights[name], rtol=1e-2, atol=1e-6)
    assert np.all(np.isfinite(decode(loaded, tiny_codes)))
