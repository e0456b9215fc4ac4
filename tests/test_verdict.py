"""Comparison verdicts on synthetic distributions: equal, shifted, noisy, tiny effects, few samples."""

from __future__ import annotations

import numpy as np
import pytest

from perfkit.measure.verdict import Verdict, compare_samples, decide, smallest_p_value


def timings(seed: int, n: int, median_ns: float, sigma: float) -> np.ndarray:
    """Log-normal timings (a long right tail, like real ones) with the given median."""
    return median_ns * np.random.default_rng(seed).lognormal(0.0, sigma, n)


def test_same_distribution_is_no_change():
    base, head = timings(1, 60, 1e6, 0.05), timings(2, 60, 1e6, 0.05)
    c = compare_samples(base, head)
    assert c.verdict is Verdict.NO_CHANGE
    assert c.ci_low < 1.0 < c.ci_high


def test_identical_samples_are_no_change():
    x = [1000] * 20
    c = compare_samples(x, x)
    assert c.verdict is Verdict.NO_CHANGE
    assert c.ratio == 1.0 and c.p_value == 1.0 and c.prob_faster == 0.5


def test_clear_speedup_is_faster():
    base, head = timings(3, 40, 1e6, 0.03), timings(4, 40, 0.8e6, 0.03)
    c = compare_samples(base, head)
    assert c.verdict is Verdict.FASTER
    assert c.ratio == pytest.approx(0.8, rel=0.03)
    assert c.ci_low < 0.8 < c.ci_high < 1.0
    assert c.speedup == pytest.approx(1 / c.ratio)
    assert c.prob_faster > 0.95
    assert c.p_value < 1e-6


def test_clear_slowdown_is_slower():
    c = compare_samples(timings(5, 40, 1e6, 0.03), timings(6, 40, 1.25e6, 0.03))
    assert c.verdict is Verdict.SLOWER
    assert c.delta == pytest.approx(0.25, abs=0.04)
    assert c.prob_faster < 0.05


def test_shift_buried_in_noise_is_no_change():
    # a 10% slowdown, but the spread is several times larger and there are few samples
    c = compare_samples(timings(7, 10, 1e6, 0.6), timings(8, 10, 1.1e6, 0.6))
    assert c.verdict is Verdict.NO_CHANGE


def test_significant_but_tiny_effect_is_no_change():
    # 1% slower with almost no noise: the rank test is sure, the effect is below the 3% minimum
    base, head = timings(9, 200, 1e6, 0.001), timings(10, 200, 1.01e6, 0.001)
    c = compare_samples(base, head)
    assert c.p_value < 1e-10
    assert c.verdict is Verdict.NO_CHANGE
    assert compare_samples(base, head, min_effect=0.005).verdict is Verdict.SLOWER


def test_large_effect_from_three_samples_is_not_enough():
    # exact Mann-Whitney on 3 vs 3 cannot go below p = 0.1
    c = compare_samples([100, 101, 102], [200, 201, 202])
    assert c.p_value > 0.01
    assert c.verdict is Verdict.NO_CHANGE


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_smallest_p_value_is_that_of_fully_separated_samples(n):
    """``2 / C(2n, n)`` is the p scipy's exact test gives when every head sample beats every base sample;
    a comparison is decidable at 0.01 from 5 samples a side."""
    base, head = np.arange(100.0, 100.0 + n), np.arange(10.0, 10.0 + n)
    c = compare_samples(base, head)
    assert c.p_value == pytest.approx(smallest_p_value(n, n), rel=1e-9)
    assert c.decidable is (n >= 5)
    assert (c.verdict is Verdict.FASTER) is (n >= 5)


def test_smallest_p_value_of_unequal_counts_and_refusals():
    assert smallest_p_value(4, 4) == pytest.approx(2 / 70)
    assert smallest_p_value(1, 1) == 1.0
    assert smallest_p_value(3, 20) == pytest.approx(2 / 1771)
    with pytest.raises(ValueError):
        smallest_p_value(0, 5)


def test_deterministic_for_a_seed():
    base, head = timings(11, 30, 1e6, 0.1), timings(12, 30, 0.9e6, 0.1)
    a, b = compare_samples(base, head), compare_samples(base, head)
    assert a == b
    assert compare_samples(base, head, seed=1).ci_low != a.ci_low  # the seed is what fixes the interval


@pytest.mark.parametrize(
    ("ratio", "ci", "p", "expected"),
    [
        (0.80, (0.75, 0.85), 0.001, Verdict.FASTER),
        (1.25, (1.20, 1.30), 0.001, Verdict.SLOWER),
        (0.80, (0.75, 0.85), 0.02, Verdict.NO_CHANGE),   # not significant
        (0.80, (0.70, 1.05), 0.001, Verdict.NO_CHANGE),  # interval reaches 1
        (0.99, (0.985, 0.995), 0.001, Verdict.NO_CHANGE),  # below the minimum effect
        (1.02, (1.01, 1.03), 0.001, Verdict.NO_CHANGE),
        (0.97, (0.96, 0.975), 0.001, Verdict.FASTER),    # 1/0.97 = 3.1% speedup >= 3%
    ],
)
def test_decision_rule(ratio, ci, p, expected):
    assert decide(ratio, ci[0], ci[1], p, alpha=0.01, min_effect=0.03) is expected


@pytest.mark.parametrize("bad", [[], [0, 1], [-1, 2], [1, float("nan")]])
def test_refuses_bad_samples(bad):
    with pytest.raises(ValueError):
        compare_samples(bad, [1, 2, 3])


def test_refuses_bad_settings():
    with pytest.raises(ValueError):
        compare_samples([1, 2], [1, 2], alpha=0)
    with pytest.raises(ValueError):
        compare_samples([1, 2], [1, 2], min_effect=-0.1)
