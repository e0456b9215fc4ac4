"""Streaming tables: first-chunk latency per chunk size and the gaps between chunks.

From ``streaming`` runs (spans ``chunk_00`` … per pass): the first-chunk latency is ``chunk_00``; the
gaps are every later chunk's span, pooled over all passes. A chunk of ``k`` frames holds
``k / 12.5`` s of audio: a stream keeps up with playback while its p99 gap stays below that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..measure.stats import summarize
from ..store.records import CaseRecord
from . import units
from .escape import md
from .markdown import table
from .rtf_tables import audio_seconds
from .validity import INVALID, Validity


def chunk_stats(
    case: CaseRecord,
) -> tuple[int, float | None, float | None, float | None, float | None, float | None]:
    """``(chunk_frames, first median ns, first IQR ns, gap median ns, gap p99 ns, chunk audio s)``."""
    series = case.series_named("stream")
    chunk = int(case.case.param("chunk_frames", 0))
    if series is None or not series.stages or not series.n:
        return chunk, None, None, None, None, None
    first = summarize(series.stages[0].wall_ns)
    gaps = [ns for st in series.stages[1:] for ns in st.wall_ns]
    audio = audio_seconds(case)
    frames = int(case.case.param("frames", 0))
    chunk_audio = audio * chunk / frames if audio and frames else None
    if not gaps:
        return chunk, first.median, first.iqr, None, None, chunk_audio
    return chunk, first.median, first.iqr, float(np.median(gaps)), float(np.percentile(gaps, 99)), chunk_audio


def streaming_table(cases: Sequence[CaseRecord], validity: Validity, with_variant: bool = True) -> str:
    """[Variant] | Chunk (frames) | Chunk audio (ms) | First chunk (ms) | ± IQR/2 | Gap median | Gap p99 |
    p99 gap / chunk audio | Keeps up | Parity."""
    rows = []
    for case in sorted(cases, key=lambda c: (c.variant, int(c.case.param("chunk_frames", 0)), c.case.name)):
        chunk, first, first_iqr, gap, p99, chunk_audio = chunk_stats(case)
        if first is None:
            continue
        ratio = p99 / 1e9 / chunk_audio if p99 is not None and chunk_audio else None
        status = validity.status(case.variant, case.case.preset)
        rows.append(
            ([md(case.variant)] if with_variant else [])
            + [
                str(chunk),
                units.ms(chunk_audio * 1e9 if chunk_audio else None),
                units.ms(first),
                units.ms(first_iqr / 2 if first_iqr is not None else None),
                units.ms(gap),
                units.ms(p99),
                units.number(ratio, 2),
                "-" if ratio is None else ("yes" if ratio < 1 else "no"),
                INVALID if status.invalid else status.cell,
            ]
        )
    if not rows:
        return ""
    headers = (["Variant"] if with_variant else []) + [
        "Chunk (frames)",
        "Chunk audio (ms)",
        "First chunk (ms)",
        "± IQR/2 (ms)",
        "Gap median (ms)",
        "Gap p99 (ms)",
        "p99 gap / chunk audio",
        "Keeps up",
        "Parity",
    ]
    return table(headers, rows)
