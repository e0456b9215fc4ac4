"""Parity results as records, stored inside a perfkit result file of suite ``parity``.

The engine's records hold timing samples; parity is not a timing. A parity run is therefore an
ordinary :class:`~perfkit.store.records.Run` (``suite == "parity"``) whose cases carry the verdict —
``status`` ``ok`` (passed) or ``failed`` with a :class:`~perfkit.store.records.Failure` of kind
``parity`` or ``error`` saying why — and whose ``settings["parity"]`` holds one
:meth:`ParityRecord.to_dict` per (variant, case), with the reference and the tolerance table used.
Files stay readable by every perfkit that reads the result schema (``settings`` is free-form).

Non-finite floats (an SNR of ``inf`` for identical outputs, NaN after a failure) are stored as the
strings ``"inf"``, ``"-inf"``, ``"nan"``, since result files are strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..measure.parity import ParityResult, Tolerance
from .records import RecordError, Run

PARITY_SUITE = "parity"
SETTINGS_KEY = "parity"


def encode_float(x: float) -> float | str:
    """A float as strict JSON: finite values unchanged, others as ``"inf"`` / ``"-inf"`` / ``"nan"``."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def decode_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise RecordError(f"{where}: expected a number, got bool")
    if isinstance(value, int | float):
        return float(value)
    if value in ("inf", "-inf", "nan"):
        return float(value)
    raise RecordError(f"{where}: expected a number or 'inf'/'-inf'/'nan', got {value!r}")


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise RecordError(f"{where}: expected an object")
    if key not in d:
        raise RecordError(f"{where}: missing field {key!r}")
    return d[key]


def _str(d: Mapping[str, Any], key: str, where: str) -> str:
    v = _get(d, key, where)
    if not isinstance(v, str):
        raise RecordError(f"{where}.{key}: expected a string")
    return v


@dataclass(frozen=True)
class StageParity:
    """One stage's output against the reference's (see :mod:`perfkit.measure.parity`)."""

    stage: str
    snr_db: float
    correlation: float
    max_abs_diff: float
    nmse: float
    failure: str
    passed: bool

    @classmethod
    def of(cls, stage: str, result: ParityResult, tolerance: Tolerance) -> StageParity:
        return cls(stage, result.snr_db, result.correlation, result.max_abs_diff, result.nmse, result.failure,
                   result.passes(tolerance))

    def describe(self) -> str:
        """One line: ``block_0.tconv: SNR 12.3 dB, correlation 0.981000`` or the hard failure."""
        if self.failure:
            return f"{self.stage}: {self.failure.upper()} in the output"
        return f"{self.stage}: SNR {self.snr_db:.1f} dB, correlation {self.correlation:.6f}"

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "snr_db": encode_float(self.snr_db),
                "correlation": encode_float(self.correlation),
                "max_abs_diff": encode_float(self.max_abs_diff), "nmse": encode_float(self.nmse),
                "failure": self.failure, "passed": self.passed}

    @classmethod
    def from_dict(cls, d: Any, where: str = "stage") -> StageParity:
        passed = _get(d, "passed", where)
        if not isinstance(passed, bool):
            raise RecordError(f"{where}.passed: expected a boolean")
        return cls(_str(d, "stage", where), *(decode_float(_get(d, k, where), f"{where}.{k}")
                                             for k in ("snr_db", "correlation", "max_abs_diff", "nmse")),
                   _str(d, "failure", where), passed)


@dataclass(frozen=True)
class GeneratorParity:
    """The generator against the reference: greedy codes over ``frames`` frames, and the logits under
    teacher forcing (every logits row of every step, stacked)."""

    frames: int
    agreement: float
    first_divergent_frame: int | None
    logits: StageParity | None

    @property
    def passed(self) -> bool:
        return self.logits is None or self.logits.passed

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "agreement": encode_float(self.agreement),
                "first_divergent_frame": self.first_divergent_frame,
                "logits": None if self.logits is None else self.logits.to_dict()}

    @classmethod
    def from_dict(cls, d: Any, where: str = "generator") -> GeneratorParity:
        frames = _get(d, "frames", where)
        first = _get(d, "first_divergent_frame", where)
        if not isinstance(frames, int) or (first is not None and not isinstance(first, int)):
            raise RecordError(f"{where}: frames and first_divergent_frame must be integers")
        logits = _get(d, "logits", where)
        return cls(frames, decode_float(_get(d, "agreement", where), f"{where}.agreement"), first,
                   None if logits is None else StageParity.from_dict(logits, f"{where}.logits"))


