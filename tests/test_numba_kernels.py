"""The Numba backend's kernels one by one against the NumPy reference layers (tails included)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from perfkit.backends.numba import activations as act  # noqa: E402
from perfkit.backends.numba import conv  # noqa: E402
from perfkit.backends.numba import snake_conv as sc  # noqa: E402
from perfkit.backends.numba.linear import pgemm  # noqa: E402
from perfkit.backends.numpy import layers  # noqa: E402

DTYPES = [(np.float32, 1e-5), (np.float64, 1e-12)]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def strided_view(rng: np.random.Generator, shape: tuple[int, int], at: tuple[int, int], size: tuple[int, int],
                 dtype: type) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """A random ``shape`` buffer, its ``size`` view at ``at`` (rows strided by the buffer's width), the index."""
    buf = rng.standard_normal(shape).astype(dtype)
    index = (slice(at[0], at[0] + size[0]), slice(at[1], at[1] + size[1]))
    return buf, buf[index], index


def assert_untouched_outside(buf: np.ndarray, before: np.ndarray, index: tuple[slice, slice]) -> None:
    outside = np.ones(buf.shape, dtype=bool)
    outside[index] = False
    np.testing.assert_array_equal(buf[outside], before[outside])  # nothing outside the view is touched


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,k,n,threads", [(7, 9, 20, 1), (70, 90, 60, 2), (40, 90, 130, 2), (1, 90, 60, 2),
                                           (1, 700, 500, 2)])
def test_gemm_on_strided_views(rng, dtype, tol, trans_a, trans_b, m, k, n, threads):
    """BLAS on views with row strides, accumulating; split over threads (by rows, or by columns) or not."""
    a = rng.standard_normal((m, k)).astype(dtype)
    big = rng.standard_normal((k + 5, n + 7)).astype(dtype)
    b = big[2:2 + k, 5:5 + n]  # (k, n) view, row stride n + 7
    c_buf, c, index = strided_view(rng, (m + 5, n + 13), (3, 4), (m, n), dtype)  # row stride n + 13
    before, buf_before = c.copy(), c_buf.copy()
    a_arg = np.ascontiguousarray(a.T) if trans_a else a
    b_arg = np.ascontiguousarray(b.T) if trans_b else b
    pgemm(a_arg, b_arg, c, 1.0, trans_a, trans_b, threads)
    np.testing.assert_allclose(c, before + a @ b, rtol=0, atol=tol * k)
    assert_untouched_outside(c_buf, buf_before, index)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("m", [1, 2, 8, 9])
@pytest.mark.parametrize("k,n,threads", [(90, 60, 1), (700, 500, 2), (700, 501, 2), (3000, 70, 1)])
def test_few_row_product_is_a_gemv_per_row(rng, dtype, tol, beta, m, k, n, threads):
    """``m <= 8`` rows with ``B`` transposed (a linear layer on a few positions): ``c = a W^T + beta c`` for
    a weight view with a row stride, one ``gemv`` per row on blocks of ``W``'s rows (700 x 500: the
    parallel branch; 3000 x 70: blocks of 16 rows and a short last one); ``m = 9`` is ``gemm`` again."""
    a = rng.standard_normal((m, k)).astype(dtype)
    big = rng.standard_normal((n + 3, k + 9)).astype(dtype)
    w = big[1:1 + n, 4:4 + k]  # (n, k) view, row stride k + 9
    c_buf, c, index = strided_view(rng, (m + 2, n + 6), (1, 2), (m, n), dtype)  # row stride n + 6
    before, buf_before = c.copy(), c_buf.copy()
    pgemm(a, w, c, beta, False, True, threads)
    expected = a.astype(np.float64) @ w.T.astype(np.float64) + beta * before
    np.testing.assert_allclose(c, expected, rtol=0, atol=tol * k)
    assert_untouched_outside(c_buf, buf_before, index)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("k,dilation,t", [(3, 1, 5), (7, 3, 11), (7, 9, 4), (1, 1, 6)])
