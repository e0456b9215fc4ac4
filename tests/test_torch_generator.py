"""The torch generator (CPU) against the NumPy reference: identical codes (greedy and sampled), EOS, KV caches,
teacher forcing, bfloat16 logits, and text-to-speech end to end. The CUDA variants run the same tests when a
device is present (marked ``cuda``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generator_support import GREEDY_FRAMES, generate, prompt_for, synthetic_models  # noqa: E402

from perfkit import registry  # noqa: E402
from perfkit.model.generator_model import GeneratorModel  # noqa: E402
from perfkit.model.sampling import SamplingOptions  # noqa: E402
from perfkit.model.tts_model import TTSModel  # noqa: E402
from perfkit.synthesis import Synthesizer, run_frames  # noqa: E402

SPEC = "torch:dtype=float32"
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def models() -> dict[str, GeneratorModel]:
    return synthetic_models()


CUDA = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


@pytest.mark.parametrize("preset,spec", [
    ("tiny", SPEC), ("small", SPEC),
    pytest.param("tiny", "torch:device=cuda,dtype=float32", marks=[pytest.mark.cuda, CUDA]),
    pytest.param("tiny", "torch:device=cuda,dtype=float32,graphs=on", marks=[pytest.mark.cuda, CUDA]),
])
def test_greedy_codes_equal_the_reference(models, preset, spec):
    opts = SamplingOptions(greedy=True, fixed_frames=GREEDY_FRAMES[preset])
    expected, _ = generate(models[preset], "numpy:dtype=float64", opts)
    got, session = generate(models[preset], spec, opts)
    assert session.stop == "fixed_frames"
    assert got.shape == expected.shape == (16, GREEDY_FRAMES[preset])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("options", [
    SamplingOptions(seed=2, fixed_frames=12),  # top-k 50, temperature, repetition penalty
    SamplingOptions(seed=3, temperature=1.2, top_k=0, top_p=0.8, fixed_frames=12),  # top-p
    SamplingOptions(greedy=True),  # free running: stops at EOS
    SamplingOptions(seed=4),
], ids=["topk", "topp", "greedy-eos", "sample-eos"])
def test_sampled_codes_and_stop_equal_the_reference(models, options):
    expected, ref_session = generate(models["tiny"], "numpy:dtype=float64", options)
    got, session = generate(models["tiny"], SPEC, options)
    assert session.stop == ref_session.stop
    np.testing.assert_array_equal(got, expected)


def test_logged_logits_match_the_reference(models):
    ref_log: list = []
    log: list = []
    options = SamplingOptions(seed=1, fixed_frames=6)
    generate(models["tiny"], "numpy:dtype=float64", options, log=ref_log)
    generate(models["tiny"], SPEC, options, log=log)
    assert [(f, g) for f, g, _ in log] == [(f, g) for f, g, _ in ref_log]
    for (frame, group, logits), (_, _, ref) in zip(log, ref_log, strict=True):
        scale = float(np.max(np.abs(ref)))
        assert np.max(np.abs(np.asarray(logits, dtype=np.float64) - ref)) <= 1e-5 * scale, (frame, group)
    assert not any(a[2] is b[2] for a, b in zip(log[:-1], log[1:], strict=True))  # copies, not one buffer


def test_teacher_forcing_takes_the_forced_codes(models):
    forced = np.random.default_rng(0).integers(0, 64, size=(16, 5))
    codes, session = generate(models["tiny"], SPEC, SamplingOptions(seed=0), forced=forced)
    np.testing.assert_array_equal(codes, forced)
    assert session.stop == "fixed_frames"


def test_kv_caches_are_preallocated_once(models):
    """Every buffer the frame loop touches exists after ``allocate`` and is the same object at the end."""
    backend = registry.create(SPEC)
    runner = backend.load_generator(models["tiny"])
    session = runner.new_session(prompt_for(models["tiny"]), SamplingOptions(fixed_frames=9))
    state = session.state
    names = ("codes", "uniforms", "seen", "hidden", "stream", "logits0", "frame")
    before = {n: state[n] for n in names}
    caches = {n: (state[n].k, state[n].v) for n in ("talker_cache", "cp_cache")}
    assert state["talker_cache"].capacity == session.prompt.prefill_length + 9 - 1
    assert state["cp_cache"].capacity == models["tiny"].config.num_code_groups
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    assert all(state[n] is t for n, t in before.items())
    assert all((state[n].k, state[n].v) == kv for n, kv in caches.items())
    assert session.frame == 9 and state["codes"].shape == (models["tiny"].config.num_code_groups, 9)


@pytest.mark.parametrize("frames", [8])
def test_bfloat16_logits_stay_close(models, frames):
    """bfloat16 under teacher forcing: finite logits that track the float64 reference (SNR >= 20 dB)."""
    forced = generate(models["tiny"], "numpy:dtype=float64", SamplingOptions(greedy=True, fixed_frames=frames))[0]
    ref_log: list = []
    log: list = []
    generate(models["tiny"], "numpy:dtype=float64", SamplingOptions(seed=0), log=ref_log, forced=forced)
    generate(models["tiny"], "torch:dtype=bfloat16", SamplingOptions(seed=0), log=log, forced=forced)
    assert len(log) == len(ref_log) > 0
    for (frame, group, logits), (_, _, ref) in zip(log, ref_log, strict=True):
        got = np.asarray(logits.float().cpu() if hasattr(logits, "cpu") else logits, dtype=np.float64)
        assert np.all(np.isfinite(got)), (frame, group)
        snr = 10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2))
        assert snr >= 20.0, (frame, group, snr)


def test_text_to_speech_matches_the_reference():
    """Greedy synthesis end to end: the same codes, and audio at float32 parity (SNR >= 60 dB)."""
    model = TTSModel.synthetic("tiny", seed=0)
    options = SamplingOptions(greedy=True, fixed_frames=6)
    ref = Synthesizer.load(registry.create("numpy:dtype=float64"), model).synthesize("Hello.", options)
    synth = Synthesizer.load(registry.create(SPEC), model)
    got = synth.synthesize("Hello.", options)
    np.testing.assert_array_equal(got.codes, ref.codes)
    noise = np.sum((got.audio.astype(np.float64) - ref.audio) ** 2)
    assert 10 * np.log10(np.sum(ref.audio**2) / noise) >= 60.0
    chunks = list(synth.stream("Hello.", options, chunk_frames=4))
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), got.audio, rtol=0, atol=1e-5)
