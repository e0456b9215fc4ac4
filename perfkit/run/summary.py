"""Summaries of stored cases: per-stage statistics, shares, and the overhead of per-stage timing.

For a series with stages ``s_1 … s_k`` (medians ``m_i`` over the samples):

- ``share_i = m_i / sum_j m_j`` — the stage's part of the series' time;
- for a per-stage series covering an end-to-end series with median ``E`` (one sync at the end):
  ``overhead = sum_i m_i / E - 1``, the cost of timing stage by stage (syncs, timer reads, lost
  overlap). It is measured, not assumed: positive means per-stage timing inflates the total.
  Its ``1 - alpha`` interval is a percentile bootstrap: resample the per-stage series' passes (each a
  row of ``k`` stage times, kept together) and the end-to-end passes independently, with replacement,
  and take the same statistic (:func:`overhead_interval`). The two series are timed at different
  moments, so on a noisy machine the point estimate alone can read several percent either way when
  the timing itself costs microseconds; the interval says how much of it is noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..measure.stats import Summary, summarize
from ..measure.verdict import DEFAULT_ALPHA, DEFAULT_BOOTSTRAP
from ..store.records import CaseRecord, SeriesRecord


@dataclass(frozen=True)
class StageRow:
    series: str
    stage: str
    summary: Summary
    share: float
    first_call_ns: int | None


@dataclass(frozen=True)
class Overhead:
    """Per-stage timing overhead ``estimate`` with its bootstrap interval ``[low, high]`` at ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes zero: the overhead is told apart from the machine's noise."""
        return self.low > 0.0 or self.high < 0.0


@dataclass(frozen=True)
class SeriesSummary:
    name: str
    synced: bool
    covers: str | None
    loops: int
    rows: tuple[StageRow, ...]
    total: Summary | None
    overhead: Overhead | None


def stage_timing_overhead(stage_medians: Sequence[float], end_to_end_median: float) -> float:
    """``sum(stage_medians) / end_to_end_median - 1`` (NaN if the end-to-end median is not positive)."""
    if end_to_end_median <= 0:
        return math.nan
    return sum(stage_medians) / end_to_end_median - 1.0


def overhead_interval(stage_samples: np.ndarray, end_to_end: np.ndarray, confidence: float = 1 - DEFAULT_ALPHA,
                      n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum_i median(S[:, i]) / median(E) - 1``.

    ``stage_samples (n, k)``: one row per pass of the per-stage series; ``end_to_end (m,)``. Rows are
    resampled whole (a pass's stages share its moment), the two series independently; seeded, so the
    same samples always give the same interval.
    """
    rng = np.random.default_rng(seed)
    s = np.asarray(stage_samples, dtype=np.float64)
    e = np.asarray(end_to_end, dtype=np.float64)
    rows = rng.integers(0, s.shape[0], size=(n_boot, s.shape[0]))
    sums = np.median(s[rows], axis=1).sum(axis=1)  # (n_boot,)
    ends = np.median(e[rng.integers(0, e.size, size=(n_boot, e.size))], axis=1)  # (n_boot,)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(sums / ends - 1.0, [tail, 1.0 - tail])
    return float(low), float(high)


def series_overhead(series: SeriesRecord, covered: SeriesRecord) -> Overhead | None:
    """The overhead of ``series`` (per-stage) against ``covered`` (end to end), with its 99% interval."""
    if not series.n or not covered.n or not series.stages:
        return None
    samples = np.column_stack([np.asarray(st.wall_ns, dtype=np.float64) for st in series.stages])  # (n, k)
    end_to_end = np.asarray(covered.totals_ns(), dtype=np.float64)
    estimate = stage_timing_overhead(list(np.median(samples, axis=0)), float(np.median(end_to_end)))
    if not np.isfinite(estimate):
        return Overhead(estimate, math.nan, math.nan, 1 - DEFAULT_ALPHA)
    low, high = overhead_interval(samples, end_to_end)
    return Overhead(estimate, low, high, 1 - DEFAULT_ALPHA)


def summarize_series(series: SeriesRecord, covered: SeriesRecord | None = None) -> SeriesSummary:
    """Statistics of every stage with its share; overhead against ``covered`` when given."""
    if series.n == 0:
        return SeriesSummary(series.name, series.synced, series.covers, series.loops, (), None, None)
    stats = [summarize(st.wall_ns) for st in series.stages]
    med_sum = sum(s.median for s in stats)
    rows = tuple(StageRow(series.name, st.name, s, s.median / med_sum if med_sum else math.nan,
                          st.first_call_ns)
                 for st, s in zip(series.stages, stats, strict=True))
    overhead = series_overhead(series, covered) if covered is not None else None
    return SeriesSummary(series.name, series.synced, series.covers, series.loops, rows,
                         summarize(series.totals_ns()), overhead)


def summarize_case(case: CaseRecord) -> tuple[SeriesSummary, ...]:
    """Every series of ``case``, per-stage series with their overhead against the series they cover."""
    out = []
    for s in case.series:
        covered = case.series_named(s.covers) if s.covers else None
        out.append(summarize_series(s, covered))
    return tuple(out)
