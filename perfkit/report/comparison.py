"""The comparison report of ``perfkit compare``: several backends side by side, from stored runs.

Sections, each present when its suite was run: a summary per variant (parity, end-to-end decode time,
speedup over the baseline variant with CI and verdict, RTF, peak memory); parity (per variant and per
stage, with the tolerance table); per-stage vocoder and generator timing (medians side by side, the
speedup of each stage over the baseline with its verdict, and per variant the seeds' table with share,
FLOPs and achieved GFLOP/s); RTF per text length; streaming; memory; the environment; the plots.

A variant that failed parity keeps its numbers, marked INVALID in every table and hatched in plots.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..measure.peak import Roofline
from ..measure.speed_check import recorded_checks, speed_note
from ..measure.stats import summarize
from ..measure.verdict import Comparison, Verdict
from ..run.summary import summarize_case
from ..store.records import CaseRecord, Run
from . import plots as _plots
from . import units
from .environment_block import environment_block
from .escape import md
from .labels import plain_stage_label, stage_label
from .markdown import Document, bullets, table
from .memory_tables import configuration, configuration_key, memory_table, short_configuration
from .parity_tables import parity_stage_table, parity_summary_table, tolerance_table
from .rtf_tables import BATCH_NOTE, RTF_NOTE, audio_seconds, batch_of, rtf_batch_table, rtf_sweep_table, rtf_table
from .sources import ResultSet
from .stage_tables import confidence_label, speedup_interval, timing_table
from .stage_work import percent_cell, stage_costs, stage_rooflines
from .streaming_tables import streaming_table
from .timing import CaseTiming, case_timing, compare_rows, overhead_sentence
from .validity import INVALID, Validity, parity_line

PER_FRAME = ("talker_step", "sampling", "code_predictor")


@dataclass(frozen=True)
class SummaryRow:
    """One variant in the terminal and summary tables."""

    variant: str
    parity: str
    invalid: bool
    total_ms: float | None = None
    spread_ms: float | None = None
    speedup: float | None = None
    verdict: str = ""
    rtf: float | None = None
    peak_rss_mib: float | None = None


@dataclass(frozen=True)
class ComparisonReport:
    markdown: str
    summary: tuple[SummaryRow, ...]
    baseline: str
    plots: tuple[Path, ...] = field(default_factory=tuple)
    summary_of: str = "decode"
    """What the summary's total is: ``decode`` (the vocoder, stages suite) or ``synthesis`` (generator)."""


def _cell_verdict(c: Comparison | None, invalid: bool) -> str:
    if c is None:
        return "-"
    if invalid:
        return f"{units.ratio(c.speedup)} {INVALID}"
    tag = {Verdict.FASTER: "faster", Verdict.SLOWER: "slower"}.get(c.verdict, "n.s.")
    return f"{units.ratio(c.speedup)} ({tag})"


def _variant_order(results: ResultSet, preferred: Sequence[str]) -> list[str]:
    seen: list[str] = [v for v in preferred]
    for run in results.runs:
        for case in run.cases:
            if case.variant not in seen:
                seen.append(case.variant)
    present = {c.variant for r in results.runs for c in r.cases}
    return [v for v in seen if v in present]


PEAK_NOTE = ("% peak: achieved rate over this machine's measured peak (`perfkit machine`, recorded with the "
             "run): C = compute-bound stage, of the GEMM peak of the library the backend competes with in its "
             "dtype; M = memory-bound stage, of the memory bandwidth.")


def above_peak_note(rooflines: Mapping[str, Roofline]) -> str:
    """A sentence when a stage ran above 100% of its peak (the one that ran furthest above it): the peak was
    most likely measured when the machine was slower than during this run, which a speed check at the
    start of a long run on a drifting host can miss, so every % peak of the run reads too high."""
    over = [(stage, r.percent_of_peak) for stage, r in rooflines.items() if r.percent_of_peak > 100]
    if not over:
        return ""
    stage, pct = max(over, key=lambda x: x[1])
    return (f"**Above the measured peak**: {plain_stage_label(stage)} reached {pct:.0f}% of it. The peak was "
            "most likely measured when this machine was slower than during this run (a shared host), and "
            "every % peak here reads too high (`perfkit machine --refresh` on a quiet machine measures it "
            "again).")


def stage_medians(timing: CaseTiming) -> dict[str, float]:
    """Median ns per stage name, and the total under ``decode``."""
    out = {}
    for r in timing.stages:
        s = r.summary()
        if s is not None:
            out[r.stage] = s.median
    if timing.total is not None and timing.total.samples_ns:
        out["decode"] = timing.total.summary().median
    return out


