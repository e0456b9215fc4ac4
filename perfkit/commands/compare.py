"""``perfkit compare``: run suites on several backends, print a comparison, store the runs, write a report.

    perfkit compare numpy numba torch [--preset tiny] [--suite parity --suite stages | --suite all]
                    [--frames N]

Each suite becomes one stored run (``results/``): ``parity`` first (its verdicts mark the timings of a
failing variant INVALID everywhere), then the timing suites through the measurement engine, with
progress shown on the way. Unavailable variants (no CUDA device, numba missing …) are reported and
skipped. The comparison table is printed; the markdown report and its plots go to
``reports/compare-<stamp>/`` and their paths are printed.

With ``--base-source DIR`` (another source tree of perfkit, e.g. a git worktree of the merge-base)
every variant ``A`` is measured twice in the same engine run, as ``A@base`` from ``DIR``'s code and as
``A`` from this tree's, their visits interleaved, so drift in the machine cannot pass for a change
between the commits (:func:`perfkit.run.plan.paired_plan`). Each suite is then stored as two ordinary
result files, ``--results``/``base/`` (labels without the tag, ``DIR``'s git commit and source hashes)
and ``--results``/``head/``, for ``perfkit journal --base RESULTS/base --head RESULTS/head``
(:mod:`perfkit.run.paired`); the report shows both. When a base measurement fails where the head's
succeeds (an older tree whose worker does not understand this engine), it says so and exits with
status 3 after the suite, without running the next ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
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
from ..measure.verdict import DEFAULT_ALPHA, smallest_p_value
from ..report.comparison import ComparisonReport, render_comparison
from ..report.escape import safe_filename
from ..report.sources import ResultSet
from ..run.engine import Observer, RunOutcome, run_plan, source_modules
from ..run.paired import base_failures, merge_runs, split_run
from ..run.plan import BackendRef, Plan, WorkerSettings, make_plan, paired_plan
from ..run.source_tree import source_tree
from ..run.suite import CaseRequest, get_suite, suite_names
from ..store.files import DEFAULT_RESULTS_DIR, write_run
from ..store.records import Case, Failure

DEFAULT_SUITES: tuple[str, ...] = ("parity", "stages")
ALL_SUITES: tuple[str, ...] = ("parity", "stages", "generator", "memory", "rtf", "streaming")
#: Suites whose cases take ``--frames`` (the others size their cases themselves: texts, chunk sizes).
FRAMES_SUITES: tuple[str, ...] = ("parity", "stages", "generator", "memory")
DEFAULT_REPORTS_DIR = "reports"
#: The exit status when ``--base-source`` was given and the base tree could not be measured.
BASE_NOT_MEASURED = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="run suites on several backends; print, store and report the comparison",
        description="Run the suites on the named backend variants (e.g. numpy numba torch:dtype=bfloat16), "
        "print a comparison table, store one result file per suite under --results and write a "
        "markdown report with plots under --reports. Unavailable variants are reported and skipped; "
        "a variant that fails parity is marked INVALID in every table.",
    )
    p.add_argument(
        "backends", nargs="+", metavar="BACKEND", help="backend variants: numpy, numba, torch:dtype=bfloat16"
    )
    p.add_argument("--preset", default="tiny", help="model preset (default: tiny)")
    p.add_argument(
        "--suite",
        action="append",
        metavar="SUITE",
        help=f"suite to run, repeatable; 'all' = {', '.join(ALL_SUITES)} (default: {', '.join(DEFAULT_SUITES)})",
    )
    p.add_argument(
        "--frames",
        type=int,
        action="append",
        metavar="N",
        help=f"frames per case for {', '.join(FRAMES_SUITES)}, repeatable",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights and inputs (default 0)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="SUITE.KEY=VALUE",
        help="suite parameter, repeatable, e.g. rtf.frames_per_word=1 or streaming.chunks=1,4",
    )
    p.add_argument(
        "--threads",
        type=int,
        action="append",
        metavar="N",
        help="threads per worker; repeat for an RTF thread sweep (other suites use the first)",
    )
    p.add_argument("--budget", type=float, metavar="S", help="measuring seconds per variant and case")
    p.add_argument("--min-samples", type=int, metavar="N", help="minimum samples per series")
    p.add_argument("--max-samples", type=int, metavar="N", help="maximum samples per series")
    p.add_argument("--warmup", type=int, metavar="N", help="warm-up passes per worker (default: the suite's)")
    p.add_argument("--round-samples", type=int, metavar="N",
                   help="samples per visit before switching to the next variant (default: the suite's)")
    p.add_argument("--visit-warmup", type=int, metavar="N",
                   help="untimed passes at the start of every visit, so a process that waited while other "
                        "variants ran is warm again (default: the suite's, else 1)")
    p.add_argument("--target-iqr", type=float, metavar="F",
                   help="stop early once IQR/median of every series is below this (default: the suite's)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes per variant, visited in turn (default 1): two processes of the same "
                        "code can differ by more than their samples do, so a before/after comparison of small "
                        "stages is only trusted across several; `nox -s journal` uses 3")
    p.add_argument("--worker-visits", type=int, metavar="N",
                   help="replace each worker process by a fresh one after N visits (default 0: never): "
                        "samples from many processes with no more of them alive at once, for models too big "
                        "to hold --workers copies of in memory (each replacement loads and warms up again)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds per worker request (600)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the stages suite's memory pass")
    p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="where the runs are stored")
    p.add_argument("--reports", default=DEFAULT_REPORTS_DIR, metavar="DIR", help="where the report is written")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="write no plots")
    p.add_argument("--title", default="", help="report title")
    p.add_argument(
        "--base-source",
        metavar="DIR",
        help="another source tree of perfkit (e.g. a git worktree of the merge-base): measure every variant "
        "twice in the same run, from DIR's code (labelled VARIANT@base) and from this tree's, interleaved, so "
        "that machine drift hits both commits alike; store each suite as --results/base/ (DIR's commit, "
        "labels without @base) and --results/head/, for `perfkit journal --base RESULTS/base --head "
        f"RESULTS/head`. Exit status {BASE_NOT_MEASURED} when the base could not be measured where the head "
        "could (e.g. an old tree whose worker does not understand this engine)",
    )
    p.add_argument(
        "--extra-backend", action="append", default=[], metavar="SPEC@MODULE:CLASS", help=argparse.SUPPRESS
    )  # a backend outside the registry (the tests' fake)
    p.set_defaults(func=run)


class CompareObserver(Observer):
    """Progress bars, one per variant of the current case, under a line naming the suite."""

    def __init__(self, progress: Progress, suite: str, max_samples: int) -> None:
        self.progress = progress
        self.suite = suite
        self.max = max_samples
        self.tasks: dict[str, Any] = {}

    def _desc(self, case: Case, variant: str, what: str) -> str:
        return f"{escape(self.suite)} {escape(case.name)} {escape(variant)}: {what}"

    def case_started(self, case: Case, variants: Sequence[str]) -> None:
        for task in self.tasks.values():
            self.progress.remove_task(task)
        self.tasks = {v: self.progress.add_task(self._desc(case, v, "waiting"), total=self.max) for v in variants}

    def variant_setup(self, case: Case, variant: str) -> None:
        what = "checking" if self.suite == "parity" else "loading"
        self.progress.update(self.tasks[variant], description=self._desc(case, variant, what))

    def variant_ready(self, case: Case, variant: str, setup: dict[str, Any]) -> None:
        self.progress.update(self.tasks[variant], description=self._desc(case, variant, "measuring"))

    def samples_added(self, case: Case, variant: str, n: int, visit: int) -> None:
        self.progress.advance(self.tasks[variant], n)

    def variant_done(self, case: Case, variant: str, status: str, failure: Failure | None) -> None:
        task = self.tasks[variant]
        label = "[green]done[/green]" if failure is None else f"[red]{escape(failure.kind)}[/red]"
        if self.suite == "parity":
            label = "[green]parity ok[/green]" if failure is None else f"[red]parity {escape(failure.kind)}[/red]"
        done = next((t.completed for t in self.progress.tasks if t.id == task), 0) or 1
        self.progress.update(task, description=self._desc(case, variant, label), total=done, completed=done)

    def memory_started(self, case: Case, variant: str) -> None:
        self.progress.update(self.tasks[variant], description=self._desc(case, variant, "memory pass"))


def _suites(requested: Sequence[str] | None) -> list[str]:
    names: list[str] = []
    for s in requested or DEFAULT_SUITES:
        for part in s.split(","):
            part = part.strip()
            if part == "all":
                names.extend(ALL_SUITES)
            elif part:
                names.append(part)
    known = suite_names()
    for s in names:
        if s not in known:
            raise InputError(f"unknown suite {s!r}; installed: {', '.join(known)} (or 'all')")
    ordered = list(dict.fromkeys(names))
    if "parity" in ordered:  # parity first: its verdicts qualify every timing that follows
        ordered.remove("parity")
        ordered.insert(0, "parity")
    return ordered


def _params(items: Sequence[str], suites: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {s: {} for s in suites}
    for item in items:
        scoped, eq, value = item.partition("=")
        suite, dot, key = scoped.partition(".")
        if not eq or not dot or not suite or not key:
            raise InputError(f"--param {item!r} is not SUITE.KEY=VALUE (e.g. rtf.frames_per_word=1)")
        if suite not in out:
            raise InputError(f"--param {item!r} names suite {suite!r}, which is not being run")
        out[suite][key] = value
    return out


def _protocol(suite: Any, args: argparse.Namespace) -> Protocol:
    base = getattr(suite, "protocol", None) or Protocol()
    return base.override(budget_s=args.budget, min_samples=args.min_samples, max_samples=args.max_samples,
                         warmup_rounds=args.warmup, round_samples=args.round_samples,
                         target_rel_iqr=args.target_iqr, workers=args.workers,
                         worker_visits=args.worker_visits, visit_warmup=args.visit_warmup)


def _extra(items: Sequence[str]) -> list[BackendRef]:
    refs = []
    for item in items:
        spec, at, target = item.partition("@")
        if not at or ":" not in target:
            raise InputError(f"--extra-backend {item!r} is not SPEC@MODULE:CLASS")
        refs.append(BackendRef(spec, target))
    return refs


def build_plans(args: argparse.Namespace) -> list[Plan]:
    """One plan per (suite, thread count): the RTF suite sweeps every ``--threads``, others take the first."""
    suites = _suites(args.suite)
    params = _params(args.param, suites)
    threads = list(dict.fromkeys(args.threads or [None]))
    if args.base_source:
        source_tree(args.base_source)  # a perfkit source tree, or a one-line error now
    plans = []
    for name in suites:
        suite = get_suite(name)
        frames = tuple(args.frames or ()) if name in FRAMES_SUITES else ()
        request = CaseRequest(args.preset, frames, args.seed, params[name])
        memory = bool(getattr(suite, "memory", False)) or (name == "stages" and args.memory)
        for t in threads if name == "rtf" else threads[:1]:
            settings = WorkerSettings(threads=t, timeout_s=args.timeout)
            plan = make_plan(
                name,
                args.backends,
                request,
                protocol=_protocol(suite, args),
                settings=settings,
                memory=memory,
                extra=_extra(args.extra_backend),
            )
            plans.append(paired_plan(plan, args.base_source) if args.base_source else plan)
    return plans


def _execute(plan: Plan, results: str | None, observer: Observer, command: Sequence[str]) -> RunOutcome:
    suite = get_suite(plan.suite)
    if not getattr(suite, "timed", True):
        return suite.execute(plan, results, observer=observer, command=command)  # type: ignore[attr-defined]
    return run_plan(plan, results, observer=observer, command=command)


def _execute_paired(plan: Plan, results: str, source: str, observer: Observer,
                    command: Sequence[str]) -> tuple[RunOutcome, list[Path]]:
    """A paired plan: one interleaved engine run (a suite that runs itself, untimed, runs the base's
    variants then the head's, the base's with this process's environment pointing at ``source``), split
    and stored as ``results/base/`` and ``results/head/``. Returns the paired run (for the report)."""
    if getattr(get_suite(plan.suite), "timed", True):
        run = run_plan(plan, None, observer=observer, command=command).run
    else:
        halves = [dataclasses.replace(plan, variants=tuple(r for r in plan.variants if bool(r.source) is base))
                  for base in (True, False)]
        with source_tree(source).environ():
            base_run = _execute(halves[0], None, observer, command).run
        run = merge_runs(base_run, _execute(halves[1], None, observer, command).run)
    split = split_run(run, source, source_modules(plan))
    paths = [write_run(split.base, Path(results, "base")), write_run(split.head, Path(results, "head"))]
    return RunOutcome(run, None), paths


def report_base_failures(err: Console, runs: Sequence[Any], source: str) -> bool:
    """Print what the base tree could not measure; ``True`` if anything."""
    failures = base_failures(runs)
    if failures:
        err.print(f"[red]the base tree {escape(source)} could not be measured by this perfkit "
                  f"({len(failures)} measurement(s) failed where the head's succeeded; an older tree's worker may "
                  "not understand this engine's requests):[/red]", highlight=False, soft_wrap=True)
    for suite, variant, case, f in failures:
        err.print(f"  {escape(suite)} {escape(variant)}@base {escape(case)}: {escape(f.kind)} in {escape(f.phase)}: "
                  f"{escape(f.message)}", highlight=False, soft_wrap=True)
    return bool(failures)


def terminal_table(report: ComparisonReport) -> Table:
    table = Table(title=f"perfkit compare (baseline {escape(report.baseline)})", title_justify="left")
    columns = ("variant", "parity", f"{report.summary_of} (ms)", "± IQR/2", "speedup", "verdict", "RTF (wall/audio)",
               "peak RSS (MiB)")
    for col in columns:
        table.add_column(col, justify="left" if col in ("variant", "parity", "verdict") else "right")
    for r in report.summary:
        parity = "[red]FAIL[/red]" if r.invalid else escape(r.parity)
        verdict = "[red]INVALID[/red]" if r.invalid else escape(r.verdict or "-")
        table.add_row(
            escape(r.variant),
            parity,
            "-" if r.total_ms is None else f"{r.total_ms:.3f}",
            "-" if r.spread_ms is None else f"{r.spread_ms:.3f}",
            "-" if r.speedup is None else f"{r.speedup:.2f}x",
            verdict,
            "-" if r.rtf is None else f"{r.rtf:.4f}",
            "-" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.1f}",
        )
    return table


def report_dir(reports: str, preset: str) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(reports) / safe_filename(f"compare-{stamp}-{preset}-{secrets.token_hex(3)}")


def run(args: argparse.Namespace) -> int:
    out = Console() if sys.stdout.isatty() else Console(width=200)
    err = Console(stderr=True)
    plans = build_plans(args)
    for plan in plans:
        n = plan.protocol.max_samples
        p_min = smallest_p_value(n, n)
        if len(plan.variants) > 1 and p_min >= DEFAULT_ALPHA:
            err.print(f"[yellow]warning: at most {n} samples per variant in {escape(plan.suite)}: no difference "
                      f"can be significant (the smallest p of {n} against {n} is {p_min:.2g}, not below "
                      f"{DEFAULT_ALPHA:g}); take --max-samples 5 or more[/yellow]", highlight=False, soft_wrap=True)
    skipped = {s.variant: s.reason for p in plans for s in p.skipped}
    for variant, reason in skipped.items():
        err.print(f"[yellow]skipped {escape(variant)}: {escape(reason)}[/yellow]", highlight=False, soft_wrap=True)
    if not any(p.variants for p in plans):
        raise BackendUnavailable(
            "no backend variant can run here: " + "; ".join(f"{v}: {r}" for v, r in skipped.items())
        )
    command = [
        "perfkit",
        "compare",
        *(sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "compare" else []),
    ]
    runs, paths = [], []
    interrupted = False
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        for i, plan in enumerate(plans, start=1):
            t = plan.settings.threads
            err.print(
                f"[{i}/{len(plans)}] {escape(plan.suite)}"
                + (f" (threads={t})" if t else "")
                + f": {len(plan.variants)} variant(s) x {len(plan.cases)} case(s)",
                highlight=False,
            )
            observer = CompareObserver(progress, plan.suite, plan.protocol.max_samples)
            if args.base_source:
                outcome, written = _execute_paired(plan, args.results, args.base_source, observer, command)
                paths.extend(written)
            else:
                outcome = _execute(plan, args.results, observer, command)
            runs.append(outcome.run)
            if outcome.path is not None:
                paths.append(outcome.path)
            if outcome.interrupted:
                interrupted = True
                break
            if args.base_source and base_failures([outcome.run]):
                break  # the fallback (sequential runs) will measure everything again: stop here
    results = ResultSet.of(runs, [str(p) for p in paths])
    directory = report_dir(args.reports, args.preset)
    report = render_comparison(
        results,
        variants=[p.label for p in plans[0].variants] if plans else [],
        title=args.title,
        command=command,
        plots_dir=directory / "plots" if args.plots else None,
        plot_link="plots/",
        skipped=list(skipped.items()),
    )
    directory.mkdir(parents=True, exist_ok=True)
    md_path = directory / "report.md"
    md_path.write_text(report.markdown, encoding="utf-8")
    out.print(terminal_table(report))
    for p in paths:
        out.print(f"result: {p}", highlight=False, soft_wrap=True)
    out.print(f"report: {md_path}", highlight=False, soft_wrap=True)
    if report.plots:
        out.print(f"plots:  {directory / 'plots'} ({len(report.plots)} files)", highlight=False, soft_wrap=True)
    if interrupted:
        err.print("interrupted: the completed measurements are stored", highlight=False)
        return 130
    if args.base_source and report_base_failures(err, runs, args.base_source):
        return BASE_NOT_MEASURED
    failed = [
        c
        for r in runs
        for c in r.cases
        if c.status == "failed" and r.suite != "parity" and any(f.kind != "unavailable" for f in c.failures)
    ]
    if failed:
        err.print(f"[red]{len(failed)} measurement(s) failed (see the report)[/red]")
    return 1 if failed else 0
