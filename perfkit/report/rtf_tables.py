"""Real-time factor tables, per text length, in the generator journal's form.

RTF = wall time / audio duration (lower is better, below 1 is faster than real time); xRT = audio
duration / wall time (higher is better). Every table says which. The wall time of a sample is the sum of
its phases (tokenize, prefill, generate, vocoder; a synchronisation at each boundary only); the audio
duration is ``batch * frames / frame_rate`` (12.5 frames per second of 24 kHz audio for every preset):
a case with ``batch = B`` makes ``B`` utterances per sample, so its wall time is the whole batch's and its
RTF, xRT and frames/s are aggregate; wall / utterance is wall / ``B``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PerfkitError
from ..measure.stats import summarize
from ..store.records import CaseRecord, Run
from . import units
from .escape import md
from .labels import verdict_cell
from .markdown import table
from .stage_tables import confidence_label, speedup_interval
from .timing import case_timing, compare_rows
from .validity import INVALID, Validity

RTF_NOTE = (
    "RTF = wall time / audio duration (lower is better; below 1 is faster than real time); "
    "xRT = audio duration / wall time (higher is better)."
)
BATCH_NOTE = (
    "Batch B: B utterances of the text made together (item i seeded seed + i); Wall / batch is the whole "
    "batch's, Wall / utterance = Wall / batch ÷ B (every item is ready at the batch's end), Audio = B × one "
    "item's, so RTF, xRT and Frames/s are aggregate. Batching: native (one pass per generator stage for "
    "the whole batch, each weight read serving B items) or looped (batch-1 sessions one after another); "
    "the vocoder decodes item after item in both."
)
PHASES = ("prefill", "generate", "vocoder")


def batch_of(case: CaseRecord) -> int:
    """The case's batch size ``B`` (1 when the case has no ``batch`` parameter)."""
    try:
        return max(1, int(case.case.param("batch", 1)))
    except (TypeError, ValueError):
        return 1


def batch_mode_of(case: CaseRecord) -> str:
    """``native`` or ``looped`` as the worker recorded it for a batch (``B > 1``); ``-`` otherwise."""
    mode = getattr(case, "metadata", {}).get("batch_mode") if batch_of(case) > 1 else None
    return md(str(mode)) if mode else "-"


def audio_seconds(case: CaseRecord) -> float | None:
    """Seconds of audio a case makes per sample: ``batch * frames / frame_rate`` of its preset's vocoder."""
    from ..model.vocoder_config import vocoder_preset
    from ..suites._models import vocoder_preset_name

    try:
        frames = int(case.case.param("frames", 0))
        rate = vocoder_preset(vocoder_preset_name(case.case.preset)).frame_rate
    except (PerfkitError, TypeError, ValueError):
        return None
    return batch_of(case) * frames / rate if frames > 0 else None


def threads_of(run: Run) -> str:
    t = run.settings.get("threads")
    return "default" if t is None else str(t)


def rtf_rows(cases: Sequence[CaseRecord], validity: Validity) -> list[list[str]]:
    rows = []
    for case in cases:
        timing = case_timing(case)
        if timing.total is None or not timing.total.samples_ns:
            continue
        total = summarize(timing.total.samples_ns)
        audio = audio_seconds(case)
        wall_s = total.median / 1e9
        phases = []
        for name in PHASES:
            st = timing.stage(name)
            if st is None or not st.samples_ns:
                phases.append("-")
                continue
            m = summarize(st.samples_ns).median
            phases.append(f"{units.ms(m)} ({units.pct(m / total.median, 0)})")
        frames = int(case.case.param("frames", 0))
        batch = batch_of(case)
        peak = case.memory.inference_peak_bytes if case.memory is not None else None
        status = validity.status(case.variant, case.case.preset)
        rows.append(
            [
                md(case.case.param("text", "-")),
                str(case.case.param("words", "-")),
                str(frames),
                str(batch),
                batch_mode_of(case),
                units.ms(total.median),
                units.ms(total.std if total.n > 1 else None),
                units.ms(total.median / batch),
                units.seconds(audio),
                units.rtf(wall_s / audio if audio else None),
                units.rtf(audio / wall_s if audio and wall_s else None),
                units.number(batch * frames / wall_s if wall_s else None, 1),
                units.mib(peak, 0),
                *phases,
                INVALID if status.invalid else status.cell,
            ]
        )
    return rows


RTF_HEADERS = [
    "Label",
    "Words",
    "Frames",
    "Batch",
    "Batching",
    "Wall / batch (ms)",
    "±stddev (ms)",
    "Wall / utterance (ms)",
    "Audio (s)",
    "RTF",
    "xRT",
    "Frames/s",
    "Peak RSS (MiB)",
    "Prefill (ms, share)",
    "Generate (ms, share)",
    "Decode (ms, share)",
    "Parity",
]


