"""Comparing two sets of timing samples: ratio, bootstrap confidence interval, rank test, verdict.

For ``base`` samples ``b`` and ``head`` samples ``h`` (durations, lower is better):

- ``ratio = median(h) / median(b)`` — the time ratio; ``< 1`` means head is faster,
  ``speedup = 1 / ratio``;
- ``ci_low, ci_high``: percentile bootstrap interval of the ratio at confidence ``1 - alpha``:
  ``n_boot`` times, resample ``b`` and ``h`` independently with replacement and take the ratio of the
  medians; the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of those ratios (seeded, so
  the same samples always give the same interval);
- ``p_value``: two-sided Mann-Whitney U test of ``h`` against ``b`` (a rank test: no normality
  assumption, robust to the long right tail of timings);
- ``prob_faster = P(h < b) + P(h == b) / 2 = U_h / (n_h * n_b)``, the common-language effect size.

The verdict is **faster** only when all three hold: ``p_value < alpha``; the interval lies wholly
below 1 (``ci_high < 1``); and the effect is at least the minimum effect size,
``ratio <= 1 / (1 + min_effect)`` (a speedup of at least ``1 + min_effect``). **slower** is the mirror
image (``ci_low > 1`` and ``ratio >= 1 + min_effect``). Anything else is **no significant change**: a
difference that the rank test cannot tell from noise, or one too small to matter, is never reported
as a change. The threshold alone never decides: a 10% shift between two noisy distributions that
overlap is "no significant change".

Few samples cannot be significant at all: the exact two-sided test's smallest ``p``, every head sample
below every base sample, is ``2 / C(n_b + n_h, n_b)`` (:func:`smallest_p_value`): 0.029 for 4 and 4,
0.0079 for 5 and 5, so ``alpha = 0.01`` needs at least 5 samples a side. (scipy runs the exact test
below 8 samples a side without ties, where this matters; above, its normal approximation.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = 0.03
DEFAULT_BOOTSTRAP = 2000


class Verdict(StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    NO_CHANGE = "no significant change"


@dataclass(frozen=True)
class Comparison:
    """``head`` against ``base``; see the module docstring for every formula."""

    n_base: int
    n_head: int
    base_median: float
    head_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    prob_faster: float
    verdict: Verdict
    alpha: float
    min_effect: float

    @property
    def speedup(self) -> float:
        """``1 / ratio`` (> 1: head is faster)."""
        return 1.0 / self.ratio if self.ratio else math.inf

    @property
    def decidable(self) -> bool:
        """Whether ``n_base`` and ``n_head`` samples can give ``p < alpha`` at all (:func:`smallest_p_value`)."""
        return smallest_p_value(self.n_base, self.n_head) < self.alpha

    @property
    def delta(self) -> float:
        """Relative change of the median time, ``ratio - 1`` (negative: faster)."""
        return self.ratio - 1.0


def smallest_p_value(n_base: int, n_head: int) -> float:
    """The smallest two-sided p of the exact Mann-Whitney U test for these sample counts (no ties):
    ``2 / C(n_base + n_head, n_base)``, capped at 1."""
    if n_base < 1 or n_head < 1:
        raise ValueError(f"sample counts must be positive, got {n_base} and {n_head}")
    return min(1.0, 2.0 / math.comb(n_base + n_head, n_base))


def _clean(samples: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{name}: no samples")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"{name}: durations must be finite and positive")
    return x


def bootstrap_ratio_ci(base: np.ndarray, head: np.ndarray, confidence: float, n_boot: int,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(head) / median(base)`` (independent resampling)."""
    rng = np.random.default_rng(seed)
    b = np.median(base[rng.integers(0, base.size, size=(n_boot, base.size))], axis=1)
    h = np.median(head[rng.integers(0, head.size, size=(n_boot, head.size))], axis=1)
    ratios = h / b
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def decide(ratio: float, ci_low: float, ci_high: float, p_value: float, alpha: float,
           min_effect: float) -> Verdict:
    """The verdict rule alone (pure; see the module docstring)."""
    if not p_value < alpha:
        return Verdict.NO_CHANGE
    if ci_high < 1.0 and ratio <= 1.0 / (1.0 + min_effect):
        return Verdict.FASTER
    if ci_low > 1.0 and ratio >= 1.0 + min_effect:
        return Verdict.SLOWER
    return Verdict.NO_CHANGE


def compare_samples(base: Sequence[float] | np.ndarray, head: Sequence[float] | np.ndarray, *,
                    alpha: float = DEFAULT_ALPHA, min_effect: float = DEFAULT_MIN_EFFECT,
                    n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Comparison:
    """Compare ``head`` durations with ``base`` durations; deterministic for given inputs and ``seed``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_effect < 0.0:
        raise ValueError(f"min_effect must be >= 0, got {min_effect}")
    b, h = _clean(base, "base"), _clean(head, "head")
    b_med, h_med = float(np.median(b)), float(np.median(h))
    ratio = h_med / b_med
    ci_low, ci_high = bootstrap_ratio_ci(b, h, 1.0 - alpha, n_boot, seed)
    if np.ptp(np.concatenate([b, h])) == 0.0:  # every sample identical: no evidence of any difference
        p_value, u_head = 1.0, 0.5 * b.size * h.size
    else:
        from scipy import stats  # imported here: it takes seconds, and most commands never compare

        res = stats.mannwhitneyu(h, b, alternative="two-sided")
        p_value = float(res.pvalue)
        # scipy's statistic is U of the first sample: the number of pairs with h > b (+ ties / 2).
        u_head = b.size * h.size - float(res.statistic)
    prob_faster = u_head / (b.size * h.size)
    return Comparison(
        n_base=int(b.size), n_head=int(h.size), base_median=b_med, head_median=h_med, ratio=ratio,
        ci_low=ci_low, ci_high=ci_high, p_value=p_value, prob_faster=prob_faster,
        verdict=decide(ratio, ci_low, ci_high, p_value, alpha, min_effect), alpha=alpha,
        min_effect=min_effect,
    )
