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
from perfkit.synthesis import run_frames  # noqa: E402


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
