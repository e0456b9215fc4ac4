"""The process ``perfkit profile`` records: a suite case, loaded and warmed up, looping its measured region.

Run as ``python -m perfkit.tools.profile_target`` by :mod:`perfkit.tools.profiling`, never by hand. Why a
process of its own, and why py-spy attaches to it by pid instead of starting it: py-spy records from
the moment it attaches, so a target started under ``py-spy record -- python …`` would put imports, model
load and the first (compiling) call into the profile. Here the order is

1. read one JSON request on stdin: suite, case, backend, series, warm-up passes, thread count;
2. build the backend and the suite's inputs, load them (:meth:`Suite.prepare`, :meth:`Suite.load` — the
   same calls the timing worker makes), run the series once (the first call: numba JIT, torch.compile,
   CUDA context) and ``warmup`` more times;
3. allow any process of this user to ptrace it (Linux ``PR_SET_PTRACER_ANY``, so that with
   ``kernel.yama.ptrace_scope = 1`` py-spy, a sibling, may attach) and reply ``{"ok": true, "pid": …}``;
4. loop passes of the one series — exactly what :meth:`Workload.run` times, plus its per-pass set-up
   (a fresh streaming state) — until a ``stop`` line (or end of input) arrives on stdin, or ``max_s``
   seconds have gone by, then reply with the number of passes and the time they took, and exit.

py-spy is started only after the ready reply, so everything it samples is step 4: the measured region
and nothing else. Replies go to the original stdout, which the target keeps for itself before pointing
file descriptors 1 and 2 at the log the parent gave it (a backend's prints cannot corrupt a reply).
The passes run under py-spy are not timing samples (py-spy pauses the process to read it) and are
not stored as such.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_PTRACER = 0x59616D61
PR_SET_PTRACER_ANY = -1


def _prctl(option: int, arg: int) -> bool:
    """Linux ``prctl(option, arg)``; ``False`` where it is unavailable or refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, ctypes.c_ulong(arg & 0xFFFFFFFFFFFFFFFF), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def allow_any_tracer() -> bool:
    """Let any process of this user attach (Yama ``ptrace_scope = 1`` otherwise allows only ancestors)."""
    return _prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)


class BadRequest(Exception):
    """A request the case cannot satisfy (an unknown series): reported as bad input, without a traceback."""


class StopSignal:
    """Whether the parent asked to stop: a ``stop`` line, or end of input, on ``fd``.

    Polled between passes with a zero-timeout ``select`` — no reader thread, which py-spy would
    sample as a busy thread blocked in ``read`` next to the measured region.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.stopped = False

    def readline(self) -> bytes:
        """One line, blocking (the request, before anything is measured); ``b""`` at end of input."""
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def poll(self) -> bool:
        """``True`` once a ``stop`` line or end of input has arrived; never blocks."""
        while not self.stopped:
            if b"\n" in self.buf:
                line, _, self.buf = self.buf.partition(b"\n")
                self.stopped = line.strip() == b"stop"
                continue
            if not select.select([self.fd], [], [], 0)[0]:
                break
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.stopped = True  # end of input: the parent closed the pipe or is gone
            self.buf += chunk
        return self.stopped


def serve(requests: StopSignal, replies: Any) -> int:
    """Steps 1-4 of the module docstring; returns the exit status."""

    def reply(obj: dict[str, Any]) -> None:
        replies.write(json.dumps(obj).encode() + b"\n")
        replies.flush()

    line = requests.readline()
    if not line:
        return 1
    req = json.loads(line)
    try:
        from perfkit.measure.timers import timer_for
        from perfkit.run.suite import get_suite
        from perfkit.run.worker import apply_threads, make_backend, thread_report
        from perfkit.store.records import Case

        threads = req.get("threads")
        backend = make_backend(req["backend"]["spec"], req["backend"].get("target", ""))
        suite = get_suite(req["suite"])
        prepared = suite.prepare(Case.from_dict(req["case"]))
        apply_threads(threads)
        t0 = time.perf_counter_ns()
        workload = suite.load(backend, prepared)
        backend.synchronize()
        load_ns = time.perf_counter_ns() - t0
        apply_threads(threads)
        names = [s.name for s in workload.series]
        series = req.get("series") or (names[0] if names else None)
        if series not in names:
            raise BadRequest(f"the {req['suite']} workload has no series {series!r}; "
                             f"it has {', '.join(names)}")
        timer = timer_for(backend)
        t0 = time.perf_counter_ns()
        workload.run(series, timer)
        timer.read()
        first_call_ns = time.perf_counter_ns() - t0
        warmup = int(req.get("warmup", 2))
        for _ in range(warmup):
            workload.run(series, timer)
            timer.read()
        ready = {"ok": True, "pid": os.getpid(), "series": series, "series_names": names, "load_ns": load_ns,
                 "first_call_ns": first_call_ns, "warmup_passes": warmup, "variant": backend.variant.label,
                 "device": backend.compute_device(), "weight_bytes": workload.weight_bytes,
                 "threads": thread_report(backend, threads), "ptracer_any": allow_any_tracer()}
    except Exception as exc:  # noqa: BLE001 - every failure of backend or suite code is reported
        from perfkit.errors import BackendUnavailable

        kind = "unavailable" if isinstance(exc, BackendUnavailable) else "error"
        if isinstance(exc, BadRequest):
            reply({"ok": False, "kind": "input", "message": str(exc), "detail": ""})
            return 1
        reply({"ok": False, "kind": kind, "message": f"{type(exc).__name__}: {exc}",
               "detail": "".join(traceback.format_exception(exc))[-8000:]})
        return 1

    reply(ready)
    max_s = float(req.get("max_s", 600.0))
    passes = 0
    start = time.perf_counter_ns()
    deadline = start + int(max_s * 1e9)
    while not requests.poll() and time.perf_counter_ns() < deadline:
        workload.run(series, timer)  # the measured region, and only it, from here on
        timer.read()
        passes += 1
    reply({"ok": True, "passes": passes, "elapsed_ns": time.perf_counter_ns() - start,
           "stopped_by": "request" if requests.stopped else "max_s"})
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the target stops
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # and it never outlives the parent
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with os.fdopen(reply_fd, "wb", buffering=0) as replies:
        return serve(StopSignal(sys.stdin.fileno()), replies)


if __name__ == "__main__":
    sys.exit(main())
