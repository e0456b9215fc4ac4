"""Streaming synthesis: chunks as frames are made, equal to the offline decode of the same codes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perfkit import registry
from perfkit.errors import InputError
from perfkit.interface import decode_to_host
from perfkit.model.codes import synthetic_codes
from perfkit.model.sampling import SamplingOptions
from perfkit.model.tts_model import TTSModel
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.synthesis import Synthesizer

TEXT = "Chunk by chunk."


@pytest.fixture(scope="module")
def tiny_tts() -> TTSModel:
    return TTSModel.synthetic("tiny", seed=0)


def synthesizer(model: TTSModel, dtype: str) -> Synthesizer:
    return Synthesizer.load(registry.create(f"numpy:dtype={dtype}"), model)


@pytest.mark.parametrize("dtype,atol,chunk_frames", [("float32", 1e-5, 1), ("float32", 1e-5, 4),
                                                     ("float64", 1e-12, 3)])
def test_streamed_audio_equals_offline_decode(tiny_tts, dtype, atol, chunk_frames):
    synth = synthesizer(tiny_tts, dtype)
    opts = SamplingOptions(seed=7)
    stream = synth.stream(TEXT, opts, chunk_frames)
    chunks = list(stream)
    codes = np.concatenate([c.codes for c in chunks], axis=1)
    frames = codes.shape[1]
    assert stream.stop == "eos" and frames == stream.prompt.text_length + 1
    assert len(chunks) == math.ceil(frames / chunk_frames)
    assert [c.start_frame for c in chunks] == list(range(0, frames, chunk_frames))
    for c in chunks:
        assert c.audio.shape == (c.codes.shape[1] * 1920,)
    assert all(a.elapsed_s <= b.elapsed_s for a, b in zip(chunks, chunks[1:], strict=False))
    offline = decode_to_host(synth.backend, synth.vocoder, codes)
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), offline, rtol=0, atol=atol)


def test_stream_and_synthesize_make_the_same_utterance(tiny_tts):
    synth = synthesizer(tiny_tts, "float32")
    opts = SamplingOptions(seed=3, temperature=1.1, top_p=0.9)
    result = synth.synthesize(TEXT, opts)
    chunks = list(synth.stream(TEXT, opts, 4))
    assert np.array_equal(np.concatenate([c.codes for c in chunks], axis=1), result.codes)
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), result.audio, rtol=0, atol=1e-5)
    assert result.stop == "eos"
    assert set(result.timings) == {"tokenize", "prefill", "generate", "vocoder", "total"}
    assert result.audio.shape == (result.frames * 1920,) and result.sample_rate == 24_000


def test_fixed_frames_stream_and_vocoder_state_stays_bounded(tiny_tts):
    """A chunk carries state instead of recomputing the past: the vocoder's attention cache stays bounded."""
    synth = synthesizer(tiny_tts, "float32")
    stream = synth.stream("Hi", SamplingOptions(fixed_frames=30), 2)
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
    assert stream.stop == "fixed_frames" and sum(c.codes.shape[1] for c in chunks) == 30
    window = tiny_tts.vocoder.config.sliding_window
    state = synth.vocoder.new_state()
    for c in chunks:  # replay the chunks through a fresh vocoder state and look at what it carries
        synth.vocoder.decode(synth.vocoder.upload_codes(c.codes), state)
        kv = [v for k, v in state.items() if k.startswith("pre_transformer.kv.")]
        assert kv and all(k.shape[1] <= window - 1 for k, _ in kv)
    assert state["pre_transformer.pos"] == 30


def test_bad_chunk_size_and_text(tiny_tts):
    synth = synthesizer(tiny_tts, "float32")
    with pytest.raises(InputError, match="chunk frames must be a positive integer"):
        synth.stream(TEXT, SamplingOptions(), 0)
    with pytest.raises(InputError, match="text is empty"):
        synth.stream("", SamplingOptions(), 2)  # refused when the stream is made, before any generation


@pytest.mark.parametrize(
    "preset,text,options",
    [
        ("tiny", "A long sentence, read one token per frame until the text runs out.", SamplingOptions(seed=1)),
        ("small", "Hello.", SamplingOptions(seed=2)),
    ],
)
def test_long_and_short_texts_stream_as_offline(preset, text, options):
    """A long text on ``tiny``, a short one on ``small`` (medium ones: the tests above): the stream's codes
    and audio are the offline ones."""
    synth = synthesizer(TTSModel.synthetic(preset, seed=0), "float32")
    result = synth.synthesize(text, options)
    chunks = list(synth.stream(text, options, 5))
    expected_frames = options.fixed_frames or len(text.encode()) + 1  # EOS right after the text
    assert result.frames == expected_frames and result.audio.shape == (expected_frames * 1920,)
    np.testing.assert_array_equal(np.concatenate([c.codes for c in chunks], axis=1), result.codes)
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), result.audio, rtol=0, atol=1e-5)
    assert 0.01 < float(np.sqrt(np.mean(result.audio**2))) < 0.5


def _arrays(value):
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _arrays(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays(v)
    elif isinstance(value, np.ndarray) or hasattr(value, "untyped_storage"):
        yield value


def _held_bytes(a) -> tuple[int, int]:
    """``(bytes the array shows, bytes its memory block keeps alive)``."""
    if isinstance(a, np.ndarray):
        root = a
        while isinstance(root.base, np.ndarray):
            root = root.base
        return a.nbytes, root.nbytes
    return a.nelement() * a.element_size(), a.untyped_storage().nbytes()


@pytest.mark.parametrize("spec", ["numpy:dtype=float32", "numpy:dtype=float64", "numba", "torch"])
def test_vocoder_state_keeps_only_its_tails(spec):
    """A carried tail that is a view of the chunk's padded input keeps that whole activation alive for as
    long as the stream lives (it did, in NumPy: 300 MiB of state after 50 frames of the full vocoder)."""
    backend = registry.create(spec)
    model = VocoderModel.synthetic(vocoder_preset("small"), 0)
    runner = backend.load_vocoder(model)
    state = runner.new_state()
    runner.decode(runner.upload_codes(synthetic_codes(model.config, 40, 0)), state)
    sizes = [_held_bytes(a) for v in state.values() for a in _arrays(v)]
    assert sizes, "the state carries nothing"
    for shown, kept in sizes:
        assert kept <= max(shown, 4096), f"{spec}: a {shown}-byte tail keeps {kept} bytes alive"
