"""Descriptive statistics of raw timing samples, as pure functions (no state, no I/O).

For samples ``x_1 … x_n`` (any unit; perfkit stores integer nanoseconds):

- ``median``, ``mean``; ``std`` is the sample standard deviation ``sqrt(sum((x - mean)**2) / (n - 1))``
  (NaN for ``n < 2``);
- percentiles use linear interpolation between order statistics (NumPy's default ``"linear"`` method):
  ``q1 = P25``, ``q3 = P75``, ``iqr = q3 - q1``, ``p90``, ``p99``;
- ``rel_iqr = iqr / median`` (the spread the adaptive stop watches);
- ``mad = median(|x - median|)``; a sample is an *outlier* when its modified z-score
  ``0.6745 * (x - median) / mad`` exceeds 3.5 in absolute value (Iglewicz and Hoaglin). When
  ``mad == 0`` the mean absolute deviation times ``1.2533`` (= sqrt(pi/2), its consistency factor for a
  normal distribution) stands in; when that is zero too, nothing is an outlier.

Outliers are *reported*, never dropped: every statistic here is over all samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAD_Z_THRESHOLD = 3.5
_MAD_Z_SCALE = 0.6745  # Phi^-1(3/4): makes 0.6745 * (x - med) / MAD a z-score for normal data
_MEAN_AD_SCALE = math.sqrt(math.pi / 2)  # 1.2533: E|x - mu| * sqrt(pi/2) = sigma for normal data


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one set of samples (same unit as the samples)."""

    n: int
    median: float
    mean: float
    std: float
    min: float
    max: float
    q1: float
    q3: float
    iqr: float
    p90: float
    p99: float
    mad: float
    outliers: int

    @property
    def rel_iqr(self) -> float:
        """``iqr / median`` (NaN when the median is zero)."""
        return self.iqr / self.median if self.median else math.nan


def _array(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no samples")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    return x


def median(samples: Sequence[float] | np.ndarray) -> float:
    return float(np.median(_array(samples)))


def percentile(samples: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation between order statistics."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    return float(np.percentile(_array(samples), q))


def iqr(samples: Sequence[float] | np.ndarray) -> float:
    """``P75 - P25``."""
    q1, q3 = np.percentile(_array(samples), [25.0, 75.0])
    return float(q3 - q1)


def rel_iqr(samples: Sequence[float] | np.ndarray) -> float:
    """``iqr / median``; NaN when the median is zero."""
    med = median(samples)
    return iqr(samples) / med if med else math.nan


def std(samples: Sequence[float] | np.ndarray) -> float:
    """Sample standard deviation (``ddof=1``); NaN for fewer than two samples."""
    x = _array(samples)
    return float(np.std(x, ddof=1)) if x.size > 1 else math.nan


def mad(samples: Sequence[float] | np.ndarray) -> float:
    """Median absolute deviation ``median(|x - median(x)|)`` (unscaled)."""
    x = _array(samples)
    return float(np.median(np.abs(x - np.median(x))))


def outlier_mask(samples: Sequence[float] | np.ndarray, threshold: float = MAD_Z_THRESHOLD) -> np.ndarray:
    """Boolean mask of samples whose modified z-score exceeds ``threshold`` (see the module docstring)."""
    x = _array(samples)
    med = np.median(x)
    dev = np.abs(x - med)
    m = float(np.median(dev))
    if m > 0:
        z = _MAD_Z_SCALE * dev / m
    else:
        mean_ad = float(np.mean(dev))
        if mean_ad == 0.0:
            return np.zeros(x.shape, dtype=bool)
        z = dev / (_MEAN_AD_SCALE * mean_ad)
    return z > threshold


def summarize(samples: Sequence[float] | np.ndarray) -> Summary:
    """Every statistic of :class:`Summary` over all samples (outliers counted, not removed)."""
    x = _array(samples)
    q1, q3, p90, p99 = np.percentile(x, [25.0, 75.0, 90.0, 99.0])
    return Summary(
        n=int(x.size),
        median=float(np.median(x)),
        mean=float(np.mean(x)),
        std=std(x),
        min=float(np.min(x)),
        max=float(np.max(x)),
        q1=float(q1),
        q3=float(q3),
        iqr=float(q3 - q1),
        p90=float(p90),
        p99=float(p99),
        mad=mad(x),
        outliers=int(np.count_nonzero(outlier_mask(x))),
    )
