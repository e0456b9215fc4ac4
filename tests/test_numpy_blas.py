"""The NumPy backend's BLAS GEMM on strided views, against ``a @ b + beta * c``."""

from __future__ import annotations

import numpy as np
import pytest
from perfkit.backends.numpy import blas
from perfkit.backends.numpy.blas import gemm


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("m", [1, 2, 7])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_gemm_on_windows_of_larger_arrays(dtype, tol, m, beta):
    """Every operand a window of a larger array (row strides larger than the rows): only ``c``'s window
    changes, to ``a @ b + beta * c``; one row goes through GEMV."""
    rng = np.random.default_rng(m)
    big_a, big_b = rng.standard_normal((20, 40)).astype(dtype), rng.standard_normal((30, 90)).astype(dtype)
    big_c = rng.standard_normal((12, 70)).astype(dtype)
    a, b = big_a[2:2 + m, 5:22], big_b[3:20, 9:60]
    before = big_c.copy()
    c = big_c[4:4 + m, 11:62]
    expected = a.astype(np.float64) @ b + beta * c
    assert gemm(a, b, c, beta) is c
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * 10)
    outside = np.ones(big_c.shape, bool)
    outside[4:4 + m, 11:62] = False
    np.testing.assert_array_equal(big_c[outside], before[outside])


def test_gemm_with_beta_zero_ignores_what_c_held():
    a, b = np.ones((3, 4)), np.ones((4, 5))
    c = np.full((3, 5), np.nan)
    np.testing.assert_array_equal(gemm(a, b, c, 0.0), np.full((3, 5), 4.0))


def test_gemm_rejects_what_blas_cannot_take():
    a, b, c = np.ones((3, 4)), np.ones((4, 5)), np.zeros((3, 5))
    with pytest.raises(ValueError, match="shapes do not agree"):
        gemm(a, np.ones((5, 5)), c)
    with pytest.raises(ValueError, match="one dtype"):
        gemm(a.astype(np.float32), b, c)
    with pytest.raises(ValueError, match="one dtype"):
        gemm(a.astype(np.int64), b.astype(np.int64), c.astype(np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        gemm(np.ones((4, 3)).T, b, c)  # columns, not rows, contiguous
    with pytest.raises(ValueError, match="contiguous"):
        gemm(a, b, np.zeros((3, 10))[:, ::2])
    overlapping = np.lib.stride_tricks.as_strided(np.ones(20), (4, 5), (16, 8))
    with pytest.raises(ValueError, match="non-overlapping"):
        gemm(a, overlapping, c)
    read_only = np.zeros((3, 5))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        gemm(a, b, read_only)


def test_numpys_own_blas_is_found_where_numpy_ships_openblas():
    """The wheels' scipy-openblas exports CBLAS symbols that :func:`numpy_cblas` must find; without them
    :func:`gemm` would silently take its slower fallback."""
    if np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"] != "scipy-openblas":
        pytest.skip("NumPy is not built on its wheels' OpenBLAS here")
    found = blas.numpy_cblas()
    assert found is not None and found.before == "scipy_cblas_"


@pytest.mark.parametrize("m", [1, 3])
def test_the_fallback_without_cblas_computes_the_same(monkeypatch, m):
    monkeypatch.setattr(blas, "_routine", lambda dtype, name: None)
    rng = np.random.default_rng(4)
    a, b, c = rng.standard_normal((m, 4)), rng.standard_normal((4, 6)), rng.standard_normal((m, 6))
    for beta in (0.0, 1.0, 0.5):
        out = c.copy()
        np.testing.assert_allclose(gemm(a, b, out, beta), a @ b + beta * c, atol=1e-12)
