"""``perfkit journal``: an optimization-log entry from stored results, in the seeds' form.

    perfkit journal --base RESULT… --head RESULT… [--out FILE.md] [--fail-on-regression]
    perfkit journal --history RESULT RESULT RESULT… [--label L …]

A RESULT is a result file, a directory of them, a run id (or unique prefix) under ``--results``, or a
pytest-benchmark JSON file. ``--base`` / ``--head`` take several RESULTs each (e.g. the stages run and
the parity run of one commit); each ``--history`` RESULT is one entry (a directory holds a whole
entry). Repeated runs of one case that timed the same code on the same host are pooled, their samples
concatenated (:mod:`perfkit.store.pooling`): run a comparison twice and pass both runs per side for
more worker processes behind every median. Profile runs (``perfkit profile``) are listed with links
to their flame graphs. The markdown goes to ``--out`` (plots beside it, in ``<name>_plots/``) or to
stdout; the same stored results always give the same markdown. With ``--fail-on-regression`` the exit status is 1 when
a stage's verdict in the last step is *slower* and its p-value survives the Holm correction over every
stage comparison of that step (:func:`perfkit.report.journal.holm_threshold`), or the head fails
parity; a *slower* that does not survive it is printed, not failing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ..report.escape import safe_filename
from ..report.journal import JournalEntry, render_journal
from ..report.journal_plots import journal_plots
from ..report.labels import commit_label
from ..report.profiles import profile_links
from ..report.sources import ResultSet, load_results
from ..store.files import DEFAULT_RESULTS_DIR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "journal",
        help="render an optimization-journal entry (before/after) from stored results",
        description="Compare stored results in the form of a hand-written optimization log: per-stage "
        "Before / "
        "After / Delta / Speedup with confidence intervals and verdicts, totals, cumulative speedup, "
        "the parity line under every table, the environment and the plots. A RESULT is a result file, "
        "a directory of them, a run id (prefix) under --results, or a pytest-benchmark JSON file. Repeated "
        "runs of one case that timed the same code (source hash) on the same host are pooled: pass both "
        "runs of a comparison made twice, per side, and every statistic is over the samples of both.",
    )
    p.add_argument("--base", nargs="+", metavar="RESULT", help="the results before the change")
    p.add_argument("--head", nargs="+", metavar="RESULT", help="the results after the change")
    p.add_argument(
        "--history", nargs="+", metavar="RESULT", help="entries in order, each against the previous one"
    )
    p.add_argument(
        "--label",
        action="append",
        metavar="TEXT",
        help="entry labels, in order (default: the commit of each entry)",
    )
    p.add_argument("--title", default="", help="the journal's title")
    p.add_argument("--out", metavar="FILE.md", help="write the markdown here (default: stdout)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="write and link no plots")
    p.add_argument(
        "--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="where run ids are looked up"
    )
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a stage is significantly slower in the last step (its p-value surviving the Holm "
        "correction over all of the step's stage comparisons) or the head fails parity",
    )
    p.set_defaults(func=run)


def _entries(args: argparse.Namespace) -> list[JournalEntry]:
    if args.history is not None:
        if args.base or args.head:
            raise InputError("give --history, or --base and --head, not both")
        if len(args.history) < 2:
            raise InputError("--history needs at least two RESULTs")
        sets = [load_results([ref], args.results) for ref in args.history]
        default = [f"entry {i}" for i in range(len(sets))]
    else:
        if not args.base or not args.head:
            raise InputError("give --base RESULT… and --head RESULT… (or --history RESULT…)")
        sets = [load_results(args.base, args.results), load_results(args.head, args.results)]
        default = ["base", "head"]
    labels = list(args.label or [])
    if labels and len(labels) != len(sets):
        raise InputError(f"--label given {len(labels)} time(s) for {len(sets)} entries")
    entries = []
    for i, results in enumerate(sets):
        if not isinstance(results, ResultSet) or not results:
            raise InputError(f"entry {i}: no results")
        commit, dirty = results.commit
        label = (
            labels[i]
            if labels
            else (f"{default[i]} ({commit_label(commit, dirty)})" if commit else default[i])
        )
        entries.append(JournalEntry(label, results))
    for e in entries:
        for bad in e.results.skipped:
            print(f"perfkit: skipped {bad.path}: {bad.reason}", file=sys.stderr)
    return entries


def run(args: argparse.Namespace) -> int:
    entries = _entries(args)
    plots = []
    if args.out and args.plots:
        out = Path(args.out)
        plot_dir = out.parent / safe_filename(f"{out.stem}_plots")
        plots, paths = journal_plots(entries, plot_dir, f"{plot_dir.name}/")
    profiles = profile_links([(e.label, e.results) for e in entries], Path(args.out).parent if args.out else None)
    journal = render_journal(entries, title=args.title, plots=plots, profiles=profiles)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(journal.markdown, encoding="utf-8")
        print(f"journal: {out}")
        if plots:
            print(f"plots:   {out.parent / safe_filename(f'{out.stem}_plots')} ({len(paths)} files)")
    else:
        sys.stdout.write(journal.markdown)
    for line in journal.invalid:
        print(f"perfkit: parity failure (timings invalid): {line}", file=sys.stderr)
    for line in journal.regressions:
        print(f"perfkit: regression: {line}", file=sys.stderr)
    for line in journal.uncorrected:
        print(f"perfkit: slower, but not significant after the Holm correction over {journal.comparisons} "
              f"stage comparisons (not failing): {line}", file=sys.stderr)
    if args.fail_on_regression and (journal.regressions or journal.invalid):
        print(
            f"perfkit: failing: {len(journal.regressions)} significant regression(s), "
            f"{len(journal.invalid)} parity failure(s)",
            file=sys.stderr,
        )
        return 1
    return 0
