"""The plots a journal links: the history line of every case's total across the entries, and the
per-stage stacked bars of each vocoder case before and after (the last step)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..measure.stats import summarize
from . import plots
from .journal import JournalEntry, Plot, key_heading, timing_cases
from .labels import plain_stage_label
from .timing import case_timing


def journal_plots(
    entries: Sequence[JournalEntry], directory: str | os.PathLike[str], link_prefix: str
) -> tuple[list[Plot], list[Path]]:
    """Write the plots into ``directory``; return the links (``link_prefix`` + file name) and the paths."""
    per_entry = [timing_cases(e.results) for e in entries]
    keys = sorted({k for cases in per_entry for k in cases if k[0] not in ("memory", "streaming")})
    series: dict[str, list[plots.Band | None]] = {}
    for key in keys:
        points: list[plots.Band | None] = []
        for i, cases in enumerate(per_entry):
            total = case_timing(cases[key][1]).total if key in cases else None
            if total is None or not total.samples_ns:
                points.append(None)
                continue
            s = summarize(total.samples_ns)
            points.append(plots.Band(float(i), s.median / 1e6, s.q1 / 1e6, s.q3 / 1e6))
        if sum(p is not None for p in points) >= 2:  # a line needs two entries
            series[key_heading(key).replace("\\", "")] = points
    links: list[Plot] = []
    paths: list[Path] = []
    if series:
        written = plots.history_line([e.label for e in entries], series, directory, "history")
        paths += written
        links.append(
            Plot("Total time across entries, relative to the first (median, IQR band)", link_prefix + written[0].name)
        )
    base, head = per_entry[-2], per_entry[-1]
    stage_keys = [k for k in sorted(set(base) & set(head)) if k[0] == "stages"]
    for n, key in enumerate(stage_keys):
        medians: dict[str, dict[str, float]] = {}
        order: list[str] = []
        for side, cases in (("before", base), ("after", head)):
            t = case_timing(cases[key][1])
            medians[side] = {}
            for r in t.stages:
                if r.level == 0 and r.samples_ns:
                    label = plain_stage_label(r.stage)
                    medians[side][label] = summarize(r.samples_ns).median / 1e6
                    if label not in order:
                        order.append(label)
        title = "Stages before / after: " + key_heading(key).replace("\\", "")
        written = plots.stage_bars(order, medians, directory, f"stages-{n}-{key[1]}", title)
        paths += written
        links.append(Plot(title, link_prefix + written[0].name))
    return links, paths