def _cases(results: ResultSet, suite: str) -> list[tuple[Run, CaseRecord]]:
    """Cases of ``suite``, the latest run winning for a repeated (variant, case, threads)."""
    out: dict[tuple[str, str, str], tuple[Run, CaseRecord]] = {}
    for run in results.suite(suite):
        for case in run.cases:
            out[(case.variant, case.case.name, str(run.settings.get("threads")))] = (run, case)
    return list(out.values())


class _Builder:
    def __init__(
        self, results: ResultSet, variants: Sequence[str], plots_dir: Path | None, plot_link: str
    ) -> None:
        self.results = results
        self.validity = Validity(results.runs)
        self.variants = list(variants)
        self.baseline = self._pick_baseline()
        self.plots_dir = plots_dir
        self.plot_link = plot_link
        self.plot_paths: list[Path] = []
        self.plot_links: list[tuple[str, str]] = []
        self.doc = Document()

    def _pick_baseline(self) -> str:
        for v in self.variants:
            if not any(
                self.validity.status(v, c.case.preset).invalid
                for r in self.results.runs
                for c in r.cases
                if c.variant == v
            ):
                return v
        return self.variants[0] if self.variants else ""

    def invalid(self, variant: str, preset: str) -> bool:
        return self.validity.status(variant, preset).invalid

    def plot(self, caption: str, paths: list[Path]) -> None:
        self.plot_paths.extend(paths)
        if paths:
            self.plot_links.append((caption, f"{self.plot_link}{paths[0].name}"))

    # ------------------------------------------------------------------ sections
    def parity(self) -> None:
        records = self.validity.records()
        if not records:
            return
        self.doc.heading(2, "Parity")
        self.doc.add(
            "Every fine stage and the waveform against the float64 NumPy reference (each backend runs its "
            "own chain on the same codes); NaN, Inf, silence or a wrong shape fail outright. Generator: "
            "greedy codes against the reference's, and the logits under teacher forcing."
        )
        self.doc.add(parity_summary_table(records))
        self.doc.add(parity_stage_table(records))
        self.doc.add("Tolerances (per compute dtype):\n\n" + tolerance_table(records))

    def stage_section(self, suite: str, title: str, note: str) -> dict[str, tuple[CaseRecord, CaseTiming]]:
        items = _cases(self.results, suite)
        if not items:
            return {}
        self.doc.heading(2, title)
        self.doc.add(note)
        by_case: dict[str, dict[str, tuple[Run, CaseRecord]]] = {}
        for run, case in items:
            by_case.setdefault(case.case.name, {})[case.variant] = (run, case)
        first: dict[str, tuple[CaseRecord, CaseTiming]] = {}
        for case_name in sorted(by_case):
            present = [v for v in self.variants if v in by_case[case_name]]
            timings = {v: case_timing(by_case[case_name][v][1]) for v in present}
            records = {v: by_case[case_name][v][1] for v in present}
            peaks = {v: by_case[case_name][v][0].settings.get("machine_peaks") for v in present}
            if not first:
                first = {v: (records[v], timings[v]) for v in present}
            self.doc.heading(3, md(case_name))
            self._side_by_side(suite, present, records, timings)
            for v in present:
                case = records[v]
                inv = self.invalid(v, case.case.preset)
                self.doc.heading(4, md(v))
                costs = stage_costs(case, suite)
                rooflines = stage_rooflines(case, costs, stage_medians(timings[v]), peaks[v])
                roof = {stage: percent_cell(r) for stage, r in rooflines.items()}
                flops = {k: c.flops for k, c in costs.items()}
                self.doc.add(timing_table(timings[v], flops, INVALID if inv else "", roof))
                if roof:
                    self.doc.add(PEAK_NOTE)
                    checks = recorded_checks(by_case[case_name][v][0].settings)
                    stale = speed_note(checks) or above_peak_note(rooflines)
                    if stale:
                        self.doc.add(stale)
                frames = int(case.case.param("frames", 0))
                extra = []
                if suite == "generator" and frames:
                    per_frame = []
                    for name in PER_FRAME:
                        st = timings[v].stage(name)
                        if st is not None and st.samples_ns:
                            runs = frames - 1 if name == "talker_step" else frames
                            if runs > 0:
                                per_frame.append(
                                    f"{stage_label(name)} {units.ms(summarize(st.samples_ns).median / runs)}"
                                )
                    if per_frame:
                        extra.append("Per frame (ms): " + ", ".join(per_frame) + ".")
                overhead = [s.overhead for s in summarize_case(case) if s.overhead is not None]
                if overhead:
                    extra.append(overhead_sentence(overhead[0]))
                if case.first_call_ns is not None or case.load_ns is not None:
                    extra.append(
                        f"Load {units.ms(case.load_ns)} ms, first call {units.ms(case.first_call_ns)} ms "
                        "(kept apart from the samples)."
                    )
                if extra:
                    self.doc.add(" ".join(extra))
                self.doc.add(parity_line(self.validity.status(v, case.case.preset)))
        return first

    def _side_by_side(
        self, suite: str, present: list[str], records: dict, timings: dict[str, CaseTiming]
    ) -> None:
        names: list[str] = []
        for v in present:
            for r in timings[v].stages:
                if r.stage not in names:
                    names.append(r.stage)
        base = self.baseline if self.baseline in present else present[0]
        others = [v for v in present if v != base]
        invalid = {v: self.invalid(v, records[v].case.preset) for v in present}
        headers = ["Stage", *(md(v) + (f" {INVALID}" if invalid[v] else "") + " (ms)" for v in present)]
        headers += [f"{md(v)} vs {md(base)}" for v in others]
        rows = []
        for name in [*names, "__total__"]:
            if name == "__total__":
                cells_from = {v: timings[v].total for v in present}
                label = (
                    "**Total (end to end)**"
                    if any(t.total_kind == "end to end" for t in timings.values())
                    else "**Total (sum of stages)**"
                )
            else:
                cells_from = {v: timings[v].stage(name) for v in present}
                label = stage_label(name)
            cells = [label]
            for v in present:
                st = cells_from[v]
                cells.append(
                    units.ms(summarize(st.samples_ns).median) if st is not None and st.samples_ns else "-"
                )
            for v in others:
                c = compare_rows(cells_from[base], cells_from[v], name).comparison
                cells.append(_cell_verdict(c, invalid[v] or invalid[base]))
            rows.append(cells)
        self.doc.add(table(headers, rows))
        ci = next((compare_rows(timings[base].total, timings[v].total, "t").comparison for v in others), None)
        if others:
            self.doc.add(
                f"Speedup = {md(base)} time / variant time (> 1: faster than {md(base)}); (faster) / "
                f"(slower) only when significant (Mann-Whitney U, {confidence_label(ci)} of a bootstrap, "
                "minimum effect 3%), (n.s.) otherwise."
            )

    def rtf(self) -> None:
        runs = self.results.suite("rtf")
        if not runs:
            return
        self.doc.heading(2, "Real-time factor")
        self.doc.add(RTF_NOTE + " " + BATCH_NOTE)
        for run in runs:
            by_variant: dict[str, list[CaseRecord]] = {}
            for case in run.cases:
                by_variant.setdefault(case.variant, []).append(case)
            t = run.settings.get("threads")
            for v in [x for x in self.variants if x in by_variant]:
                self.doc.heading(3, md(v) + (f" · threads={t}" if t is not None else ""))
                cases = sorted(by_variant[v], key=lambda c: (int(c.case.param("frames", 0)), batch_of(c)))
                self.doc.add(rtf_table(cases, self.validity))
        sweep = rtf_sweep_table(runs, self.validity)
        if sweep:
            self.doc.heading(3, "Thread sweep (RTF)")
            self.doc.add(sweep)
        batches = rtf_batch_table(runs, self.validity)
        if batches:
            self.doc.heading(3, "Batch sweep (wall / utterance, aggregate xRT)")
            self.doc.add(batches)

    def streaming(self) -> None:
        items = _cases(self.results, "streaming")
        if not items:
            return
        self.doc.heading(2, "Streaming")
        self.doc.add(
            "First-chunk latency: from the text to the first audio chunk on the host (tokenize, prefill, "
            "the chunk's frames and its incremental decode). Gaps: the time between later chunks, pooled "
            "over all passes; a stream keeps up with playback while its p99 gap stays below the audio a "
            "chunk holds."
        )
        self.doc.add(streaming_table([c for _, c in items], self.validity))

    def memory(self) -> None:
        items = [(r, c) for r in self.results.timing_runs() for c in r.cases if c.memory is not None]
        if not items:
            return
        self.doc.heading(2, "Memory")
        file_backed = any(c.memory.file_backed_working_bytes is not None for _, c in items)  # type: ignore[union-attr]
        self.doc.add(
            "A memory pass in a fresh worker. Baseline: RSS before the model loads (interpreter, "
            "libraries, backend). Load peak: while the input model is built and loaded (both copies side "
            "by side). Peak RSS: while the model runs (first call and a few passes), after the input model "
            "is dropped; weights: the parameters in the variant's compute dtype; working = peak RSS − baseline − "
            "weights (activations, scratch, caches, extra copies)"
            + ("; of which file-backed: pages of mapped files (the libraries' code that the first calls page "
               "in), not allocations." if file_backed else ".")
        )
        order = {v: i for i, v in enumerate(self.variants)}
        items.sort(key=lambda rc: (configuration_key(*rc), order.get(rc[1].variant, 99)))
        self.doc.add(memory_table(items, self.validity))

    # ------------------------------------------------------------------ plots
    def make_plots(self, vocoder: dict[str, tuple[CaseRecord, CaseTiming]]) -> None:
        if self.plots_dir is None:
            return
        if vocoder:
            invalid = [v for v, (c, _) in vocoder.items() if self.invalid(v, c.case.preset)]
            top = []
            for _, t in vocoder.values():
                top.extend(r.stage for r in t.stages if r.level == 0 and r.stage not in top)
            medians = {
                v: {r.stage: summarize(r.samples_ns).median / 1e6 for r in t.stages if r.samples_ns}
                for v, (_, t) in vocoder.items()
            }
            self.plot(
                "Per-stage time per backend (stacked)",
                _plots.stage_bars(
                    [plain_stage_label(s) for s in top],
                    {v: {plain_stage_label(k): x for k, x in m.items()} for v, m in medians.items()},
                    self.plots_dir,
                    "stages",
                    "Vocoder stages per backend",
                    invalid,
                ),
            )
            base = self.baseline if self.baseline in vocoder else next(iter(vocoder))
            others = [v for v in vocoder if v != base]
            if others:
                names = [r.stage for r in vocoder[base][1].stages if r.level == 0]
                speed = {}
                for v in others:
                    for name in names:
                        c = compare_rows(
                            vocoder[base][1].stage(name), vocoder[v][1].stage(name), name
                        ).comparison
                        if c is not None:
                            speed[(v, plain_stage_label(name))] = c.speedup
                self.plot(
                    f"Speedup over {base} per stage",
                    _plots.speedup_heatmap(
                        others,
                        [plain_stage_label(n) for n in names],
                        speed,
                        base,
                        self.plots_dir,
                        "speedup",
                        invalid,
                    ),
                )
        rtf_series: dict[str, list[_plots.Band]] = {}
        rtf_invalid = []
        for _, case in _cases(self.results, "rtf"):
            t = case_timing(case)
            audio = audio_seconds(case)
            if t.total is None or not t.total.samples_ns or not audio:
                continue
            s = summarize(t.total.samples_ns)
            b = batch_of(case)
            line = case.variant + (f" · batch={b}" if b > 1 else "")  # one line per batch size
            rtf_series.setdefault(line, []).append(
                _plots.Band(audio / b, s.median / 1e9 / audio, s.q1 / 1e9 / audio, s.q3 / 1e9 / audio)
            )
            if self.invalid(case.variant, case.case.preset):
                rtf_invalid.append(line)
        if rtf_series:
            self.plot(
                "RTF against length (IQR bands)",
                _plots.rtf_vs_length(rtf_series, self.plots_dir, invalid=rtf_invalid),
            )
        chunk_series: dict[str, list[_plots.Band]] = {}
        for _, case in _cases(self.results, "streaming"):
            series = case.series_named("stream")
            if series is None or not series.stages or not series.n:
                continue
            s = summarize(series.stages[0].wall_ns)
            chunk_series.setdefault(case.variant, []).append(
                _plots.Band(float(case.case.param("chunk_frames", 0)), s.median / 1e6, s.q1 / 1e6, s.q3 / 1e6)
            )
        if chunk_series:
            inv = [
                v
                for v in chunk_series
                if any(
                    self.invalid(v, c.case.preset)
                    for _, c in _cases(self.results, "streaming")
                    if c.variant == v
                )
            ]
            self.plot(
                "First-chunk latency against chunk size",
                _plots.first_chunk_latency(chunk_series, self.plots_dir, invalid=inv),
            )
        mem_items = [(r, c) for r in self.results.timing_runs() for c in r.cases if c.memory is not None]
        if mem_items:
            order = {v: i for i, v in enumerate(self.variants)}
            mem_items.sort(key=lambda rc: (configuration_key(*rc), order.get(rc[1].variant, 99)))
            label = _memory_labels(mem_items)
            configs: list[str] = []
            values: dict[str, dict[str, tuple[float, float, float]]] = {}
            for run, case in mem_items:
                m = case.memory
                assert m is not None
                conf = label(run, case)
                if conf not in configs:
                    configs.append(conf)
                weights = (m.weight_bytes or case.weight_bytes or 0) / 2**20
                base_mib = m.baseline_rss_bytes / 2**20
                values.setdefault(case.variant, {})[conf] = (
                    base_mib,
                    weights,
                    m.inference_peak_bytes / 2**20 - base_mib - weights,
                )
            inv = [
                v
                for v in values
                if any(self.invalid(v, c.case.preset) for _, c in mem_items if c.variant == v)
            ]
            self.plot(
                "Peak memory by configuration",
                _plots.memory_bars(configs, values, self.plots_dir, invalid=inv),
            )

    def summary(self, vocoder: dict[str, tuple[CaseRecord, CaseTiming]]) -> tuple[SummaryRow, ...]:
        rows = []
        mem = {}
        for r in self.results.timing_runs():
            for c in r.cases:
                if c.memory is not None:
                    mem[c.variant] = max(mem.get(c.variant, 0), c.memory.inference_peak_bytes)
        parity_any = {}
        for v in self.variants:
            presets = {c.case.preset for r in self.results.runs for c in r.cases if c.variant == v}
            statuses = [self.validity.status(v, p) for p in sorted(presets)]
            fail = next((s for s in statuses if s.invalid), None)
            parity_any[v] = fail or next(
                (s for s in statuses if s.state == "pass"), statuses[0] if statuses else None
            )
        base = vocoder.get(self.baseline)
        for v in self.variants:
            status = parity_any.get(v)
            invalid = bool(status and status.invalid)
            row = SummaryRow(
                v,
                status.cell.strip("*") if status else "unchecked",
                invalid,
                peak_rss_mib=mem[v] / 2**20 if v in mem else None,
            )
            if v in vocoder:
                case, t = vocoder[v]
                if t.total is not None and t.total.samples_ns:
                    s = summarize(t.total.samples_ns)
                    audio = audio_seconds(case)
                    c = (
                        compare_rows(base[1].total, t.total, "total").comparison
                        if base and v != self.baseline
                        else None
                    )
                    row = SummaryRow(
                        v,
                        row.parity,
                        invalid,
                        s.median / 1e6,
                        s.iqr / 2e6,
                        c.speedup if c else (1.0 if v == self.baseline else None),
                        (INVALID if invalid else c.verdict.value)
                        if c
                        else ("baseline" if v == self.baseline else ""),
                        s.median / 1e9 / audio if audio else None,
                        row.peak_rss_mib,
                    )
            rows.append(row)
        return tuple(rows)


