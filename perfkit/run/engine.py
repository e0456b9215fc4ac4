"""The engine: runs a :class:`~perfkit.run.plan.Plan` in isolated workers and stores the result.

For each case, in plan order:

1. one worker per variant (``protocol.workers``) is started and set up in turn (load, first call, warm-up, calibration —
   see :mod:`perfkit.measure.protocol`), one at a time so set-ups never overlap;
2. *visits* alternate between the variants, A B A B …: each visit asks one worker for
   ``round_samples`` samples of every series, after ``protocol.visit_warmup`` discarded passes (a
   resumed worker is cold); only one worker measures at any moment, so drift in the
   machine (load, temperature, frequency) hits every variant alike. Between its visits a worker is
   stopped (SIGSTOP, :meth:`~perfkit.run.process.WorkerProcess.pause`), so the thread pools it leaves
   spinning cannot slow the worker being measured. With ``protocol.workers`` > 1 a variant has that
   many workers, set up in turn, and its visits rotate over them: what differs between two processes
   of the same code (memory layout, thread placement, environment size) then enters the samples
   instead of passing for a difference between variants. With ``protocol.worker_visits`` > 0 a worker
   that has served that many visits is closed and a fresh one set up in its place (while the others
   are stopped, as at the start), so a variant's samples come from many processes with no more of
   them alive at once. Visits are numbered across the case and
   every sample keeps its visit number. A variant stops when
   :func:`~perfkit.measure.protocol.should_stop` says so, and its workers are closed;
3. with ``plan.memory``, each variant that measured cleanly gets a memory pass in a fresh worker.

Before the first case, when ``perfkit machine`` has cached this machine's peaks, the run records them
with a speed check (:mod:`perfkit.measure.speed_check`: two of them measured again, once per process),
and peaks the machine no longer reaches, or now exceeds, become a pre-flight warning.

A variant with a ``source`` (another source tree, :mod:`perfkit.run.source_tree`) runs in a worker
that imports that tree's code; its worker is first asked ``hello``, and one that says it imported
perfkit from anywhere else fails at set-up (a worker too old to know ``hello`` is taken as it is).
Its source hash is that tree's. So ``A@base`` and ``A`` of two commits are interleaved like any two
variants.

A worker that raises, exits, is killed by a signal, runs out of memory or does not answer within
``timeout_s`` is recorded as failed — kind, phase, message, the end of its log — keeping every sample
it delivered, and the run goes on. SIGINT (Ctrl-C) and SIGTERM stop the run: workers are killed,
every completed visit is kept, unfinished cases are marked ``interrupted``, the run is written with
status ``interrupted`` (further signals are ignored while it is saved), and :func:`run_plan` returns
normally. The result file is written once, atomically (:func:`perfkit.store.files.write_run`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..measure.environment import Environment, capture_environment, preflight_warnings, source_hash
from ..measure.peak import recorded_peaks
from ..measure.protocol import should_stop
from ..measure.speed_check import checked_speed, speed_warning
from ..measure.timers import TimerInfo
from ..store.files import DEFAULT_RESULTS_DIR, new_run_id, write_run
from ..store.records import (
    CASE_FAILED,
    CASE_INTERRUPTED,
    CASE_OK,
    RUN_COMPLETE,
    RUN_INTERRUPTED,
    Case,
    CaseRecord,
    Failure,
    MemoryRecord,
    Run,
    SeriesRecord,
    StageRecord,
)
from .plan import BackendRef, Plan, worker_environment
from .process import WorkerFault, WorkerProcess
from .source_tree import source_tree
from .worker import PROTOCOL_VERSION


class Interrupted(BaseException):
    """Raised in the engine's thread by SIGINT / SIGTERM while a plan runs."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class Observer:
    """Progress callbacks; every method is optional (the default does nothing)."""

    def run_started(self, plan: Plan, warnings: Sequence[str]) -> None: ...

    def case_started(self, case: Case, variants: Sequence[str]) -> None: ...

    def variant_setup(self, case: Case, variant: str) -> None: ...

    def variant_ready(self, case: Case, variant: str, setup: dict[str, Any]) -> None: ...

    def samples_added(self, case: Case, variant: str, n: int, visit: int) -> None: ...

    def variant_done(self, case: Case, variant: str, status: str, failure: Failure | None) -> None: ...

    def memory_started(self, case: Case, variant: str) -> None: ...

    def run_interrupted(self, signal_name: str) -> None: ...


