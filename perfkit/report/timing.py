"""Timing rows of a stored case, and their comparison between two cases (base -> head).

:func:`case_timing` turns a :class:`~perfkit.store.records.CaseRecord` into the rows a table shows:

- a vocoder case (series ``stages`` with ``block_i.tconv`` / ``block_i.resunits``): every canonical stage,
  each decoder block as one row — from the ``coarse`` series, where blocks were timed whole — followed
  by its two sub-stage rows from the ``stages`` series, as in the seeds' sub-block tables;
- any other case: the spans of its ``stages`` series (or ``phases``), or, for imported pytest-benchmark
  runs, one row per series.

The *total* is the end-to-end series (``e2e``: one synchronisation at the end, so no per-stage
overhead) when there is one, else the per-sample sum of the stage rows. Raw samples are kept on every
row: statistics are computed from them, never from stored summaries.

:func:`compare_timings` pairs the rows of two cases and runs the engine's verdict
(:func:`perfkit.measure.verdict.compare_samples`: Mann-Whitney U, minimum effect size, seeded bootstrap
CI of the ratio of medians) on each: the same samples always give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..measure.stats import Summary, summarize
from ..measure.verdict import Comparison, compare_samples
from ..model.stages import substages
from ..run.summary import Overhead
from ..store.records import CaseRecord, SeriesRecord
from . import units

TOTAL_E2E = "end to end"
TOTAL_SUM = "sum of stages"
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class StageSamples:
    """One row: a stage's raw samples (ns per pass); ``level`` 1 marks a sub-stage row."""

    stage: str
    samples_ns: tuple[int, ...]
    level: int = 0

    def summary(self) -> Summary | None:
        return summarize(self.samples_ns) if self.samples_ns else None


@dataclass(frozen=True)
class CaseTiming:
    """The rows of one case, its total and how the total was measured."""

    stages: tuple[StageSamples, ...]
    total: StageSamples | None
    total_kind: str

    def stage(self, name: str) -> StageSamples | None:
        return next((s for s in self.stages if s.stage == name), None)


def _sum_samples(series: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    if not series:
        return ()
    n = min(len(s) for s in series)
    return tuple(sum(s[i] for s in series) for i in range(n))


def _is_vocoder(series: SeriesRecord | None) -> bool:
    return series is not None and any(n.endswith((".tconv", ".resunits")) for n in series.stage_names)


def _vocoder_rows(fine: SeriesRecord, coarse: SeriesRecord | None) -> list[StageSamples]:
    rows: list[StageSamples] = []
    done: set[str] = set()
    for name in fine.stage_names:
        parent = name.split(".", 1)[0]
        if "." in name and parent not in done:
            done.add(parent)
            if coarse is not None and parent in coarse.stage_names:
                rows.append(StageSamples(parent, coarse.stage(parent).wall_ns))
            else:  # no whole-block timing: the block is the per-sample sum of its sub-stages
                parts = [fine.stage(s).wall_ns for s in substages(parent) if s in fine.stage_names]
                rows.append(StageSamples(parent, _sum_samples(parts)))
        rows.append(StageSamples(name, fine.stage(name).wall_ns, 1 if "." in name else 0))
    return rows


def case_timing(case: CaseRecord) -> CaseTiming:
    """The rows of ``case`` (see the module docstring)."""
    fine = case.series_named("stages")
    if _is_vocoder(fine):
        assert fine is not None
        rows = _vocoder_rows(fine, case.series_named("coarse"))
    else:
        main = fine or case.series_named("phases")
        if main is not None:
            rows = [StageSamples(s.name, s.wall_ns) for s in main.stages]
        else:
            rows = [StageSamples(s.name if len(s.stages) == 1 else f"{s.name}/{st.name}", st.wall_ns)
                    for s in case.series if s.name != "e2e" for st in s.stages]
    e2e = case.series_named("e2e")
    if e2e is not None and len(e2e.stages) == 1 and e2e.n:
        return CaseTiming(tuple(rows), StageSamples(e2e.stages[0].name, e2e.stages[0].wall_ns), TOTAL_E2E)
    top = [r.samples_ns for r in rows if r.level == 0]
    total = _sum_samples(top)
    return CaseTiming(tuple(rows), StageSamples("total", total) if total else None, TOTAL_SUM)


@dataclass(frozen=True)
class DeltaRow:
    """A stage in both cases: summaries of each side and the verdict of head against base."""

    stage: str
    level: int
    base: Summary | None
    head: Summary | None
    comparison: Comparison | None


def _positive(samples: Sequence[int]) -> list[int]:
    return [max(1, int(s)) for s in samples]  # a 0 ns span (below the clock) compares as 1 ns


def compare_rows(base: StageSamples | None, head: StageSamples | None, stage: str,
                 level: int = 0) -> DeltaRow:
    """Summaries of both sides and, when both have samples, the verdict of head against base."""
    b = base.summary() if base is not None else None
    h = head.summary() if head is not None else None
    comp = None
    if base is not None and head is not None and base.samples_ns and head.samples_ns:
        comp = compare_samples(_positive(base.samples_ns), _positive(head.samples_ns), seed=BOOTSTRAP_SEED)
    return DeltaRow(stage, level, b, h, comp)


def compare_timings(base: CaseTiming, head: CaseTiming) -> tuple[tuple[DeltaRow, ...], DeltaRow | None]:
    """Every stage of either case (head's order, then stages only base has) and the totals."""
    names = [r.stage for r in head.stages] + [r.stage for r in base.stages if head.stage(r.stage) is None]
    rows = []
    for name in names:
        b, h = base.stage(name), head.stage(name)
        level = (h or b).level  # type: ignore[union-attr]
        rows.append(compare_rows(b, h, name, level))
    total = None
    if base.total is not None or head.total is not None:
        total = compare_rows(base.total, head.total, "total")
    return tuple(rows), total


def overhead_sentence(overhead: Overhead) -> str:
    """The report's line on the per-stage timing overhead: the estimate, its interval, and what it shows."""
    conf = f"{round(100 * overhead.confidence)}%"
    interval = f"{units.pct(overhead.low, signed=True)}, {units.pct(overhead.high, signed=True)}"
    verdict = ("measurable: the interval excludes zero" if overhead.distinguishable
               else "not distinguishable from this machine's noise: the interval includes zero")
    return (f"Per-stage timing overhead: {units.pct(overhead.estimate, signed=True)}, {conf} CI [{interval}] "
            "(sum of the synchronised stage medians against the end-to-end median; the interval bootstraps "
            f"the passes of both series), {verdict}.")
