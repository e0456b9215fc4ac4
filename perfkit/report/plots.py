"""Plots for reports (matplotlib, PNG and SVG): stage bars, RTF against length, speedup heatmap, memory
bars, first-chunk latency against chunk size, and the history line across commits.

Figures are made with the object API (``matplotlib.figure.Figure`` on the Agg canvas; pyplot's global
state is never touched) and written without timestamps (``metadata`` dates removed, a fixed SVG hash
salt), so the same data gives the same files. Labels from results pass through
:func:`perfkit.report.escape.plot_text`; file names through :func:`~perfkit.report.escape.safe_filename`.
Each function returns the paths written (PNG first).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .escape import plot_text, safe_filename

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
_PNG_META = {"Software": None}
_SVG_META = {"Date": None, "Creator": None}
INVALID_HATCH = "xx"


@dataclass(frozen=True)
class Band:
    """A median with its spread (first and third quartile), in the plot's unit."""

    x: float
    median: float
    low: float
    high: float


@functools.cache
def _matplotlib() -> Any:
    """matplotlib on the Agg canvas with a fixed SVG hash salt, imported on the first plot (a report
    written with ``--no-plots`` never pays for the import, about a second)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["svg.hashsalt"] = "perfkit"
    return matplotlib


def _figure(**kwargs: Any) -> Figure:
    """A ``matplotlib.figure.Figure`` (object API: pyplot's global state is never touched)."""
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig: Figure, directory: str | os.PathLike[str], stem: str) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    name = safe_filename(stem, "plot")
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    fig.savefig(png, dpi=DPI, metadata=_PNG_META, bbox_inches="tight")
    fig.savefig(svg, metadata=_SVG_META, bbox_inches="tight")
    return [png, svg]


def _colors(n: int) -> list:
    cmap = _matplotlib().colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def _label(name: str, invalid: bool) -> str:
    return plot_text(name) + (" (INVALID)" if invalid else "")


def _legend_outside(ax, handles: Sequence | None = None, labels: Sequence[str] | None = None) -> None:
    """The legend to the right of the axes, so it never covers data (``bbox_inches="tight"`` keeps it)."""
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize="small", frameon=False, bbox_to_anchor=(1.01, 1.0), loc="upper left")


def _chunk_ticks(ax, series: Mapping[str, Sequence[Band]]) -> None:
    """x ticks at the measured chunk sizes (1, 2, 4, 8, 12), not at matplotlib's round numbers."""
    xs = sorted({p.x for points in series.values() for p in points})
    if xs:
        ax.set_xticks(xs, [f"{x:g}" for x in xs])


def stage_bars(
    stages: Sequence[str],
    medians_ms: Mapping[str, Mapping[str, float]],
    directory: str | os.PathLike[str],
    stem: str = "stages",
    title: str = "Per-stage time",
    invalid: Sequence[str] = (),
) -> list[Path]:
    """One stacked bar per variant (``medians_ms[variant][stage]``), a segment per stage, in order."""
    variants = list(medians_ms)
    fig = _figure(figsize=(max(6.0, 1.4 * len(variants) + 4), 5.0))
    ax = fig.add_subplot()
    bottoms = [0.0] * len(variants)
    for stage, color in zip(stages, _colors(len(stages)), strict=True):
        values = [medians_ms[v].get(stage, 0.0) for v in variants]
        bars = ax.bar(
            range(len(variants)),
            values,
            bottom=bottoms,
            color=color,
            label=plot_text(stage),
            edgecolor="white",
            linewidth=0.5,
        )
        for bar, v in zip(bars, variants, strict=True):
            if v in invalid:
                bar.set_hatch(INVALID_HATCH)
        bottoms = [b + x for b, x in zip(bottoms, values, strict=True)]
    ax.set_xticks(range(len(variants)), [_label(v, v in invalid) for v in variants], rotation=20, ha="right")
    ax.set_ylabel("time per pass (ms, median)")
    ax.set_title(plot_text(title, 90))
    handles, labels = ax.get_legend_handles_labels()
    _legend_outside(ax, handles[::-1], labels[::-1])  # top of the legend = top of the stack
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, directory, stem)


def rtf_vs_length(
    series: Mapping[str, Sequence[Band]],
    directory: str | os.PathLike[str],
    stem: str = "rtf",
    title: str = "Real-time factor against length",
    invalid: Sequence[str] = (),
) -> list[Path]:
    """RTF (wall / audio, lower is better) against audio seconds, one line per variant with its IQR band."""
    fig = _figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    for (variant, points), color in zip(series.items(), _colors(len(series)), strict=True):
        pts = sorted(points, key=lambda b: b.x)
        xs = [p.x for p in pts]
        style = "--" if variant in invalid else "-"
        ax.plot(
            xs,
            [p.median for p in pts],
            style,
            marker="o",
            color=color,
            label=_label(variant, variant in invalid),
        )
        ax.fill_between(xs, [p.low for p in pts], [p.high for p in pts], color=color, alpha=0.2, linewidth=0)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("audio (s)")
    ax.set_ylabel("RTF = wall / audio (lower is better)")
    ax.set_title(plot_text(title, 90))
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, directory, stem)


