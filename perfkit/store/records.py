"""Result records: frozen dataclasses for a run, its cases, their series, stages and samples.

A :class:`Run` is what one ``perfkit run`` produced: the protocol, the environment and one
:class:`CaseRecord` per (backend variant, case). A case holds its *series* (``stages``: every fine stage
with a device sync after each; ``coarse``; ``e2e``: one span, no per-stage sync), each series its
:class:`StageRecord` s, and each stage its raw samples ``wall_ns`` — always kept, never summarised
away. Units are in the field names: ``*_ns`` nanoseconds, ``*_bytes`` bytes, ``*_s`` seconds, ``*_utc``
ISO-8601 UTC timestamps.

Every record has ``to_dict`` and ``from_dict``; ``from_dict`` checks types and raises
:class:`RecordError` (a ``ValueError``) naming the field, so a malformed file is reported, never half-read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..measure.environment import Environment
from ..measure.timers import TimerInfo

CASE_OK = "ok"
CASE_FAILED = "failed"
CASE_INTERRUPTED = "interrupted"
CASE_STATUSES = (CASE_OK, CASE_FAILED, CASE_INTERRUPTED)

RUN_COMPLETE = "complete"
RUN_INTERRUPTED = "interrupted"
RUN_STATUSES = (RUN_COMPLETE, RUN_INTERRUPTED)

#: Failure kinds: an exception in the worker, a signal or exit, no reply in time, out of memory,
#: a variant that cannot run here, a run stopped by SIGINT/SIGTERM.
FAILURE_KINDS = ("error", "crash", "timeout", "oom", "unavailable", "interrupted")

Param = int | float | str


class RecordError(ValueError):
    """A record that does not have the shape its class requires."""


# ----------------------------------------------------------------------------- checked access
def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _req(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         optional: bool = False) -> Any:
    if key not in d:
        if optional:
            return None
        raise RecordError(f"{where}: missing field {key!r}")
    value = d[key]
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise RecordError(f"{where}.{key}: expected {'/'.join(k.__name__ for k in kinds)}, got bool")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kinds):
        raise RecordError(f"{where}.{key}: expected {'/'.join(k.__name__ for k in kinds)}, "
                          f"got {type(value).__name__}")
    return value


def _int_list(d: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
    values = _req(d, key, list, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise RecordError(f"{where}.{key}: expected a list of integers")
    return tuple(values)


def _list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    return _req(d, key, list, where)


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Case:
    """What is measured: a model preset plus the suite's parameters (``frames``, ``seed`` …)."""

    preset: str
    params: tuple[tuple[str, Param], ...] = ()

    @property
    def name(self) -> str:
        """``preset/key=value/…`` in parameter order, e.g. ``tiny/frames=25/seed=0``."""
        return "/".join([self.preset, *(f"{k}={v}" for k, v in self.params)])

    def param(self, key: str, default: Param | None = None) -> Any:
        return dict(self.params).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "case") -> Case:
        d = _obj(d, where)
        params = _obj(_req(d, "params", dict, where), f"{where}.params")
        for k, v in params.items():
            if not isinstance(v, int | float | str) or isinstance(v, bool):
                raise RecordError(f"{where}.params.{k}: expected a number or string")
        return cls(_req(d, "preset", str, where), tuple(params.items()))


@dataclass(frozen=True)
class Failure:
    """Why a case (or its memory pass) did not complete: ``kind`` in :data:`FAILURE_KINDS`, the
    ``phase`` it happened in (``setup``, ``round``, ``memory``), a one-line ``message`` and ``detail``
    (a traceback or the tail of the worker's log)."""

    kind: str
    phase: str
    message: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "phase": self.phase, "message": self.message, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: Any, where: str = "failure") -> Failure:
        d = _obj(d, where)
        return cls(_req(d, "kind", str, where), _req(d, "phase", str, where), _req(d, "message", str, where),
                   _req(d, "detail", str, where, optional=True) or "")


@dataclass(frozen=True)
class Sample:
    """One raw sample of one stage, as a row (what the pandas frame holds)."""

    series: str
    stage: str
    index: int
    visit: int
    wall_ns: int
    loops: int