@dataclass(frozen=True)
class ParityRecord:
    """One (variant, case) against the reference: every fine vocoder stage, the waveform of an
    end-to-end decode, and the generator where the backend has one.

    ``error`` is set when the backend could not run at all (an exception, a crash, a timeout);
    ``generator_note`` says why there is no generator check (``not implemented by the backend``).
    """

    variant: str
    case: str
    preset: str
    dtype: str
    reference: str
    tolerance: Tolerance
    stages: tuple[StageParity, ...] = ()
    waveform: StageParity | None = None
    generator: GeneratorParity | None = None
    generator_note: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        if self.error or self.waveform is None:
            return False
        return (all(s.passed for s in self.stages) and self.waveform.passed
                and (self.generator is None or self.generator.passed))

    @property
    def first_failure(self) -> str:
        """Why the record fails (the first failing check), ``""`` if it passes."""
        if self.error:
            return self.error
        for s in self.stages:
            if not s.passed:
                return s.describe()
        if self.waveform is None:
            return "no waveform"
        if not self.waveform.passed:
            return self.waveform.describe()
        if self.generator is not None and not self.generator.passed and self.generator.logits is not None:
            return "generator " + self.generator.logits.describe()
        return ""

    def worst_stage(self) -> StageParity | None:
        """The stage with the lowest SNR (a hard failure first)."""
        if not self.stages:
            return None
        return min(self.stages,
                   key=lambda s: (not s.failure, s.snr_db if not math.isnan(s.snr_db) else -math.inf))

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "case": self.case, "preset": self.preset, "dtype": self.dtype,
            "reference": self.reference,
            "tolerance": {"min_snr_db": self.tolerance.min_snr_db,
                          "min_correlation": self.tolerance.min_correlation},
            "stages": [s.to_dict() for s in self.stages],
            "waveform": None if self.waveform is None else self.waveform.to_dict(),
            "generator": None if self.generator is None else self.generator.to_dict(),
            "generator_note": self.generator_note, "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "parity") -> ParityRecord:
        tol = _get(d, "tolerance", where)
        stages = _get(d, "stages", where)
        if not isinstance(stages, list):
            raise RecordError(f"{where}.stages: expected a list")
        wave = _get(d, "waveform", where)
        gen = _get(d, "generator", where)
        return cls(
            variant=_str(d, "variant", where), case=_str(d, "case", where), preset=_str(d, "preset", where),
            dtype=_str(d, "dtype", where), reference=_str(d, "reference", where),
            tolerance=Tolerance(decode_float(_get(tol, "min_snr_db", f"{where}.tolerance"), where),
                                decode_float(_get(tol, "min_correlation", f"{where}.tolerance"), where)),
            stages=tuple(StageParity.from_dict(s, f"{where}.stages[{i}]") for i, s in enumerate(stages)),
            waveform=None if wave is None else StageParity.from_dict(wave, f"{where}.waveform"),
            generator=None if gen is None else GeneratorParity.from_dict(gen, f"{where}.generator"),
            generator_note=str(d.get("generator_note", "")), error=str(d.get("error", "")),
        )


def parity_records(run: Run) -> tuple[ParityRecord, ...]:
    """The parity records a run carries (a parity run, or an imported pytest-benchmark run whose benchmarks
    checked parity); empty for others; :class:`RecordError` if malformed."""
    if run.suite != PARITY_SUITE and SETTINGS_KEY not in run.settings:
        return ()
    raw = run.settings.get(SETTINGS_KEY, [])
    if not isinstance(raw, list):
        raise RecordError(f"run {run.run_id}: settings.{SETTINGS_KEY} must be a list")
    return tuple(ParityRecord.from_dict(r, f"{run.run_id}.parity[{i}]") for i, r in enumerate(raw))
