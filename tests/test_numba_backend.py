"""The Numba backend's registration: options, variants, and the unavailable path without numba."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from perfkit import registry
from perfkit.errors import BackendUnavailable, InputError

MODULE = "perfkit.backends.numba"


def _fresh_numba_backend_module(monkeypatch: pytest.MonkeyPatch):
    """Import the backend package anew with ``import numba`` failing (``sys.modules['numba'] = None``).

    The real package is imported first so that monkeypatch puts it (and numba) back afterwards.
    """
    import perfkit.backends

    original = importlib.import_module(MODULE)
    monkeypatch.setattr(perfkit.backends, "numba", original)  # the fresh import rebinds the attribute
    for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [m for m in sys.modules if m == "numba" or m.startswith("numba.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "numba", None)  # the import system raises ImportError for None
    return importlib.import_module(MODULE)


def test_unavailable_without_numba(monkeypatch):
    module = _fresh_numba_backend_module(monkeypatch)
    cls = module.NumbaBackend
    assert cls.name == "numba"
    assert registry.validate_backend_class("numba", cls) is cls  # still a well-formed, registrable backend
    with pytest.raises(BackendUnavailable, match="numba is not installed"):
        cls.check_available({"dtype": "float32", "threads": "auto"})
    infos = cls.variants()
    assert infos and not any(i.available for i in infos)
    assert all("numba is not installed" in i.reason for i in infos)
    with pytest.raises(BackendUnavailable, match="numba is not installed"):
        cls(dtype="float32")


def test_unavailable_is_listed_by_the_cli(monkeypatch, cli):
    _fresh_numba_backend_module(monkeypatch)
    registry.clear_cache()
    try:
        code, out, _ = cli("backends")
    finally:
        registry.clear_cache()
    assert code == 0
    assert "numba is not installed" in " ".join(out.split())


def test_options_and_defaults():
    pytest.importorskip("numba")
    backend = registry.create("numba")
    assert backend.options == {"dtype": "float32", "threads": "auto"}
    assert backend.dtype_name == "float32"
    with pytest.raises(InputError):
        registry.create("numba:dtype=bfloat16")
    with pytest.raises(InputError):
        registry.create("numba:fastmath=on")


def test_more_threads_than_cores_is_unavailable():
    pytest.importorskip("numba")
    cores = os.cpu_count() or 1
    choices = registry.get_backend_class("numba").option_choices["threads"]
    too_many = [c for c in choices if c != "auto" and int(c) > cores]
    if not too_many:
        pytest.skip("this machine has more cores than any thread choice")
    with pytest.raises(BackendUnavailable, match="cores"):
        registry.create(f"numba:threads={too_many[0]}")


def test_variants_list_each_dtype():
    pytest.importorskip("numba")
    infos = registry.describe_variants("numba")
    assert sorted(i.options["dtype"] for i in infos) == ["float32", "float64"]
    assert all(i.available for i in infos)


def test_making_the_backend_starts_numbas_runtime(monkeypatch):
    """The backend runs one trivial cached kernel when it is made, so LLVM's start-up memory lands in the
    memory suite's baseline (measured after the backend is made) instead of a run's working memory."""
    pytest.importorskip("numba")
    import numpy as np
    from perfkit.backends.numba import jit

    calls = []
    monkeypatch.setattr(jit, "start_runtime", lambda: calls.append(jit._first_call(np.zeros(1))))
    registry.create("numba")
    assert calls == [1.0]
    monkeypatch.undo()
    jit.start_runtime()
    assert jit._first_call.signatures  # compiled, or loaded from the cache, and called