def rtf_table(cases: Sequence[CaseRecord], validity: Validity) -> str:
    """Label | Words | Frames | Batch | Batching | Wall / batch | ±stddev | Wall / utterance | Audio | RTF | xRT |
    Frames/s | Peak RSS | phases | Parity (RTF, xRT and Frames/s aggregate over the batch)."""
    rows = rtf_rows(cases, validity)
    align = ["l", "r", "r", "r", "l"] + ["r"] * (len(RTF_HEADERS) - 6) + ["l"]
    return table(RTF_HEADERS, rows, align) if rows else ""


def rtf_sweep_table(runs: Sequence[Run], validity: Validity) -> str:
    """RTF per (variant, text, frames, batch) across thread counts: one column per ``threads`` setting."""
    cells: dict[tuple[str, str, int, int], dict[str, str]] = {}
    threads: list[str] = []
    for run in runs:
        t = threads_of(run)
        if t not in threads:
            threads.append(t)
        for case in run.cases:
            timing = case_timing(case)
            audio = audio_seconds(case)
            if timing.total is None or not timing.total.samples_ns or not audio:
                continue
            rtf = summarize(timing.total.samples_ns).median / 1e9 / audio
            key = (case.variant, str(case.case.param("text", "-")), int(case.case.param("frames", 0)),
                   batch_of(case))
            mark = f" {INVALID}" if validity.status(case.variant, case.case.preset).invalid else ""
            cells.setdefault(key, {})[t] = units.rtf(rtf) + mark
    if len(threads) < 2:
        return ""
    threads = sorted(threads, key=_thread_order)
    rows = [
        [md(v), md(text), str(frames), str(b), *(cells[(v, text, frames, b)].get(t, "-") for t in threads)]
        for (v, text, frames, b) in sorted(cells)
    ]
    return table(["Variant", "Text", "Frames", "Batch", *(f"RTF, threads={t}" for t in threads)], rows)


def _thread_order(t: str) -> tuple[bool, int, str]:
    return (not t.isdigit(), int(t) if t.isdigit() else 0, t)


def rtf_batch_table(runs: Sequence[Run], validity: Validity) -> str:
    """The batch sweep per (variant, threads, text, frames): wall / utterance and aggregate xRT per batch size,
    and how the variant batched; empty unless the runs hold at least two batch sizes."""
    cells: dict[tuple[str, str, str, int], dict[int, str]] = {}
    modes: dict[tuple[str, str, str, int], str] = {}
    batches: set[int] = set()
    for run in runs:
        for case in run.cases:
            timing = case_timing(case)
            audio = audio_seconds(case)
            if timing.total is None or not timing.total.samples_ns or not audio:
                continue
            b = batch_of(case)
            batches.add(b)
            wall_ns = summarize(timing.total.samples_ns).median
            key = (case.variant, threads_of(run), str(case.case.param("text", "-")), int(case.case.param("frames", 0)))
            mark = f" {INVALID}" if validity.status(case.variant, case.case.preset).invalid else ""
            cells.setdefault(key, {})[b] = f"{units.ms(wall_ns / b)} ({units.rtf(audio / (wall_ns / 1e9))})" + mark
            if b > 1:
                modes[key] = batch_mode_of(case)
    if len(batches) < 2:
        return ""
    order = sorted(batches)
    rows = [
        [md(v), md(t), md(text), str(frames), modes.get((v, t, text, frames), "-"),
         *(cells[(v, t, text, frames)].get(b, "-") for b in order)]
        for (v, t, text, frames) in sorted(cells, key=lambda k: (k[0], _thread_order(k[1]), k[2], k[3]))
    ]
    headers = ["Variant", "Threads", "Text", "Frames", "Batching", *(f"B={b}: ms / utterance (xRT)" for b in order)]
    return table(headers, rows)


def rtf_delta_table(pairs: Sequence[tuple[CaseRecord, CaseRecord]], invalid: str = "") -> str:
    """Before/after per text: wall times with speedup, CI and verdict, and RTF before/after."""
    rows = []
    ci = "99% CI"
    for base, head in pairs:
        tb, th = case_timing(base), case_timing(head)
        row = compare_rows(tb.total, th.total, "total")
        c = row.comparison
        if c is None:
            continue
        ci = confidence_label(c)
        audio = audio_seconds(head)
        rows.append(
            [
                md(head.case.param("text", "-")),
                str(head.case.param("words", "-")),
                str(head.case.param("frames", "-")),
                str(batch_of(head)),
                units.ms(c.base_median),
                units.ms(c.head_median),
                units.ratio(c.speedup),
                speedup_interval(c),
                invalid or verdict_cell(c.verdict),
                units.rtf(c.base_median / 1e9 / audio if audio else None),
                units.rtf(c.head_median / 1e9 / audio if audio else None),
                units.rtf(audio / (c.head_median / 1e9) if audio else None),
            ]
        )
    if not rows:
        return ""
    headers = [
        "Label",
        "Words",
        "Frames",
        "Batch",
        "Wall before (ms)",
        "Wall after (ms)",
        "Speedup",
        ci,
        "Verdict",
        "RTF before",
        "RTF after",
        "xRT after",
    ]
    return table(headers, rows)
