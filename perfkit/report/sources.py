"""The stored results a report is made from: RESULT arguments resolved into a :class:`ResultSet`.

A RESULT is any of:

- a perfkit result file (``results/….json``);
- a directory: every result file in it (unreadable files are reported and skipped);
- a run id, or a unique prefix of one, among the result files of ``results_dir``;
- a pytest-benchmark JSON file (``pytest suites/ --benchmark-only --benchmark-json=FILE``), imported
  on the fly (:mod:`perfkit.store.pytest_benchmark`).

Runs are kept in a fixed order — by start time, then run id — so a report made twice from the same
files is made from the same sequence of runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..store.files import DEFAULT_RESULTS_DIR, Unreadable, load_run, load_runs
from ..store.pytest_benchmark import is_pytest_benchmark, runs_from_pytest_benchmark
from ..store.records import Run
from ..store.schema import ResultFileError

#: Suites whose runs hold no timing samples: parity verdicts, and py-spy profiles (``perfkit profile``).
UNTIMED_SUITES = ("parity", "profile")


@dataclass(frozen=True)
class ResultSet:
    """Runs (sorted by start time and id), with the files they came from and the files skipped."""

    runs: tuple[Run, ...]
    sources: tuple[str, ...] = ()
    skipped: tuple[Unreadable, ...] = ()

    @classmethod
    def of(cls, runs: Iterable[Run], sources: Iterable[str] = (),
           skipped: Iterable[Unreadable] = ()) -> ResultSet:
        """A set of ``runs`` (duplicates by run id dropped) in start-time order."""
        unique = {r.run_id: r for r in runs}
        ordered = tuple(sorted(unique.values(), key=lambda r: (r.started_utc, r.run_id)))
        return cls(ordered, tuple(sources), tuple(skipped))

    def suite(self, name: str) -> tuple[Run, ...]:
        return tuple(r for r in self.runs if r.suite == name)

    def timing_runs(self) -> tuple[Run, ...]:
        """Every run except parity and profile runs (which hold no timings)."""
        return tuple(r for r in self.runs if r.suite not in UNTIMED_SUITES)

    @property
    def commit(self) -> tuple[str | None, bool | None]:
        """The git commit (and dirty flag) of the latest run that recorded one."""
        for run in reversed(self.runs):
            if run.environment.git_commit:
                return run.environment.git_commit, run.environment.git_dirty
        return None, None

    def __bool__(self) -> bool:
        return bool(self.runs)


def _load_file(path: Path) -> list[Run]:
    try:
        return [load_run(path)]
    except ResultFileError:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise
        if is_pytest_benchmark(doc):
            return runs_from_pytest_benchmark(doc, str(path))
        raise


def _by_id(ref: str, results_dir: str | os.PathLike[str]) -> Run:
    loaded = load_runs(results_dir)
    exact = [r for r in loaded.runs if r.run_id == ref]
    matches = exact or [r for r in loaded.runs if r.run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"{ref!r} is neither a file, a directory, nor a run id in {results_dir}")
    raise InputError(f"{ref!r} matches {len(matches)} runs in {results_dir}: "
                     + ", ".join(r.run_id for r in matches[:5]))


def load_results(refs: Sequence[str], results_dir: str | os.PathLike[str] = DEFAULT_RESULTS_DIR) -> ResultSet:
    """Resolve RESULT arguments (see the module docstring); :class:`InputError` for one that names
    nothing, :class:`~perfkit.store.schema.ResultFileError` for a named file that is not a result."""
    runs: list[Run] = []
    sources: list[str] = []
    skipped: list[Unreadable] = []
    for ref in refs:
        p = Path(ref)
        if p.is_dir():
            loaded = load_runs(p)
            runs.extend(loaded.runs)
            sources.extend(str(x) for x in loaded.paths)
            skipped.extend(loaded.skipped)
            if not loaded.runs:
                raise InputError(f"{ref}: no readable result files in this directory")
        elif p.is_file():
            try:
                runs.extend(_load_file(p))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ResultFileError(f"{p}: cannot read ({exc})") from None
            sources.append(str(p))
        else:
            run = _by_id(ref, results_dir)
            runs.append(run)
            sources.append(str(Path(results_dir) / f"{run.run_id}.json"))
    return ResultSet.of(runs, sources, skipped)