@dataclass(frozen=True)
class RunOutcome:
    run: Run
    path: Path | None

    @property
    def interrupted(self) -> bool:
        return self.run.status == RUN_INTERRUPTED


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


class _Measure:
    """One (variant, case) while it is measured: its worker, its samples so far, its failures."""

    def __init__(self, ref: BackendRef, case: Case) -> None:
        self.ref = ref
        self.case = case
        self.pool: list[WorkerProcess] = []  # protocol.workers processes; visits rotate over them
        self.served: list[int] = []  # visits served by each process of the pool
        self.turn = 0
        self.setup: dict[str, Any] | None = None
        self.samples: dict[str, list[list[int]]] = {}
        self.visits: list[int] = []
        self.failures: list[Failure] = []
        self.memory: MemoryRecord | None = None
        self.status = "pending"  # pending -> running -> done | failed | interrupted
        self.phase = "setup"
        self.spent_s = 0.0

    @property
    def n(self) -> int:
        return len(self.visits)

    @property
    def slot(self) -> int:
        """The pool position the next visit goes to."""
        return self.turn % len(self.pool)

    @property
    def worker(self) -> WorkerProcess | None:
        """The worker the next visit goes to."""
        return self.pool[self.slot] if self.pool else None

    def totals(self) -> dict[str, list[int]]:
        return {name: [sum(s) for s in rows] for name, rows in self.samples.items()}

    def add(self, samples: dict[str, list[list[int]]], visit: int) -> int:
        counts = {len(v) for v in samples.values()}
        if len(counts) != 1 or set(samples) != set(self.samples):
            raise WorkerFault("error", "worker returned an inconsistent round", repr(counts))
        k = counts.pop()
        for name, rows in samples.items():
            self.samples[name].extend(rows)
        self.visits.extend([visit] * k)
        return k

    def fail(self, fault: WorkerFault, phase: str) -> None:
        self.failures.append(Failure(fault.kind, phase, fault.message, fault.detail))
        if phase != "memory":
            self.status = "failed"
        self.close_worker(kill=True)

    def close_worker(self, kill: bool = False) -> None:
        for worker in self.pool:
            if kill:
                worker.kill()
            worker.close()
        self.pool = []
        self.served = []

    def record(self, source: str | None) -> CaseRecord:
        variant = self.ref.variant
        s = self.setup or {}
        # a signal may land between two series' updates: keep only samples every series has
        n = min([len(self.visits), *(len(rows) for rows in self.samples.values())])
        visits = tuple(self.visits[:n])
        series: list[SeriesRecord] = []
        for sd in s.get("series", []):
            name = sd["name"]
            rows = self.samples.get(name, [])[:n]
            first = s.get("first_call", {}).get(name, {})
            stages = tuple(StageRecord(span, tuple(r[i] for r in rows), first.get(span))
                           for i, span in enumerate(sd["spans"]))
            series.append(SeriesRecord(name, bool(sd["synced"]), int(s["loops"][name]), visits,
                                       stages, sd.get("covers")))
        timer = TimerInfo(**s["timer"]) if "timer" in s else None
        if self.status == "interrupted":
            status = CASE_INTERRUPTED
        elif self.failures:
            status = CASE_FAILED
        else:
            status = CASE_OK
        return CaseRecord(
            variant=self.ref.label, backend=variant.backend, options=variant.options, case=self.case,
            status=status, failures=tuple(self.failures), device=s.get("device", "cpu"), timer=timer,
            threads=s.get("threads", {}), source_hash=source, load_ns=s.get("load_ns"),
            first_call_ns=s.get("first_call_ns"), weight_bytes=s.get("weight_bytes"), series=tuple(series),
            memory=self.memory, metadata=s.get("metadata") or {},
        )


