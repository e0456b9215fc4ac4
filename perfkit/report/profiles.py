"""Profiles (``perfkit profile`` runs) in journals: what was recorded, the hottest functions, and links to
the flame graph and speedscope files stored beside each run (:mod:`perfkit.tools.artefacts`).

A profile run holds no timings, so it never enters a timing table; :func:`profile_links` finds the
profile runs of every journal entry and where their files are — ``<run-id>.profile/`` next to the result
file the run was read from — and :func:`profiles_section` renders them. Links are relative to the
directory of the markdown file when one is given (so the journal and the results can move together),
else the paths as found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..store.records import Run
from ..tools.artefacts import artefact_paths
from . import units
from .escape import md
from .markdown import table
from .sources import ResultSet

PROFILE_SUITE = "profile"
#: Hottest functions (by self time) shown per profile.
TOP = 3
#: Artefacts linked, in this order, with their link text.
LINKED = (("flamegraph", "flame graph"), ("speedscope", "speedscope"))


@dataclass(frozen=True)
class ProfileLink:
    """One profile run of one entry: what it recorded and the links to its files."""

    entry: str
    run_id: str
    variant: str
    case: str
    series: str
    protocol: Mapping[str, Any]
    samples: int | None
    hottest: tuple[tuple[str, float], ...]
    files: tuple[tuple[str, str], ...]


def _results_dir(results: ResultSet, run: Run) -> Path | None:
    """The directory of the result file ``run`` was read from (its artefacts sit there)."""
    for source in results.sources:
        path = Path(source)
        if path.stem == run.run_id:
            return path.parent
    return None


def _link(path: Path, relative_to: Path | None) -> str:
    text = os.path.relpath(path, relative_to) if relative_to is not None else str(path)
    return str(PurePosixPath(Path(text)))


def _hottest(info: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    out = []
    for f in list(info.get("top_self") or [])[:TOP]:
        if isinstance(f, Mapping) and "function" in f:
            out.append((str(f["function"]), float(f.get("self_fraction") or 0.0)))
    return tuple(out)


def _one(label: str, results: ResultSet, run: Run, relative_to: Path | None) -> list[ProfileLink]:
    info = run.settings.get("profile") if isinstance(run.settings.get("profile"), Mapping) else {}
    directory = _results_dir(results, run)
    paths = artefact_paths(run, directory) if directory is not None else {}
    files = tuple((text, _link(paths[key], relative_to)) for key, text in LINKED if key in paths)
    recordings = info.get("recordings") if isinstance(info.get("recordings"), Mapping) else {}
    flame = recordings.get("flamegraph") if isinstance(recordings.get("flamegraph"), Mapping) else {}
    samples = flame.get("samples")
    return [
        ProfileLink(label, run.run_id, case.variant, case.case.name, str(info.get("series", "-")),
                    dict(run.protocol), int(samples) if isinstance(samples, int) else None,
                    _hottest(info), files)
        for case in run.cases
    ]


def profile_links(
    entries: Sequence[tuple[str, ResultSet]], relative_to: str | os.PathLike[str] | None = None
) -> list[ProfileLink]:
    """The profile runs of ``entries`` (label, results), in entry and run order."""
    base = Path(relative_to) if relative_to is not None else None
    out: list[ProfileLink] = []
    for label, results in entries:
        for run in results.suite(PROFILE_SUITE):
            out.extend(_one(label, results, run, base))
    return out


def _recorded(p: Mapping[str, Any]) -> str:
    native = ", native frames" if p.get("native") else ""
    return f"{p.get('rate_hz', '-')} Hz × {p.get('duration_s', '-')} s{native}"


def profiles_section(links: Sequence[ProfileLink]) -> str:
    """Entry | Variant | Case | Series | Sampling | Samples | Hottest (self time) | Files."""
    rows = []
    for p in links:
        hottest = ", ".join(f"{md(name)} {units.pct(share, 0)}" for name, share in p.hottest) or "-"
        files = ", ".join(f"[{text}]({md_link(path)})" for text, path in p.files) or "not found"
        rows.append([md(p.entry), md(p.variant), md(p.case), md(p.series), md(_recorded(p.protocol)),
                     str(p.samples) if p.samples is not None else "-", hottest, files])
    if not rows:
        return ""
    note = ("py-spy recordings of the measured region only (attached after load, first call and warm-up); "
            "a profile holds no timings. Open the speedscope file at <https://www.speedscope.app>.")
    headers = ["Entry", "Variant", "Case", "Series", "Sampling", "Samples", "Hottest (self time)", "Files"]
    return note + "\n\n" + table(headers, rows, ["l", "l", "l", "l", "l", "r", "l", "l"])


def md_link(path: str) -> str:
    """A path usable as a markdown link target (spaces and parentheses escaped)."""
    return path.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
