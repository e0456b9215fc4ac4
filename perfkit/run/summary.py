"""Summaries of stored cases: per-stage statistics, shares, and the overhead of per-stage timing.

For a series with stages ``s_1 … s_k`` (medians ``m_i`` over the samples):

- ``share_i = m_i / sum_j m_j`` — the stage's part of the series' time;
- for a per-stage series covering an end-to-end series with median ``E`` (one sync at the end):
  ``overhead = sum_i m_i / E - 1``, the cost of timing stage by stage (syncs, timer reads, lost
  overlap). It is measured, not assumed: positive means per-stage timing inflates the total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..measure.stats import Summary, summarize
from ..store.records import CaseRecord, SeriesRecord


@dataclass(frozen=True)
class StageRow:
    series: str
    stage: str
    summary: Summary
    share: float
    first_call_ns: int | None


@dataclass(frozen=True)
class SeriesSummary:
    name: str
    synced: bool
    covers: str | None
    loops: int
    rows: tuple[StageRow, ...]
    total: Summary | None
    overhead: float | None


def stage_timing_overhead(stage_medians: Sequence[float], end_to_end_median: float) -> float:
    """``sum(stage_medians) / end_to_end_median - 1`` (NaN if the end-to-end median is not positive)."""
    if end_to_end_median <= 0:
        return math.nan
    return sum(stage_medians) / end_to_end_median - 1.0


def summarize_series(series: SeriesRecord, covered: SeriesRecord | None = None) -> SeriesSummary:
    """Statistics of every stage with its share; overhead against ``covered`` when given."""
    if series.n == 0:
        return SeriesSummary(series.name, series.synced, series.covers, series.loops, (), None, None)
    stats = [summarize(st.wall_ns) for st in series.stages]
    med_sum = sum(s.median for s in stats)
    rows = tuple(StageRow(series.name, st.name, s, s.median / med_sum if med_sum else math.nan,
                          st.first_call_ns)
                 for st, s in zip(series.stages, stats, strict=True))
    overhead = None
    if covered is not None and covered.n:
        overhead = stage_timing_overhead([s.median for s in stats], summarize(covered.totals_ns()).median)
    return SeriesSummary(series.name, series.synced, series.covers, series.loops, rows,
                         summarize(series.totals_ns()), overhead)


def summarize_case(case: CaseRecord) -> tuple[SeriesSummary, ...]:
    """Every series of ``case``, per-stage series with their overhead against the series they cover."""
    out = []
    for s in case.series:
        covered = case.series_named(s.covers) if s.covers else None
        out.append(summarize_series(s, covered))
    return tuple(out)
