"""Shared fixtures: small synthetic models and codes, and a CLI runner that captures output."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from perfkit import registry
from perfkit.cli import main
from perfkit.model.codes import synthetic_codes
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel


@pytest.fixture(scope="session", autouse=True)
def private_peak_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's cache of measured machine peaks (``perfkit machine``): a run
    records the cached peaks, and a test must not depend on whether this machine was measured."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFKIT_CACHE_DIR", str(tmp_path_factory.mktemp("perfkit-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_vocoder() -> VocoderModel:
    return VocoderModel.synthetic(vocoder_preset("tiny"), seed=0)


@pytest.fixture(scope="session")
def small_vocoder() -> VocoderModel:
    return VocoderModel.synthetic(vocoder_preset("small"), seed=0)


@pytest.fixture(scope="session")
def tiny_codes(tiny_vocoder: VocoderModel) -> np.ndarray:
    return synthetic_codes(tiny_vocoder.config, 24, seed=1)


@pytest.fixture(scope="session")
def reference_backend():
    """The float64 NumPy reference."""
    return registry.create("numpy:dtype=float64")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``perfkit ARGS…`` in-process; returns ``(exit_code, stdout, stderr)``."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
