"""Memory tables, as in the GGML report: peak RSS per configuration with the baseline, the weights and
the working memory.

From each case's memory pass (:class:`~perfkit.store.records.MemoryRecord`, a fresh worker):
*baseline* is the RSS before the model loads (interpreter, libraries, backend), *weights* the model's
parameters in the backend's compute dtype (a bfloat16 backend holds half the float32 bytes), *peak RSS*
the peak while the model runs (first call and passes, after the input model was dropped), *load peak*
the peak while the input model is built and loaded (both copies side by side), *working* = peak RSS −
baseline − weights (activations, scratch, caches, extra copies; negative when weights are shared or not
resident). CUDA columns appear when a case measured them, and a *file-backed* column when a case
recorded it: the part of the working memory that is pages of mapped files (the libraries' code the
first calls page in), not allocations.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..store.records import CaseRecord, Run
from . import units
from .escape import md
from .markdown import table
from .validity import INVALID, Validity


def configuration(run: Run, case: CaseRecord) -> str:
    """``memory: vocoder, 100 frames`` / ``stages: tiny/frames=25/seed=0``."""
    if run.suite == "memory":
        return f"{case.case.param('config', '-')}, {case.case.param('frames', '-')} frames"
    return f"{run.suite}: {case.case.name}"


def configuration_key(run: Run, case: CaseRecord) -> tuple:
    """Sort key of :func:`configuration`: the memory suite first, then by configuration and frame count
    as numbers (25 frames before 100), then by case name."""
    frames = case.case.param("frames", 0)
    return (
        run.suite != "memory",
        run.suite,
        str(case.case.param("config", "")),
        int(frames) if str(frames).isdigit() else 0,
        case.case.name,
    )


def short_configuration(run: Run, case: CaseRecord) -> str:
    """A plot label: ``vocoder, 25 frames`` / ``stages: 25 frames`` / ``rtf: long text, 115 frames``."""
    if run.suite == "memory":
        return configuration(run, case)
    text = case.case.param("text", None)
    frames = case.case.param("frames", None)
    parts = [f"{text} text" if text is not None else "", f"{frames} frames" if frames is not None else ""]
    detail = ", ".join(p for p in parts if p) or case.case.name
    return f"{run.suite}: {detail}"


def memory_table(
    items: Sequence[tuple[Run, CaseRecord]], validity: Validity, with_variant: bool = True
) -> str:
    """Variant | Configuration | Peak RSS | Load peak | Baseline | Weights | Working | [of which file-backed] |
    After load | Peak USS | [CUDA] | Parity."""
    items = [(r, c) for r, c in items if c.memory is not None]
    if not items:
        return ""
    cuda = any(c.memory.cuda_peak_allocated_bytes is not None for _, c in items)  # type: ignore[union-attr]
    file_backed = any(c.memory.file_backed_working_bytes is not None for _, c in items)  # type: ignore[union-attr]
    headers = (["Variant"] if with_variant else []) + [
        "Configuration",
        "Peak RSS (MiB)",
        "Load peak (MiB)",
        "Baseline (MiB)",
        "Weights (MiB)",
        "Working (MiB)",
    ]
    if file_backed:
        headers.append("of which file-backed (MiB)")
    headers += ["After load (MiB)", "Peak USS (MiB)"]
    if cuda:
        headers += ["CUDA peak allocated (MiB)", "CUDA peak reserved (MiB)"]
    headers.append("Parity")
    rows = []
    for run, case in items:
        m = case.memory
        assert m is not None
        weights = m.weight_bytes if m.weight_bytes is not None else case.weight_bytes
        cells = ([md(case.variant)] if with_variant else []) + [
            md(configuration(run, case)),
            units.mib(m.inference_peak_bytes),
            units.mib(m.load_peak_rss_bytes),
            units.mib(m.baseline_rss_bytes),
            units.mib(weights, 2),
            units.mib(m.working_bytes(weights)),
        ]
        if file_backed:
            cells.append(units.mib(m.file_backed_working_bytes))
        cells += [units.mib(m.rss_after_load_bytes), units.mib(m.peak_uss_bytes)]
        if cuda:
            cells += [units.mib(m.cuda_peak_allocated_bytes), units.mib(m.cuda_peak_reserved_bytes)]
        status = validity.status(case.variant, case.case.preset)
        cells.append(INVALID if status.invalid else status.cell)
        rows.append(cells)
    align = ["l"] * (2 if with_variant else 1) + ["r"] * (len(headers) - (3 if with_variant else 2)) + ["l"]
    return table(headers, rows, align)


def memory_delta_table(pairs: Sequence[tuple[Run, CaseRecord, CaseRecord]]) -> str:
    """Configuration | Peak before | Peak after | Delta | Working before | Working after (MiB), and the
    working memory's file-backed part before and after when either side recorded it."""
    pairs = [(r, b, h) for r, b, h in pairs if b.memory is not None and h.memory is not None]
    if not pairs:
        return ""
    file_backed = any(c.memory.file_backed_working_bytes is not None  # type: ignore[union-attr]
                      for _, b, h in pairs for c in (b, h))
    rows = []
    for run, base, head in pairs:
        bm, hm = base.memory, head.memory
        assert bm is not None and hm is not None
        b, h = bm.inference_peak_bytes, hm.inference_peak_bytes
        row = [
            md(configuration(run, head)),
            units.mib(b),
            units.mib(h),
            ("+" if h >= b else "-") + units.mib(abs(h - b)),
            units.pct((h - b) / b if b else None, signed=True),
            units.mib(bm.working_bytes(base.weight_bytes)),
            units.mib(hm.working_bytes(head.weight_bytes)),
        ]
        if file_backed:
            row += [units.mib(bm.file_backed_working_bytes), units.mib(hm.file_backed_working_bytes)]
        rows.append(row)
    headers = [
        "Configuration",
        "Peak RSS before (MiB)",
        "Peak RSS after (MiB)",
        "Delta (MiB)",
        "Delta",
        "Working before (MiB)",
        "Working after (MiB)",
    ]
    if file_backed:
        headers += ["File-backed before (MiB)", "File-backed after (MiB)"]
    return table(headers, rows)
