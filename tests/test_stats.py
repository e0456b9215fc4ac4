"""Descriptive statistics on samples whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfkit.measure import stats


def test_summary_of_one_to_five():
    s = stats.summarize([5, 3, 1, 4, 2])
    assert s.n == 5
    assert s.median == 3 and s.mean == 3
    assert s.std == pytest.approx(math.sqrt(2.5))  # sample std, ddof=1
    assert (s.min, s.max) == (1, 5)
    assert (s.q1, s.q3, s.iqr) == (2, 4, 2)
    assert s.p90 == pytest.approx(4.6)  # linear interpolation: 1 + 0.9 * 4 = 4.6 -> between 4 and 5
    assert s.p99 == pytest.approx(4.96)
    assert s.mad == 1
    assert s.outliers == 0
    assert s.rel_iqr == pytest.approx(2 / 3)


def test_even_count_median_and_percentiles():
    x = [10, 20, 30, 40]
    assert stats.median(x) == 25
    assert stats.percentile(x, 25) == pytest.approx(17.5)
    assert stats.iqr(x) == pytest.approx(15.0)
    assert stats.rel_iqr(x) == pytest.approx(15.0 / 25.0)


def test_mad_outlier_is_flagged_and_kept():
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    # median 3, |x - 3| = 2 1 0 1 97 -> MAD 1; z(100) = 0.6745 * 97 = 65 > 3.5; z(1) = 1.35
    assert stats.mad(x) == 1
    assert stats.outlier_mask(x).tolist() == [False, False, False, False, True]
    s = stats.summarize(x)
    assert s.outliers == 1
    assert s.max == 100 and s.mean == pytest.approx(22.0)  # nothing dropped


def test_zero_mad_falls_back_to_mean_absolute_deviation():
    x = [10.0] * 9 + [100.0]
    # MAD = 0; mean |x - 10| = 9; z(100) = 90 / (1.2533 * 9) = 7.98 -> outlier; the others z = 0
    mask = stats.outlier_mask(x)
    assert mask.sum() == 1 and mask[-1]


def test_identical_samples_have_no_spread_and_no_outliers():
    s = stats.summarize([7, 7, 7, 7])
    assert (s.std, s.iqr, s.mad, s.outliers, s.rel_iqr) == (0.0, 0.0, 0.0, 0, 0.0)


def test_single_sample():
    s = stats.summarize([42])
    assert s.median == s.mean == s.p99 == 42
    assert math.isnan(s.std)
    assert s.outliers == 0


def test_rel_iqr_of_zero_median_is_nan():
    assert math.isnan(stats.rel_iqr([0, 0, 0, 1]))


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")]])
def test_refuses_empty_and_non_finite(bad):
    with pytest.raises(ValueError):
        stats.summarize(bad)


def test_percentile_range_checked():
    with pytest.raises(ValueError):
        stats.percentile([1, 2], 101)


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=200))
def test_order_statistics_are_ordered_and_permutation_invariant(values):
    s = stats.summarize(values)
    assert s.min <= s.q1 <= s.median <= s.q3 <= s.max
    assert s.q3 <= s.p90 <= s.p99 <= s.max
    assert s.iqr >= 0 and s.mad >= 0
    assert 0 <= s.outliers < max(1, s.n) or s.n == 1
    shuffled = stats.summarize(np.random.default_rng(0).permutation(values))
    exact = ("n", "median", "min", "max", "q1", "q3", "iqr", "p90", "p99", "mad", "outliers")
    assert all(getattr(shuffled, f) == getattr(s, f) for f in exact)
    assert shuffled.mean == pytest.approx(s.mean)  # summation order moves the last bits only
