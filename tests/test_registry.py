"""The registry: entry points, variants, validation of plugin classes, unavailable backends."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pytest

from perfkit import registry
from perfkit.errors import BackendUnavailable, InputError
from perfkit.interface import Backend, Variant


def test_variant_parse_and_label():
    v = Variant.parse("torch:dtype=bfloat16,device=cuda")
    assert v.backend == "torch"
    assert v.option_dict == {"dtype": "bfloat16", "device": "cuda"}
    assert v.label == "torch:device=cuda,dtype=bfloat16"  # canonical: keys sorted
    assert Variant.parse("numpy").label == "numpy"


@pytest.mark.parametrize("spec", ["", ":dtype=x", "numpy:dtype", "numpy:dtype=a,dtype=b", "numpy:=x"])
def test_variant_parse_errors(spec):
    with pytest.raises(InputError):
        Variant.parse(spec)


def test_in_tree_backends_come_from_entry_points():
    names = registry.backend_names()
    assert {"numpy", "numba", "torch"} <= set(names)
    assert registry.get_backend_class("numpy").name == "numpy"


def test_create_fills_defaults():
    backend = registry.create("numpy")
    assert backend.options == {"dtype": "float32"}
    assert backend.variant.label == "numpy:dtype=float32"


class _Good(Backend):
    name = "good"
    option_choices = {"dtype": ("float32",)}

    def to_host(self, x):
        return np.asarray(x)

    def load_vocoder(self, model):
        raise NotImplementedError


class _Abstract(Backend):
    name = "abstract"


class _BadOptions(_Good):
    name = "badopts"
    option_choices = {"dtype": ()}


@pytest.mark.parametrize(
    "name, obj, message",
    [
        ("good", _Good, None),
        ("other", _Good, "declares name 'good'"),
        ("abstract", _Abstract, "does not implement"),
        ("badopts", _BadOptions, "must list its allowed"),
        ("notaclass", object(), "Backend subclass"),
        ("Bad Name", _Good, "not a valid backend name"),
    ],
)
def test_validate_backend_class(name, obj, message):
    if message is None:
        assert registry.validate_backend_class(name, obj) is obj
    else:
        with pytest.raises(BackendUnavailable, match=message):
            registry.validate_backend_class(name, obj)


def test_broken_plugins_are_listed_not_raised(monkeypatch):
    eps = [
        EntryPoint("numpy", "perfkit.backends.numpy:NumpyBackend", registry.GROUP),
        EntryPoint("missingdep", "perfkit_no_such_module:Backend", registry.GROUP),
        EntryPoint("crashy", "perfkit.errors:NoSuchThing", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    registry.clear_cache()
    try:
        entries = {e.name: e for e in registry.entries()}
        assert entries["numpy"].loadable
        assert not entries["missingdep"].loadable and "cannot import" in entries["missingdep"].reason
        assert not entries["crashy"].loadable
        with pytest.raises(BackendUnavailable, match="missingdep"):
            registry.create("missingdep")
        skipped = []
        ok = registry.iter_available(["numpy", "crashy"], on_skip=lambda s, r: skipped.append(s))
        assert [b.name for b in ok] == ["numpy"] and skipped == ["crashy"]
    finally:
        registry.clear_cache()
