"""numba's disk cache is versioned by the source of the whole numba backend, so that a change to any of
its modules (not only the file of a kernel) retires every cached kernel."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from perfkit.backends.numba import jit

from perfkit.measure.environment import source_hash


def test_kernels_are_cached_under_the_packages_source_hash():
    assert jit.CACHE_DIR is not None
    assert jit.CACHE_DIR.name == f"kernels-{source_hash('perfkit.backends.numba')}"
    before = numba.config.CACHE_DIR

    @jit.kernel
    def twice(x):
        return 2.0 * x

    assert twice(np.float64(1.5)) == 3.0
    assert str(twice._cache._cache_path).startswith(str(jit.CACHE_DIR))
    assert numba.config.CACHE_DIR == before  # swapped in for the decoration only


def test_a_new_version_removes_the_caches_of_older_ones(tmp_path):
    (tmp_path / "kernels-0123").mkdir()
    (tmp_path / "kernels-0123" / "old.nbi").write_bytes(b"stale")
    (tmp_path / "unrelated").mkdir()
    target = jit.versioned_cache_dir("perfkit.backends.numba", root=tmp_path)
    assert target == tmp_path / f"kernels-{source_hash('perfkit.backends.numba')}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated"]  # the new one is made on first save
    assert jit.versioned_cache_dir("no.such.package", root=tmp_path) is None


def test_numba_cache_dir_set_by_the_user_wins(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert jit.versioned_cache_dir("perfkit.backends.numba", root=tmp_path) is None
