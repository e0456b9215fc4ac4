"""Pooling repeated runs of one case: the samples of every run concatenated into one record.

A change judged on one interleaved run rests on the few worker processes of that run, and two processes
of the same code can differ by more than their samples do. Running the same comparison again and
pooling the runs puts more processes behind each median. Runs may be pooled only when they timed the
same thing the same way: the same code (the case's ``source_hash``), the same host, the same series with
the same stages and the same ``loops`` per sample. :func:`poolable` says whether two records qualify.

The pooled record is the latest run's (its status, first call, load, memory, metadata) with the series'
samples of every run in run order; visit numbers are offset per run so that visits of different runs
stay distinct (``visits`` of run ``j`` + one more than the largest visit of the runs before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .records import CaseRecord, Run, SeriesRecord, StageRecord


def _shape(case: CaseRecord) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    return tuple((s.name, s.loops, s.stage_names) for s in case.series)


def poolable(a: tuple[Run, CaseRecord], b: tuple[Run, CaseRecord]) -> bool:
    """Whether two runs' records of one case timed the same code on the same host in the same way."""
    (run_a, case_a), (run_b, case_b) = a, b
    return (case_a.source_hash is not None and case_a.source_hash == case_b.source_hash
            and run_a.environment.hostname == run_b.environment.hostname
            and _shape(case_a) == _shape(case_b))


def pool_series(series: Sequence[SeriesRecord]) -> SeriesRecord:
    """One series from several of the same shape: samples concatenated, visits offset per run."""
    visits: list[int] = []
    columns: list[list[int]] = [[] for _ in series[-1].stages]
    offset = 0
    for s in series:
        visits.extend(v + offset for v in s.visits)
        offset = max(visits, default=-1) + 1
        for column, stage in zip(columns, s.stages, strict=True):
            column.extend(stage.wall_ns)
    last = series[-1]
    stages = tuple(StageRecord(st.name, tuple(col), st.first_call_ns)
                   for st, col in zip(last.stages, columns, strict=True))
    return replace(last, visits=tuple(visits), stages=stages)


def pool_cases(records: Sequence[tuple[Run, CaseRecord]]) -> tuple[Run, CaseRecord, int]:
    """``records`` of one case in run order -> ``(latest run, pooled record, runs pooled)``.

    The latest record is pooled with every earlier one that is :func:`poolable` with it; the others
    (older code, another host) are left out, as a later run replaces them.
    """
    latest = records[-1]
    kept = [r for r in records[:-1] if poolable(r, latest)] + [latest]
    if len(kept) == 1:
        return latest[0], latest[1], 1
    series = tuple(pool_series([case.series[i] for _, case in kept]) for i in range(len(latest[1].series)))
    return latest[0], replace(latest[1], series=series), len(kept)
