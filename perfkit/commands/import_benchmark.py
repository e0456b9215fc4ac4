"""``perfkit import``: store pytest-benchmark JSON as perfkit result files.

    pytest suites/ --benchmark-only --benchmark-json=bench.json
    perfkit import bench.json            # -> results/<stamp>-pytest-benchmark-<suite>-<hash>.json, one per suite

The runs are what :mod:`perfkit.store.pytest_benchmark` makes of the file; once stored, ``perfkit
results``, ``perfkit journal`` and the pandas loader treat them like any run. (``perfkit journal`` also
reads a pytest-benchmark file directly.) Importing the same file twice is refused, not duplicated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..store.files import DEFAULT_RESULTS_DIR, result_files, write_run
from ..store.pytest_benchmark import is_pytest_benchmark, runs_from_pytest_benchmark
from ..store.schema import ResultFileError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="store pytest-benchmark JSON files as perfkit runs",
        description="Read pytest-benchmark JSON (--benchmark-json, raw samples with "
        "--benchmark-save-data) and store one perfkit result file per suite it holds.",
    )
    p.add_argument("files", nargs="+", metavar="FILE.json", help="pytest-benchmark JSON files")
    p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="results directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    existing = {p.stem for p in result_files(args.results)}
    for name in args.files:
        path = Path(name)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ResultFileError(f"{path}: cannot read as JSON ({exc})") from None
        if not is_pytest_benchmark(doc):
            raise ResultFileError(f"{path}: not a pytest-benchmark file (no 'benchmarks' / 'machine_info')")
        for run_ in runs_from_pytest_benchmark(doc, str(path)):
            if run_.run_id in existing:
                print(f"{path}: {run_.run_id} is already stored in {args.results}")
                continue
            written = write_run(run_, args.results)
            existing.add(written.stem)
            print(f"{path}: {len(run_.cases)} case(s) of suite {run_.suite} -> {written}")
    return 0
