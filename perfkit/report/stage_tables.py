"""Per-stage tables in the seeds' form: Before / After / Delta / Speedup with CI and verdict, and the
single-run Time / share / GFLOP/s table.

Every number comes from raw samples (:mod:`perfkit.report.timing`); cells are fixed-format
(:mod:`perfkit.report.units`) and names escaped (:mod:`perfkit.report.escape`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..measure.verdict import Comparison, Verdict, smallest_p_value
from . import units
from .labels import stage_label, verdict_cell
from .markdown import bold, table
from .stage_work import gflops
from .timing import TOTAL_E2E, CaseTiming, DeltaRow
from .validity import INVALID


def confidence_label(comparison: Comparison | None) -> str:
    """``99% CI`` for the comparison's alpha (the interval is at confidence ``1 - alpha``)."""
    alpha = comparison.alpha if comparison is not None else 0.01
    return f"{100 * (1 - alpha):g}% CI"


def speedup_interval(c: Comparison) -> str:
    """The CI of the speedup (``base / head``) from the CI of the time ratio (``head / base``)."""
    return units.interval(1.0 / c.ci_high if c.ci_high else None, 1.0 / c.ci_low if c.ci_low else None)


def _delta_cells(row: DeltaRow) -> list[str]:
    b = row.base.median if row.base else None
    h = row.head.median if row.head else None
    c = row.comparison
    if c is None:
        note = "not in both" if (b is None) != (h is None) else "-"
        return [units.ms(b), units.ms(h), "-", "-", "-", "-", note]
    assert b is not None and h is not None
    delta = units.signed_ms(h - b, max(abs(b), abs(h)))
    return [units.ms(b), units.ms(h), delta, units.pct(c.delta, signed=True), units.ratio(c.speedup),
            speedup_interval(c), verdict_cell(c.verdict)]


def delta_table(rows: Sequence[DeltaRow], total: DeltaRow | None, total_kind: str,
                flops: Mapping[str, int] | None = None, invalid: str = "") -> str:
    """Stage | Before (ms) | After (ms) | Delta (ms) | Delta | Speedup | CI | Verdict | Share | [GFLOP/s].

    ``invalid``: a non-empty mark replaces every verdict (the after side failed parity)."""
    flops = flops or {}
    show_flops = any(flops.get(r.stage) for r in rows)
    top = sum(r.head.median for r in rows if r.head is not None and r.level == 0)
    ci = confidence_label(next((r.comparison for r in rows if r.comparison is not None), None))
    headers = ["Stage", "Before (ms)", "After (ms)", "Delta (ms)", "Delta", "Speedup", ci, "Verdict",
               "Share (after)"]
    if show_flops:
        headers.append("GFLOP/s (after)")
    out = []
    for r in rows:
        cells = [stage_label(r.stage), *_delta_cells(r)]
        if invalid:
            cells[7] = invalid
        cells.append(units.pct(r.head.median / top) if r.head is not None and top else "-")
        if show_flops:
            g = gflops(flops.get(r.stage), r.head.median if r.head else None)
            cells.append(units.number(g, 2) if g is not None else "-")
        out.append(cells)
    if total is not None:
        label = "Total (end to end)" if total_kind == TOTAL_E2E else "Total (sum of stages)"
        cells = [bold(label), *(bold(c) if c not in ("-", "") else c for c in _delta_cells(total))]
        if invalid:
            cells[7] = invalid
        cells.append(bold("100%") if total_kind != TOTAL_E2E else "-")
        if show_flops:
            key = "decode" if "decode" in flops else ""
            g = gflops(flops.get(key), total.head.median if total.head else None) if key else None
            cells.append(units.number(g, 2) if g is not None else "-")
        out.append(cells)
    return table(headers, out, ["l"] + ["r"] * (len(headers) - 1))


