"""Whether this machine still runs at the speed its cached peaks were measured at.

A :class:`~perfkit.measure.peak.Fingerprint` names the CPU model, the cores, the threads and the library
versions. It cannot tell that a shared host now gives this machine a third of yesterday's speed (a
noisy neighbour, a power or thermal limit, another host behind the same CPU name). On the 2-core AMD
EPYC this project is developed on, the same NumPy float32 GEMM of ``n = 2048`` ran at 146 GFLOP/s one
day and 48.5 the next, with the same fingerprint; every "% of peak" computed against the older peak
would have read a third of the truth.

So before a run records the cached peaks, :func:`check_speed` measures two of them again, briefly, with
the same kernels, sizes and threads: NumPy's float32 GEMM (compute) and NumPy's copy (memory). Only
NumPy, so that a run's parent process still does not import torch. Each check is
``ratio = best now / best cached``; :func:`speed_warning` speaks when a ratio leaves
``[1 / SPEED_TOLERANCE, SPEED_TOLERANCE]``. The cost is 2 to 3 s on the development machine (the GEMM's
five products, and allocating and first touching the copy's two 256 MiB arrays), once per process:
:func:`checked_speed` remembers the answer per cached entry.

What the reports make of it: each run's conditions list the ratios (:func:`speed_ratios`); under a
% peak column, a run whose peaks were stale says so (:func:`speed_note`); and a journal whose two sides
were measured in separate runs at speeds further apart than the tolerance says that the machine, not
only the change, differs between them (:func:`speed_shift`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .peak import COPY, GEMM, NUMPY, MachinePeaks, PeakMeasurement, measure_bandwidth, measure_gemm

#: Largest factor between the speed now and the cached peak that passes without a warning.
SPEED_TOLERANCE = 1.25
#: Repetitions and the seconds one repetition aims at: a check, not a peak measurement.
CHECK_REPEATS = 3
CHECK_TARGET_S = 0.1
#: The cached measurements that are measured again: ``(kind, library, dtype)``.
CHECKED = ((GEMM, NUMPY, "float32"), (COPY, NUMPY, "float32"))


@dataclass(frozen=True)
class SpeedCheck:
    """One cached peak measured again: ``ratio = now / cached`` (best repetitions, same size and threads)."""

    kind: str
    library: str
    dtype: str
    size: int
    threads: int
    unit: str
    cached: float
    now: float
    cached_utc: str

    @property
    def ratio(self) -> float:
        return self.now / self.cached if self.cached > 0 else float("nan")

    @property
    def within_tolerance(self) -> bool:
        return 1 / SPEED_TOLERANCE <= self.ratio <= SPEED_TOLERANCE

    @property
    def label(self) -> str:
        """``"NumPy float32 GEMM"`` or ``"NumPy copy"``."""
        name = "NumPy" if self.library == NUMPY else self.library
        return f"{name} {self.dtype} GEMM" if self.kind == GEMM else f"{name} {self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "library": self.library, "dtype": self.dtype, "size": self.size,
                "threads": self.threads, "unit": self.unit, "cached": self.cached, "now": self.now,
                "cached_utc": self.cached_utc, "ratio": self.ratio}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpeedCheck:
        return cls(str(data["kind"]), str(data["library"]), str(data["dtype"]), int(data["size"]),
                   int(data["threads"]), str(data["unit"]), float(data["cached"]), float(data["now"]),
                   str(data["cached_utc"]))


Remeasure = Callable[[PeakMeasurement], PeakMeasurement]


def remeasure(cached: PeakMeasurement) -> PeakMeasurement:
    """``cached``'s kernel again at its size and thread count, :data:`CHECK_REPEATS` short repetitions."""
    if cached.kind == GEMM:
        return measure_gemm(cached.library, cached.dtype, cached.threads, n=cached.size,
                            target_s=CHECK_TARGET_S, repeats=CHECK_REPEATS)
    return measure_bandwidth(cached.library, cached.kind, cached.threads, nbytes=cached.size,
                             repeats=CHECK_REPEATS, target_s=CHECK_TARGET_S)


def check_speed(peaks: MachinePeaks, measure: Remeasure = remeasure) -> tuple[SpeedCheck, ...]:
    """The :data:`CHECKED` measurements of ``peaks`` taken again (those ``peaks`` holds; ``measure`` is
    injectable for tests)."""
    out = []
    for kind, library, dtype in CHECKED:
        cached = next((m for m in peaks.measurements
                       if (m.kind, m.library, m.dtype) == (kind, library, dtype)), None)
        if cached is None:
            continue
        now = measure(cached)
        out.append(SpeedCheck(kind, library, dtype, cached.size, cached.threads, cached.unit, cached.best,
                              now.best, peaks.measured_utc))
    return tuple(out)


