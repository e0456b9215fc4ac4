"""The Numba vocoder against the float64 NumPy reference: per-stage parity, streaming, buffers, threads.

float32 must reach SNR >= 60 dB on every fine stage and on the waveform (no relaxation: the
kernels use no fast-math beyond FMA contraction, see ``perfkit.backends.numba.jit``); float64
must agree to rounding (>= 120 dB). Compilation is cached on disk, so only a cold cache pays it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("numba")

from perfkit import registry  # noqa: E402
from perfkit.interface import VocoderStream, decode_to_host  # noqa: E402
from perfkit.model.codes import synthetic_codes  # noqa: E402
from perfkit.model.stages import vocoder_fine_stages  # noqa: E402
from perfkit.model.vocoder_model import VocoderModel  # noqa: E402

FLOAT32_MIN_SNR_DB = 60.0
FLOAT64_MIN_SNR_DB = 120.0


def snr_db(test: np.ndarray, reference: np.ndarray) -> float:
    """``10 log10(sum(r**2) / sum((x - r)**2))`` in float64; ``inf`` when identical."""
    x = np.asarray(test, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    assert x.shape == r.shape
    assert np.all(np.isfinite(x))
    noise = float(np.sum((x - r) ** 2))
    return math.inf if noise == 0.0 else 10.0 * math.log10(float(np.sum(r * r)) / noise)


def traces(model: VocoderModel, codes: np.ndarray, spec: str) -> dict[str, np.ndarray]:
    backend = registry.create(spec)
    runner = backend.load_vocoder(model)
    return {stage: backend.to_host(x) for stage, x in runner.trace(runner.upload_codes(codes))}


@pytest.fixture(scope="module")
def reference_traces(tiny_vocoder, small_vocoder):
    """float64 NumPy traces for tiny (24 frames) and small (10 frames)."""
    out = {}
    for name, model, frames in (("tiny", tiny_vocoder, 24), ("small", small_vocoder, 10)):
        codes = synthetic_codes(model.config, frames, seed=5)
        out[name] = (model, codes, traces(model, codes, "numpy:dtype=float64"))
    return out


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_float32_per_stage_parity(reference_traces, preset):
    model, codes, ref = reference_traces[preset]
    got = traces(model, codes, "numba:dtype=float32")
    assert list(got) == list(vocoder_fine_stages(model.config))
    for stage, x in got.items():
        assert x.dtype == np.float32, stage
        assert snr_db(x, ref[stage]) >= FLOAT32_MIN_SNR_DB, (stage, snr_db(x, ref[stage]))
    assert got["final"].shape == (codes.shape[1] * model.config.total_upsample,)


def test_float64_per_stage_parity(reference_traces):
    model, codes, ref = reference_traces["tiny"]
    got = traces(model, codes, "numba:dtype=float64")
    for stage, x in got.items():
        assert x.dtype == np.float64, stage
        assert snr_db(x, ref[stage]) >= FLOAT64_MIN_SNR_DB, (stage, snr_db(x, ref[stage]))


@pytest.mark.parametrize("dtype,atol", [("float32", 1e-5), ("float64", 1e-12)])
def test_streaming_equals_offline(tiny_vocoder, tiny_codes, dtype, atol):
    backend = registry.create(f"numba:dtype={dtype}")
    runner = backend.load_vocoder(tiny_vocoder)
    offline = decode_to_host(backend, runner, tiny_codes)
    stream = VocoderStream(backend, runner)
    bounds = [0, 1, 3, 4, 11, 19, 24]  # uneven chunks, some longer than the attention window (8)
    chunks = [stream.push(tiny_codes[:, a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    for (a, b), chunk in zip(zip(bounds, bounds[1:], strict=False), chunks, strict=True):
        assert chunk.shape == ((b - a) * 1920,)
    np.testing.assert_allclose(np.concatenate(chunks), offline, rtol=0, atol=atol)


def test_residual_units_in_narrow_tiles_equal_one_tile(tiny_vocoder, tiny_codes, monkeypatch):
    """The tile walk (look-back carried from tile to tile, one block per thread) changes no value beyond
    rounding: 64-column tiles against the default, whose tiny-preset tiles hold a whole block."""
    from perfkit.backends.numba import vocoder as numba_vocoder

    backend = registry.create("numba:dtype=float32")
    runner = backend.load_vocoder(tiny_vocoder)
    wide = decode_to_host(backend, runner, tiny_codes)
    monkeypatch.setattr(numba_vocoder, "TILE_BYTES", 1)
    monkeypatch.setattr(numba_vocoder, "MIN_TILE_COLUMNS", 64)
    assert runner._tile(tiny_vocoder.config.decoder_dim) == 64
    narrow = decode_to_host(backend, runner, tiny_codes)
    assert snr_db(narrow, wide) >= FLOAT32_MIN_SNR_DB + 40


def test_block_tconvs_in_narrow_tiles_equal_one_tile(tiny_vocoder, tiny_codes, monkeypatch):
    """The block tconvs' tile walk (the overlap-add tail carried from tile to tile) changes no value
    beyond rounding: 16-column tiles against the default, which holds the tiny preset in one tile."""
    from perfkit.backends.numba import vocoder as numba_vocoder

    backend = registry.create("numba:dtype=float32")
    runner = backend.load_vocoder(tiny_vocoder)
    wide = decode_to_host(backend, runner, tiny_codes)
    monkeypatch.setattr(numba_vocoder, "TCONV_COLS_BYTES", 1)
    monkeypatch.setattr(numba_vocoder, "MIN_TCONV_COLUMNS", 16)
    assert runner._tconv_tile(1000) == 16
    narrow = decode_to_host(backend, runner, tiny_codes)
    assert snr_db(narrow, wide) >= FLOAT32_MIN_SNR_DB + 40


def test_stage_outputs_alternate_between_two_buffers(tiny_vocoder, tiny_codes):
    """Consecutive stages never share memory (a stage's output is never its input); every other stage
    reuses the same buffer, so the scratch is two activations, not one per stage."""
    backend = registry.create("numba:dtype=float32")
    runner = backend.load_vocoder(tiny_vocoder)
    decode_to_host(backend, runner, tiny_codes)  # the buffers grow to size in the first decode
    outputs = [x for _, x in runner.trace(runner.upload_codes(tiny_codes))]
    for before, after in zip(outputs, outputs[1:], strict=False):
        assert not np.shares_memory(before, after)
    for before, after in zip(outputs, outputs[2:], strict=False):
        assert np.shares_memory(before, after)
    largest = max(x.nbytes for x in outputs)
    sizes = runner.ws.sizes
    assert sizes["out.0"] == sizes["out.1"] == largest


def test_buffers_are_reused_and_host_copies_stay_valid(tiny_vocoder):
    backend = registry.create("numba:dtype=float32")
    runner = backend.load_vocoder(tiny_vocoder)
    a = synthetic_codes(tiny_vocoder.config, 6, seed=1)
    b = synthetic_codes(tiny_vocoder.config, 6, seed=2)
    wav_a = decode_to_host(backend, runner, a)
    scratch = runner.ws.nbytes
    wav_b = decode_to_host(backend, runner, b)
    assert runner.ws.nbytes == scratch  # same length: nothing new allocated
    assert not np.array_equal(wav_a, wav_b)
    np.testing.assert_array_equal(decode_to_host(backend, runner, a), wav_a)  # host copy unchanged
    decode_to_host(backend, runner, a[:, :3])  # shorter input: views of the same buffers
    assert runner.ws.nbytes == scratch


def test_stage_accepts_reference_inputs(tiny_vocoder, tiny_codes):
    """A stage fed the reference's (float64, possibly non-contiguous) input gives the reference's output."""
    ref_backend = registry.create("numpy:dtype=float64")
    ref = ref_backend.load_vocoder(tiny_vocoder)
    backend = registry.create("numba:dtype=float32")
    runner = backend.load_vocoder(tiny_vocoder)
    ref_state, state = ref.new_state(), runner.new_state()
    x = ref.upload_codes(tiny_codes)
    for stage in ref.stages:
        expected = ref.run_stage(stage, x, ref_state)
        got = backend.to_host(runner.run_stage(stage, x, state))
        assert snr_db(got, expected) >= FLOAT32_MIN_SNR_DB, stage
        x = expected


def test_threads_option(tiny_vocoder, tiny_codes):
    backend = registry.create("numba:dtype=float32,threads=1")
    runner = backend.load_vocoder(tiny_vocoder)
    wav = decode_to_host(backend, runner, tiny_codes[:, :4])
    assert backend.thread_settings()["numba"] == 1
    assert wav.shape == (4 * 1920,)


def test_cli_vocode_with_numba(cli, tmp_path, tiny_vocoder):
    out = tmp_path / "a.npy"
    code, stdout, _ = cli("vocode", "--backend", "numba", "--preset", "tiny", "--frames", "3", "--out", out)
    assert code == 0, stdout
    reference = registry.create("numpy:dtype=float64")
    expected = decode_to_host(reference, reference.load_vocoder(tiny_vocoder),
                              synthetic_codes(tiny_vocoder.config, 3, seed=0))
    assert snr_db(np.load(out), expected) >= FLOAT32_MIN_SNR_DB
