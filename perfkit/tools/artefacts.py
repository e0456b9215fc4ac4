"""Files a tool writes beside a stored run: ``<results>/<run-id>.<kind>/`` (``profile``, ``hyperfine``).

The run's ``settings["artefacts"]`` says which kind and names each file relative to that directory::

    "artefacts": {"kind": "profile", "files": {"flamegraph": "flamegraph.svg",
                                               "speedscope": "profile.speedscope.json"}}

so a journal links them with :func:`artefact_paths` (the directory follows from the run id, which is
the result file's stem). The directory sits next to the ``*.json`` result files; readers of results
only glob ``*.json`` files, so they never mistake it for a run.

Writing: a tool writes into a hidden staging directory (:func:`staging_dir`, ignored by every reader);
:func:`publish` renames it to its final name and then writes the run with
:func:`perfkit.store.files.write_run`, so a result file never appears without its artefacts. On failure
the caller removes the staging directory (:func:`discard`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..store.files import write_run
from ..store.records import Run


def artefact_dir(results_dir: str | os.PathLike[str], run_id: str, kind: str) -> Path:
    """``<results_dir>/<run_id>.<kind>``."""
    return Path(results_dir) / f"{run_id}.{kind}"


def staging_dir(results_dir: str | os.PathLike[str], run_id: str, kind: str) -> Path:
    """A fresh hidden directory ``<results_dir>/.<run_id>.<kind>.tmp`` to write artefacts into."""
    d = Path(results_dir) / f".{run_id}.{kind}.tmp"
    d.mkdir(parents=True, exist_ok=False)
    return d


def discard(directory: Path) -> None:
    """Remove a staging directory (after a failure); never raises."""
    shutil.rmtree(directory, ignore_errors=True)


def artefacts_setting(kind: str, files: Mapping[str, str]) -> dict[str, Any]:
    """The ``settings["artefacts"]`` entry for ``files`` (label -> file name inside the directory)."""
    return {"kind": kind, "files": dict(files)}


def artefact_paths(run: Run, results_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Label -> path of every artefact stored beside ``run`` (empty when it has none)."""
    entry = run.settings.get("artefacts") if isinstance(run.settings, Mapping) else None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("files"), Mapping):
        return {}
    base = artefact_dir(results_dir, run.run_id, str(entry.get("kind", "")))
    return {str(label): base / str(name) for label, name in entry["files"].items()}


def publish(run: Run, staging: Path, results_dir: str | os.PathLike[str],
            kind: str) -> tuple[Run, Path, Path]:
    """Rename ``staging`` to ``<run_id>.<kind>`` and write ``run``; returns ``(run, result file, directory)``.

    Should :func:`write_run` have to give the run a fresh id (its name taken — practically impossible),
    the directory is renamed to match and the returned run carries the id it was stored under.
    """
    final = artefact_dir(results_dir, run.run_id, kind)
    if final.exists():
        raise FileExistsError(f"{final} exists already; artefacts are never overwritten")
    staging.rename(final)
    path = write_run(run, results_dir)
    if path.stem != run.run_id:
        moved = artefact_dir(results_dir, path.stem, kind)
        final.rename(moved)
        final = moved
        run = dataclasses.replace(run, run_id=path.stem)
    return run, path, final
