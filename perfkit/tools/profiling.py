"""Profiling one suite case with py-spy: the measured region only, stored as a run of its own.

:func:`profile_case` starts :mod:`perfkit.tools.profile_target` (which loads the case, makes the first
call and warms up *before* it reports ready), then attaches ``py-spy record --pid`` twice — once for the
flame graph SVG, once for the speedscope JSON, each for ``duration_s`` seconds at ``rate_hz`` — while
the target loops the measured region, stops the target, and stores:

- ``<results>/<run-id>.json``: a run of suite ``profile`` with one case (variant, case, load and
  first-call times, device, threads, no timing series — the profiled passes are slowed by sampling
  and are not samples); ``protocol`` holds the sampling settings (tool, ``rate_hz``, ``duration_s``,
  ``native`` …), ``settings["profile"]`` what was recorded (suite, series, passes, per-format sample
  counts, the hottest functions) and ``settings["artefacts"]`` the files (see
  :mod:`perfkit.tools.artefacts`);
- ``<results>/<run-id>.profile/``: ``flamegraph.svg``, ``profile.speedscope.json`` and ``target.log``.

Timing runs (``perfkit run``) are never profiled, and this run holds no timings.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, InputError, PerfkitError
from ..measure.environment import capture_environment, preflight_warnings, source_hash
from ..run.plan import BackendRef, WorkerSettings, worker_environment
from ..store.files import new_run_id
from ..store.records import RUN_COMPLETE, Case, CaseRecord, Run
from .artefacts import artefacts_setting, discard, publish, staging_dir
from .locate import tool_version
from .pyspy import (
    FORMATS,
    FrameShare,
    Recording,
    RecordOptions,
    find_pyspy,
    flamegraph_samples,
    load_speedscope,
    record,
    record_command,
)

KIND = "profile"
LOG_FILE = "target.log"
LOG_TAIL_CHARS = 3000
TOP_FUNCTIONS = 15


class TargetFailed(PerfkitError, RuntimeError):
    """The profile target failed before or while it was recorded: the case could not be set up (an
    unknown series, a backend error) or the process died; the message has the reason and its log's end."""

    exit_code = 1


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile: ``backend`` on ``case`` of ``suite``, series ``series`` (``None``: the workload's
    first), after ``warmup`` passes beyond the first call, with ``threads`` per library; ``options``
    (``duration_s`` required) for py-spy; ``setup_timeout_s`` for load + warm-up."""

    backend: BackendRef
    suite: str
    case: Case
    options: RecordOptions
    series: str | None = None
    warmup: int = 2
    threads: int | None = None
    setup_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.options.duration_s is None:
            raise ValueError("a profile needs a duration")
        if self.warmup < 0:
            raise ValueError("warmup must be at least 0")

    def target_request(self) -> dict[str, Any]:
        max_s = len(FORMATS) * (self.options.duration_s or 0) + 120.0  # a bound should the parent vanish
        return {"suite": self.suite, "case": self.case.to_dict(), "backend": self.backend.to_dict(),
                "series": self.series, "warmup": self.warmup, "threads": self.threads, "max_s": max_s}


@dataclass(frozen=True)
class ProfileOutcome:
    """A stored profile: the run, its result file, its artefact directory, the recordings, and the
    hottest functions (by self time) of the speedscope profile."""

    run: Run
    path: Path
    directory: Path
    recordings: tuple[Recording, ...]
    top: tuple[FrameShare, ...]


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:].strip()
    except OSError:
        return ""


class TargetProcess:
    """A running :mod:`perfkit.tools.profile_target`; use as a context manager (killed on exit)."""

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "perfkit.tools.profile_target"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                         start_new_session=True, close_fds=True)
        self._buf = b""

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, obj: dict[str, Any] | str) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died; the next receive says how

    def receive(self, timeout_s: float, waiting_for: str) -> dict[str, Any]:
        """The next JSON line, waiting at most ``timeout_s``; :class:`TargetFailed` if none comes."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise TargetFailed(f"the profile target did not answer within {timeout_s:.0f} s "
                                   f"({waiting_for}); log: {_tail(self.log_path)[-600:]}")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.proc.wait()
                    raise TargetFailed(f"the profile target exited (status {code}) {waiting_for}: "
                                       f"{_tail(self.log_path)[-1500:] or 'no output'}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def _perfkit_version() -> str:
    try:
        return version("perfkit")
    except PackageNotFoundError:
        return ""


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def profile_case(request: ProfileRequest, results_dir: str | os.PathLike[str], *,
                 command: tuple[str, ...] = (), pyspy: str | None = None) -> ProfileOutcome:
    """Profile the measured region of one case and store it; see the module docstring.

    Raises :class:`~perfkit.errors.ToolMissing` before anything starts when py-spy is not installed,
    :class:`~perfkit.errors.ToolError` when it cannot attach (the message says how to allow it),
    :class:`~perfkit.errors.BackendUnavailable` / :class:`TargetFailed` when the case cannot be set up.
    Nothing is stored unless both recordings succeed.
    """
    exe = pyspy or find_pyspy()
    started = _dt.datetime.now(_dt.UTC)
    run_id = new_run_id(KIND, started)
    staging = staging_dir(results_dir, run_id, KIND)
    try:
        ref = request.backend
        env = WorkerSettings(threads=request.threads).worker_env(backend=worker_environment(ref.spec, ref.target))
        recordings: list[Recording] = []
        with TargetProcess(staging / LOG_FILE, env) as target:
            target.send(request.target_request())
            ready = target.receive(request.setup_timeout_s, "while loading and warming up")
            if not ready.get("ok"):
                msg = f"{ready.get('message', 'set-up failed')}"
                if ready.get("kind") == "unavailable":
                    raise BackendUnavailable(msg)
                if ready.get("kind") == "input":
                    raise InputError(msg)
                raise TargetFailed(f"the profile target failed to set up {request.backend.label} on "
                                   f"{request.case.name}: {msg}\n{str(ready.get('detail', ''))[-1500:]}")
            for fmt, name in FORMATS.items():
                if not target.alive():
                    raise TargetFailed(f"the profile target exited while recorded: {_tail(target.log_path)}")
                cmd = record_command(exe, staging / name, fmt, request.options, pid=target.pid)
                recordings.append(record(cmd, fmt, staging / name, request.options, pid=target.pid))
            target.send("stop")
            done = target.receive(request.setup_timeout_s, "after the recording")
            target.proc.wait(timeout=30)
        speedscope = load_speedscope(staging / FORMATS["speedscope"])
        svg_samples = flamegraph_samples((staging / FORMATS["flamegraph"]).read_text(encoding="utf-8"))
        top = speedscope.top(TOP_FUNCTIONS)
        variant = request.backend.variant
        case_record = CaseRecord(
            variant=str(ready["variant"]), backend=variant.backend, options=variant.options,
            case=request.case,
            device=str(ready.get("device") or "cpu"), threads=dict(ready.get("threads") or {}),
            source_hash=source_hash(request.backend.module) if request.backend.module else None,
            load_ns=int(ready["load_ns"]), first_call_ns=int(ready["first_call_ns"]),
            weight_bytes=ready.get("weight_bytes"),
        )
        module = request.backend.module
        env_info = capture_environment({variant.backend: module} if module else {})
        per_format = {r.fmt: {"file": r.path.name, "samples": r.samples, "errors": r.errors}
                      for r in recordings}
        per_format["flamegraph"]["svg_total_samples"] = svg_samples
        per_format["speedscope"]["profile_samples"] = speedscope.samples
        run = Run(
            run_id=run_id, suite=KIND, status=RUN_COMPLETE, started_utc=_iso(started),
            finished_utc=_iso(_dt.datetime.now(_dt.UTC)), perfkit_version=_perfkit_version(),
            command=command,
            protocol={"tool": "py-spy", "tool_version": tool_version(exe), **request.options.to_dict(),
                      "recordings": list(FORMATS), "warmup_passes": int(ready.get("warmup_passes", 0)),
                      "attach": "pid, after load, first call and warm-up"},
            settings={
                "profile": {
                    "suite": request.suite, "series": ready["series"],
                    "series_available": ready["series_names"],
                    "passes_recorded": int(done.get("passes", 0)),
                    "recorded_ns": int(done.get("elapsed_ns", 0)), "recordings": per_format,
                    "sampled_s": speedscope.sampled_s, "threads_seen": list(speedscope.thread_names),
                    "top_self": [{"function": f.name, "file": f.file, "line": f.line,
                                  "self_fraction": f.self_fraction, "total_fraction": f.total_fraction}
                                 for f in top],
                },
                "threads": request.threads, "variant": request.backend.to_dict(),
                "ptracer_any": bool(ready.get("ptracer_any")),
                "artefacts": artefacts_setting(KIND, {**FORMATS, "log": LOG_FILE}),
            },
            environment=env_info, warnings=tuple(preflight_warnings(env_info, request.threads)),
            cases=(case_record,),
        )
        run, path, directory = publish(run, staging, results_dir, KIND)
    except BaseException:
        discard(staging)
        raise
    recs = tuple(Recording(r.fmt, directory / r.path.name, r.options, r.samples, r.errors, r.command)
                 for r in recordings)
    return ProfileOutcome(run, path, directory, recs, top)
