"""The NumPy reference vocoder: sample counts, determinism, healthy activations, causality, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from perfkit import registry
from perfkit.interface import VocoderStream, decode_to_host
from perfkit.measure.parity import compare
from perfkit.model.codes import synthetic_codes
from perfkit.model.stages import vocoder_fine_stages, vocoder_stages
from perfkit.model.vocoder_config import VOCODER_PRESETS, vocoder_preset
from perfkit.model.vocoder_model import VocoderModel


def decode(model: VocoderModel, codes: np.ndarray, dtype: str = "float64") -> np.ndarray:
    backend = registry.create(f"numpy:dtype={dtype}")
    return decode_to_host(backend, backend.load_vocoder(model), codes)


@pytest.mark.parametrize("frames", [1, 3, 17])
def test_sample_count_is_frames_times_1920(tiny_vocoder, frames):
    codes = synthetic_codes(tiny_vocoder.config, frames, seed=2)
    wav = decode(tiny_vocoder, codes, "float32")
    assert tiny_vocoder.config.total_upsample == 1920
    assert wav.shape == (frames * 1920,)
    assert wav.dtype == np.float32


def test_every_preset_keeps_the_real_upsampling():
    for name, cfg in VOCODER_PRESETS.items():
        assert cfg.total_upsample == 1920, name
        assert cfg.frame_rate == pytest.approx(12.5)


def test_published_geometry_size():
    from perfkit.model.vocoder_weights import vocoder_parameter_count

    params = vocoder_parameter_count(vocoder_preset("qwen3-tts-12hz"))
    assert 105e6 < params < 125e6  # "about 114 M parameters"


def test_same_seed_same_weights_and_audio(tiny_vocoder, tiny_codes):
    again = VocoderModel.synthetic(tiny_vocoder.config, seed=0)
    other = VocoderModel.synthetic(tiny_vocoder.config, seed=1)
    name = "decoder.0.conv.weight"
    assert np.array_equal(again.weights[name], tiny_vocoder.weights[name])
    assert not np.array_equal(other.weights[name], tiny_vocoder.weights[name])
    assert np.array_equal(decode(again, tiny_codes), decode(tiny_vocoder, tiny_codes))
    assert np.array_equal(synthetic_codes(again.config, 9, 4), synthetic_codes(again.config, 9, 4))


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_healthy_activations(preset):
    cfg = vocoder_preset(preset)
    model = VocoderModel.synthetic(cfg, seed=0)
    backend = registry.create("numpy:dtype=float64")
    runner = backend.load_vocoder(model)
    codes = synthetic_codes(cfg, 12, seed=0)
    outputs = dict(runner.trace(runner.upload_codes(codes)))
    assert list(outputs) == list(vocoder_fine_stages(cfg))
    for stage, x in outputs.items():
        assert np.all(np.isfinite(x)), stage
        assert 1e-2 <= float(np.std(x)) <= 1e2, (stage, float(np.std(x)))
    wav = outputs["final"]
    rms = float(np.sqrt(np.mean(wav**2)))
    assert 0.03 <= rms <= 0.5
    assert np.mean(np.abs(wav) >= 1.0) < 0.01


def test_stage_names_are_canonical(tiny_vocoder):
    assert vocoder_stages(tiny_vocoder.config) == (
        "rvq_decode", "pre_conv", "pre_transformer", "upsample_0", "upsample_1", "decoder_in",
        "block_0", "block_1", "block_2", "block_3", "final",
    )
    assert "block_2.tconv" in vocoder_fine_stages(tiny_vocoder.config)


@pytest.mark.parametrize("k", [1, 5, 9, 23])
def test_causal_prefix_decode_matches(tiny_vocoder, tiny_codes, k):
    """Decoding the first k frames gives exactly the first k*1920 samples (window 8 < 24 frames)."""
    full = decode(tiny_vocoder, tiny_codes)
    prefix = decode(tiny_vocoder, tiny_codes[:, :k])
    np.testing.assert_allclose(prefix, full[: k * 1920], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype,atol", [("float64", 1e-12), ("float32", 1e-5)])
def test_streaming_equals_offline(tiny_vocoder, tiny_codes, dtype, atol):
    backend = registry.create(f"numpy:dtype={dtype}")
    runner = backend.load_vocoder(tiny_vocoder)
    offline = decode_to_host(backend, runner, tiny_codes)
    stream = VocoderStream(backend, runner)
    bounds = [0, 1, 3, 4, 11, 19, 24]  # uneven chunks, some longer than the attention window
    chunks = [stream.push(tiny_codes[:, a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    for (a, b), chunk in zip(zip(bounds, bounds[1:], strict=False), chunks, strict=True):
        assert chunk.shape == ((b - a) * 1920,)
    np.testing.assert_allclose(np.concatenate(chunks), offline, rtol=0, atol=atol)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_float32_matches_float64_per_stage(preset):
    cfg = vocoder_preset(preset)
    model = VocoderModel.synthetic(cfg, seed=0)
    codes = synthetic_codes(cfg, 10, seed=5)
    outs = {}
    for dtype in ("float64", "float32"):
        backend = registry.create(f"numpy:dtype={dtype}")
        runner = backend.load_vocoder(model)
        outs[dtype] = dict(runner.trace(runner.upload_codes(codes)))
    for stage in vocoder_fine_stages(cfg):
        result = compare(outs["float32"][stage], outs["float64"][stage])
        assert result.finite, stage
        assert result.snr_db >= 60.0, (stage, result.snr_db)
        assert result.correlation >= 0.99999, stage


@pytest.mark.parametrize("threads", [1, 2])
def test_row_threads_and_scratch_leave_the_audio_unchanged(tiny_vocoder, tiny_codes, threads):
    """Splitting the elementwise work over threads changes no value; the scratch holds five buffers."""
    from perfkit.backends.numpy.vocoder import NumpyVocoder

    runner = NumpyVocoder(tiny_vocoder.config, tiny_vocoder.weights, np.float64, threads=threads)
    assert runner.rows.threads == threads
    state = runner.new_state()
    x = runner.upload_codes(tiny_codes)
    for stage in runner.stages:
        x = runner.run_stage(stage, x, state)
    np.testing.assert_array_equal(x, decode(tiny_vocoder, tiny_codes))
    assert runner.scratch.names == {"in", "out", "work", "unit0", "unit1"}
    assert not [k for k in runner.w if k.endswith((".embedding_sum", ".cluster_usage"))]  # only normalised books


@pytest.mark.parametrize("elements", [300, 5000])
def test_time_tiles_leave_every_stage_unchanged(tiny_vocoder, elements):
    """Tiling the long stages is streaming inside one call: every stage output equals the untiled one.

    300 elements make tiles narrower than the dilated convs' look-back (54 columns) and than a
    tconv's kernel, so tails carry across several tiles.
    """
    from perfkit.backends.numpy.tiles import TimeTiles
    from perfkit.backends.numpy.vocoder import NumpyVocoder

    cfg, codes = tiny_vocoder.config, synthetic_codes(tiny_vocoder.config, 4, seed=3)
    tiled = NumpyVocoder(cfg, tiny_vocoder.weights, np.float64, tiles=TimeTiles(elements, min_columns=1))
    whole = NumpyVocoder(cfg, tiny_vocoder.weights, np.float64, tiles=TimeTiles(1 << 40))
    last_block = (codes.shape[1] * cfg.total_upsample, cfg.decoder_dim // 2 ** cfg.num_blocks)
    assert len(tiled.tiles.ranges(*last_block)) > 1 and len(whole.tiles.ranges(*last_block)) == 1
    expected = dict(whole.trace(whole.upload_codes(codes)))
    for stage, got in tiled.trace(tiled.upload_codes(codes)):
        np.testing.assert_allclose(got, expected[stage], rtol=1e-12, atol=1e-12, err_msg=stage)
    assert tiled.scratch.nbytes < whole.scratch.nbytes


def test_convs_take_im2col_only_when_its_columns_fit_a_tile(tiny_vocoder, tiny_codes, monkeypatch):
    """A conv whose ``cols (Cin, k, T)`` fits the tile budget is one im2col GEMM; a longer one the implicit GEMM,
    through the scratch "work" when its ``(Cout, T)`` product fits the budget, else a passing array."""
    from perfkit.backends.numpy import vocoder as module

    expected, calls, buffers = decode(tiny_vocoder, tiny_codes), [], []

    def spy(name, fn):
        def wrapped(xp, w, b, dilation, **kw):
            calls.append((name, w.shape[1] * w.shape[2] * (xp.shape[1] - (w.shape[2] - 1) * dilation)))
            buffers.append(kw.get("work", kw.get("cols")))
            return fn(xp, w, b, dilation, **kw)
        monkeypatch.setattr(module, name, wrapped)

    spy("conv_im2col", module.conv_im2col)
    spy("conv_padded", module.conv_padded)
    budget = 4000
    runner = module.NumpyVocoder(tiny_vocoder.config, tiny_vocoder.weights, np.float64,
                                 tiles=module.TimeTiles(budget, min_columns=1))
    np.testing.assert_allclose(runner.decode(tiny_codes), expected, rtol=1e-10, atol=1e-12)
    assert {name for name, _ in calls} == {"conv_im2col", "conv_padded"}
    assert [c for c in calls if (c[1] <= budget) != (c[0] == "conv_im2col")] == []
    assert [b.shape for b in buffers if b is not None and b.size > budget] == []  # "work" within a tile's budget