def speedup_heatmap(
    variants: Sequence[str],
    stages: Sequence[str],
    speedups: Mapping[tuple[str, str], float],
    baseline: str,
    directory: str | os.PathLike[str],
    stem: str = "speedup",
    invalid: Sequence[str] = (),
) -> list[Path]:
    """Speedup of each variant over ``baseline`` per stage (``> 1``: faster), colour on a log2 scale."""
    import numpy as np

    data = np.full((len(variants), len(stages)), np.nan)
    for i, v in enumerate(variants):
        for j, s in enumerate(stages):
            x = speedups.get((v, s))
            if x is not None and x > 0 and math.isfinite(x):
                data[i, j] = math.log2(x)
    lim = max(1.0, float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0)
    fig = _figure(figsize=(max(6.0, 0.7 * len(stages) + 3), max(2.5, 0.6 * len(variants) + 1.8)))
    ax = fig.add_subplot()
    im = ax.imshow(data, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(variants)):
        for j in range(len(stages)):
            if math.isfinite(data[i, j]):
                ax.text(j, i, f"{2 ** data[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(stages)), [plot_text(s) for s in stages], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(variants)), [_label(v, v in invalid) for v in variants], fontsize=8)
    ax.set_title(plot_text(f"Speedup over {baseline} per stage (>1: faster)", 90))
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label("log2 speedup")
    return _save(fig, directory, stem)


def memory_bars(
    configs: Sequence[str],
    values: Mapping[str, Mapping[str, tuple[float, float, float]]],
    directory: str | os.PathLike[str],
    stem: str = "memory",
    invalid: Sequence[str] = (),
) -> list[Path]:
    """A horizontal bar per (configuration, variant): baseline + weights + working = peak RSS (MiB).

    ``values[variant][config] = (baseline, weights, working)``."""
    rows = [(c, v) for c in configs for v in values if c in values[v]]
    fig = _figure(figsize=(9.0, max(2.5, 0.45 * len(rows) + 1.5)))
    ax = fig.add_subplot()
    parts = (("baseline", "#bbbbbb"), ("weights", "#6baed6"), ("working", "#fd8d3c"))
    left = [0.0] * len(rows)
    for p, (part, color) in enumerate(parts):
        widths = [max(0.0, values[v][c][p]) for c, v in rows]
        bars = ax.barh(range(len(rows)), widths, left=left, color=color, edgecolor="white", linewidth=0.5, label=part)
        for bar, (_, v) in zip(bars, rows, strict=True):
            if v in invalid:
                bar.set_hatch(INVALID_HATCH)
        left = [a + w for a, w in zip(left, widths, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{plot_text(c, 40)} · {_label(v, v in invalid)}" for c, v in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("peak RSS (MiB) = baseline + weights + working")
    ax.set_title("Peak memory by configuration")
    _legend_outside(ax)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(right=max(left, default=1.0) * 1.15 or 1.0)
    return _save(fig, directory, stem)


def first_chunk_latency(
    series: Mapping[str, Sequence[Band]],
    directory: str | os.PathLike[str],
    stem: str = "first_chunk",
    invalid: Sequence[str] = (),
) -> list[Path]:
    """First-chunk latency (ms, median with IQR band) against chunk size (frames), one line per variant."""
    fig = _figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    for (variant, points), color in zip(series.items(), _colors(len(series)), strict=True):
        pts = sorted(points, key=lambda b: b.x)
        xs = [p.x for p in pts]
        ax.plot(
            xs,
            [p.median for p in pts],
            "--" if variant in invalid else "-",
            marker="o",
            color=color,
            label=_label(variant, variant in invalid),
        )
        ax.fill_between(xs, [p.low for p in pts], [p.high for p in pts], color=color, alpha=0.2, linewidth=0)
    _chunk_ticks(ax, series)
    ax.set_xlabel("chunk size (frames; 12.5 frames = 1 s of audio)")
    ax.set_ylabel("first-chunk latency (ms, median and IQR)")
    ax.set_title("First-chunk latency against chunk size")
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, directory, stem)


def history_line(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Band | None]],
    directory: str | os.PathLike[str],
    stem: str = "history",
) -> list[Path]:
    """Total time of each case across the journal's entries (commits), relative to the case's first
    measured entry (median with IQR band; below 1 is faster), so cases of any size share one axis."""
    fig = _figure(figsize=(max(7.0, 0.9 * len(labels) + 5), 4.5))
    ax = fig.add_subplot()
    for (name, points), color in zip(series.items(), _colors(len(series)), strict=True):
        pts = [(i, p) for i, p in enumerate(points) if p is not None]
        if not pts or pts[0][1].median <= 0:
            continue
        ref = pts[0][1].median
        xs = [i for i, _ in pts]
        ax.plot(xs, [p.median / ref for _, p in pts], marker="o", color=color, label=plot_text(name, 70))
        ax.fill_between(
            xs, [p.low / ref for _, p in pts], [p.high / ref for _, p in pts], color=color, alpha=0.2, linewidth=0
        )
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(labels)), [plot_text(x, 24) for x in labels], rotation=20, ha="right")
    ax.set_ylabel("total time / first entry's (lower is faster)")
    ax.set_title("History across entries")
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, directory, stem)
