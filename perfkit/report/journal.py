"""Optimization journals: before/after entries in the form of the hand-written seeds, from stored runs.

An entry of the log compares two sets of results (base -> head): for every case measured on both
sides — matched by suite, backend variant, case and thread setting — a per-stage table with Before /
After / Delta / Speedup, the bootstrap CI of the speedup and the verdict of
:func:`perfkit.measure.verdict.compare_samples` (non-significant changes shown as such), the total and
the cumulative speedup against the first baseline, and the parity line under every table. When the
speed checks of one side's runs (:mod:`perfkit.measure.speed_check`) differ from the other side's beyond
the tolerance, the summary says that the machine ran at another speed for them. A history
(``--history A B C …``) is a sequence of such entries, each against its predecessor, plus a history
table. Then the memory, RTF and streaming tables where those suites were run, the py-spy profiles
(``perfkit profile`` runs, with links to their flame graphs), the environment block, and links to the
plots.

The markdown is a pure function of the stored runs and the options: no rendering time, sorted
iteration everywhere, fixed float formatting, a fixed bootstrap seed. Rendering twice gives the same
bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..measure.speed_check import recorded_checks, speed_shift
from ..measure.verdict import DEFAULT_ALPHA, DEFAULT_BOOTSTRAP, DEFAULT_MIN_EFFECT, Verdict
from ..store.pooling import pool_cases
from ..store.records import CaseRecord, Run
from . import units
from .environment_block import environment_block
from .escape import md
from .labels import commit_label, fine_label, verdict_cell
from .markdown import Document, table
from .memory_tables import memory_delta_table
from .profiles import ProfileLink, profiles_section
from .rtf_tables import BATCH_NOTE, RTF_NOTE, rtf_delta_table
from .sources import ResultSet
from .stage_tables import (
    confidence_label,
    cumulative_line,
    delta_table,
    speedup_interval,
    total_line,
)
from .stage_work import stage_flops
from .streaming_tables import chunk_stats
from .timing import DeltaRow, case_timing, compare_rows, compare_timings
from .validity import INVALID, Validity, parity_line

#: Suites whose cases get a per-stage Before/After table.
STAGE_TABLE_SUITES_EXCLUDED = ("parity", "memory", "streaming", "rtf")

CaseKey = tuple[str, str, str, str]
"""(suite, variant, case name, threads)."""


@dataclass(frozen=True)
class JournalEntry:
    """One point of the log: a label and its results."""

    label: str
    results: ResultSet


@dataclass(frozen=True)
class Plot:
    """A plot to link: its caption and its path relative to the markdown file."""

    caption: str
    path: str


@dataclass(frozen=True)
class Journal:
    """The rendered markdown and what it found in the last step (base -> head)."""

    markdown: str
    regressions: tuple[str, ...]
    invalid: tuple[str, ...]
    #: Stages the table calls slower whose p-value does not survive the Holm correction over every stage
    #: comparison of the last step (``comparisons`` of them): reported, never failing.
    uncorrected: tuple[str, ...] = ()
    comparisons: int = 0


def _threads(run: Run) -> str:
    t = run.settings.get("threads")
    return "" if t is None else str(t)


def _cases_by_key(results: ResultSet) -> dict[CaseKey, list[tuple[Run, CaseRecord]]]:
    out: dict[CaseKey, list[tuple[Run, CaseRecord]]] = {}
    for run in results.timing_runs():
        for case in run.cases:
            out.setdefault((run.suite, case.variant, case.case.name, _threads(run)), []).append((run, case))
    return out


def pooled_cases(results: ResultSet) -> dict[CaseKey, tuple[Run, CaseRecord, int]]:
    """Every timing case of the results by key, with the number of runs pooled into it. Runs of one key that
    timed the same code on the same host are pooled (:func:`perfkit.store.pooling.pool_cases`: their samples
    concatenated); a later run of other code replaces the earlier ones."""
    return {key: pool_cases(records) for key, records in _cases_by_key(results).items()}


def _without_counts(pooled: dict[CaseKey, tuple[Run, CaseRecord, int]]) -> dict[CaseKey, tuple[Run, CaseRecord]]:
    return {key: (run, case) for key, (run, case, _) in pooled.items()}


def timing_cases(results: ResultSet) -> dict[CaseKey, tuple[Run, CaseRecord]]:
    """:func:`pooled_cases` without the run counts."""
    return _without_counts(pooled_cases(results))


def key_heading(key: CaseKey) -> str:
    suite, variant, case, threads = key
    t = f" · threads={md(threads)}" if threads else ""
    return f"{md(suite)} · {md(variant)} · {md(case)}{t}"


def entry_commit(entry: JournalEntry) -> str:
    return commit_label(*entry.results.commit)


def _method(alpha: float, min_effect: float) -> str:
    return (
        "Times are medians of the raw samples in milliseconds. Speedup = before / after; its "
        f"{100 * (1 - alpha):g}% confidence interval is a percentile bootstrap "
        f"({DEFAULT_BOOTSTRAP} resamples, fixed seed) of the ratio of medians. A stage is **faster** or "
        "**slower** only when a two-sided "
        f"Mann-Whitney U test gives p < {alpha:g}, the interval excludes 1 and the change is at least "
        f"{100 * min_effect:g}%; anything else is *no significant change*. Totals are end to end (one "
        "synchronisation per pass) where the suite measured that, so per-stage timing overhead does not "
        "enter them. Rows of a variant that failed parity against the float64 NumPy reference are marked "
        f"{INVALID}."
    )


def _pooling_note(pooled: Sequence[tuple[str, int]]) -> str:
    counts = ", ".join(f"{md(label)}: {n} runs" for label, n in pooled)
    return ("Repeated runs are pooled: where an entry holds several runs of one case that timed the same code "
            "(source hash) on the same host, every statistic below is taken over the samples of all of them "
            f"({counts}); a run of other code replaces the earlier ones.")


def _entries_table(entries: Sequence[JournalEntry]) -> str:
    rows = []
    for i, e in enumerate(entries):
        suites = sorted({r.suite for r in e.results.runs})
        started = min((r.started_utc for r in e.results.runs), default="-")
        rows.append(
            [
                str(i),
                md(e.label),
                md(entry_commit(e)),
                md(", ".join(suites)),
                str(len(e.results.runs)),
                md(started),
            ]
        )
    return table(
        ["Entry", "Label", "Commit", "Suites", "Runs", "First run started (UTC)"],
        rows,
        ["r", "l", "l", "l", "r", "l"],
    )


def _runs_list(entries: Sequence[JournalEntry]) -> str:
    lines = []
    for e in entries:
        for r in e.results.runs:
            lines.append(f"- {md(e.label)}: {md(r.run_id)} ({md(r.suite)}, {md(r.status)})")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Step:
    """One entry against its predecessor: the matched cases and their rows."""

    base: JournalEntry
    head: JournalEntry
    keys: tuple[CaseKey, ...]


def _summary_table(
    first: JournalEntry,
    step: _Step,
    validity_head: Validity,
    cases_first: dict,
    cases_base: dict,
    cases_head: dict,
) -> str:
    rows = []
    ci = "99% CI"
    for key in step.keys:
        suite, variant, case, threads = key
        if suite in ("memory", "streaming"):
            continue
        _, b = cases_base[key]
        _, h = cases_head[key]
        tb, th = case_timing(b), case_timing(h)
        total = compare_rows(tb.total, th.total, "total")
        c = total.comparison
        if c is None:
            continue
        ci = confidence_label(c)
        status = validity_head.status(variant, h.case.preset)
        cumulative = "-"
        if key in cases_first:
            first = compare_rows(case_timing(cases_first[key][1]).total, th.total, "total").comparison
            if first is not None:
                cumulative = units.ratio(first.speedup)
        rows.append(
            [
                md(suite),
                md(variant),
                md(case + (f" threads={threads}" if threads else "")),
                units.ms(c.base_median),
                units.ms(c.head_median),
                units.pct(c.delta, signed=True),
                units.ratio(c.speedup),
                speedup_interval(c),
                INVALID if status.invalid else verdict_cell(c.verdict),
                cumulative,
                status.cell,
            ]
        )
    if not rows:
        return ""
    return table(
        [
            "Suite",
            "Variant",
            "Case",
            "Before (ms)",
            "After (ms)",
            "Delta",
            "Speedup",
            ci,
            "Verdict",
            "Cumulative",
            "Parity (after)",
        ],
        rows,
        ["l", "l", "l", "r", "r", "r", "r", "r", "l", "r", "l"],
    )


def _history_table(entries: Sequence[JournalEntry], per_entry: Sequence[dict]) -> str:
    keys = sorted({k for cases in per_entry for k in cases if k[0] not in ("memory", "streaming")})
    rows = []
    for key in keys:
        first = None
        prev = None
        for i, cases in enumerate(per_entry):
            if key not in cases:
                continue
            total = case_timing(cases[key][1]).total
            if total is None or not total.samples_ns:
                continue
            vs_prev = compare_rows(prev, total, "total").comparison if prev is not None else None
            vs_first = compare_rows(first, total, "total").comparison if first is not None else None
            rows.append(
                [
                    key_heading(key),
                    md(entries[i].label),
                    md(entry_commit(entries[i])),
                    units.ms(total.summary().median),  # type: ignore[union-attr]
                    units.ratio(vs_prev.speedup) if vs_prev else "-",
                    verdict_cell(vs_prev.verdict) if vs_prev else "-",
                    units.ratio(vs_first.speedup) if vs_first else "-",
                ]
            )
            first = first or total
            prev = total
    if not rows:
        return ""
    return table(
        [
            "Case",
            "Entry",
            "Commit",
            "Total (ms)",
            "vs previous",
            "Verdict vs previous",
            "Cumulative vs first",
        ],
        rows,
        ["l", "l", "l", "r", "r", "l", "r"],
    )


def _streaming_delta(pairs: Sequence[tuple[CaseRecord, CaseRecord]], invalid_of) -> str:
    rows = []
    ci = "99% CI"
    for b, h in sorted(pairs, key=lambda p: (p[1].variant, int(p[1].case.param("chunk_frames", 0)))):
        sb, sh = b.series_named("stream"), h.series_named("stream")
        if sb is None or sh is None or not sb.stages or not sh.stages:
            continue
        from .timing import StageSamples

        row = compare_rows(
            StageSamples("chunk_00", sb.stages[0].wall_ns),
            StageSamples("chunk_00", sh.stages[0].wall_ns),
            "first",
        )
        c = row.comparison
        if c is None:
            continue
        ci = confidence_label(c)
        _, _, _, _, p99_b, _ = chunk_stats(b)
        _, _, _, _, p99_h, _ = chunk_stats(h)
        rows.append(
            [
                md(h.variant),
                str(h.case.param("chunk_frames", "-")),
                units.ms(c.base_median),
                units.ms(c.head_median),
                units.ratio(c.speedup),
                speedup_interval(c),
                invalid_of(h) or verdict_cell(c.verdict),
                units.ms(p99_b),
                units.ms(p99_h),
            ]
        )
    if not rows:
        return ""
    return table(
        [
            "Variant",
            "Chunk (frames)",
            "First chunk before (ms)",
            "First chunk after (ms)",
            "Speedup",
            ci,
            "Verdict",
            "Gap p99 before (ms)",
            "Gap p99 after (ms)",
        ],
        rows,
    )


def render_journal(
    entries: Sequence[JournalEntry],
    *,
    title: str = "",
    plots: Sequence[Plot] = (),
    profiles: Sequence[ProfileLink] = (),
) -> Journal:
    """The journal over ``entries`` (at least two: the first is the baseline); ``profiles``
    (:func:`perfkit.report.profiles.profile_links`) get a section linking their flame graphs."""
    if len(entries) < 2:
        raise ValueError("a journal needs at least two entries (a base and a head)")
    pooled_per_entry = [pooled_cases(e.results) for e in entries]
    per_entry = [_without_counts(p) for p in pooled_per_entry]
    validities = [Validity(e.results.runs) for e in entries]
    doc = Document()
    first, last = entries[0], entries[-1]
    doc.heading(1, md(title) if title else f"Optimization journal: {md(first.label)} -> {md(last.label)}")
    doc.add(
        "Generated by `perfkit journal` from stored results; regenerating it from the same result files "
        "gives the same text."
    )
    doc.add(_entries_table(entries))
    most = [max((n for _, _, n in p.values()), default=1) for p in pooled_per_entry]
    pooled = [(e.label, n) for e, n in zip(entries, most, strict=True) if n > 1]
    if pooled:
        doc.add(_pooling_note(pooled))
    doc.add(_method(DEFAULT_ALPHA, DEFAULT_MIN_EFFECT))

    slower: list[tuple[float, str]] = []
    p_values: list[float] = []
    invalid: list[str] = []
    steps = []
    for i in range(1, len(entries)):
        keys = tuple(sorted(set(per_entry[i - 1]) & set(per_entry[i])))
        steps.append(_Step(entries[i - 1], entries[i], keys))

    last_step = steps[-1]
    doc.heading(2, "Summary")
    doc.add(
        f"{md(last_step.base.label)} -> {md(last_step.head.label)}; cumulative against {md(first.label)}."
    )
    summary = _summary_table(first, last_step, validities[-1], per_entry[0], per_entry[-2], per_entry[-1])
    doc.add(summary or "No case was timed on both sides (memory and parity, where measured, follow).")
    only = sorted(set(per_entry[-1]) ^ set(per_entry[-2]))
    if only:
        doc.add(
            "Measured on one side only (not compared): "
            + "; ".join(f"{key_heading(k)} ({'after' if k in per_entry[-1] else 'before'})" for k in only)
            + "."
        )
    for step in steps:
        shift = speed_shift([recorded_checks(r.settings) for r in step.base.results.runs],
                            [recorded_checks(r.settings) for r in step.head.results.runs])
        if shift:
            doc.add(shift if len(steps) == 1 else f"{md(step.base.label)} -> {md(step.head.label)}: {shift}")
    if len(entries) > 2:
        doc.heading(2, "History")
        doc.add(_history_table(entries, per_entry))

    for n, step in enumerate(steps, start=1):
        last_one = n == len(steps)
        base_cases, head_cases = per_entry[n - 1], per_entry[n]
        vb, vh = validities[n - 1], validities[n]
        doc.heading(2, f"Entry {n}: {md(step.head.label)}" if len(steps) > 1 else "Per-stage timing")
        if len(steps) > 1:
            doc.add(
                f"Before: {md(step.base.label)} ({md(entry_commit(step.base))}); "
                f"after: {md(step.head.label)} ({md(entry_commit(step.head))})."
            )
        stage_keys = [k for k in step.keys if k[0] not in STAGE_TABLE_SUITES_EXCLUDED]
        if not stage_keys:
            doc.add("No per-stage timings on both sides.")
        for key in stage_keys:
            suite, variant, case_name, _ = key
            run_h, h = head_cases[key]
            _, b = base_cases[key]
            status_h = vh.status(variant, h.case.preset)
            status_b = vb.status(variant, b.case.preset)
            mark = ""
            if status_h.invalid:
                mark = f"{INVALID} (parity)"
                if last_one:
                    invalid.append(f"{suite} {variant} {case_name}: {status_h.reason}")
            elif status_b.invalid:
                mark = f"{INVALID} (parity before)"
            rows, total = compare_timings(case_timing(b), case_timing(h))
            doc.heading(3, key_heading(key))
            doc.add(delta_table(rows, total, case_timing(h).total_kind, stage_flops(h, suite), mark))
            doc.add(total_line(total, mark))
            if n > 1 and key in per_entry[0]:
                doc.add(
                    cumulative_line(
                        compare_rows(case_timing(per_entry[0][key][1]).total, case_timing(h).total, "total")
                    )
                )
            doc.add(parity_line(status_h, "Parity (after)"))
            if (
                status_b.record is not None
                and status_h.record is not None
                and status_b.record.waveform
                and status_h.record.waveform
                and not status_b.invalid
            ):
                doc.add(
                    f"Parity (before): SNR {units.snr_db(status_b.record.waveform.snr_db)}, correlation "
                    f"{units.correlation(status_b.record.waveform.correlation)}."
                )
            if last_one and not mark:
                slower.extend(_slower(key, rows, total))
                p_values.extend(r.comparison.p_value for r in [*rows, *([total] if total else [])]
                                if r.comparison is not None)
        if last_one:
            _suite_sections(doc, step, base_cases, head_cases, vh)

    if profiles:
        doc.heading(2, "Profiles")
        doc.add(profiles_section(profiles))
    doc.heading(2, "Environment")
    for e in entries:
        doc.heading(3, md(e.label))
        doc.add(environment_block(e.results.runs))
    doc.heading(2, "Runs")
    doc.add(_runs_list(entries))
    if plots:
        doc.heading(2, "Plots")
        doc.add("\n\n".join(f"![{md(p.caption)}]({p.path})" for p in plots))
    threshold = holm_threshold(p_values, DEFAULT_ALPHA)
    return Journal(doc.text(), tuple(m for p, m in slower if p <= threshold), tuple(invalid),
                   tuple(m for p, m in slower if p > threshold), len(p_values))


def holm_threshold(p_values: Sequence[float], alpha: float) -> float:
    """The largest p-value Holm's step-down procedure rejects at family-wise level ``alpha`` (``-1`` if
    none): sorted ascending, ``p_(i)`` is rejected while ``p_(j) <= alpha / (m - j)`` for every ``j <= i``.

    A journal tests every stage of every variant and case (a hundred comparisons is usual): at a
    per-test ``alpha`` of 0.01 one of them passes for a regression by chance about as often as not, so
    the gate asks each regression to survive the correction."""
    threshold = -1.0
    ordered = sorted(p_values)
    for i, p in enumerate(ordered):
        if p > alpha / (len(ordered) - i):
            break
        threshold = p
    return threshold


def _slower(key: CaseKey, rows: Sequence[DeltaRow], total: DeltaRow | None) -> list[tuple[float, str]]:
    """``(p-value, message)`` of each row whose verdict is slower."""
    out = []
    for r in [*rows, *([total] if total is not None else [])]:
        if r.comparison is not None and r.comparison.verdict is Verdict.SLOWER:
            label = "total" if r is total else fine_label(r.stage)  # "Block 2 tconv", not "tconv"
            out.append((r.comparison.p_value,
                        f"{key[0]} {key[1]} {key[2]}: {label} {units.ratio(1 / r.comparison.speedup)} slower"))
    return out


def _suite_sections(doc: Document, step: _Step, base_cases: dict, head_cases: dict, vh: Validity) -> None:
    """RTF, streaming and memory sections of the last step."""

    def invalid_of(case: CaseRecord) -> str:
        return INVALID if vh.status(case.variant, case.case.preset).invalid else ""

    rtf = [(base_cases[k][1], head_cases[k][1]) for k in step.keys if k[0] == "rtf"]
    if rtf:
        doc.heading(2, "Real-time factor")
        doc.add(RTF_NOTE + " " + BATCH_NOTE)
        by_variant: dict[tuple[str, str], list[tuple[CaseRecord, CaseRecord]]] = {}
        for k in step.keys:
            if k[0] == "rtf":
                by_variant.setdefault((k[1], k[3]), []).append((base_cases[k][1], head_cases[k][1]))
        for (variant, threads), pairs in sorted(by_variant.items()):
            heading = md(variant) + (f" · threads={md(threads)}" if threads else "")
            doc.heading(3, heading)
            doc.add(
                rtf_delta_table(
                    sorted(pairs, key=lambda p: int(p[1].case.param("frames", 0))), invalid_of(pairs[0][1])
                )
            )
            doc.add(parity_line(vh.status(variant, pairs[0][1].case.preset), "Parity (after)"))
    stream = [(base_cases[k][1], head_cases[k][1]) for k in step.keys if k[0] == "streaming"]
    if stream:
        doc.heading(2, "Streaming")
        doc.add("First-chunk latency (text to the first audio chunk) and the p99 gap between later chunks.")
        doc.add(_streaming_delta(stream, invalid_of))
    memory = [
        (base_cases[k][0], base_cases[k][1], head_cases[k][1])
        for k in step.keys
        if head_cases[k][1].memory is not None and base_cases[k][1].memory is not None
    ]
    if memory:
        doc.heading(2, "Memory")
        doc.add("Peak RSS while the model runs, in a fresh worker's memory pass; working = peak − baseline − "
                "weights.")
        by_variant2: dict[str, list] = {}
        for run, b, h in memory:
            by_variant2.setdefault(h.variant, []).append((run, b, h))
        for variant, items in sorted(by_variant2.items()):
            doc.heading(3, md(variant))
            doc.add(memory_delta_table(items))
