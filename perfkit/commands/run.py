"""``perfkit run``: measure backend variants on a suite's cases, store the run, print a summary."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..errors import BackendUnavailable, InputError
from ..measure.protocol import Protocol
from ..measure.verdict import compare_samples
from ..report.escape import rich_text
from ..run.engine import Observer, run_plan
from ..run.plan import Plan, WorkerSettings, make_plan
from ..run.suite import CaseRequest, get_suite
from ..run.summary import summarize_case
from ..store.files import DEFAULT_RESULTS_DIR
from ..store.records import Case, CaseRecord, Failure, Run

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``512M``, ``2G``, ``1.5GiB``, ``1048576`` -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 2G)")
    scale = 1024 ** "bkmgt".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * scale)


def format_ns(ns: float | None) -> str:
    """A duration with a unit that keeps 3-4 significant digits: ``812 ns``, ``12.3 µs``, ``4.56 ms``."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            v = ns / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{ns:.0f} ns"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="measure backends on a suite and store the result",
        description="Measure each backend variant on the suite's cases, each in its own worker process with "
                    "interleaved rounds; write one result file under --results and print a summary. "
                    "Unavailable variants are reported and skipped.",
        epilog="Exit status: 0 when every measurement completed, 1 when some failed (crash, timeout, out of "
               "memory: recorded with the reason), 130 when interrupted (completed rounds are saved).",
    )
    p.add_argument("--backend", action="append", required=True, metavar="SPEC",
                   help="backend variant, repeatable: numpy, numpy:dtype=float64, torch:dtype=bfloat16")
    p.add_argument("--suite", default="stages", help="suite to run (default: stages)")
    p.add_argument("--preset", default="tiny", help="model preset (default: tiny)")
    p.add_argument("--frames", type=int, action="append", metavar="N", help="frames per case, repeatable")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic weights and inputs (default 0)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="suite parameter, repeatable")
    p.add_argument("--threads", type=int, metavar="N", help="threads for every library in each worker")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="seconds a worker may take for one request (set-up or one round; default 600)")
    p.add_argument("--memory-limit", type=parse_size, metavar="SIZE",
                   help="address-space limit per worker, e.g. 4G (exceeding it fails that variant)")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="skip the memory pass (a memory suite runs it anyway)")
    d = Protocol()
    p.add_argument("--budget", type=float, metavar="S",
                   help=f"measuring seconds per variant and case (default: the suite's, else {d.budget_s:g})")
    p.add_argument("--min-samples", type=int, metavar="N", help=f"default: the suite's, else {d.min_samples}")
    p.add_argument("--max-samples", type=int, metavar="N", help=f"default: the suite's, else {d.max_samples}")
    p.add_argument("--warmup", type=int, metavar="N",
                   help=f"warm-up passes (default: the suite's, else {d.warmup_rounds})")
    p.add_argument("--round-samples", type=int, metavar="N",
                   help="samples per visit before switching to the next variant "
                        f"(default: the suite's, else {d.round_samples})")
    p.add_argument("--visit-warmup", type=int, metavar="N",
                   help="untimed passes at the start of every visit, so a process that waited while other "
                        f"variants ran is warm again (default: the suite's, else {d.visit_warmup})")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes per variant, visited in turn (default 1); see `perfkit compare --help`")
    p.add_argument("--worker-visits", type=int, metavar="N",
                   help="replace each worker process by a fresh one after N visits (default 0: never); "
                        "see `perfkit compare --help`")
    p.add_argument("--target-iqr", type=float, metavar="F",
                   help="stop early once IQR/median of every series is below this "
                        f"(default: the suite's, else {d.target_rel_iqr:g})")
    p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="results directory")
    p.set_defaults(func=run)