def _memory_labels(items: Sequence[tuple[Run, CaseRecord]]) -> Callable[[Run, CaseRecord], str]:
    """The plot label function for memory bars: the short form unless two configurations share it."""
    full = {configuration(r, c) for r, c in items}
    short = {short_configuration(r, c) for r, c in items}
    return short_configuration if len(short) == len(full) else configuration


def render_comparison(
    results: ResultSet,
    *,
    variants: Sequence[str] = (),
    title: str = "",
    command: Sequence[str] = (),
    plots_dir: str | os.PathLike[str] | None = None,
    plot_link: str = "plots/",
    skipped: Sequence[tuple[str, str]] = (),
) -> ComparisonReport:
    """The comparison report of ``results`` (see the module docstring); plots go to ``plots_dir`` and are
    linked as ``plot_link + file name``."""
    b = _Builder(
        results, _variant_order(results, variants), Path(plots_dir) if plots_dir else None, plot_link
    )
    doc = b.doc
    doc.heading(1, md(title) if title else "perfkit compare: " + " vs ".join(md(v) for v in b.variants))
    intro = [f"Variants: {', '.join(md(v) for v in b.variants)}; baseline for speedups: {md(b.baseline)}."]
    if command:
        intro.append("Command: " + md(" ".join(command)))
    intro.append("Runs: " + ", ".join(f"{md(r.run_id)} ({md(r.suite)})" for r in results.runs))
    doc.add(bullets(intro))
    skipped_all = list(skipped) + [(s.variant, s.reason) for r in results.runs for s in r.skipped]
    if skipped_all:
        doc.add(
            "Skipped (not available here):\n\n"
            + bullets([f"{md(v)}: {md(reason)}" for v, reason in dict(skipped_all).items()])
        )
    failed = [(r.suite, c) for r in results.runs for c in r.cases if c.failures and r.suite != "parity"]
    unavailable = [(s, c) for s, c in failed if all(f.kind == "unavailable" for f in c.failures)]
    failed = [(s, c) for s, c in failed if (s, c) not in unavailable]
    if unavailable:
        doc.add(
            "Not available for a suite (skipped):\n\n"
            + bullets([f"{md(s)} {md(c.variant)}: {md(c.failures[0].message)}" for s, c in unavailable])
        )
    if failed:
        doc.add(
            "Failures:\n\n"
            + bullets(
                [
                    f"{md(s)} {md(c.variant)} {md(c.case.name)}: {md(f.kind)} in "
                    f"{md(f.phase)}: {md(f.message)}"
                    for s, c in failed
                    for f in c.failures
                ]
            )
        )
    summary_at = len(doc._blocks)
    b.parity()
    vocoder = b.stage_section(
        "stages",
        "Vocoder per stage",
        "Medians of the raw samples (ms per decode). Fine stages are timed with a device sync "
        "after each; decoder blocks also whole (coarse series); the total is end to end with "
        "one sync.",
    )
    generator = b.stage_section(
        "generator",
        "Generator per stage",
        "Per utterance (ms): per-frame stages (talker step, sampling, code predictor) summed over the "
        "frames of a pass, with a sync after each; the total is end to end.",
    )
    b.rtf()
    b.streaming()
    b.memory()
    b.make_plots(vocoder)
    # The summary is the vocoder decode; a comparison without the stages suite summarises the generator's
    # end-to-end synthesis instead (text -> audio), so its first table is never empty.
    source, what = (vocoder, "decode") if vocoder else (generator, "synthesis")
    rows = b.summary(source)
    summary_md = _summary_table(rows, b.baseline, source, what)
    if summary_md:
        doc._blocks.insert(summary_at, "## Summary\n\n" + summary_md)
    doc.heading(2, "Environment")
    doc.add(environment_block(list(results.runs)))
    if b.plot_links:
        doc.heading(2, "Plots")
        doc.add("\n\n".join(f"![{md(c)}]({p})" for c, p in b.plot_links))
    return ComparisonReport(doc.text(), rows, b.baseline, tuple(b.plot_paths), what)


