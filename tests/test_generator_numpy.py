"""The NumPy reference generator: KV cache vs recomputation, determinism, float32 vs float64, EOS, limits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perfkit import registry
from perfkit.errors import InputError
from perfkit.generator_interface import GeneratorSession
from perfkit.model.generator_config import generator_preset
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.prompt import Prompt, encode_prompt
from perfkit.model.sampling import SamplingOptions
from perfkit.model.text import ByteTokenizer
from perfkit.synthesis import run_frames

TEXT = "Speech, one frame at a time."
#: Frames over which greedy float32 must equal greedy float64 on tiny (fixed frame count, EOS ignored).
GREEDY_PARITY_FRAMES = 48


@pytest.fixture(scope="module")
def tiny_generator() -> GeneratorModel:
    return GeneratorModel.synthetic(generator_preset("tiny"), seed=0)


def prompt_for(model: GeneratorModel, text: str = TEXT) -> Prompt:
    return encode_prompt(model.config, ByteTokenizer(model.config), text)


def generate(model: GeneratorModel, options: SamplingOptions, *, dtype: str = "float64", text: str = TEXT,
             log: list | None = None) -> tuple[np.ndarray, GeneratorSession]:
    backend = registry.create(f"numpy:dtype={dtype}")
    runner = backend.load_generator(model)
    session = runner.new_session(prompt_for(model, text), options, logits_log=log)
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    return runner.codes(session, 0, session.frame), session


def first_divergent_frame(a: np.ndarray, b: np.ndarray) -> int | None:
    n = min(a.shape[1], b.shape[1])
    bad = np.flatnonzero((a[:, :n] != b[:, :n]).any(axis=0))
    return int(bad[0]) if bad.size else (None if a.shape == b.shape else n)


# ------------------------------------------------------------------ KV cache
@pytest.mark.parametrize("options", [SamplingOptions(seed=3, fixed_frames=12),
                                     SamplingOptions(greedy=True, fixed_frames=12)])
def test_kv_cache_decoding_equals_full_recomputation(tiny_generator, options):
    """Every logits row sampled from during cached generation equals a no-cache recomputation of it."""
    log: list = []
    codes, session = generate(tiny_generator, options, log=log)
    runner = registry.create("numpy:dtype=float64").load_generator(tiny_generator)
    talker, predictor = runner.teacher_forced(session.prompt, codes)
    g = tiny_generator.config.num_code_groups
    assert len(log) == codes.shape[1] * g
    for frame, group, logits in log:
        ref = talker[frame] if group == 0 else predictor[frame, group - 1]
        np.testing.assert_allclose(logits, ref, rtol=0, atol=1e-11, err_msg=f"frame {frame} group {group}")


def test_kv_caches_are_preallocated_once(tiny_generator):
    backend = registry.create("numpy:dtype=float32")
    runner = backend.load_generator(tiny_generator)
    session = runner.new_session(prompt_for(tiny_generator), SamplingOptions(fixed_frames=9))
    talker, predictor, codes = (session.state[k] for k in ("talker_cache", "cp_cache", "codes"))
    buffers = [talker.k, talker.v, predictor.k, predictor.v, codes]
    assert talker.capacity == session.prompt.prefill_length + 9 - 1
    assert predictor.capacity == tiny_generator.config.num_code_groups
    assert codes.shape == (16, 9)
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    assert talker.length == talker.capacity  # exactly full after the last frame
    after = [session.state["talker_cache"].k, session.state["talker_cache"].v, session.state["cp_cache"].k,
             session.state["cp_cache"].v, session.state["codes"]]
    assert all(a is b for a, b in zip(buffers, after, strict=True))


# ------------------------------------------------------------------ determinism
MODES = {
    "greedy": SamplingOptions(greedy=True),
    "default": SamplingOptions(),
    "top_p": SamplingOptions(temperature=1.2, top_k=0, top_p=0.8),
    "flat": SamplingOptions(temperature=1.5, top_k=0, top_p=1.0, repetition_penalty=1.0),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_same_seed_and_mode_same_codes(tiny_generator, mode):
    opts = dataclasses.replace(MODES[mode], seed=11, fixed_frames=10)
    a, _ = generate(tiny_generator, opts, dtype="float32")
    b, _ = generate(tiny_generator, opts, dtype="float32")
    assert np.array_equal(a, b)
    other, _ = generate(tiny_generator, dataclasses.replace(opts, seed=12), dtype="float32")
    if mode == "greedy":
        assert np.array_equal(a, other)  # greedy does not read the uniforms
    else:
        assert not np.array_equal(a, other)


def test_modes_differ(tiny_generator):
    codes = {m: generate(tiny_generator, dataclasses.replace(o, seed=5, fixed_frames=8), dtype="float32")[0]
             for m, o in MODES.items()}
    assert len({c.tobytes() for c in codes.values()}) == len(MODES)


def test_greedy_float32_equals_float64(tiny_generator):
    opts = SamplingOptions(greedy=True, fixed_frames=GREEDY_PARITY_FRAMES)
    c64, _ = generate(tiny_generator, opts, dtype="float64")
    c32, _ = generate(tiny_generator, opts, dtype="float32")
    frame = first_divergent_frame(c32, c64)
    assert frame is None, f"greedy float32 diverges from float64 at frame {frame} of {GREEDY_PARITY_FRAMES}"


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_sampled_float32_tracks_float64(preset):
    """Same uniforms, logits within float32 rounding: sampled codes agree too (a boundary hit would show)."""
    model = GeneratorModel.synthetic(generator_preset(preset), seed=1)
    opts = SamplingOptions(seed=2, fixed_frames=12)
    c64, _ = generate(model, opts, dtype="float64")
    c32, _ = generate(model, opts, dtype="float32")
    assert first_divergent_frame(c32, c64) is None


# ------------------------------------------------------------------ healthy synthetic weights
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_logits_are_finite_and_codes_vary(preset):
    model = GeneratorModel.synthetic(generator_preset(preset), seed=0)
    log: list = []
    codes, _ = generate(model, SamplingOptions(seed=0, fixed_frames=16), dtype="float32", log=log)
    cfg = model.config
    for _, _, logits in log:
        z = logits[: cfg.num_codes]
        assert np.all(np.isfinite(logits))
        assert 0.5 < float(np.std(z)) < 8.0 and float(np.max(np.abs(z))) < 30.0
    assert codes.min() >= 0 and codes.max() < cfg.num_codes
    for g in range(cfg.num_code_groups):
        assert len(np.unique(codes[g])) >= 8, f"group {g} barely varies: {codes[g]}"
    assert len({codes[:, f].tobytes() for f in range(codes.shape[1])}) == codes.shape[1]


def test_weights_depend_on_the_seed(tiny_generator):
    again = GeneratorModel.synthetic(tiny_generator.config, seed=0)
    other = GeneratorModel.synthetic(tiny_generator.config, seed=1)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert np.array_equal(again.weights[name], tiny_generator.weights[name])
    assert not np.array_equal(other.weights[name], tiny_generator.weights[name])


# ------------------------------------------------------------------ EOS and frame limits
@pytest.mark.parametrize("options", [SamplingOptions(greedy=True), SamplingOptions(seed=4)])
def test_eos_ends_the_utterance_after_the_text(tiny_generator, options):
    """The synthetic weights put EOS right after the text stream is consumed (N tokens -> N + 1 frames)."""
    log: list = []
    codes, session = generate(tiny_generator, options, log=log)
    n = session.prompt.text_length
    assert session.stop == "eos"
    assert codes.shape == (16, n + 1)
    eos_logits = [lg for f, g, lg in log if g == 0 and f == n + 1]
    assert len(eos_logits) == 1  # the EOS frame ran the talker but not the code predictor
    assert not any(g > 0 and f == n + 1 for f, g, _ in log)
    assert codes.max() < tiny_generator.config.num_codes  # the EOS id never lands in the codes


def test_greedy_eos_codes_are_a_prefix_of_fixed_frames(tiny_generator):
    free, _ = generate(tiny_generator, SamplingOptions(greedy=True))
    fixed, session = generate(tiny_generator, SamplingOptions(greedy=True, fixed_frames=free.shape[1] + 6))
    assert session.stop == "fixed_frames" and fixed.shape[1] == free.shape[1] + 6
    np.testing.assert_array_equal(fixed[:, : free.shape[1]], free)


def test_eos_waits_for_min_frames(tiny_generator):
    codes, session = generate(tiny_generator, SamplingOptions(greedy=True), text="Hi")
    assert (codes.shape[1], session.stop) == (3, "eos")
    codes, session = generate(tiny_generator, SamplingOptions(greedy=True, min_frames=7), text="Hi")
    assert (codes.shape[1], session.stop) == (7, "eos")


def test_max_frames_bounds_generation(tiny_generator):
    codes, session = generate(tiny_generator, SamplingOptions(max_frames=5))
    assert (codes.shape[1], session.stop) == (5, "max_frames")


def test_frame_budget_errors(tiny_generator):
    runner = registry.create("numpy").load_generator(tiny_generator)
    prompt = prompt_for(tiny_generator)
    with pytest.raises(InputError, match="frames do not fit the context"):
        runner.new_session(prompt, SamplingOptions(fixed_frames=5000))
    with pytest.raises(InputError, match=r"forced codes must have shape \(16, frames\)"):
        runner.new_session(prompt, SamplingOptions(), forced_codes=np.zeros((4, 3), dtype=np.int64))


def test_teacher_forcing_takes_the_forced_codes(tiny_generator):
    forced = np.random.default_rng(0).integers(0, 64, size=(16, 6))
    backend = registry.create("numpy")
    runner = backend.load_generator(tiny_generator)
    session = runner.new_session(prompt_for(tiny_generator), SamplingOptions(), forced_codes=forced)
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    assert session.stop == "fixed_frames"
    np.testing.assert_array_equal(runner.codes(session, 0, session.frame), forced)