def verdict_phrase(c: Comparison) -> str:
    """``1.23x faster (99% CI [1.20, 1.26])``, ``1.10x slower (…)`` or ``no significant change (…)``."""
    ci = f"{confidence_label(c)} {speedup_interval(c)}"
    if c.verdict is Verdict.FASTER:
        return f"{units.ratio(c.speedup)} faster, {ci}"
    if c.verdict is Verdict.SLOWER:
        return f"{units.ratio(1.0 / c.speedup if c.speedup else None)} slower, {ci}"
    text = f"no significant change: {units.ratio(c.speedup)} speedup, {ci}"
    if not c.decidable:
        text += (f"; {c.n_base} and {c.n_head} samples cannot reach p < {c.alpha:g}, the smallest p is "
                 f"{smallest_p_value(c.n_base, c.n_head):.2g}")
    return text


def total_line(total: DeltaRow | None, invalid: str = "") -> str:
    if total is None or total.comparison is None:
        return ""
    c = total.comparison
    text = f"**Total: {units.ms(c.base_median)} -> {units.ms(c.head_median)} ms ({verdict_phrase(c)})**"
    return text + (f" — {invalid}" if invalid else "")


def cumulative_line(first: DeltaRow | None) -> str:
    """``Cumulative: X -> Y ms (Z.ZZx speedup vs the first baseline, CI, verdict)``."""
    if first is None or first.comparison is None:
        return ""
    c = first.comparison
    return (f"**Cumulative: {units.ms(c.base_median)} -> {units.ms(c.head_median)} ms "
            f"({units.ratio(c.speedup)} speedup vs the first baseline; {c.verdict.value}, "
            f"{confidence_label(c)} {speedup_interval(c)})**")


def timing_table(timing: CaseTiming, flops: Mapping[str, int] | None = None, invalid: str = "",
                 peak: Mapping[str, str] | None = None) -> str:
    """One case: Stage | Time (ms) | ± IQR/2 (ms) | p99 (ms) | Share | [FLOPs (M) | GFLOP/s | % peak].

    ``peak``: per stage, the cell :func:`~.stage_work.percent_of_peak` made (the column is left out when
    empty); the total's key is ``decode``."""
    flops = flops or {}
    peak = peak or {}
    show_flops = any(flops.get(r.stage) for r in timing.stages)
    show_peak = show_flops and bool(peak)
    summaries = [(r, r.summary()) for r in timing.stages]
    top = sum(s.median for r, s in summaries if s is not None and r.level == 0)
    headers = ["Stage", "Time (ms)", "± IQR/2 (ms)", "p99 (ms)", "Share"]
    if show_flops:
        headers += ["MFLOP", "GFLOP/s"]
    if show_peak:
        headers.append("% peak")
    if invalid:
        headers.append("Valid")
    rows = []
    for r, s in summaries:
        cells = [stage_label(r.stage), units.ms(s.median if s else None), units.ms(s.iqr / 2 if s else None),
                 units.ms(s.p99 if s else None), units.pct(s.median / top) if s and top else "-"]
        if show_flops:
            f = flops.get(r.stage)
            cells += [units.number(f / 1e6, 2) if f else "-",
                      units.number(gflops(f, s.median if s else None), 2) if f else "-"]
        if show_peak:
            cells.append(peak.get(r.stage, "-"))
        if invalid:
            cells.append(invalid)
        rows.append(cells)
    if timing.total is not None and timing.total.samples_ns:
        s = timing.total.summary()
        assert s is not None
        label = "Total (end to end)" if timing.total_kind == TOTAL_E2E else "Total (sum of stages)"
        cells = [bold(label), bold(units.ms(s.median)), units.ms(s.iqr / 2), units.ms(s.p99),
                 "-" if timing.total_kind == TOTAL_E2E else bold("100%")]
        if show_flops:
            f = flops.get("decode")
            cells += [units.number(f / 1e6, 2) if f else "-",
                      units.number(gflops(f, s.median), 2) if f else "-"]
        if show_peak:
            cells.append(peak.get("decode", "-"))
        if invalid:
            cells.append(invalid)
        rows.append(cells)
    return table(headers, rows)


__all__ = ["INVALID", "cumulative_line", "delta_table", "timing_table", "total_line", "verdict_phrase"]
