"""The result store: records, versioned JSON files, migrations, pandas frames.

Public API::

    from perfkit.store import Run, CaseRecord, SeriesRecord, StageRecord, Sample, write_run, load_run, \
        load_runs, samples_frame, load_frame

``samples_frame`` and ``load_frame`` import pandas on first use (workers import the records, not pandas).
"""

from typing import Any

from .files import (
    DEFAULT_RESULTS_DIR,
    LoadResult,
    Unreadable,
    load_run,
    load_runs,
    new_run_id,
    result_files,
    write_run,
)
from .records import (
    Case,
    CaseRecord,
    Failure,
    MemoryRecord,
    RecordError,
    Run,
    Sample,
    SeriesRecord,
    Skipped,
    StageRecord,
)
from .schema import SCHEMA_VERSION, ResultFileError

__all__ = [
    "DEFAULT_RESULTS_DIR", "SCHEMA_VERSION", "Case", "CaseRecord", "Failure", "LoadResult", "MemoryRecord",
    "RecordError", "ResultFileError", "Run", "Sample", "SeriesRecord", "Skipped", "StageRecord", "Unreadable",
    "load_frame", "load_run", "load_runs", "new_run_id", "result_files", "samples_frame", "write_run",
]


def __getattr__(name: str) -> Any:
    if name in ("samples_frame", "load_frame"):
        from . import frame

        return getattr(frame, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