@dataclass(frozen=True)
class StageRecord:
    """One stage (or span) of a series: its raw samples and its first-call time, kept apart."""

    name: str
    wall_ns: tuple[int, ...]
    first_call_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "first_call_ns": self.first_call_ns, "wall_ns": list(self.wall_ns)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "stage") -> StageRecord:
        d = _obj(d, where)
        return cls(_req(d, "name", str, where), _int_list(d, "wall_ns", where),
                   _req(d, "first_call_ns", int, where, optional=True))


@dataclass(frozen=True)
class SeriesRecord:
    """One way of timing a case: ``synced`` (a device sync after every stage) or one sync at the end.

    ``covers`` names the end-to-end series timing the same work (per-stage overhead is measured
    against it); ``loops`` passes make one sample (each value is the per-pass mean); ``visits[i]`` is
    the visit (interleaving round) sample ``i`` was measured in, counted across all variants of the case.
    """

    name: str
    synced: bool
    loops: int
    visits: tuple[int, ...]
    stages: tuple[StageRecord, ...]
    covers: str | None = None

    def __post_init__(self) -> None:
        for st in self.stages:
            if len(st.wall_ns) != len(self.visits):
                raise RecordError(f"series {self.name!r}: stage {st.name!r} has {len(st.wall_ns)} samples, "
                                  f"{len(self.visits)} visits")

    @property
    def n(self) -> int:
        return len(self.visits)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StageRecord:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def totals_ns(self) -> tuple[int, ...]:
        """Per sample: the sum over its stages."""
        return tuple(sum(vals) for vals in zip(*(s.wall_ns for s in self.stages),
                                               strict=True)) if self.stages else ()

    def samples(self) -> Iterator[Sample]:
        for st in self.stages:
            for i, (visit, ns) in enumerate(zip(self.visits, st.wall_ns, strict=True)):
                yield Sample(self.name, st.name, i, visit, ns, self.loops)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "synced": self.synced, "covers": self.covers, "loops": self.loops,
                "visits": list(self.visits), "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "series") -> SeriesRecord:
        d = _obj(d, where)
        name = _req(d, "name", str, where)
        stages = tuple(StageRecord.from_dict(s, f"{where}[{name}].stages[{i}]")
                       for i, s in enumerate(_list(d, "stages", where)))
        return cls(name, _req(d, "synced", bool, where), _req(d, "loops", int, where), _int_list(d, "visits",
                                                                                                 where),
                   stages, _req(d, "covers", str, where, optional=True))


@dataclass(frozen=True)
class MemoryRecord:
    """The memory pass of one case, in a fresh worker (see :mod:`perfkit.measure.memory`).

    ``baseline_rss_bytes`` is the worker's RSS with its libraries imported and the backend created, before
    the model loads; ``peak_rss_bytes`` is over everything after it (the input model's preparation, the
    load, the first call and ``passes`` passes of every series). The pass has two phases:
    ``load_peak_rss_bytes`` is the peak while the input model is built and loaded;
    ``rss_after_load_bytes`` is taken once the input model is dropped and freed memory is returned to
    the OS; ``run_peak_rss_bytes`` is the peak over the first call and the passes (both ``None`` in
    files written before the split). ``baseline_file_rss_bytes`` and ``run_peak_file_rss_bytes`` are the
    file-backed parts of the baseline and of the run peak (pages of mapped files, mostly the libraries'
    code; ``None`` in older files and where the platform does not report them).
    """

    baseline_rss_bytes: int
    rss_after_load_bytes: int
    peak_rss_bytes: int
    ru_maxrss_bytes: int
    weight_bytes: int | None = None
    peak_uss_bytes: int | None = None
    cuda_peak_allocated_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None
    polls: int = 0
    interval_s: float = 0.0
    passes: int = 0
    load_peak_rss_bytes: int | None = None
    run_peak_rss_bytes: int | None = None
    baseline_file_rss_bytes: int | None = None
    run_peak_file_rss_bytes: int | None = None

    @property
    def inference_peak_bytes(self) -> int:
        """The peak RSS while the model runs: the run phase's, or the whole pass's in older files."""
        return self.run_peak_rss_bytes if self.run_peak_rss_bytes is not None else self.peak_rss_bytes

    def working_bytes(self, weight_bytes: int | None) -> int:
        """Working memory = inference peak − baseline − weights: activations, scratch, caches and any
        copy the backend keeps beyond the weights (negative when weights are shared or not resident)."""
        weights = self.weight_bytes if self.weight_bytes is not None else weight_bytes
        return self.inference_peak_bytes - self.baseline_rss_bytes - (weights or 0)

    @property
    def file_backed_working_bytes(self) -> int | None:
        """The part of the working memory that is pages of mapped files (run peak's file-backed RSS −
        the baseline's): library code and data that the model's first calls paged in, not allocations.
        ``None`` when either figure is missing."""
        if self.run_peak_file_rss_bytes is None or self.baseline_file_rss_bytes is None:
            return None
        return self.run_peak_file_rss_bytes - self.baseline_file_rss_bytes

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Any, where: str = "memory") -> MemoryRecord:
        d = _obj(d, where)
        req = ("baseline_rss_bytes", "rss_after_load_bytes", "peak_rss_bytes", "ru_maxrss_bytes")
        opt = ("weight_bytes", "peak_uss_bytes", "cuda_peak_allocated_bytes", "cuda_peak_reserved_bytes",
               "load_peak_rss_bytes", "run_peak_rss_bytes", "baseline_file_rss_bytes", "run_peak_file_rss_bytes")
        kw: dict[str, Any] = {k: _req(d, k, int, where) for k in req}
        kw.update({k: _req(d, k, int, where, optional=True) for k in opt})
        kw["polls"] = _req(d, "polls", int, where, optional=True) or 0
        kw["interval_s"] = _req(d, "interval_s", float, where, optional=True) or 0.0
        kw["passes"] = _req(d, "passes", int, where, optional=True) or 0
        return cls(**kw)


