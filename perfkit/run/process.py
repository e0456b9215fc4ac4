"""The engine's side of a worker process: start it, ask it, bound the wait, kill it, say why it died.

Every worker is ``python -m perfkit.run.worker`` in a new session (so a Ctrl-C at the terminal does not
reach it, and killing its process group takes any child it started too), with an environment of its
own (thread variables) and its stdout/stderr in a temporary log file. :meth:`WorkerProcess.request`
sends one JSON line and waits for one back, at most ``timeout_s`` seconds; every way the worker can fail
becomes a :class:`WorkerFault` with a kind (``crash``, ``timeout``, ``oom``, ``error``, ``unavailable``),
a one-line message and the detail (a traceback, or the end of its log).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOG_TAIL_CHARS = 4000
_OOM_HINTS = ("MemoryError", "std::bad_alloc", "out of memory", "Cannot allocate memory")


class WorkerFault(Exception):
    """A worker that failed a request: ``kind``, one-line ``message``, ``detail``."""

    def __init__(self, kind: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail


def describe_exit(returncode: int) -> str:
    """``killed by signal SIGSEGV (Segmentation fault)`` / ``exited with code 3``."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
            text = signal.strsignal(sig) or sig.name
            return f"killed by signal {sig.name} ({text})"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class WorkerProcess:
    """One worker process; use as a context manager or call :meth:`kill`."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        fd, log = tempfile.mkstemp(prefix="perfkit-worker-", suffix=".log")
        self.log_path = Path(log)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "perfkit.run.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=fd, env=dict(env) if env is not None else None, start_new_session=True, close_fds=True,
            )
        except BaseException:
            os.close(fd)
            self.log_path.unlink(missing_ok=True)
            raise
        os.close(fd)
        self._buf = b""
        self.paused = False
        #: The request protocol the worker speaks, when a handshake asked (another source tree's worker);
        #: ``None``: this tree's, the current one.
        self.protocol_version: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _died(self) -> WorkerFault:
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode if self.proc.returncode is not None else -signal.SIGKILL
        tail = self.log_tail()
        kind = "oom" if any(h in tail for h in _OOM_HINTS) else "crash"
        return WorkerFault(kind, f"worker {describe_exit(rc)}", tail)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def pause(self) -> None:
        """SIGSTOP the worker's process group while it waits for its next visit.

        A worker that has just answered still has thread pools that spin-wait for more work (OpenMP's
        and OpenBLAS's, milliseconds to a tenth of a second): left running, they would take cores from
        the next variant's worker and slow it for no fault of its own. :meth:`send` resumes it.
        """
        if self.proc.poll() is None and not self.paused:
            self._signal_group(signal.SIGSTOP)
            self.paused = True
            self._await_stop()

    def _await_stop(self, limit_s: float = 0.5) -> None:
        """Return once the kernel shows the worker stopped (``T`` in ``/proc/<pid>/stat``; a signal is
        delivered asynchronously), at most ``limit_s``; at once where there is no ``/proc``."""
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                return
            if state in ("T", "t", "Z", "X"):
                return
            time.sleep(0.0002)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.paused:
            self._signal_group(signal.SIGCONT)
            self.paused = False

    def send(self, message: Mapping[str, Any]) -> None:
        self.resume()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise self._died() from None

    def receive(self, timeout_s: float) -> dict[str, Any]:
        """The next reply; :class:`WorkerFault` if none comes in ``timeout_s`` or the worker dies."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerFault("timeout", f"no reply within {timeout_s:g} s (hung?); worker killed",
                                  self.log_tail())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._died()
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            self.kill()
            raise WorkerFault("error", "worker sent an unreadable reply", line[:200].decode("utf-8",
                                                                                            "replace")) \
                from None
        if not reply.get("ok"):
            raise WorkerFault(str(reply.get("kind", "error")), str(reply.get("message", "worker failed")),
                              str(reply.get("detail", "")))
        return reply

    def request(self, message: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        self.send(message)
        return self.receive(timeout_s)

    def kill(self) -> None:
        """SIGKILL the worker's process group, reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self, grace_s: float = 2.0) -> None:
        """Ask the worker to exit, kill it if it does not, remove its log."""
        if self.proc.poll() is None:
            try:
                self.send({"op": "exit"})
                self.proc.wait(timeout=grace_s)
            except (WorkerFault, subprocess.TimeoutExpired):
                pass
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