def ref_source_hash(ref: BackendRef) -> str | None:
    """The source hash of ``ref``'s backend module, in the tree the variant runs from."""
    module = ref.module
    if not module:
        return None
    return source_tree(ref.source).source_hash(module) if ref.source else source_hash(module)


def check_origin(worker: WorkerProcess, source: str, timeout_s: float, backend: BackendRef | None = None
                 ) -> dict[str, str]:
    """Ask ``worker`` where its packages came from; :class:`WorkerFault` unless from ``source``.

    Returns ``backend``'s ``worker_environment`` as that tree defines it (``{}`` without ``backend``).
    A worker that does not know the request (``unknown request``) predates the handshake: it cannot be
    this tree's, whose worker knows it, so it is taken as the other tree's, and one whose reply has no
    environment as a tree without the attribute."""
    request: dict[str, Any] = {"op": "hello"}
    if backend is not None:
        request["backend"] = {"spec": backend.spec, "target": backend.target}
    try:
        reply = worker.request(request, timeout_s)
    except WorkerFault as fault:
        if fault.kind == "error" and fault.message.startswith("unknown request"):
            worker.protocol_version = 0
            return {}
        raise WorkerFault(fault.kind, f"the worker of source tree {source} failed the handshake: "
                                      f"{fault.message}", fault.detail) from None
    worker.protocol_version = int(reply.get("protocol") or 0)
    tree = source_tree(source)
    wrong = {name: file for name, file in dict(reply.get("modules") or {}).items()
             if not tree.owns(name, str(file))}
    if wrong:
        raise WorkerFault("error", f"the worker imported {', '.join(f'{n} from {f}' for n, f in wrong.items())}, "
                                   f"not from source tree {source}")
    return {str(k): str(v) for k, v in dict(reply.get("worker_environment") or {}).items()}


def visit_requests(samples: int, warmup: int, worker_protocol: int | None) -> list[dict[str, Any]]:
    """The requests of one visit, the last one measured: ``round`` with its ``warmup`` passes for a worker
    of the current protocol (``None``: this tree's); for an older one, which would ignore ``warmup``
    (another source tree from before it), a discarded round of one sample first, so every worker
    starts its measured samples warm."""
    if warmup > 0 and worker_protocol is not None and worker_protocol < PROTOCOL_VERSION:
        return [{"op": "round", "samples": 1}, {"op": "round", "samples": samples, "warmup": 0}]
    return [{"op": "round", "samples": samples, "warmup": warmup}]


