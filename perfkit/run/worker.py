"""The worker process: measures one (backend variant, case), answering the engine's requests.

Started by :class:`perfkit.run.process.WorkerProcess` as ``python -m perfkit.run.worker`` in a session
of its own (a Ctrl-C at the terminal reaches only the engine, which then stops the workers), with
its thread environment variables set before any library loads. Requests and replies are JSON lines:
requests on stdin, replies on the process's *original* stdout, which the worker keeps for itself before
pointing file descriptors 1 and 2 at its log file — so whatever a backend prints cannot corrupt a reply,
and a crash's last words (``faulthandler``'s traceback on SIGSEGV) are in the log for the engine to report.

Requests::

    {"op": "setup", "suite", "case", "backend": {"spec", "target"}, "threads", "memory_limit_bytes",
     "protocol"}                          -> load, first call, warm-up, calibration; the metadata
    {"op": "round", "samples": n, "warmup": k}
                                           -> k discarded passes of the first series (the visit's warm-up),
                                              then n samples of every series, interleaved sample by sample
    {"op": "memory", <setup fields>}       -> the memory pass, in a fresh worker
    {"op": "hello", "backend"?}            -> {"protocol", "modules": {package: file}, "worker_environment"?}
                                              (the handshake)
    {"op": "exit"}

Replies: ``{"ok": true, …}`` or ``{"ok": false, "kind": "error" | "oom" | "unavailable", "message",
"detail"}``. A fault that kills the process (``os._exit``, a signal) gets no reply: the engine sees the
pipe close and reports the exit status.
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


# ----------------------------------------------------------------------------- process set-up
def _die_with_parent() -> None:
    """Linux: SIGKILL this worker if the engine dies (a hung worker would never read EOF)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def apply_memory_limit(limit_bytes: int | None) -> None:
    """Cap this process's address space (``RLIMIT_AS``): allocations beyond it raise ``MemoryError``."""
    if not limit_bytes:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))


_limiters: list[Any] = []


def apply_threads(threads: int | None) -> None:
    """Set every loaded thread pool to ``threads``: BLAS/OpenMP (threadpoolctl), numba, torch.

    Called before and after the model loads (a backend may load its libraries lazily). The environment
    variables were set by the engine before this process started.
    """
    if threads is None:
        return
    from threadpoolctl import threadpool_limits

    _limiters.append(threadpool_limits(limits=threads))
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def thread_report(backend: Any, threads: int | None) -> dict[str, Any]:
    """The thread counts in force, as recorded with the case; ``env``: the thread variables and the
    backend's ``worker_environment`` variables as this process has them."""
    from threadpoolctl import threadpool_info

    from perfkit.run.plan import THREAD_ENV_VARS

    names = (*THREAD_ENV_VARS, *getattr(backend, "worker_environment", {}))
    report: dict[str, Any] = {"requested": threads, "env": {k: os.environ[k] for k in names if k in os.environ}}
    report["threadpools"] = [{k: i.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads",
                                                    "version")}
                             for i in threadpool_info()]
    numba = sys.modules.get("numba")
    if numba is not None:
        report["numba"] = int(numba.get_num_threads())
    torch = sys.modules.get("torch")
    if torch is not None:
        report["torch"] = int(torch.get_num_threads())
        report["torch_interop"] = int(torch.get_num_interop_threads())
    try:
        report["backend"] = {str(k): int(v) for k, v in backend.thread_settings().items()}
    except Exception as exc:  # noqa: BLE001 - backend code
        report["backend_error"] = f"{type(exc).__name__}: {exc}"
    return report


def make_backend(spec: str, target: str = "") -> Any:
    """A backend from the registry (``spec`` like ``numpy:dtype=float64``), or from ``target``
    (``module:Class``) for backends outside it (the tests' fake)."""
    from perfkit.interface import Variant
    from perfkit.run.plan import ref_class

    cls = ref_class(spec, target)  # a registry backend: imports this backend only
    options = cls.resolve_options(Variant.parse(spec).option_dict)
    cls.check_available(options)
    return cls(**options)