@functools.cache
def _checked(entry: str) -> tuple[SpeedCheck, ...]:
    return check_speed(MachinePeaks.from_dict(json.loads(entry)))


def checked_speed(peaks: Mapping[str, Any]) -> tuple[SpeedCheck, ...]:
    """:func:`check_speed` of a recorded peaks entry (:func:`~perfkit.measure.peak.recorded_peaks`), once per
    process and entry: the commands that run several plans (``perfkit compare``) pay for it once."""
    return _checked(json.dumps(peaks, sort_keys=True))


def speed_warning(checks: Sequence[SpeedCheck]) -> str:
    """Why the cached peaks do not describe the machine now; empty when every check is within tolerance."""
    off = [c for c in checks if not c.within_tolerance]
    if not off:
        return ""
    parts = [f"{c.label} at {c.now:.1f} {c.unit}, {100 * c.ratio:.0f}% of the {c.cached:.1f} cached"
             for c in off]
    if all(c.ratio < 1 for c in off):
        direction, reads = "slower than", "too low"
    elif all(c.ratio > 1 for c in off):
        direction, reads = "faster than", "too high"
    else:
        direction, reads = "at another speed than", "wrong"
    return (f"this machine runs {direction} when its peaks were measured ({off[0].cached_utc}): "
            f"{'; '.join(parts)}. Every '% peak' of this run is against the cached peaks and reads {reads} "
            "by about that factor; run `perfkit machine --refresh` when the machine is quiet")


def recorded_checks(settings: Mapping[str, Any]) -> tuple[SpeedCheck, ...]:
    """The checks a run stored (``settings["machine_speed"]``); ``()`` for runs from before the check."""
    try:
        return tuple(SpeedCheck.from_dict(c) for c in settings.get("machine_speed") or ())
    except (KeyError, TypeError, ValueError):
        return ()


def speed_ratios(checks: Sequence[SpeedCheck]) -> str:
    """``"speed against the cached peaks: NumPy float32 GEMM 98%, NumPy copy 101%"``; empty without checks."""
    if not checks:
        return ""
    return "speed against the cached peaks: " + ", ".join(f"{c.label} {100 * c.ratio:.0f}%" for c in checks)


def speed_note(checks: Sequence[SpeedCheck]) -> str:
    """A report's sentence under a '% peak' column whose peaks did not describe the machine of the run;
    empty when every check is within tolerance (or none was made)."""
    if all(c.within_tolerance for c in checks):
        return ""
    return (f"**The peaks are stale for this run**: when it started, this machine ran at "
            f"{', '.join(f'{100 * c.ratio:.0f}% ({c.label})' for c in checks)} of the peaks cached "
            f"{checks[0].cached_utc}, so its % peak figures are off by about that factor "
            "(`perfkit machine --refresh` measures them again).")


def side_rates(runs_checks: Sequence[Sequence[SpeedCheck]]) -> dict[tuple[str, int, int], tuple[float, str]]:
    """One side of a comparison: per checked kernel ``(label, size, threads)`` the median of its runs'
    ``now`` rates, with the unit. Kernels of other sizes or thread counts are other kernels."""
    rates: dict[tuple[str, int, int], list[float]] = {}
    units: dict[tuple[str, int, int], str] = {}
    for checks in runs_checks:
        for c in checks:
            key = (c.label, c.size, c.threads)
            rates.setdefault(key, []).append(c.now)
            units[key] = c.unit
    return {k: (float(np.median(v)), units[k]) for k, v in rates.items()}


def speed_shift(before: Sequence[Sequence[SpeedCheck]], after: Sequence[Sequence[SpeedCheck]]) -> str:
    """Whether the machine ran at another speed for one side's runs than for the other's (the speed checks
    of each side's runs, :func:`side_rates`): a sentence naming each kernel whose ``after / before`` rate
    leaves the tolerance, empty when none does or the sides share no checked kernel."""
    a, b = side_rates(before), side_rates(after)
    shifted = []
    for key in sorted(set(a) & set(b)):
        (rate_a, unit), (rate_b, _) = a[key], b[key]
        ratio = rate_b / rate_a if rate_a > 0 else float("nan")
        if not 1 / SPEED_TOLERANCE <= ratio <= SPEED_TOLERANCE:
            shifted.append(f"{key[0]} {rate_a:.1f} {unit} before, {rate_b:.1f} after ({ratio:.2f}x)")
    if not shifted:
        return ""
    return ("**The machine ran at another speed for the two sides' runs** (speed checks when they started: "
            f"{'; '.join(shifted)}), so a difference between the sides is partly the machine's. Measure both "
            "sides in one interleaved run (`perfkit compare … --base-source WORKTREE`).")