class _Engine:
    def __init__(self, plan: Plan, observer: Observer) -> None:
        self.plan = plan
        self.obs = observer
        self.records: list[CaseRecord] = []
        self.current: list[_Measure] = []
        self.hashes = {ref.label: ref_source_hash(ref) for ref in plan.variants}
        self.source_envs: dict[str, dict[str, str]] = {}  # label -> worker_environment a source tree reported

    def _request_fields(self, m: _Measure) -> dict[str, Any]:
        p = self.plan
        return {"suite": p.suite, "case": m.case.to_dict(), "backend": m.ref.to_dict(),
                "threads": p.settings.threads,
                "memory_limit_bytes": p.settings.memory_limit_bytes, "protocol": p.protocol.to_dict()}

    def _worker_env(self, ref: BackendRef) -> dict[str, str]:
        """The environment ``ref``'s workers start with: the thread settings, then the backend's
        ``worker_environment`` (from this tree's class, or as ``ref``'s source tree reported it)."""
        if not ref.source:
            return self.plan.settings.worker_env(backend=worker_environment(ref.spec, ref.target))
        env = self.plan.settings.worker_env(backend=self.source_envs.get(ref.label, {}))
        return source_tree(ref.source).worker_env(env)

    def _spawn(self, ref: BackendRef) -> WorkerProcess:
        """A worker for ``ref``. One from another source tree is checked to run that tree's code; the
        first one also tells which ``worker_environment`` that tree's backend wants, and is started
        again with it when that differs from what it got (once per variant)."""
        env = self._worker_env(ref)
        worker = WorkerProcess(env)
        if ref.source:
            try:
                wanted = check_origin(worker, ref.source, self.plan.settings.timeout_s, ref)
            except BaseException:
                worker.close()
                raise
            if ref.label not in self.source_envs:
                self.source_envs[ref.label] = wanted
                if self._worker_env(ref) != env:
                    worker.close()
                    return self._spawn(ref)
        return worker

    def _start_worker(self, m: _Measure, slot: int) -> None:
        """A fresh worker set up (load, first call, warm-up) in pool position ``slot``, then stopped."""
        worker = self._spawn(m.ref)
        if slot == len(m.pool):
            m.pool.append(worker)
            m.served.append(0)
        else:
            m.pool[slot], m.served[slot] = worker, 0
        setup = worker.request({"op": "setup", **self._request_fields(m)}, self.plan.settings.timeout_s)
        worker.pause()
        m.setup = m.setup or setup  # the first worker's load and first-call times are kept

    def _set_up(self, m: _Measure) -> None:
        self.obs.variant_setup(m.case, m.ref.label)
        m.status, m.phase = "running", "setup"
        try:
            for slot in range(self.plan.protocol.workers):
                self._start_worker(m, slot)
            m.samples = {sd["name"]: [] for sd in m.setup["series"]}
            m.phase = "round"
            self.obs.variant_ready(m.case, m.ref.label, m.setup)
        except WorkerFault as fault:
            m.fail(fault, "setup")
            self.obs.variant_done(m.case, m.ref.label, "failed", m.failures[-1])

    def _visit(self, m: _Measure, visit: int) -> bool:
        """One visit; ``True`` while the variant wants more."""
        p = self.plan.protocol
        want = min(p.visit_samples, p.max_samples - m.n)
        t0 = time.monotonic()
        try:
            worker = m.worker
            assert worker is not None
            for request in visit_requests(want, p.visit_warmup, worker.protocol_version):
                reply = worker.request(request, self.plan.settings.timeout_s)
            worker.pause()
            slot = m.slot
            m.served[slot] += 1
            m.turn += 1
            m.spent_s += time.monotonic() - t0
            got = m.add(reply["samples"], visit)
        except WorkerFault as fault:
            m.fail(fault, "round")
            self.obs.variant_done(m.case, m.ref.label, "failed", m.failures[-1])
            return False
        self.obs.samples_added(m.case, m.ref.label, got, visit)
        if should_stop(p, m.totals(), m.spent_s):
            m.status = "done"
            m.close_worker()
            self.obs.variant_done(m.case, m.ref.label, "ok", None)
            return False
        if p.worker_visits and m.served[slot] >= p.worker_visits:
            return self._replace_worker(m, slot)
        return True

    def _replace_worker(self, m: _Measure, slot: int) -> bool:
        """Close the worker in ``slot`` and set up a fresh one there (its set-up is not measuring time);
        ``True`` unless that fails."""
        m.pool[slot].close()
        self.obs.variant_setup(m.case, m.ref.label)
        m.phase = "setup"
        try:
            self._start_worker(m, slot)
        except WorkerFault as fault:
            m.fail(fault, "setup")
            self.obs.variant_done(m.case, m.ref.label, "failed", m.failures[-1])
            return False
        m.phase = "round"
        self.obs.variant_ready(m.case, m.ref.label, m.setup)
        return True

    def _memory(self, m: _Measure) -> None:
        self.obs.memory_started(m.case, m.ref.label)
        m.phase = "memory"
        try:
            m.pool = [self._spawn(m.ref)]
            reply = m.pool[0].request({"op": "memory", **self._request_fields(m)},
                                     self.plan.settings.timeout_s)
            m.memory = MemoryRecord.from_dict(reply["memory"])
            m.close_worker()
        except WorkerFault as fault:
            m.fail(fault, "memory")

    def run_case(self, case: Case) -> None:
        self.current = [_Measure(ref, case) for ref in self.plan.variants]
        self.obs.case_started(case, [m.ref.label for m in self.current])
        for m in self.current:
            self._set_up(m)
        active = [m for m in self.current if m.status == "running"]
        visit = 0
        while active:
            for m in list(active):
                if not self._visit(m, visit):
                    active.remove(m)
                visit += 1
        if self.plan.memory:
            for m in self.current:
                if m.status == "done":
                    self._memory(m)
        self.records.extend(m.record(self.hashes.get(m.ref.label)) for m in self.current)
        self.current = []

    def run(self) -> None:
        for case in self.plan.cases:
            self.run_case(case)

    def interrupt(self, signal_name: str) -> None:
        """Keep what the unfinished case measured; mark it interrupted."""
        for m in self.current:
            m.close_worker(kill=True)
            if m.status == "pending":
                continue
            if m.status in ("running", "done"):
                m.failures.append(Failure("interrupted", m.phase, f"run interrupted by {signal_name}"))
                m.status = "interrupted"
            self.records.append(m.record(self.hashes.get(m.ref.label)))
        self.current = []

    def kill_all(self) -> None:
        for m in self.current:
            m.close_worker(kill=True)


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (main thread only); handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _ignore_stop_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def _perfkit_version() -> str:
    try:
        return version("perfkit")
    except PackageNotFoundError:
        return ""