@dataclass(frozen=True)
class CaseRecord:
    """One (backend variant, case): its samples, first-call and load times, memory, and failures.

    A failed case keeps every sample measured before it failed; ``status`` is ``ok``, ``failed`` (some
    phase failed: the failures say which — after a ``memory``-phase failure the timings are complete) or
    ``interrupted`` (the run was stopped by SIGINT/SIGTERM while this case was measured).
    """

    variant: str
    backend: str
    options: tuple[tuple[str, str], ...]
    case: Case
    status: str = CASE_OK
    failures: tuple[Failure, ...] = ()
    device: str = "cpu"
    timer: TimerInfo | None = None
    threads: Mapping[str, Any] = field(default_factory=dict)
    source_hash: str | None = None
    load_ns: int | None = None
    first_call_ns: int | None = None
    weight_bytes: int | None = None
    series: tuple[SeriesRecord, ...] = ()
    memory: MemoryRecord | None = None
    #: What the workload reported about itself at setup (e.g. ``{"batch_mode": "native"}``); stored only
    #: when non-empty.
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == CASE_OK

    def series_named(self, name: str) -> SeriesRecord | None:
        return next((s for s in self.series if s.name == name), None)

    def samples(self) -> Iterator[Sample]:
        for s in self.series:
            yield from s.samples()

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "backend": self.backend, "options": dict(self.options),
            "case": self.case.to_dict(), "status": self.status,
                "failures": [f.to_dict() for f in self.failures],
            "device": self.device, "timer": None if self.timer is None else dict(self.timer.__dict__),
            "threads": dict(self.threads), "source_hash": self.source_hash, "load_ns": self.load_ns,
            "first_call_ns": self.first_call_ns, "weight_bytes": self.weight_bytes,
            "series": [s.to_dict() for s in self.series],
            "memory": None if self.memory is None else self.memory.to_dict(),
            **({"metadata": dict(self.metadata)} if self.metadata else {}),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "case") -> CaseRecord:
        d = _obj(d, where)
        variant = _req(d, "variant", str, where)
        where = f"{where}[{variant}]"
        options = _obj(_req(d, "options", dict, where), f"{where}.options")
        if not all(isinstance(v, str) for v in options.values()):
            raise RecordError(f"{where}.options: values must be strings")
        status = _req(d, "status", str, where)
        if status not in CASE_STATUSES:
            raise RecordError(f"{where}.status: {status!r} is not one of {', '.join(CASE_STATUSES)}")
        timer_d = _req(d, "timer", dict, where, optional=True)
        timer = None
        if timer_d is not None:
            tw = f"{where}.timer"
            timer = TimerInfo(_req(timer_d, "kind", str, tw), _req(timer_d, "resolution_ns", float, tw),
                              _req(timer_d, "overhead_ns", float, tw))
        memory_d = _req(d, "memory", dict, where, optional=True)
        return cls(
            variant=variant, backend=_req(d, "backend", str, where), options=tuple(sorted(options.items())),
            case=Case.from_dict(_req(d, "case", dict, where), f"{where}.case"), status=status,
            failures=tuple(Failure.from_dict(f, f"{where}.failures[{i}]")
                           for i, f in enumerate(_list(d, "failures", where))),
            device=_req(d, "device", str, where, optional=True) or "cpu", timer=timer,
            threads=dict(_req(d, "threads", dict, where, optional=True) or {}),
            source_hash=_req(d, "source_hash", str, where, optional=True),
            load_ns=_req(d, "load_ns", int, where, optional=True),
            first_call_ns=_req(d, "first_call_ns", int, where, optional=True),
            weight_bytes=_req(d, "weight_bytes", int, where, optional=True),
            series=tuple(SeriesRecord.from_dict(s, f"{where}.series[{i}]")
                         for i, s in enumerate(_list(d, "series", where))),
            memory=None if memory_d is None else MemoryRecord.from_dict(memory_d, f"{where}.memory"),
            metadata=dict(_req(d, "metadata", dict, where, optional=True) or {}),
        )


