"""What every compiled generator backend must do like the NumPy reference, for each float32 CPU backend:
identical sampled codes and stop (top-k, top-p, EOS), logged logits, teacher forcing, and text-to-speech end
to end. Backend-specific checks (greedy over many frames, KV caches, bfloat16) stay in each backend's module."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from generator_support import generate, synthetic_models

from perfkit import registry
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.sampling import SamplingOptions
from perfkit.model.tts_model import TTSModel
from perfkit.synthesis import Synthesizer


def _needs(package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(package) is None, reason=f"{package} is not installed")


@pytest.fixture(scope="module", params=[
    pytest.param("numba:dtype=float32", marks=_needs("numba")),
    pytest.param("torch:dtype=float32", marks=_needs("torch")),
])
def spec(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def models() -> dict[str, GeneratorModel]:
    return synthetic_models()


@pytest.mark.parametrize("options", [
    SamplingOptions(seed=2, fixed_frames=12),  # top-k 50, temperature, repetition penalty
    SamplingOptions(seed=3, temperature=1.2, top_k=0, top_p=0.8, fixed_frames=12),  # top-p
    SamplingOptions(greedy=True),  # free running: stops at EOS
    SamplingOptions(seed=4),
], ids=["topk", "topp", "greedy-eos", "sample-eos"])
def test_sampled_codes_and_stop_equal_the_reference(models, spec, options):
    expected, ref_session = generate(models["tiny"], "numpy:dtype=float64", options)
    got, session = generate(models["tiny"], spec, options)
    assert session.stop == ref_session.stop
    np.testing.assert_array_equal(got, expected)


def test_logged_logits_match_the_reference(models, spec):
    ref_log: list = []
    log: list = []
    options = SamplingOptions(seed=1, fixed_frames=6)
    generate(models["tiny"], "numpy:dtype=float64", options, log=ref_log)
    generate(models["tiny"], spec, options, log=log)
    assert [(f, g) for f, g, _ in log] == [(f, g) for f, g, _ in ref_log]
    for (frame, group, logits), (_, _, ref) in zip(log, ref_log, strict=True):
        scale = float(np.max(np.abs(ref)))
        assert np.max(np.abs(np.asarray(logits, dtype=np.float64) - ref)) <= 1e-5 * scale, (frame, group)
    assert not any(a[2] is b[2] for a, b in zip(log[:-1], log[1:], strict=True))  # copies, not one buffer


def test_teacher_forcing_takes_the_forced_codes(models, spec):
    forced = np.random.default_rng(0).integers(0, 64, size=(16, 5))
    codes, session = generate(models["tiny"], spec, SamplingOptions(seed=0), forced=forced)
    np.testing.assert_array_equal(codes, forced)
    assert session.stop == "fixed_frames"


def test_text_to_speech_matches_the_reference(spec):
    """Greedy synthesis end to end: the same codes, and audio at float32 parity (SNR >= 60 dB)."""
    model = TTSModel.synthetic("tiny", seed=0)
    options = SamplingOptions(greedy=True, fixed_frames=6)
    ref = Synthesizer.load(registry.create("numpy:dtype=float64"), model).synthesize("Hello.", options)
    synth = Synthesizer.load(registry.create(spec), model)
    got = synth.synthesize("Hello.", options)
    np.testing.assert_array_equal(got.codes, ref.codes)
    noise = np.sum((got.audio.astype(np.float64) - ref.audio) ** 2)
    assert 10 * np.log10(np.sum(ref.audio**2) / noise) >= 60.0
    chunks = list(synth.stream("Hello.", options, chunk_frames=4))
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), got.audio, rtol=0, atol=1e-5)
