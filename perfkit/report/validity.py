"""Which timings are valid: parity verdicts per (variant, preset), and the parity line under a table.

A variant whose outputs fail parity against the float64 NumPy reference computes something else, so
its timings are not comparable: every table marks its rows **INVALID** (the numbers stay visible).
Verdicts come from parity runs (:mod:`perfkit.store.parity_records`) and from cases of any run that
failed in phase ``parity`` (pytest-benchmark wrappers record their parity check that way). A
variant with no parity data is *unchecked*: shown as such, not invalid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..store.parity_records import ParityRecord, parity_records
from ..store.records import Run
from . import units
from .escape import md

PASS = "pass"
FAIL = "fail"
UNCHECKED = "unchecked"
INVALID = "INVALID"


@dataclass(frozen=True)
class ParityStatus:
    """The parity verdict of a variant on a preset: ``state`` in ``pass`` / ``fail`` / ``unchecked``."""

    state: str
    reason: str = ""
    record: ParityRecord | None = None

    @property
    def invalid(self) -> bool:
        return self.state == FAIL

    @property
    def cell(self) -> str:
        """A short table cell: ``PASS``, ``**FAIL**`` or ``unchecked``."""
        return {PASS: "PASS", FAIL: "**FAIL**"}.get(self.state, "unchecked")


class Validity:
    """Parity verdicts by ``(variant, preset)`` over a set of runs (later runs override earlier ones
    for the same variant and case)."""

    def __init__(self, runs: Iterable[Run]) -> None:
        by_case: dict[tuple[str, str], ParityRecord] = {}
        self._failed_cases: dict[tuple[str, str], str] = {}
        for run in runs:
            for record in parity_records(run):
                by_case[(record.variant, record.case)] = record
            for case in run.cases:
                for f in case.failures:
                    if f.phase == "parity" and run.suite != "parity":
                        self._failed_cases.setdefault((case.variant, case.case.preset), f.message)
        self._records: dict[tuple[str, str], list[ParityRecord]] = {}
        for (variant, _), record in sorted(by_case.items()):
            self._records.setdefault((variant, record.preset), []).append(record)

    def records(self) -> list[ParityRecord]:
        """Every record, sorted by variant, preset and case."""
        return [r for key in sorted(self._records) for r in self._records[key]]

    def status(self, variant: str, preset: str) -> ParityStatus:
        records = self._records.get((variant, preset), [])
        for record in records:
            if not record.passed:
                return ParityStatus(FAIL, record.first_failure, record)
        if (variant, preset) in self._failed_cases:
            return ParityStatus(FAIL, self._failed_cases[(variant, preset)])
        if records:
            best = max(records, key=lambda r: (len(r.stages), r.case))
            return ParityStatus(PASS, "", best)
        return ParityStatus(UNCHECKED)


def tolerance_text(record: ParityRecord) -> str:
    t = record.tolerance
    return f"{md(record.dtype)} tolerance: SNR ≥ {t.min_snr_db:g} dB, correlation ≥ {t.min_correlation:g}"


def parity_line(status: ParityStatus, label: str = "Parity") -> str:
    """The line under a table, in the seeds' form: ``correlation=…, SNR=… dB, max diff=…`` and the verdict."""
    record = status.record
    if status.state == UNCHECKED:
        return (f"{label}: not measured for this variant "
                "(run the parity suite: `perfkit compare --suite parity`).")
    if record is None:
        return f"{label}: **FAIL** — {md(status.reason)}. Timings of this variant are marked {INVALID}."
    head = f"{label} vs {md(record.reference)}"
    if record.error or record.waveform is None:
        return f"{head}: **FAIL** — {md(status.reason)}. Timings of this variant are marked {INVALID}."
    w = record.waveform
    if w.failure:
        metrics = f"waveform {w.failure.upper()}"
    else:
        metrics = (f"correlation={units.correlation(w.correlation)}, SNR={units.snr_db(w.snr_db)}, "
                   f"max diff={units.small(w.max_abs_diff)}, NMSE={units.small(w.nmse)}")
    text = f"{head} (waveform): {metrics}"
    worst = record.worst_stage()
    if status.invalid:
        return f"{text} — **FAIL**: {md(status.reason)}. Timings of this variant are marked {INVALID}."
    extra = [tolerance_text(record)]
    if worst is not None and not worst.failure:
        extra.append(f"lowest stage SNR {units.snr_db(worst.snr_db)} ({md(worst.stage)})")
    gen = record.generator
    if gen is not None:
        first = gen.first_divergent_frame
        div = "identical" if first is None else f"first divergent frame {first}"
        logits = f", logits SNR {units.snr_db(gen.logits.snr_db)}" if gen.logits is not None else ""
        extra.append(f"generator: greedy codes {units.pct(gen.agreement)} equal over {gen.frames} frames "
                     f"({div}){logits}")
    return f"{text} — PASS ({'; '.join(extra)})."