def _summary_table(rows: Sequence[SummaryRow], baseline: str, vocoder: dict, what: str = "decode") -> str:
    """Variant | Parity | {What} (ms) | spread | Speedup | CI | Verdict | RTF | xRT | Peak RSS; ``vocoder`` maps
    each variant to the (case, timing) summarised, ``what`` names its total (``decode`` or ``synthesis``)."""
    if not rows:
        return ""
    ci = "99% CI"
    out = []
    base = vocoder.get(baseline)
    for r in rows:
        c = None
        if base is not None and r.variant in vocoder and r.variant != baseline:
            c = compare_rows(base[1].total, vocoder[r.variant][1].total, "total").comparison
            if c is not None:
                ci = confidence_label(c)
        out.append(
            [
                md(r.variant),
                INVALID if r.invalid else r.parity,
                units.ms(r.total_ms * 1e6 if r.total_ms is not None else None),
                units.ms(r.spread_ms * 1e6 if r.spread_ms is not None else None),
                units.ratio(r.speedup),
                speedup_interval(c) if c else "-",
                md(r.verdict) or "-",
                units.rtf(r.rtf),
                units.rtf(1 / r.rtf) if r.rtf else "-",
                units.number(r.peak_rss_mib, 1),
            ]
        )
    return (
        table(
            [
                "Variant",
                "Parity",
                f"{what.capitalize()} (ms)",
                "± IQR/2 (ms)",
                f"Speedup vs {md(baseline)}",
                ci,
                "Verdict",
                f"RTF ({what})",
                f"xRT ({what})",
                "Peak RSS (MiB)",
            ],
            out,
            ["l", "l", "r", "r", "r", "r", "l", "r", "r", "r"],
        )
        + "\n\nRTF = wall time / audio duration (lower is better); xRT = its inverse (higher is better)."
    )
