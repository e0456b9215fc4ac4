"""The NumPy reference's layer functions against their definitions, and its row threads and scratch."""

from __future__ import annotations

import numpy as np
import pytest
from perfkit.backends.numpy import layers
from perfkit.backends.numpy.row_threads import MIN_SPLIT_ELEMENTS, RowThreads
from perfkit.backends.numpy.scratch import Scratch

from perfkit.model.codes import synthetic_codes
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel


def transposed_conv_by_definition(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """``z[:, s*stride + j] += w[:, :, j].T @ x[:, s]`` over the whole input, right-trimmed by ``k - stride``."""
    cin, cout, k = w.shape
    t = x.shape[1]
    z = np.zeros((cout, (t - 1) * stride + k))
    for s in range(t):
        for j in range(k):
            z[:, s * stride + j] += w[:, :, j].T @ x[:, s]
    return z[:, : t * stride] + b[:, None]


@pytest.mark.parametrize("stride,k", [(3, 3), (3, 6), (2, 7), (4, 12)])
@pytest.mark.parametrize("chunks", [(9,), (1, 1, 1, 1, 1, 1, 1, 1, 1), (2, 5, 2)])
def test_conv_transpose_equals_its_definition_offline_and_chunked(stride, k, chunks):
    """Chunks of one frame leave pending taps that span several later chunks when ``k > 2 * stride``."""
    rng = np.random.default_rng(stride * 100 + k)
    cin, cout, t = 5, 4, sum(chunks)
    x = rng.standard_normal((cin, t))
    w, b = rng.standard_normal((cin, cout, k)), rng.standard_normal(cout)
    expected = transposed_conv_by_definition(x, w, b, stride)
    tail, got, start = np.zeros((cout, k - stride)), [], 0
    for n in chunks:
        y, tail = layers.causal_conv_transpose(x[:, start:start + n], w, b, stride, tail)
        assert y.shape == (cout, n * stride) and tail.shape == (cout, k - stride)
        got.append(y)
        start += n
    np.testing.assert_allclose(np.concatenate(got, axis=1), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride,k", [(3, 6), (2, 7), (4, 12), (2, 2)])
def test_conv_transpose_overlap_add_split_over_row_threads_equals_its_definition(monkeypatch, stride, k):
    """col2im run by :class:`RowThreads` (every array cut into blocks of output channels, small arrays
    split too) gives the serial result bit for bit and the definition, offline and in chunks."""
    from perfkit.backends.numpy import row_threads

    monkeypatch.setattr(row_threads, "MIN_SPLIT_ELEMENTS", 1)
    rng = np.random.default_rng(stride * 10 + k)
    cin, cout, chunks = 5, 7, (4, 1, 6)
    x = rng.standard_normal((cin, sum(chunks)))
    w, b = rng.standard_normal((cin, cout, k)), rng.standard_normal(cout)
    pool, blocks, calls = RowThreads(3), [], []  # blocks: rows per kernel call; calls: rows per conv

    def counted(kernel, *arrays, out):
        calls.append(out.shape[0])
        return pool.run(lambda *a: (blocks.append(a[-1].shape[0]), kernel(*a)), *arrays, out=out)

    try:
        got, serial = [], []
        tail_split, tail_serial, start = np.zeros((cout, k - stride)), np.zeros((cout, k - stride)), 0
        for n in chunks:
            y, tail_split = layers.causal_conv_transpose(x[:, start:start + n], w, b, stride, tail_split, rows=counted)
            z, tail_serial = layers.causal_conv_transpose(x[:, start:start + n], w, b, stride, tail_serial)
            got.append(y)
            serial.append(z)
            start += n
    finally:
        pool.close()
    assert calls == [cout] * len(chunks) and sorted(blocks) == sorted([2, 2, 3] * len(chunks))  # 7 rows in 3 blocks
    np.testing.assert_array_equal(np.concatenate(got, axis=1), np.concatenate(serial, axis=1))
    np.testing.assert_array_equal(tail_split, tail_serial)
    np.testing.assert_allclose(np.concatenate(got, axis=1), transposed_conv_by_definition(x, w, b, stride),
                               rtol=0, atol=1e-12)


def test_conv_transpose_writes_its_gemm_into_given_columns():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((6, 10)), rng.standard_normal((6, 3, 8)), rng.standard_normal(3)
    cols = np.full(3 * 8 * 10, np.nan)
    y, _ = layers.causal_conv_transpose(x, w, b, 4, np.zeros((3, 4)), cols=cols)
    np.testing.assert_allclose(y, transposed_conv_by_definition(x, w, b, 4), atol=1e-12)
    assert not np.isnan(cols).any()  # the GEMM went into the buffer handed in


@pytest.mark.parametrize("rows", [1, 5, 7, 24, 25])
def test_conv_transpose_gemm_in_row_blocks_equals_its_definition(monkeypatch, rows):
    """``cols (Cout*k, T)`` = 24 rows here, in GEMMs of ``rows`` (a last short block, one row, one block)."""
    monkeypatch.setattr(layers, "TCONV_GEMM_ROWS", rows)
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((6, 10)), rng.standard_normal((6, 3, 8)), rng.standard_normal(3)
    cols = np.full(3 * 8 * 10, np.nan)
    y, _ = layers.causal_conv_transpose(x, w, b, 4, np.zeros((3, 4)), cols=cols)
    np.testing.assert_allclose(y, transposed_conv_by_definition(x, w, b, 4), atol=1e-12)
    assert not np.isnan(cols).any()  # every block of rows was written


def test_conv_transpose_writes_its_output_into_a_column_slice():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((6, 10)), rng.standard_normal((6, 3, 8)), rng.standard_normal(3)
    big = np.full((3, 60), np.nan)
    y, _ = layers.causal_conv_transpose(x, w, b, 4, np.zeros((3, 4)), out=big[:, 7:47])
    assert np.shares_memory(y, big)
    np.testing.assert_allclose(big[:, 7:47], transposed_conv_by_definition(x, w, b, 4), atol=1e-12)
    assert np.isnan(big[:, :7]).all() and np.isnan(big[:, 47:]).all()  # nothing written outside
    with pytest.raises(ValueError, match="unit-stride"):
        layers.causal_conv_transpose(x, w, b, 4, np.zeros((3, 4)), out=big[:, ::2][:, :40])
    with pytest.raises(ValueError, match=r"\(3, 40\)"):
        layers.causal_conv_transpose(x, w, b, 4, np.zeros((3, 4)), out=big[:, :39])


@pytest.mark.parametrize("tap_major", [False, True])
def test_conv_im2col_equals_the_formula(tap_major):
    """One GEMM over the gathered windows is the convolution's formula, bias included, into the buffers
    given, whichever layout the weight is held in."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((4, 30)), rng.standard_normal((3, 4, 7)), rng.standard_normal(3)
    xp = np.concatenate([rng.standard_normal((4, 18)), x], axis=1)
    direct = b[:, None] + sum(w[:, :, j] @ xp[:, 3 * j: 3 * j + 30] for j in range(7))
    w = layers.tap_major(w) if tap_major else w
    out, cols = np.full((3, 30), np.nan), np.full(4 * 7 * 30 + 5, np.nan)
    got = layers.conv_im2col(xp, w, b, 3, out=out, cols=cols)
    assert got is out
    np.testing.assert_allclose(got, direct, atol=1e-12)
    np.testing.assert_allclose(layers.conv_im2col(xp, w, b, 3), direct, atol=1e-12)  # its own buffers


@pytest.mark.parametrize("tap_major", [False, True])
@pytest.mark.parametrize("cout", [1, 3])
def test_conv_padded_equals_causal_conv(tap_major, cout):
    """The taps accumulated in BLAS give the formula, for a weight in either layout and for one output
    channel (the final conv, a matrix-vector product), into a column window of a larger array."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((4, 30)), rng.standard_normal((cout, 4, 7)), rng.standard_normal(cout)
    tail = rng.standard_normal((4, 18))
    expected, _ = layers.causal_conv(x, w, b, tail, dilation=3)
    direct = b[:, None] + sum(w[:, :, j] @ np.concatenate([tail, x], axis=1)[:, 3 * j: 3 * j + 30] for j in range(7))
    w = layers.tap_major(w) if tap_major else w
    big = np.full((cout, 50), np.nan)
    got = layers.conv_padded(np.concatenate([tail, x], axis=1), w, b, 3, out=big[:, 7:37])
    assert np.shares_memory(got, big) and np.isnan(big[:, :7]).all() and np.isnan(big[:, 37:]).all()
    np.testing.assert_allclose(got, direct, atol=1e-12)
    np.testing.assert_allclose(expected, direct, atol=1e-12)


def test_tap_major_keeps_values_and_indexing():
    w = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    t = layers.tap_major(w)
    np.testing.assert_array_equal(t, w)
    assert t.strides == (48, 4, 12)  # (Cout, Cin, k) indexing over (Cout, k, Cin) storage
    assert t[:, :, 2].strides[1] == t.itemsize  # a tap's rows are contiguous


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_snake_beta_matches_its_formula(dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 50)) * 3).astype(dtype)
    alpha, beta = rng.standard_normal(6) * 0.3, rng.standard_normal(6) * 0.3
    a, inv_b = layers.snake_params(alpha, beta, dtype)
    assert a.shape == (6, 1) and a.dtype == dtype
    out = np.empty_like(x)
    layers.snake_beta(x, a, inv_b, out)
    x64 = x.astype(np.float64)
    expected = x64 + 1.0 / (np.exp(beta) + 1e-9)[:, None] * np.sin(np.exp(alpha)[:, None] * x64) ** 2
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_is_the_exact_erf_form_in_its_own_dtype_in_place_and_split(dtype):
    from scipy.special import erf

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((9, 40000)) * 3).astype(dtype)
    expected = 0.5 * x.astype(np.float64) * (1.0 + erf(x.astype(np.float64) / np.sqrt(2.0)))
    out = layers.gelu(x, np.empty_like(x))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)
    pool = RowThreads(2)
    try:
        inplace = x.copy()
        pool.run(layers.gelu, inplace, out=inplace)  # split over rows (9 x 40000 is over the split size)
    finally:
        pool.close()
    np.testing.assert_array_equal(inplace, out)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_row_threads_give_the_serial_result_bit_for_bit(threads):
    rng = np.random.default_rng(4)
    rows = 7
    x = rng.standard_normal((rows, 2 * MIN_SPLIT_ELEMENTS // rows + 1)).astype(np.float32)
    a, inv_b = layers.snake_params(rng.standard_normal(rows), rng.standard_normal(rows), np.float32)
    serial = np.empty_like(x)
    layers.snake_beta(x, a, inv_b, serial)
    pool = RowThreads(threads)
    try:
        split = pool.run(layers.snake_beta, x, a, inv_b, out=np.empty_like(x))
        added = pool.run(np.add, x, serial, out=np.empty_like(x))
    finally:
        pool.close()
    np.testing.assert_array_equal(split, serial)
    np.testing.assert_array_equal(added, x + serial)


def test_row_threads_refuse_zero_threads():
    with pytest.raises(ValueError, match="at least 1"):
        RowThreads(0)


def test_scratch_reuses_one_buffer_per_name_and_grows_when_asked_for_more():
    scratch = Scratch(np.float32)
    a = scratch.get("a", (4, 10))
    a[:] = 1.0
    b = scratch.get("b", (4, 10))
    assert not np.shares_memory(a, b)
    again = scratch.get("a", (2, 5))
    assert again.flags.c_contiguous and np.shares_memory(a, again)
    bigger = scratch.get("a", (8, 10))
    assert bigger.shape == (8, 10) and not np.shares_memory(a, bigger)
    assert scratch.nbytes == (80 + 40) * 4 and scratch.names == {"a", "b"}


def test_scratch_reserve_sizes_a_names_first_buffer_so_it_is_not_grown():
    scratch = Scratch(np.float32, reserve=100)
    small = scratch.get("a", (2, 5))
    wider = scratch.get("a", (10, 10))
    assert wider.shape == (10, 10) and np.shares_memory(small, wider)
    assert scratch.nbytes == 100 * 4
    beyond = scratch.get("a", (3, 50))
    assert not np.shares_memory(wider, beyond) and scratch.nbytes == 150 * 4  # growth asks no reserve again
    with pytest.raises(ValueError, match="at least 0"):
        Scratch(np.float32, reserve=-1)


class CountingScratch(Scratch):
    """A :class:`Scratch` that counts the buffers it allocates, per name."""

    def __init__(self, dtype: np.dtype, reserve: int) -> None:
        super().__init__(dtype, reserve)
        self.allocations: dict[str, int] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        before = self._flat.get(name)
        view = super().get(name, shape)
        if self._flat[name] is not before:
            self.allocations[name] = self.allocations.get(name, 0) + 1
        return view


@pytest.mark.parametrize("reserve", [True, False])
def test_vocoder_scratch_buffers_are_allocated_once_in_a_stream(reserve: bool):
    """With the tile-and-look-back reserve every scratch buffer of a tiled stream is allocated once;
    without it, buffers grow as the tiles widen from stage to stage."""
    from perfkit.backends.numpy.tiles import TimeTiles
    from perfkit.backends.numpy.vocoder import NumpyVocoder

    config = vocoder_preset("tiny")
    model = VocoderModel.synthetic(config, 0)
    runner = NumpyVocoder(config, model.weights, np.float32, threads=1, tiles=TimeTiles(elements=512, min_columns=4))
    scratch = runner.scratch = CountingScratch(np.float32, runner.scratch.reserve if reserve else 0)
    state = runner.new_state()
    for a in range(0, 12, 3):
        runner.decode(runner.upload_codes(synthetic_codes(config, 12, 0)[:, a:a + 3]), state)
    assert scratch.allocations
    grown = {name: n for name, n in scratch.allocations.items() if n > 1}
    assert (not grown) if reserve else grown, scratch.allocations


def test_an_untiled_vocoder_reserves_no_scratch():
    """A tile budget meant as "no tiles" (2^40 elements) must not become a 2^40-element first buffer."""
    from perfkit.backends.numpy.tiles import TimeTiles
    from perfkit.backends.numpy.vocoder import MAX_SCRATCH_RESERVE, NumpyVocoder

    config = vocoder_preset("tiny")
    model = VocoderModel.synthetic(config, 0)
    untiled = NumpyVocoder(config, model.weights, np.float32, threads=1, tiles=TimeTiles(elements=1 << 40))
    tiled = NumpyVocoder(config, model.weights, np.float32, threads=1, tiles=TimeTiles(elements=MAX_SCRATCH_RESERVE))
    assert untiled.scratch.reserve == 0 and tiled.scratch.reserve > MAX_SCRATCH_RESERVE
    wav = untiled.decode(untiled.upload_codes(synthetic_codes(config, 3, 0)))
    assert wav.shape == (3 * config.total_upsample,) and np.isfinite(wav).all()
