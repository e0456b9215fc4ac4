"""The ``stages`` suite under pytest-benchmark: every fine vocoder stage and the end-to-end decode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from bench_support import BACKENDS, PRESET, ROUNDS, LoadedVocoder, base_info, parity_info
from perfkit.suites._models import vocoder_preset_name

from perfkit.measure.parity import compare
from perfkit.model.stages import vocoder_fine_stages
from perfkit.model.vocoder_config import vocoder_preset

STAGES = vocoder_fine_stages(vocoder_preset(vocoder_preset_name(PRESET)))
_INPUTS: dict[str, dict[str, object]] = {}


def stage_inputs(v: LoadedVocoder) -> dict[str, object]:
    """Each fine stage's input on this backend (its own chain, as in use), computed once; copies, as a
    runner may reuse an output's memory two stages later (the numba runner does)."""
    if v.label not in _INPUTS:
        inputs, x = {}, v.uploaded
        state = v.runner.new_state()
        for stage in v.runner.stages:
            inputs[stage] = copy.deepcopy(x)
            x = v.runner.run_stage(stage, x, state)
        v.backend.synchronize()
        _INPUTS[v.label] = inputs
    return _INPUTS[v.label]


@pytest.mark.parametrize("spec", BACKENDS)
def test_decode(benchmark, spec: str, loaded: LoadedVocoder, reference: dict[str, np.ndarray]) -> None:
    """End-to-end decode (one sync at the end), after checking the waveform against the reference."""
    runner, backend = loaded.runner, loaded.backend

    def decode() -> None:
        runner.decode(loaded.uploaded, runner.new_state())
        backend.synchronize()

    wav = backend.to_host(runner.decode(loaded.uploaded, runner.new_state()))
    info = parity_info(compare(wav, reference["waveform"]), backend.dtype_name)
    benchmark.extra_info.update(base_info(loaded.label, "stages", "e2e", "decode"), **info)
    benchmark.pedantic(decode, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    assert info["parity_passed"], f"{loaded.label} fails parity on the waveform: {info['parity']}"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("spec", BACKENDS)
def test_stage(
    benchmark, spec: str, stage: str, loaded: LoadedVocoder, reference: dict[str, np.ndarray]
) -> None:
    """One fine stage with a sync after it, from a fresh streaming state, after checking its output."""
    runner, backend = loaded.runner, loaded.backend
    x = stage_inputs(loaded)[stage]
    out = backend.to_host(runner.run_stage(stage, x, runner.new_state()))
    info = parity_info(compare(out, reference[stage]), backend.dtype_name)

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        return (stage, x, runner.new_state()), {}

    def run(name: str, value: object, state: dict) -> None:
        runner.run_stage(name, value, state)
        backend.synchronize()

    benchmark.extra_info.update(base_info(loaded.label, "stages", "stages", stage), **info)
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    assert info["parity_passed"], f"{loaded.label} fails parity at {stage}: {info['parity']}"
