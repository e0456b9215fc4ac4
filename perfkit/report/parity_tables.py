"""Parity tables: one row per variant (waveform metrics, worst stage, generator agreement, verdict)
and one row per stage (SNR of every variant), against the float64 NumPy reference."""

from __future__ import annotations

from collections.abc import Sequence

from ..store.parity_records import ParityRecord, StageParity
from . import units
from .escape import md
from .labels import fine_label
from .markdown import table
from .validity import tolerance_text


def _metric_cells(s: StageParity | None) -> list[str]:
    if s is None:
        return ["-", "-", "-", "-"]
    if s.failure:
        return [s.failure.upper()] * 4
    return [
        units.correlation(s.correlation),
        units.snr_db(s.snr_db),
        units.small(s.max_abs_diff),
        units.small(s.nmse),
    ]


def parity_summary_table(records: Sequence[ParityRecord]) -> str:
    """Variant | Case | dtype | waveform metrics | Lowest stage | Generator | Verdict."""
    rows = []
    for r in records:
        worst = r.worst_stage()
        worst_cell = (
            "-"
            if worst is None
            else f"{md(worst.stage)} ({worst.failure.upper() or units.snr_db(worst.snr_db)})"
        )
        gen = r.generator
        if gen is not None:
            div = (
                ""
                if gen.first_divergent_frame is None
                else f", diverges at frame {gen.first_divergent_frame}"
            )
            gen_cell = f"{units.pct(gen.agreement)} codes equal{div}"
            if gen.logits is not None:
                gen_cell += f"; logits {gen.logits.failure.upper() or units.snr_db(gen.logits.snr_db)}"
        else:
            gen_cell = md(r.generator_note) if r.generator_note else "-"
        verdict = "PASS" if r.passed else f"**FAIL**: {md(r.first_failure)}"
        rows.append(
            [
                md(r.variant),
                md(r.case),
                md(r.dtype),
                *_metric_cells(r.waveform),
                worst_cell,
                gen_cell,
                verdict,
            ]
        )
    headers = [
        "Variant",
        "Case",
        "dtype",
        "Correlation",
        "SNR",
        "Max abs diff",
        "NMSE",
        "Lowest stage",
        "Generator (greedy, teacher-forced logits)",
        "Verdict",
    ]
    return table(headers, rows, ["l", "l", "l", "r", "r", "r", "r", "l", "l", "l"])


def parity_stage_table(records: Sequence[ParityRecord]) -> str:
    """Stage | SNR of each variant (dB; a hard failure named; a stage below tolerance marked ``(low)``)."""
    if not records:
        return ""
    stages: list[str] = []
    for r in records:
        for s in r.stages:
            if s.stage not in stages:
                stages.append(s.stage)
    stages.append("waveform")
    rows = []
    for name in stages:
        cells = [fine_label(name) if name != "waveform" else "**Waveform**"]
        for r in records:
            s = r.waveform if name == "waveform" else next((x for x in r.stages if x.stage == name), None)
            if s is None:
                cells.append("-")
            elif s.failure:
                cells.append(f"**{s.failure.upper()}**")
            else:
                cells.append(units.snr_db(s.snr_db) + ("" if s.passed else " **(low)**"))
        rows.append(cells)
    variants = [r.variant for r in records]
    unique = len(set(variants)) == len(variants)
    return table(
        [
            "Stage (SNR vs reference)",
            *(md(r.variant if unique else f"{r.variant} {r.case}") for r in records),
        ],
        rows,
    )


def tolerance_table(records: Sequence[ParityRecord]) -> str:
    """The tolerance each checked dtype had to reach."""
    seen: dict[str, str] = {}
    for r in records:
        seen.setdefault(r.dtype, tolerance_text(r))
    rows = [
        [md(d), f"{r.tolerance.min_snr_db:g} dB", f"{r.tolerance.min_correlation:g}"]
        for d in sorted(seen)
        for r in [next(x for x in records if x.dtype == d)]
    ]
    return table(["dtype", "Min SNR", "Min correlation"], rows)