class WarningsObserver(Observer):
    """Prints the pre-flight warnings."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def run_started(self, plan: Plan, warnings: Sequence[str]) -> None:
        for w in warnings:
            self.console.print(f"[yellow]warning: {rich_text(w)}[/yellow]", highlight=False, soft_wrap=True)


class ProgressObserver(WarningsObserver):
    """Rich progress bars, one per variant of the current case (and the warnings)."""

    def __init__(self, console: Console, progress: Progress, max_samples: int) -> None:
        super().__init__(console)
        self.progress = progress
        self.max = max_samples
        self.tasks: dict[str, Any] = {}

    def case_started(self, case: Case, variants: Sequence[str]) -> None:
        for task in self.tasks.values():
            self.progress.remove_task(task)
        self.tasks = {v: self.progress.add_task(f"{_label(case, v)}: waiting",
                                                total=self.max) for v in variants}

    def variant_setup(self, case: Case, variant: str) -> None:
        self.progress.update(self.tasks[variant], description=f"{_label(case, variant)}: loading")

    def variant_ready(self, case: Case, variant: str, setup: dict[str, Any]) -> None:
        self.progress.update(self.tasks[variant], description=f"{_label(case, variant)}: measuring")

    def samples_added(self, case: Case, variant: str, n: int, visit: int) -> None:
        self.progress.advance(self.tasks[variant], n)

    def variant_done(self, case: Case, variant: str, status: str, failure: Failure | None) -> None:
        task = self.tasks[variant]
        label = "[green]done[/green]" if failure is None else f"[red]{rich_text(failure.kind)}[/red]"
        self.progress.update(task, description=f"{_label(case, variant)}: {label}",
                             total=self.progress.tasks[task].completed or 1)

    def memory_started(self, case: Case, variant: str) -> None:
        self.progress.update(self.tasks[variant], description=f"{_label(case, variant)}: memory pass")


def _label(case: Case, variant: str) -> str:
    """``case variant`` as literal console text (both come from suites and backends)."""
    return f"{rich_text(case.name)} {rich_text(variant)}"


def build_plan(args: argparse.Namespace) -> Plan:
    params: dict[str, str] = {}
    for item in args.param:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InputError(f"--param {item!r} is not KEY=VALUE")
        params[key] = value
    suite = get_suite(args.suite)
    protocol = (suite.protocol or Protocol()).override(
        warmup_rounds=args.warmup, min_samples=args.min_samples, max_samples=args.max_samples,
        budget_s=args.budget, round_samples=args.round_samples, target_rel_iqr=args.target_iqr,
        workers=args.workers, worker_visits=args.worker_visits, visit_warmup=args.visit_warmup)
    settings = WorkerSettings(threads=args.threads, timeout_s=args.timeout,
                              memory_limit_bytes=args.memory_limit)
    request = CaseRequest(args.preset, tuple(args.frames or ()), args.seed, params)
    return make_plan(args.suite, args.backend, request, protocol=protocol, settings=settings,
                     memory=suite.memory or args.memory)


def run(args: argparse.Namespace) -> int:
    out, err = Console(), Console(stderr=True)
    plan = build_plan(args)
    for s in plan.skipped:
        err.print(f"[yellow]skipped {rich_text(s.variant)}: {rich_text(s.reason)}[/yellow]", highlight=False,
                  soft_wrap=True)
    if not plan.variants:
        raise BackendUnavailable("no backend variant can run here: "
                                 + "; ".join(f"{s.variant}: {s.reason}" for s in plan.skipped))
    command = ["perfkit", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("perfkit") else ["perfkit",
                                                                                               "run"]
    if err.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            observer = ProgressObserver(err, progress, plan.protocol.max_samples)
            outcome = run_plan(plan, args.results, observer=observer, command=command)
    else:
        outcome = run_plan(plan, args.results, observer=WarningsObserver(err), command=command)
    print_run(out, outcome.run)
    failed = [c for c in outcome.run.cases if c.status == "failed"]
    if outcome.interrupted:
        kept = sum(1 for _ in outcome.run.samples())
        err.print(f"interrupted: kept {kept} samples of the completed rounds in {rich_text(outcome.path)}",
                  highlight=False, soft_wrap=True)
        return 130
    out.print(f"result: {rich_text(outcome.path)}", highlight=False, soft_wrap=True)
    if failed:
        err.print(f"[red]{len(failed)} of {len(outcome.run.cases)} measurement(s) failed[/red]")
        return 1
    return 0


# ----------------------------------------------------------------------------- rendering
def _cases_by_case(run: Run) -> dict[str, list[CaseRecord]]:
    groups: dict[str, list[CaseRecord]] = {}
    for c in run.cases:
        groups.setdefault(c.case.name, []).append(c)
    return groups


def case_table(rec: CaseRecord) -> Table:
    """One variant on one case: per stage median, IQR, share of the series; then the end-to-end time, the
    per-stage timing overhead, first call, load and memory. A later per-stage series shows only the stages
    an earlier one did not (``coarse`` adds the whole decoder blocks)."""
    table = Table(title=f"{rich_text(rec.case.name)} — {rich_text(rec.variant)}", title_justify="left")
    for col in ("stage", "median", "IQR", "share", "n"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    shown: set[str] = set()
    summaries = summarize_case(rec)
    for s in summaries:
        if len(s.rows) <= 1:
            continue
        rows = [r for r in s.rows if r.stage not in shown]
        table.add_section()
        table.add_row(f"[bold]{rich_text(s.name)}[/bold]" + (" (sync after each)" if s.synced else ""))
        for r in rows:
            table.add_row(f"  {rich_text(r.stage)}", format_ns(r.summary.median), format_ns(r.summary.iqr),
                          f"{r.share:.1%}",
                          str(r.summary.n))
        shown.update(r.stage for r in s.rows)
        total = sum(r.summary.median for r in s.rows)
        table.add_row("  sum of stage medians", format_ns(total), "", "100%", "")
        if s.overhead is not None:
            o = s.overhead
            table.add_row(f"  overhead vs {rich_text(s.covers)} ({round(100 * o.confidence)}% CI)",
                          f"{o.estimate:+.1%} [{o.low:+.1%}, {o.high:+.1%}]", "", "", "")
    table.add_section()
    for s in summaries:
        if len(s.rows) == 1 and s.total is not None:
            label = f"[bold]{rich_text(s.name)}[/bold] ({rich_text(s.rows[0].stage)}, one sync)"
            table.add_row(label, format_ns(s.total.median), format_ns(s.total.iqr), "", str(s.total.n))
    mem = rec.memory
    peak = f"{format_bytes(mem.inference_peak_bytes)} ({format_bytes(mem.baseline_rss_bytes)})" if mem else "-"
    for label, value in (("first call", format_ns(rec.first_call_ns)), ("load", format_ns(rec.load_ns)),
                         ("weights", format_bytes(rec.weight_bytes)), ("peak RSS (baseline)", peak)):
        table.add_row(label, value, "", "", "")
    return table


def comparison_lines(records: Sequence[CaseRecord]) -> list[str]:
    """Each variant's end-to-end time against the first one's: ratio, CI, verdict."""
    lines: list[str] = []
    base = records[0]
    for head in records[1:]:
        for s in head.series:
            if s.synced or s.n == 0:
                continue
            b = base.series_named(s.name)
            if b is None or b.n == 0:
                continue
            c = compare_samples(b.totals_ns(), s.totals_ns())
            names = f"{rich_text(s.name)}: {rich_text(head.variant)} vs {rich_text(base.variant)}"
            lines.append(f"{names}: time ratio {c.ratio:.3f} "
                         f"\\[{c.ci_low:.3f}, {c.ci_high:.3f}], p={c.p_value:.2g} -> {c.verdict}")
    return lines


def print_run(console: Console, run: Run) -> None:
    """Every case of ``run`` as a table, then comparisons and failures."""
    for name, records in _cases_by_case(run).items():
        measured = [r for r in records if r.series]
        for rec in measured:
            console.print(case_table(rec))
        if len(measured) > 1:
            for line in comparison_lines(measured):
                console.print(line, highlight=False, soft_wrap=True)
        for rec in records:
            for f in rec.failures:
                what = " ".join(rich_text(t) for t in (rec.variant, f"{name}:", f.kind, "during", f"{f.phase}:",
                                                      f.message))
                console.print(f"[red]{what}[/red]",
                              highlight=False, soft_wrap=True)
    for s in run.skipped:
        console.print(f"[yellow]skipped {rich_text(s.variant)}: {rich_text(s.reason)}[/yellow]", highlight=False,
                      soft_wrap=True)