@dataclass(frozen=True)
class Skipped:
    """A requested variant that was not measured at all, and why (unavailable here, unknown)."""

    variant: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Any, where: str = "skipped") -> Skipped:
        d = _obj(d, where)
        return cls(_req(d, "variant", str, where), _req(d, "reason", str, where))


@dataclass(frozen=True)
class Run:
    """Everything one run measured, with how and where; ``run_id`` is also the result file's stem."""

    run_id: str
    suite: str
    status: str
    started_utc: str
    finished_utc: str
    perfkit_version: str = ""
    command: tuple[str, ...] = ()
    protocol: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    environment: Environment = field(default_factory=Environment)
    warnings: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    cases: tuple[CaseRecord, ...] = ()

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.variant for c in self.cases))

    def samples(self) -> Iterator[tuple[CaseRecord, Sample]]:
        for c in self.cases:
            for s in c.samples():
                yield c, s

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "suite": self.suite, "status": self.status,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc, "perfkit_version": self.perfkit_version,
            "command": list(self.command), "protocol": dict(self.protocol), "settings": dict(self.settings),
            "environment": self.environment.to_dict(), "warnings": list(self.warnings),
            "skipped": [s.to_dict() for s in self.skipped], "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "run") -> Run:
        d = _obj(d, where)
        status = _req(d, "status", str, where)
        if status not in RUN_STATUSES:
            raise RecordError(f"{where}.status: {status!r} is not one of {', '.join(RUN_STATUSES)}")
        command = _list(d, "command", where)
        warnings = _list(d, "warnings", where)
        if not all(isinstance(c, str) for c in command + warnings):
            raise RecordError(f"{where}: command and warnings must be lists of strings")
        try:
            env = Environment.from_dict(_obj(_req(d, "environment", dict, where), f"{where}.environment"))
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}.environment: {exc}") from None
        return cls(
            run_id=_req(d, "run_id", str, where), suite=_req(d, "suite", str, where), status=status,
            started_utc=_req(d, "started_utc", str, where), finished_utc=_req(d, "finished_utc", str, where),
            perfkit_version=_req(d, "perfkit_version", str, where, optional=True) or "",
            command=tuple(command), protocol=dict(_req(d, "protocol", dict, where)),
            settings=dict(_req(d, "settings", dict, where)), environment=env, warnings=tuple(warnings),
            skipped=tuple(Skipped.from_dict(s, f"{where}.skipped[{i}]")
                          for i, s in enumerate(_list(d, "skipped", where))),
            cases=tuple(CaseRecord.from_dict(c, f"{where}.cases[{i}]")
                        for i, c in enumerate(_list(d, "cases", where))),
        )