def source_modules(plan: Plan) -> dict[str, str]:
    """What a run's environment hashes: ``backend:<name>`` and ``suite:<name>`` -> module."""
    modules = {f"backend:{ref.variant.backend}": ref.module for ref in plan.variants if ref.module}
    modules[f"suite:{plan.suite}"] = plan.suite_module
    return modules


def environment_for(plan: Plan) -> Environment:
    modules = source_modules(plan)
    cuda = any(ref.variant.option_dict.get("device", "").startswith("cuda") for ref in plan.variants)
    return capture_environment(modules, probe_cuda=cuda)


def run_plan(plan: Plan, results_dir: str | os.PathLike[str] | None = DEFAULT_RESULTS_DIR, *,
             observer: Observer | None = None, command: Sequence[str] = (),
             environment: Environment | None = None) -> RunOutcome:
    """Measure ``plan`` and write one result file into ``results_dir`` (``None``: do not write).

    Returns the run and the path written; an interrupted run returns normally with status
    ``interrupted`` (see the module docstring).
    """
    if not plan.variants:
        raise InputError("nothing to measure: no backend variant can run here")
    obs = observer or Observer()
    started = _now()
    run_id = new_run_id(plan.suite, started)
    env = environment or environment_for(plan)
    warnings = preflight_warnings(env, plan.settings.threads)
    peaks = recorded_peaks(plan.settings.threads)
    speed = checked_speed(peaks) if peaks else ()  # the cached peaks measured again, briefly
    stale = speed_warning(speed)
    if stale:
        warnings.append(stale)
    obs.run_started(plan, warnings)
    engine = _Engine(plan, obs)
    status = RUN_COMPLETE
    with _stop_signals():
        try:
            try:
                engine.run()
            except (Interrupted, KeyboardInterrupt) as exc:
                _ignore_stop_signals()
                name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
                status = RUN_INTERRUPTED
                engine.interrupt(name)
                obs.run_interrupted(name)
            finally:
                _ignore_stop_signals()  # nothing interrupts the save
                engine.kill_all()
            run = Run(
                run_id=run_id, suite=plan.suite, status=status, started_utc=_iso(started),
                      finished_utc=_iso(_now()),
                perfkit_version=_perfkit_version(), command=tuple(command), protocol=plan.protocol.to_dict(),
                settings={**plan.settings.to_dict(), "memory_pass": plan.memory,
                          "variants": [r.to_dict() for r in plan.variants],
                          **({"machine_peaks": peaks, "machine_speed": [c.to_dict() for c in speed]}
                             if peaks else {})},
                environment=env, warnings=tuple(warnings), skipped=plan.skipped, cases=tuple(engine.records),
            )
            path = write_run(run, results_dir) if results_dir is not None else None
            if path is not None and path.stem != run.run_id:  # renamed on a (practically impossible) clash
                run = dataclasses.replace(run, run_id=path.stem)
        except BaseException:
            engine.kill_all()
            raise
    return RunOutcome(run, path)
