"""What a suite is: the cases it measures, and how to measure one case on one backend.

A suite is a module ``perfkit.suites.<name>`` (the ``suites/`` directory) defining ``SUITE``, an
instance of a :class:`Suite` subclass whose :attr:`Suite.name` is the module name. The engine uses it
in two places:

- in the parent, :meth:`Suite.cases` turns the request (``--preset``, ``--frames``, ``--seed``,
  ``--param key=value``) into :class:`~perfkit.store.records.Case` s;
- in each worker, :meth:`Suite.prepare` builds the inputs (untimed: synthetic weights, codes), then
  :meth:`Suite.load` hands them to the backend — *timed*, as the load time — and returns a
  :class:`Workload`.

A workload declares its :class:`Series` — the ways one pass is timed — and runs one pass of a series
with a :class:`~perfkit.measure.timers.Timer`::

    def run(self, series, timer):
        state = self.runner.new_state()          # per-pass set-up: outside the timed region
        timer.start()
        for stage in self.runner.stages:         # a synced series: one lap per span, a sync after each
            x = self.runner.run_stage(stage, x, state)
            timer.lap(stage)

    # an end-to-end series: timer.start(); runner.decode(codes, state); timer.end("decode")

The engine owns everything else: first call, warm-up, loop calibration, interleaving, stopping,
memory (the same workload run under a memory sampler in a fresh worker), isolation and storage. A
new suite therefore only says *what* one pass does. Span names must be exactly the series' ``spans``
(a span lapped several times in one pass accumulates: per-frame generator stages).
"""

from __future__ import annotations

import abc
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import InputError
from ..interface import Backend
from ..measure.protocol import Protocol
from ..measure.timers import Timer
from ..store.records import Case

SUITES_PACKAGE = "perfkit.suites"


@dataclass(frozen=True)
class CaseRequest:
    """What the user asked for; each suite reads the fields it understands."""

    preset: str
    frames: tuple[int, ...] = ()
    seed: int = 0
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    """One way a pass is timed.

    ``spans``: the names timed, in order. ``synced``: a device sync after every span (per-stage timing)
    or a single one at the end (end-to-end). ``covers``: the end-to-end series timing the same work,
    against which the overhead of per-stage timing is measured.
    """

    name: str
    spans: tuple[str, ...]
    synced: bool
    covers: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spans": list(self.spans), "synced": self.synced, "covers": self.covers}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Series:
        return cls(str(d["name"]), tuple(d["spans"]), bool(d["synced"]), d.get("covers"))


class Workload(abc.ABC):
    """One case loaded into one backend, inside a worker process."""

    #: The series a pass can be timed as; the first one's first pass is the case's *first call*.
    series: tuple[Series, ...] = ()
    #: Bytes of the model's weights as the backend holds them, in its compute dtype (``None`` when unknown).
    weight_bytes: int | None = None

    def metadata(self) -> dict[str, Any]:
        """What the workload knows about itself once loaded (JSON-plain values), returned by the worker's
        setup and stored with the case: e.g. the ``rtf`` suite's ``batch_mode`` (``native`` / ``looped``)."""
        return {}

    @abc.abstractmethod
    def run(self, series: str, timer: Timer) -> None:
        """One pass of ``series``: ``timer.start()``, then ``lap``/``end`` once per span."""

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Release what the workload holds (optional)."""


class Suite(abc.ABC):
    """A named plan of cases and how to measure one; see the module docstring."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: The suite's own protocol defaults (``None``: :class:`~perfkit.measure.protocol.Protocol`'s);
    #: command-line options override single fields.
    protocol: ClassVar[Protocol | None] = None
    #: ``True``: the memory pass always runs (a memory suite); otherwise the command line decides.
    memory: ClassVar[bool] = False

    @abc.abstractmethod
    def cases(self, request: CaseRequest) -> list[Case]:
        """The cases for ``request`` (in the parent); :class:`InputError` / ``ConfigError`` if invalid."""

    def prepare(self, case: Case) -> Any:
        """Inputs for ``case`` built in the worker before the backend sees them (not timed)."""
        return case

    @abc.abstractmethod
    def load(self, backend: Backend, prepared: Any) -> Workload:
        """Hand the prepared inputs to ``backend`` (timed as the load time) and return the workload."""


def suite_names() -> list[str]:
    """Modules of :data:`SUITES_PACKAGE` (each should define ``SUITE``)."""
    package = importlib.import_module(SUITES_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def get_suite(name: str) -> Suite:
    """The suite ``name``; :class:`InputError` naming the installed ones if it does not exist."""
    known = suite_names()
    if name not in known:
        raise InputError(f"unknown suite {name!r}; installed: {', '.join(known) or 'none'}")
    module = importlib.import_module(f"{SUITES_PACKAGE}.{name}")
    suite = getattr(module, "SUITE", None)
    if not isinstance(suite, Suite) or suite.name != name:
        raise InputError(f"suite module {module.__name__} must define SUITE, a Suite named {name!r}")
    return suite


def suite_module(name: str) -> str:
    return f"{SUITES_PACKAGE}.{name}"
