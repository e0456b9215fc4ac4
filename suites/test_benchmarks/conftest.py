"""pytest-benchmark wrappers of the suites: ``pytest suites/ --benchmark-only``.

The same workloads as the perfkit suites (tiny preset by default), timed by pytest-benchmark with a
fixed number of rounds, each benchmark checking parity against the float64 NumPy reference first-hand
and recording it in ``extra_info`` (a failing variant's test fails, and its timings are marked invalid
when the JSON is imported). Every benchmark names its perfkit ``suite``, ``variant``, ``preset``,
``case``, ``series`` and ``stage`` in ``extra_info``, so ``--benchmark-json=FILE`` can be read by perfkit
(``perfkit journal --base A.json --head B.json``; :mod:`perfkit.store.pytest_benchmark`).

Configuration (environment): ``PERFKIT_BENCH_BACKENDS`` (default ``numpy,numba,torch``),
``PERFKIT_BENCH_PRESET`` (``tiny``), ``PERFKIT_BENCH_FRAMES`` (``25``), ``PERFKIT_BENCH_ROUNDS`` (``15``).

pyproject's ``addopts`` has ``--benchmark-disable`` (the unit tests must not time anything); this
conftest re-enables benchmarks when ``--benchmark-only`` is given, and keeps the raw samples
(``--benchmark-save-data``) whenever a JSON file is written, so the command above needs nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest
from bench_support import FRAMES, PRESET, REFERENCE, SEED, LoadedVocoder
from perfkit.suites._models import vocoder_preset_name

from perfkit import registry
from perfkit.errors import BackendUnavailable
from perfkit.interface import decode_to_host
from perfkit.model.codes import synthetic_codes
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("benchmark_only", default=False):
        config.option.benchmark_enable = True
    if config.getoption("benchmark_json", default=None):
        config.option.benchmark_save_data = True


@pytest.fixture(scope="session")
def vocoder_model() -> VocoderModel:
    return VocoderModel.synthetic(vocoder_preset(vocoder_preset_name(PRESET)), SEED)


@pytest.fixture(scope="session")
def codes(vocoder_model: VocoderModel) -> np.ndarray:
    return synthetic_codes(vocoder_model.config, FRAMES, SEED)


@pytest.fixture(scope="session")
def reference(vocoder_model: VocoderModel, codes: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 reference's output of every fine stage, and its waveform (``"waveform"``)."""
    backend = registry.create(REFERENCE)
    runner = backend.load_vocoder(vocoder_model)
    trace = runner.trace(runner.upload_codes(codes))
    out = {stage: np.asarray(backend.to_host(y), dtype=np.float64) for stage, y in trace}
    out["waveform"] = np.asarray(decode_to_host(backend, runner, codes), dtype=np.float64)
    return out


_LOADED: dict[str, LoadedVocoder] = {}


@pytest.fixture
def loaded(request: pytest.FixtureRequest, vocoder_model: VocoderModel, codes: np.ndarray) -> LoadedVocoder:
    """The variant of the test's ``spec`` parameter, loaded once per session (skipped if unavailable)."""
    spec = request.node.callspec.params["spec"]
    if spec not in _LOADED:
        try:
            backend = registry.create(spec)
        except BackendUnavailable as exc:
            pytest.skip(f"{spec}: {exc}")
        runner = backend.load_vocoder(vocoder_model)
        _LOADED[spec] = LoadedVocoder(backend, runner, runner.upload_codes(codes), backend.variant.label)
    return _LOADED[spec]
