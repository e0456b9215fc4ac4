"""Stored runs as a tidy pandas DataFrame: one row per raw sample.

Columns: ``run_id, suite, run_status, started_utc, git_commit, git_dirty, variant, backend, dtype,
device, case, preset, case_status, source_hash, series, synced, stage, index, visit, loops, wall_ns``.
``wall_ns`` is the per-pass time of the sample (the mean over its ``loops`` passes); ``visit`` is the
interleaving round it was measured in; ``index`` its position within the series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from .files import Unreadable, load_runs
from .records import Run

COLUMNS: tuple[str, ...] = (
    "run_id", "suite", "run_status", "started_utc", "git_commit", "git_dirty", "variant", "backend", "dtype",
    "device", "case", "preset", "case_status", "source_hash", "series", "synced", "stage", "index", "visit",
    "loops", "wall_ns",
)


def samples_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per sample of every case of every run (failed cases contribute the samples they kept)."""
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for run in runs:
        env = run.environment
        for case in run.cases:
            options = dict(case.options)
            for series in case.series:
                for st in series.stages:
                    n = len(st.wall_ns)
                    fixed = {
                        "run_id": run.run_id, "suite": run.suite, "run_status": run.status,
                        "started_utc": run.started_utc, "git_commit": env.git_commit,
                        "git_dirty": env.git_dirty,
                        "variant": case.variant, "backend": case.backend, "dtype": options.get("dtype"),
                        "device": case.device, "case": case.case.name, "preset": case.case.preset,
                        "case_status": case.status, "source_hash": case.source_hash, "series": series.name,
                        "synced": series.synced, "stage": st.name, "loops": series.loops,
                    }
                    for key, value in fixed.items():
                        cols[key].extend([value] * n)
                    cols["index"].extend(range(n))
                    cols["visit"].extend(series.visits)
                    cols["wall_ns"].extend(st.wall_ns)
    frame = pd.DataFrame(cols, columns=list(COLUMNS))
    return frame.astype({"index": "int64", "visit": "int64", "loops": "int64", "wall_ns": "int64"})


def load_frame(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
               ) -> tuple[pd.DataFrame, tuple[Unreadable, ...]]:
    """:func:`samples_frame` over every readable result among ``sources`` (files or directories), and the
    files skipped with their reasons."""
    loaded = load_runs(sources)
    return samples_frame(loaded.runs), loaded.skipped
