"""The measurement protocol: first call, warm-up, calibrated samples, and when to stop.

For one (backend variant, case) the worker:

1. loads the model — *load time*, stored apart;
2. runs each series once — the *first call* (numba JIT, torch.compile, CUDA context, caches), stored
   apart and never a sample;
3. runs ``warmup_rounds`` more passes of each series, discarded; their fastest span sets ``loops``
   (:func:`calibrate_loops`): the number of passes one sample spans, so that even the shortest span of a
   sample lasts at least ``resolution_multiple`` times the timer's resolution. A sample's value is the
   per-pass mean over its ``loops`` passes (stored with ``loops``, so the raw total is recoverable);
4. measures samples in *visits* of ``round_samples`` samples per series, interleaved with the other
   variants' visits (A B A B …), until :func:`should_stop`. Each visit first runs ``visit_warmup``
   passes of its first series, discarded: a process that waited while the other variants ran starts
   its visit cold (caches refilled, idle BLAS/OpenMP threads woken), and without them the first sample
   of every visit — always the first series' — read 0.3–21% slower than the visit's later samples in
   16 of 16 cases of this project's runs (``stages``, 50 frames, 2-sample visits), which biased that
   series' median, the per-stage timing overhead, and the comparison of variants that wake up at
   different speeds. With ``workers`` > 1, steps 1–3 happen in
   that many processes per variant, a visit takes :attr:`Protocol.visit_samples` samples
   (``round_samples // workers``, at least 1) and the visits rotate over them (the engine,
   :mod:`perfkit.run.engine`): two processes of the same code can differ by more than their samples
   do (memory layout, thread placement), and one process per side would report that as a change.
   With ``worker_visits`` > 0 a worker is replaced by a fresh one (steps 1–3 again) after that many
   visits: more processes per variant without more of them alive at once, for models too big to hold
   several copies of in memory.

The stopping rule, per (variant, case), with ``n`` samples per series::

    stop when n >= max_samples
      or (n >= min_samples and (time spent measuring >= budget_s
                                or every series' rel_iqr(total per sample) <= target_rel_iqr))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import InputError
from .stats import rel_iqr


@dataclass(frozen=True)
class Protocol:
    """Knobs of the protocol (see the module docstring); stored with every run."""

    warmup_rounds: int = 2
    min_samples: int = 10
    max_samples: int = 200
    budget_s: float = 5.0
    round_samples: int = 5
    target_rel_iqr: float = 0.02
    resolution_multiple: int = 100
    max_loops: int = 1000
    memory_passes: int = 3
    workers: int = 1
    worker_visits: int = 0  # visits per worker process before a fresh one replaces it; 0: never
    visit_warmup: int = 1  # discarded passes of the first series at the start of every visit

    def __post_init__(self) -> None:
        checks = {
            "warmup_rounds": self.warmup_rounds >= 0, "min_samples": self.min_samples >= 1,
            "max_samples": self.max_samples >= self.min_samples, "budget_s": self.budget_s > 0,
            "round_samples": self.round_samples >= 1, "target_rel_iqr": self.target_rel_iqr >= 0,
            "resolution_multiple": self.resolution_multiple >= 1, "max_loops": self.max_loops >= 1,
            "memory_passes": self.memory_passes >= 0, "workers": self.workers >= 1,
            "worker_visits": self.worker_visits >= 0, "visit_warmup": self.visit_warmup >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            settings = ", ".join(f"{k}={getattr(self, k)}" for k in bad)
            raise InputError(f"invalid protocol setting(s): {settings}")

    @property
    def visit_samples(self) -> int:
        """Samples per series per visit: ``round_samples``, shared out over the ``workers`` (at least 1),
        so that a variant's samples come from all of its processes even when ``max_samples`` is small."""
        return max(1, self.round_samples // self.workers)

    def override(self, **changes: Any) -> Protocol:
        """A copy with the given fields changed (``None`` values ignored); raising ``min_samples`` above
        ``max_samples`` (or the reverse) moves the other bound along rather than failing."""
        given = {k: v for k, v in changes.items() if v is not None}
        if "min_samples" in given and "max_samples" not in given:
            given["max_samples"] = max(self.max_samples, given["min_samples"])
        if "max_samples" in given and "min_samples" not in given:
            given["min_samples"] = min(self.min_samples, given["max_samples"])
        return replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """The protocol stored with a run; one stored before visits had a warm-up had none (0)."""
        names = cls.__dataclass_fields__
        return cls(**{"visit_warmup": 0, **{k: v for k, v in data.items() if k in names}})


def calibrate_loops(shortest_span_ns: float, resolution_ns: float, multiple: int, max_loops: int) -> int:
    """``ceil(multiple * resolution_ns / shortest_span_ns)`` clipped to ``[1, max_loops]``."""
    if shortest_span_ns <= 0:
        return max_loops
    return max(1, min(max_loops, math.ceil(multiple * resolution_ns / shortest_span_ns)))


def should_stop(protocol: Protocol, totals: Mapping[str, Sequence[float]], spent_s: float) -> bool:
    """The stopping rule of the module docstring; ``totals`` maps each series to its per-sample totals."""
    n = min((len(v) for v in totals.values()), default=0)
    if n >= protocol.max_samples:
        return True
    if n < protocol.min_samples:
        return False
    if spent_s >= protocol.budget_s:
        return True
    return all(rel_iqr(v) <= protocol.target_rel_iqr for v in totals.values())
