"""The Numba generator against the NumPy reference: identical codes (greedy and sampled), EOS, KV caches,
teacher forcing, and text-to-speech end to end."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from generator_support import GREEDY_FRAMES, generate, prompt_for, synthetic_models  # noqa: E402

from perfkit import registry  # noqa: E402
from perfkit.model.generator_model import GeneratorModel  # noqa: E402
from perfkit.model.sampling import SamplingOptions  # noqa: E402
from perfkit.model.tts_model import TTSModel  # noqa: E402
from perfkit.synthesis import Synthesizer, run_frames  # noqa: E402


@pytest.fixture(scope="module")
def models() -> dict[str, GeneratorModel]:
    return synthetic_models()


@pytest.mark.parametrize("preset,dtype", [("tiny", "float32"), ("tiny", "float64"), ("small", "float32")])
def test_greedy_codes_equal_the_reference(models, preset, dtype):
    opts = SamplingOptions(greedy=True, fixed_frames=GREEDY_FRAMES[preset])
    expected, _ = generate(models[preset], "numpy:dtype=float64", opts)
    got, session = generate(models[preset], f"numba:dtype={dtype}", opts)
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
    got, session = generate(models["tiny"], "numba:dtype=float32", options)
    assert session.stop == ref_session.stop
    np.testing.assert_array_equal(got, expected)


def test_logged_logits_match_the_reference(models):
    ref_log: list = []
    log: list = []
    options = SamplingOptions(seed=1, fixed_frames=6)
    generate(models["tiny"], "numpy:dtype=float64", options, log=ref_log)
    generate(models["tiny"], "numba:dtype=float32", options, log=log)
    assert [(f, g) for f, g, _ in log] == [(f, g) for f, g, _ in ref_log]
    for (frame, group, logits), (_, _, ref) in zip(log, ref_log, strict=True):
        scale = float(np.max(np.abs(ref)))
        assert np.max(np.abs(np.asarray(logits, dtype=np.float64) - ref)) <= 1e-5 * scale, (frame, group)
    assert not any(a[2] is b[2] for a, b in zip(log[:-1], log[1:], strict=True))  # copies, not one buffer


def test_teacher_forcing_takes_the_forced_codes(models):
    forced = np.random.default_rng(0).integers(0, 64, size=(16, 5))
    codes, session = generate(models["tiny"], "numba:dtype=float32", SamplingOptions(seed=0), forced=forced)
    np.testing.assert_array_equal(codes, forced)
    assert session.stop == "fixed_frames"


def test_kv_caches_are_preallocated_once(models):
    backend = registry.create("numba:dtype=float32")
    runner = backend.load_generator(models["tiny"])
    session = runner.new_session(prompt_for(models["tiny"]), SamplingOptions(fixed_frames=9))
    before = [*session.state["talker_cache"], *session.state["cp_cache"], session.state["codes"]]
    assert before[0].shape[2] == session.prompt.prefill_length + 9 - 1
    assert before[2].shape[2] == models["tiny"].config.num_code_groups
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    after = [*session.state["talker_cache"], *session.state["cp_cache"], session.state["codes"]]
    assert all(a is b for a, b in zip(before, after, strict=True))
    assert session.state["length"] == before[0].shape[2]  # exactly full after the last frame
    scratch = runner.ws.nbytes
    again = runner.new_session(prompt_for(models["tiny"]), SamplingOptions(fixed_frames=9))
    for _ in run_frames(backend, runner, again, runner.prefill(again)):
        pass
    assert runner.ws.nbytes == scratch  # the second utterance reuses every scratch buffer


def test_text_to_speech_matches_the_reference():
    """Greedy synthesis end to end: the same codes, and audio at float32 parity (SNR >= 60 dB)."""
    model = TTSModel.synthetic("tiny", seed=0)
    options = SamplingOptions(greedy=True, fixed_frames=6)
    ref = Synthesizer.load(registry.create("numpy:dtype=float64"), model).synthesize("Hello.", options)
    synth = Synthesizer.load(registry.create("numba:dtype=float32"), model)
    got = synth.synthesize("Hello.", options)
    np.testing.assert_array_equal(got.codes, ref.codes)
    noise = np.sum((got.audio.astype(np.float64) - ref.audio) ** 2)
    assert 10 * np.log10(np.sum(ref.audio**2) / noise) >= 60.0
    chunks = list(synth.stream("Hello.", options, chunk_frames=4))
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), got.audio, rtol=0, atol=1e-5)