def test_causal_conv(rng, dtype, tol, k, dilation, t):
    cin, cout = 5, 6
    x = rng.standard_normal((cin, t)).astype(dtype)
    w = rng.standard_normal((cout, cin, k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    tail = rng.standard_normal((cin, (k - 1) * dilation)).astype(dtype)
    expected, expected_tail = layers.causal_conv(x, w, b, tail, dilation)
    new_tail = tail.copy()
    y = np.empty((cout, t), dtype)
    xp = np.empty((cin, (k - 1) * dilation + t), dtype)
    conv.causal_conv(x, np.ascontiguousarray(w.transpose(2, 0, 1)), b, new_tail, dilation, xp, y, 2)
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol * 10)
    np.testing.assert_array_equal(new_tail, expected_tail)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("k,stride,t", [(6, 3, 5), (2, 2, 4), (16, 8, 1), (7, 3, 1), (9, 2, 3), (10, 5, 2)])
def test_conv_transpose_col2im(rng, dtype, tol, k, stride, t):
    cin, cout = 5, 4
    x = rng.standard_normal((cin, t)).astype(dtype)
    w = rng.standard_normal((cin, cout, k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    tail = rng.standard_normal((cout, k - stride)).astype(dtype)
    expected, expected_tail = layers.causal_conv_transpose(x, w, b, stride, tail)
    new_tail = tail.copy()
    y = np.empty((cout, t * stride), dtype)
    cols = np.empty((cout, k, t), dtype)
    conv.conv_transpose(x, np.ascontiguousarray(w.reshape(cin, cout * k).T), b, stride, new_tail, cols, y, 2)
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol * 10)
    np.testing.assert_allclose(new_tail, expected_tail, rtol=0, atol=tol * 10)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("t", [3, 10])
def test_depthwise_conv_time_major(rng, dtype, tol, t):
    c = 6
    x = rng.standard_normal((c, t)).astype(dtype)
    w = rng.standard_normal((c, 1, 7)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    tail = rng.standard_normal((c, 6)).astype(dtype)
    expected, expected_tail = layers.causal_depthwise_conv(x, w, b, tail)
    new_tail = tail.copy()
    y_t = np.empty((t, c), dtype)
    conv.depthwise_conv_time_major(x, np.ascontiguousarray(w[:, 0]), b, new_tail, y_t)
    np.testing.assert_allclose(y_t.T, expected, rtol=0, atol=tol * 10)
    np.testing.assert_array_equal(new_tail, expected_tail)


@pytest.mark.parametrize("dtype,min_snr", [(np.float32, 120.0), (np.float64, 250.0)])
@pytest.mark.parametrize("scale", [0.3, 3.0, 300.0])
def test_polynomial_snake_matches_sin(rng, dtype, min_snr, scale):
    """The vectorizable ``sin**2`` of SnakeBeta against ``np.sin`` (float64), small and large arguments."""
    c, t = 8, 4096
    x = (scale * rng.standard_normal((c, t))).astype(dtype)
    alpha = 0.5 * rng.standard_normal(c)
    beta = 0.5 * rng.standard_normal(c)
    a, inv_b = act.snake_params(alpha, beta, dtype)
    out = np.empty_like(x)
    act.snake(x, 0, a, inv_b, act.sin_constants(dtype), out)
    # reference on the same rounded inputs: exp(alpha) etc. as stored in dtype
    x64, a64, ib64 = x.astype(np.float64), a.astype(np.float64)[:, None], inv_b.astype(np.float64)[:, None]
    if dtype == np.float32:
        r = (x * a[:, None]).astype(np.float64)  # the product rounded as the kernel rounds it
    else:
        r = x64 * a64
    expected = x64 + ib64 * np.sin(r) ** 2
    noise = np.sum((out - expected) ** 2)
    snr = np.inf if noise == 0 else 10 * np.log10(np.sum(expected**2) / noise)
    assert snr >= min_snr


def test_snake_in_place_and_on_column_windows(rng):
    """Both SnakeBeta kernels on a window of columns (from an offset, into an offset, in place) and on a
    strided 2-D view give exactly the values of the whole array's pass."""
    x = rng.standard_normal((4, 50)).astype(np.float32)
    a, inv_b = act.snake_params(rng.standard_normal(4), rng.standard_normal(4), np.float32)
    k = act.sin_constants(np.float32)
    expected = np.empty_like(x)
    act.snake(x, 0, a, inv_b, k, expected)
    window = np.empty((4, 30), np.float32)
    act.snake(x, 10, a, inv_b, k, window)
    np.testing.assert_array_equal(window, expected[:, 10:40])
    y = x.copy()
    act.snake_columns(y, 10, a, inv_b, k, y, 10, 30)  # in place, columns 10..39 only
    np.testing.assert_array_equal(y[:, 10:40], expected[:, 10:40])
    np.testing.assert_array_equal(y[:, :10], x[:, :10])
    np.testing.assert_array_equal(y[:, 40:], x[:, 40:])
    shifted = np.zeros((4, 35), np.float32)
    act.snake_columns(x, 20, a, inv_b, k, shifted, 5, 30)  # from column 20 into column 5
    np.testing.assert_array_equal(shifted[:, 5:], expected[:, 20:])
    view = x.copy()[:, 10:40]
    act.snake(view, 0, a, inv_b, k, view)
    np.testing.assert_array_equal(view, expected[:, 10:40])


@pytest.mark.parametrize("length,dilation", [(3000, 1), (3000, 9), (40, 9)])
def test_residual_unit_in_place_equals_out_of_place(rng, length, dilation):
    """``dst is src`` (a decoder block's second and third units) gives exactly the values and the next
    tail of a separate ``dst``: two blocks of 64-column tiles, and a chunk shorter than the look-back."""
    c, taps, threads, tile = 6, 7, 2, 64
    pad = (taps - 1) * dilation
    src = rng.standard_normal((c, length)).astype(np.float32)
    params = [act.snake_params(rng.standard_normal(c), rng.standard_normal(c), np.float32) for _ in range(2)]
    w1 = (0.3 * rng.standard_normal((taps, c, c))).astype(np.float32)
    w2 = (0.3 * rng.standard_normal((c, c))).astype(np.float32)
    b1, b2 = (rng.standard_normal(c).astype(np.float32) for _ in range(2))
    k = act.sin_constants(np.float32)
    tail0 = rng.standard_normal((c, pad)).astype(np.float32)

    def run(dst: np.ndarray, x: np.ndarray) -> np.ndarray:
        tail = tail0.copy()
        h = np.empty((threads, c, pad + tile), np.float32)
        acc = np.empty((threads, c, tile), np.float32)
        sc.residual_unit(x, dst, *params[0], w1, b1, dilation, *params[1], w2, b2, k, tail, h, acc)
        return tail

    apart = np.empty_like(src)
    tail_apart = run(apart, src)
    inplace = src.copy()
    tail_inplace = run(inplace, inplace)
    np.testing.assert_array_equal(inplace, apart)
    np.testing.assert_array_equal(tail_inplace, tail_apart)
    assert not np.array_equal(apart, src)
