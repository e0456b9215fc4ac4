"""Batched generation: item ``i`` of a batch makes what a batch-1 session of request ``i`` makes.

The NumPy generator batches natively (KV caches and activations with a leading batch axis); every other
runner gets the interface's default, a loop over batch-1 sessions. Both are checked against batch-1 runs
of the same requests (per-item seeds ``seed + i``), greedy and sampled, float32 and float64, on the
``tiny`` and ``small`` geometries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
from generator_support import TEXT, prompt_for, synthetic_models
from perfkit.backends.numpy.generator import NumpyGenerator
from threadpoolctl import threadpool_limits

from perfkit import registry
from perfkit.errors import InputError
from perfkit.generator_interface import GeneratorBatch, GeneratorRunner
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.sampling import SamplingOptions
from perfkit.model.tts_model import TTSModel
from perfkit.synthesis import Synthesizer, batch_options, run_batch_frames, run_frames

FRAMES = {"tiny": 24, "small": 8}
#: Different texts with the same prefill length (always ``R + 5``) but different text-stream lengths.
TEXTS = (TEXT, "Hi.", "A somewhat longer sentence than the others, to outlast the frames.")


class LoopedNumpy(NumpyGenerator):
    """The NumPy generator without its native batch: the interface's default loop over batch-1 sessions."""

    native_batch = False
    allocate_batch = GeneratorRunner.allocate_batch
    prefill_batch = GeneratorRunner.prefill_batch
    talker_step_batch = GeneratorRunner.talker_step_batch
    sample_group0_batch = GeneratorRunner.sample_group0_batch
    code_predictor_batch = GeneratorRunner.code_predictor_batch
    codes_batch = GeneratorRunner.codes_batch


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread() -> Iterator[None]:
    """Small GEMMs (M = B rows) on a busy shared machine spend their time in BLAS thread hand-offs; one
    thread keeps these correctness tests quick (the results do not depend on it)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def models() -> dict[str, GeneratorModel]:
    return synthetic_models()


def runner_for(model: GeneratorModel, dtype: str, looped: bool = False) -> GeneratorRunner:
    if looped:
        return LoopedNumpy(model.config, model.weights, np.dtype(dtype))
    return registry.create(f"numpy:dtype={dtype}").load_generator(model)


def single(runner: GeneratorRunner, model: GeneratorModel, text: str, options: SamplingOptions
           ) -> tuple[np.ndarray, list]:
    """Codes ``(G, F)`` and the logits log of one batch-1 session."""
    log: list = []
    session = runner.new_session(prompt_for(model, text), options, logits_log=log)
    for _ in run_frames(_HOST, runner, session, runner.prefill(session)):
        pass
    return np.asarray(runner.codes(session, 0, session.frame)), log


def batched(runner: GeneratorRunner, model: GeneratorModel, texts: tuple[str, ...], options: list[SamplingOptions]
            ) -> tuple[GeneratorBatch, list[np.ndarray], list[list]]:
    """The finished batch, each item's codes ``(G, F)`` and each item's logits log."""
    batch = runner.new_batch([prompt_for(model, t) for t in texts], options)
    logs: list[list] = [[] for _ in texts]
    for session, log in zip(batch.sessions, logs, strict=True):
        session.logits_log = log
    for _ in run_batch_frames(runner, batch, runner.prefill_batch(batch)):
        pass
    codes = [np.asarray(c) for c in runner.codes_batch(batch, 0, batch.frame)]
    return batch, codes, logs


class _Host:
    @staticmethod
    def to_host(x: np.ndarray) -> np.ndarray:
        return x


_HOST = _Host()


@pytest.mark.parametrize("looped", [False, True], ids=["native", "looped"])
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_batch_items_equal_batch1_runs(models: dict[str, GeneratorModel], preset: str, dtype: str, greedy: bool,
                                       looped: bool) -> None:
    model = models[preset]
    runner = runner_for(model, dtype, looped)
    assert runner.batch_mode == ("looped" if looped else "native")
    base = SamplingOptions(greedy=greedy, seed=7, fixed_frames=FRAMES[preset])
    items = batch_options(base, len(TEXTS))
    assert [o.seed for o in items] == [7, 8, 9]
    batch, codes, logs = batched(runner, model, TEXTS, items)
    assert batch.frame == FRAMES[preset]
    assert all(s.stop == "fixed_frames" for s in batch.sessions)
    rtol, atol = (1e-4, 1e-4) if dtype == "float32" else (1e-10, 1e-10)
    for i, (text, options) in enumerate(zip(TEXTS, items, strict=True)):
        want, want_log = single(runner, model, text, options)
        assert codes[i].shape == (model.config.num_code_groups, FRAMES[preset])
        np.testing.assert_array_equal(codes[i], want, err_msg=f"item {i}")
        assert [(f, g) for f, g, _ in logs[i]] == [(f, g) for f, g, _ in want_log]
        for (f, g, got), (_, _, ref) in zip(logs[i], want_log, strict=True):
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=f"item {i} frame {f} group {g}")


def test_sampled_items_differ_by_seed(models: dict[str, GeneratorModel]) -> None:
    """The per-item seeds matter: sampled items of the same text are not copies of each other."""
    model = models["tiny"]
    runner = runner_for(model, "float64")
    items = batch_options(SamplingOptions(seed=0, fixed_frames=FRAMES["tiny"]), 3)
    _, codes, _ = batched(runner, model, (TEXT,) * 3, items)
    assert not np.array_equal(codes[0], codes[1])
    assert not np.array_equal(codes[1], codes[2])


def test_native_batch_returns_batched_arrays(models: dict[str, GeneratorModel]) -> None:
    model = models["tiny"]
    cfg = model.config
    runner = runner_for(model, "float32")
    items = batch_options(SamplingOptions(greedy=True, fixed_frames=5), 4)
    batch = runner.new_batch([prompt_for(model)] * 4, items)
    cache = batch.state["talker_cache"]
    assert cache.k.shape == (cfg.num_hidden_layers, 4, cfg.num_key_value_heads,
                             batch.sessions[0].prompt.prefill_length + 4, cfg.head_dim)
    assert all(not s.state for s in batch.sessions)  # no per-item allocation in the native mode
    logits = runner.prefill_batch(batch)
    assert logits.shape == (4, cfg.vocab_size)
    assert runner.sample_group0_batch(batch, logits).shape == (4,)
    assert runner.code_predictor_batch(batch).shape == (4, cfg.num_code_groups - 1)
    batch.end_frame()
    assert runner.talker_step_batch(batch).shape == (4, cfg.vocab_size)
    assert runner.codes_batch(batch, 0, 1).shape == (4, cfg.num_code_groups, 1)


def test_new_batch_rejects_what_cannot_run_in_lockstep(models: dict[str, GeneratorModel]) -> None:
    model = models["tiny"]
    runner = runner_for(model, "float64")
    prompt = prompt_for(model)
    fixed = SamplingOptions(fixed_frames=4)
    with pytest.raises(InputError, match="at least one"):
        runner.new_batch([], [])
    with pytest.raises(InputError, match="one sampling options per prompt"):
        runner.new_batch([prompt, prompt], [fixed])
    with pytest.raises(InputError, match="fixed frame count"):
        runner.new_batch([prompt], [SamplingOptions(max_frames=4)])
    with pytest.raises(InputError, match="same length"):
        runner.new_batch([prompt, prompt], [fixed, dataclasses.replace(fixed, fixed_frames=5)])


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "2"])
def test_batch_options_rejects_bad_sizes(size: object) -> None:
    with pytest.raises(InputError, match="batch size must be a positive integer"):
        batch_options(SamplingOptions(fixed_frames=2), size)  # type: ignore[arg-type]


def test_synthesize_batch_equals_batch1_synthesis() -> None:
    synth = Synthesizer.load(registry.create("numpy:dtype=float64"), TTSModel.synthetic("tiny", seed=0))
    options = SamplingOptions(seed=3, fixed_frames=6)
    results, timings = synth.synthesize_batch(TEXT, options, 3)
    assert set(timings) == {"tokenize", "prefill", "generate", "vocoder", "total"}
    assert len(results) == 3
    for i, result in enumerate(results):
        want = synth.synthesize(TEXT, dataclasses.replace(options, seed=3 + i))
        np.testing.assert_array_equal(result.codes, want.codes)
        assert result.audio.shape == (6 * 1920,)
        np.testing.assert_allclose(result.audio, want.audio, rtol=1e-9, atol=1e-9)
        assert result.stop == "fixed_frames"
