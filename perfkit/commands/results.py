"""``perfkit results``: list the stored runs, or show one."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import InputError
from ..report.escape import rich_text
from ..store.files import DEFAULT_RESULTS_DIR, LoadResult, load_run, load_runs
from ..store.records import Run
from .run import print_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="list stored runs, or show one",
                       description="List the runs stored under --results (unreadable files are reported "
                                   "and skipped), or, given a run id (or a unique prefix) or a file, show "
                                   "its tables.")
    p.add_argument("run", nargs="?", metavar="RUN", help="run id, unique id prefix, or result file to show")
    p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="results directory")
    p.set_defaults(func=run)


def find_run(loaded: LoadResult, ref: str) -> Run:
    """The run whose id is ``ref`` or uniquely starts with it; :class:`InputError` otherwise."""
    exact = [r for r in loaded.runs if r.run_id == ref]
    if exact:
        return exact[0]
    matches = [r for r in loaded.runs if r.run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"no stored run matches {ref!r}")
    raise InputError(f"{ref!r} matches {len(matches)} runs: " + ", ".join(r.run_id for r in matches[:5]))


def run(args: argparse.Namespace) -> int:
    out, err = Console(), Console(stderr=True)
    if args.run is not None and Path(args.run).is_file():
        print_run(out, load_run(args.run))
        return 0
    loaded = load_runs(args.results)
    for bad in loaded.skipped:
        err.print(f"[yellow]skipped {rich_text(bad.path)}: {rich_text(bad.reason)}[/yellow]", highlight=False,
                  soft_wrap=True)
    if args.run is not None:
        print_run(out, find_run(loaded, args.run))
        return 0
    if not loaded.runs:
        out.print(f"no runs stored in {rich_text(args.results)}", highlight=False, soft_wrap=True)
        return 0
    table = Table(title=f"runs in {rich_text(args.results)} (commit* = uncommitted changes)", title_justify="left")
    width = max(len(r.run_id) for r in loaded.runs)
    table.add_column("run / variants", no_wrap=True, overflow="ellipsis", min_width=width)
    for col in ("status", "cases ok", "samples", "commit"):
        table.add_column(col, justify="right" if col in ("cases ok", "samples") else "left", no_wrap=True)
    for r in sorted(loaded.runs, key=lambda r: (r.started_utc, r.run_id)):
        ok = sum(c.ok for c in r.cases)
        n_samples = sum(len(s.visits) * len(s.stages) for c in r.cases for s in c.series)
        commit = rich_text((r.environment.git_commit or "-")[:7]) + ("*" if r.environment.git_dirty else "")
        status = r.status if r.status == "complete" else f"[yellow]{rich_text(r.status)}[/yellow]"
        cases = f"{ok}/{len(r.cases)}" if ok == len(r.cases) else f"[red]{ok}/{len(r.cases)}[/red]"
        head = "\n".join([f"[bold]{rich_text(r.run_id)}[/bold]", *(f"  {rich_text(v)}" for v in r.variants)])
        table.add_row(head, status, cases, str(n_samples), commit)
    out.print(table)
    return 0