# ----------------------------------------------------------------------------- the measurement
class WorkerState:
    """What a timing worker keeps between requests."""

    def __init__(self) -> None:
        self.backend: Any = None
        self.workload: Any = None
        self.timer: Any = None
        self.loops: dict[str, int] = {}
        self.series: list[Any] = []

    def _pass(self, name: str, spans: tuple[str, ...]) -> dict[str, int]:
        self.workload.run(name, self.timer)
        got = self.timer.read()
        if tuple(got) != spans:
            raise RuntimeError(f"series {name!r} timed spans {list(got)}, declared {list(spans)}")
        return got

    def setup(self, req: dict[str, Any]) -> dict[str, Any]:
        from perfkit.measure.protocol import Protocol, calibrate_loops
        from perfkit.measure.timers import timer_for
        from perfkit.run.suite import get_suite
        from perfkit.store.records import Case

        apply_memory_limit(req.get("memory_limit_bytes"))
        protocol = Protocol.from_dict(req["protocol"])
        threads = req.get("threads")
        self.backend = make_backend(req["backend"]["spec"], req["backend"].get("target", ""))
        suite = get_suite(req["suite"])
        prepared = suite.prepare(Case.from_dict(req["case"]))
        apply_threads(threads)
        t0 = time.perf_counter_ns()
        self.workload = suite.load(self.backend, prepared)
        self.backend.synchronize()
        load_ns = time.perf_counter_ns() - t0
        apply_threads(threads)
        self.timer = timer_for(self.backend)
        self.series = list(self.workload.series)
        if not self.series:
            raise RuntimeError("the workload declares no series")
        first_call = {s.name: self._pass(s.name, s.spans) for s in self.series}
        fastest = {s.name: dict(first_call[s.name]) for s in self.series}
        for _ in range(protocol.warmup_rounds):
            for s in self.series:
                for span, ns in self._pass(s.name, s.spans).items():
                    fastest[s.name][span] = min(fastest[s.name][span], ns)
        info = self.timer.info()
        self.loops = {s.name: calibrate_loops(min(fastest[s.name].values()), info.resolution_ns,
                                              protocol.resolution_multiple, protocol.max_loops)
                      for s in self.series}
        first_series = self.series[0].name
        return {
            "ok": True, "load_ns": load_ns, "first_call": first_call,
            "first_call_ns": sum(first_call[first_series].values()), "loops": self.loops,
            "series": [s.to_dict() for s in self.series], "timer": dict(info.__dict__),
            "device": self.backend.compute_device(), "weight_bytes": self.workload.weight_bytes,
            "threads": thread_report(self.backend, threads), "variant": self.backend.variant.label,
            "metadata": dict(getattr(self.workload, "metadata", dict)()),
        }

    def round(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.workload is None:
            raise RuntimeError("round before setup")
        n = int(req["samples"])
        first = self.series[0]
        for _ in range(int(req.get("warmup", 0))):  # discarded: the process starts its visit cold
            self._pass(first.name, first.spans)
        out: dict[str, list[list[int]]] = {s.name: [] for s in self.series}
        for _ in range(n):
            for s in self.series:  # series interleaved sample by sample
                loops = self.loops[s.name]
                total = dict.fromkeys(s.spans, 0)
                for _ in range(loops):
                    for span, ns in self._pass(s.name, s.spans).items():
                        total[span] += ns
                out[s.name].append([round(total[span] / loops) for span in s.spans])
        return {"ok": True, "samples": out}


def memory_pass(req: dict[str, Any]) -> dict[str, Any]:
    """The memory pass, in two sampled phases.

    *Load*: the suite prepares the input model (synthetic weights or a checkpoint read) and the backend
    loads it. Then the input is dropped and freed memory returned to the OS
    (:func:`~perfkit.measure.memory.release_freed_memory`), and the RSS *after load* taken. *Run*: the
    first call and ``memory_passes`` passes of every series. The run peak is what inference needs with
    the model resident; the load peak includes the input model and the backend's copy side by side.
    """
    from perfkit.measure.memory import (
        RssSampler,
        cuda_peaks,
        cuda_reset_peaks,
        file_rss_bytes,
        release_freed_memory,
        rss_bytes,
        ru_maxrss_bytes,
    )
    from perfkit.measure.protocol import Protocol
    from perfkit.measure.timers import timer_for
    from perfkit.run.suite import get_suite
    from perfkit.store.records import Case

    apply_memory_limit(req.get("memory_limit_bytes"))
    protocol = Protocol.from_dict(req["protocol"])
    backend = make_backend(req["backend"]["spec"], req["backend"].get("target", ""))
    suite = get_suite(req["suite"])
    apply_threads(req.get("threads"))
    device = backend.compute_device()
    release_freed_memory()
    baseline, baseline_file = rss_bytes(), file_rss_bytes()
    cuda_reset_peaks(device)
    with RssSampler() as load_sampler:
        workload = suite.load(backend, suite.prepare(Case.from_dict(req["case"])))
        backend.synchronize()
    release_freed_memory()
    after_load = rss_bytes()
    with RssSampler() as run_sampler:
        timer = timer_for(backend)
        for _ in range(1 + protocol.memory_passes):
            for s in workload.series:
                workload.run(s.name, timer)
                timer.read()
        backend.synchronize()
    load, run = load_sampler.peaks(), run_sampler.peaks()
    cuda = cuda_peaks(device)
    workload.close()
    uss = [p for p in (load.peak_uss_bytes, run.peak_uss_bytes) if p is not None]
    return {"ok": True, "memory": {
        "baseline_rss_bytes": baseline, "rss_after_load_bytes": after_load,
        "peak_rss_bytes": max(load.peak_rss_bytes, run.peak_rss_bytes),
        "load_peak_rss_bytes": load.peak_rss_bytes, "run_peak_rss_bytes": run.peak_rss_bytes,
        "baseline_file_rss_bytes": baseline_file, "run_peak_file_rss_bytes": run.peak_file_rss_bytes,
        "peak_uss_bytes": max(uss) if uss else None,
        "ru_maxrss_bytes": ru_maxrss_bytes(), "weight_bytes": workload.weight_bytes,
        "cuda_peak_allocated_bytes": None if cuda is None else cuda[0],
        "cuda_peak_reserved_bytes": None if cuda is None else cuda[1],
        "polls": load.polls + run.polls, "interval_s": run.interval_s, "passes": 1 + protocol.memory_passes,
    }}


def _error_reply(exc: BaseException) -> dict[str, Any]:
    from perfkit.errors import BackendUnavailable

    if isinstance(exc, MemoryError):
        kind = "oom"
    else:
        kind = "unavailable" if isinstance(exc, BackendUnavailable) else "error"
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if kind == "oom":
        message = f"out of memory ({message})"
    return {"ok": False, "kind": kind, "message": message,
            "detail": "".join(traceback.format_exception(exc))[-8000:]}


def _plain(value: Any) -> Any:
    """JSON for what suites and backends return beyond plain types (NumPy scalars, tuples of them)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} to the engine")


#: Bumped when a request or reply changes in a way an older engine or worker would misread.
#: 2: ``round`` takes ``warmup`` (a version-1 worker ignores it; the engine warms it another way).
PROTOCOL_VERSION = 2
#: The packages whose origin ``hello`` reports.
HELLO_MODULES = ("perfkit", "perfkit.backends", "perfkit.suites")


def hello(backend: dict[str, Any] | None = None) -> dict[str, Any]:
    """The handshake: this worker's protocol version and the files its packages were imported from (an
    engine measuring another source tree checks that the worker runs that tree's code). With
    ``backend`` (``{"spec", "target"}``), also that backend's ``worker_environment`` as this tree
    defines it, which the engine then starts the variant's workers with."""
    modules = {name: str(getattr(importlib.import_module(name), "__file__", "") or "") for name in HELLO_MODULES}
    reply = {"ok": True, "protocol": PROTOCOL_VERSION, "modules": modules, "executable": sys.executable}
    if backend:
        from perfkit.run.plan import worker_environment

        reply["worker_environment"] = worker_environment(str(backend["spec"]), str(backend.get("target", "")))
    return reply


def serve(requests: Any, replies: Any) -> None:
    """Answer JSON-line requests until ``exit`` or end of input."""
    state = WorkerState()
    for line in requests:
        req = json.loads(line)
        op = req.get("op")
        if op == "exit":
            break
        try:
            if op == "hello":
                reply = hello(req.get("backend"))
            elif op == "setup":
                reply = state.setup(req)
            elif op == "round":
                reply = state.round(req)
            elif op == "memory":
                reply = memory_pass(req)
            else:
                reply = {"ok": False, "kind": "error", "message": f"unknown request {op!r}", "detail": ""}
        except Exception as exc:  # noqa: BLE001 - every failure of backend or suite code is reported
            reply = _error_reply(exc)
        try:
            data = json.dumps(reply, default=_plain)
        except (TypeError, ValueError) as exc:
            data = json.dumps(_error_reply(exc))
        replies.write(data.encode() + b"\n")
        replies.flush()
    if state.workload is not None:
        state.workload.close()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when a worker stops
    _die_with_parent()
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # fd 1 -> the log file, like fd 2
    sys.stdout = sys.stderr
    faulthandler.enable(file=sys.stderr)
    with os.fdopen(reply_fd, "wb", buffering=0) as replies:
        serve(sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
