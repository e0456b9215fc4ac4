"""py-spy: building ``py-spy record`` command lines, running them, and reading what they write.

py-spy (``pip install py-spy``) is a sampling profiler that reads a Python process's stacks from
outside it. perfkit uses ``py-spy record``:

- ``--format flamegraph`` writes an interactive SVG flame graph; ``--format speedscope`` a JSON file for
  https://www.speedscope.app (one py-spy run writes one format, so perfkit records twice);
- ``--rate HZ`` samples per second, ``--duration S`` whole seconds (py-spy accepts integers only);
- ``--pid PID`` attaches to a running process (how :mod:`perfkit.commands.profile` records only the
  measured region of a warmed-up target), or ``-- PROGRAM ARGS…`` starts a child to record from its
  first instruction;
- ``--native`` adds C/C++/Cython frames (numba kernels, torch operators, BLAS), ``--subprocesses``
  follows child processes, ``--nonblocking`` samples without pausing the target (cannot go with
  ``--native``).

Command lines are argument lists, never shell strings. Failures are classified from py-spy's own
output: no permission to attach (ptrace) becomes a :class:`~perfkit.errors.ToolError` saying how to
allow it; a missing py-spy is :class:`~perfkit.errors.ToolMissing` (see :mod:`perfkit.tools.locate`).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ToolError
from .locate import ToolSpec, find_tool

PYSPY = ToolSpec(
    name="py-spy",
    purpose="to record profiles (perfkit profile)",
    install="python -m pip install py-spy  (it is on PyPI)",
)

#: How to give py-spy the right to read another process (it uses ptrace / process_vm_readv).
PERMISSION_HINT = (
    "py-spy needs ptrace permission to read the profiled process: run perfkit as root (sudo), or allow "
    "ptrace for your user with `sudo sysctl kernel.yama.ptrace_scope=0` (Linux Yama; 1 only allows "
    "tracing children), or in a container start it with `--cap-add SYS_PTRACE` "
    "(docker run --cap-add SYS_PTRACE …); on macOS py-spy always needs sudo"
)

#: py-spy output formats perfkit records, and the file name each is stored under.
FORMATS: dict[str, str] = {"flamegraph": "flamegraph.svg", "speedscope": "profile.speedscope.json"}

_SUMMARY = re.compile(r"Samples:\s*(\d+)\s+Errors:\s*(\d+)")
_DENIED = ("permission denied", "operation not permitted", "(os error 1)", "(os error 13)")
_GONE = ("failed to get process executable name", "no such process", "check that the process is running",
         "failed to find python version")
_TOTAL_SAMPLES = re.compile(r'total_samples="(\d+)"')


def find_pyspy() -> str:
    """The py-spy executable; :class:`~perfkit.errors.ToolMissing` saying ``pip install py-spy`` otherwise."""
    return find_tool(PYSPY)


@dataclass(frozen=True)
class RecordOptions:
    """What to sample and how: ``rate_hz`` samples per second for ``duration_s`` whole seconds
    (``None``: until the target exits), with ``native`` frames, following ``subprocesses``, with
    ``idle`` threads, and ``nonblocking`` (do not pause the target; not with ``native``)."""

    rate_hz: int = 100
    duration_s: int | None = None
    native: bool = False
    subprocesses: bool = False
    idle: bool = False
    nonblocking: bool = False

    def __post_init__(self) -> None:
        if self.rate_hz < 1:
            raise InputError(f"sampling rate must be at least 1 Hz, got {self.rate_hz}")
        if self.duration_s is not None and self.duration_s < 1:
            raise InputError("py-spy records whole seconds: duration must be at least 1, "
                             f"got {self.duration_s}")
        if self.native and self.nonblocking:
            raise InputError("py-spy cannot collect native frames without pausing the target: "
                             "--native and --nonblocking exclude each other")

    def to_dict(self) -> dict[str, Any]:
        return {"rate_hz": self.rate_hz, "duration_s": self.duration_s, "native": self.native,
                "subprocesses": self.subprocesses, "idle": self.idle, "nonblocking": self.nonblocking}


def record_command(executable: str, output: str | Path, fmt: str, options: RecordOptions, *,
                   pid: int | None = None, program: Sequence[str] | None = None) -> list[str]:
    """``py-spy record`` as an argument list: attach to ``pid``, or start ``program`` (an argv).

    Exactly one of ``pid`` and ``program`` is given; ``fmt`` is one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown py-spy format {fmt!r}; perfkit records {', '.join(FORMATS)}")
    if (pid is None) == (program is None):
        raise ValueError("give exactly one of pid or program")
    cmd = [executable, "record", "--format", fmt, "--output", str(output), "--rate", str(options.rate_hz)]
    if options.duration_s is not None:
        cmd += ["--duration", str(int(options.duration_s))]
    if options.native:
        cmd.append("--native")
    if options.subprocesses:
        cmd.append("--subprocesses")
    if options.idle:
        cmd.append("--idle")
    if options.nonblocking:
        cmd.append("--nonblocking")
    if pid is not None:
        cmd += ["--pid", str(int(pid))]
    else:
        if not program:
            raise ValueError("program must not be empty")
        cmd += ["--", *program]
    return cmd


def parse_summary(output: str) -> tuple[int, int] | None:
    """``(samples, errors)`` from py-spy's closing line ``Samples: N Errors: M``; ``None`` if absent."""
    matches = _SUMMARY.findall(output)
    if not matches:
        return None
    samples, errors = matches[-1]
    return int(samples), int(errors)


def failure(returncode: int, output: str, *, pid: int | None = None) -> ToolError:
    """The error for a py-spy run that exited with ``returncode`` after printing ``output``."""
    text = output.strip()
    low = text.lower()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if any(word in low for word in _DENIED):
        return ToolError(f"py-spy was denied permission to attach{f' to process {pid}' if pid else ''} "
                         f"({first or 'permission denied'}). {PERMISSION_HINT}")
    if any(word in low for word in _GONE):
        return ToolError(f"py-spy could not read the target{f' (process {pid})' if pid else ''}: it exited "
                         f"or is not a Python process ({first})")
    tail = " | ".join(line.strip() for line in text.splitlines()[-6:] if line.strip()) or "no output"
    return ToolError(f"py-spy record failed with exit status {returncode}: {tail}")


@dataclass(frozen=True)
class Recording:
    """One finished ``py-spy record``: the file written in ``fmt``, and py-spy's sample and error
    counts (``None`` when it did not print them)."""

    fmt: str
    path: Path
    options: RecordOptions
    samples: int | None
    errors: int | None
    command: tuple[str, ...]


def record(command: Sequence[str], fmt: str, output: str | Path, options: RecordOptions, *,
           pid: int | None = None, timeout_s: float | None = None) -> Recording:
    """Run a ``py-spy record`` command line built by :func:`record_command`; :class:`ToolError` on failure.

    ``timeout_s`` defaults to the recording duration plus a minute (unbounded without a duration).
    """
    if timeout_s is None and options.duration_s is not None:
        timeout_s = options.duration_s + 60.0
    try:
        proc = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ToolError(f"py-spy could not be started ({command[0]} vanished); {PYSPY.install}") from None
    except PermissionError as exc:
        raise ToolError(f"py-spy could not be executed ({exc}); check the file's permissions") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"py-spy did not finish within {timeout_s:.0f} s") from None
    output_text = (proc.stdout or "") + (proc.stderr or "")
    path = Path(output)
    if proc.returncode != 0:
        raise failure(proc.returncode, output_text, pid=pid)
    if not path.is_file() or path.stat().st_size == 0:
        raise ToolError(f"py-spy exited cleanly but wrote no {fmt} file at {path}: "
                        f"{output_text.strip()[-300:]}")
    summary = parse_summary(output_text)
    return Recording(fmt, path, options, summary[0] if summary else None, summary[1] if summary else None,
                     tuple(command))


# ----------------------------------------------------------------------------- reading the files
@dataclass(frozen=True)
class FrameShare:
    """One function's share of the samples: ``self_fraction`` with it on top of the stack,
    ``total_fraction`` with it anywhere in the stack."""

    name: str
    file: str
    line: int | None
    self_fraction: float
    total_fraction: float

    @property
    def label(self) -> str:
        where = Path(self.file).name if self.file else "?"
        return f"{self.name} ({where}:{self.line})" if self.line is not None else f"{self.name} ({where})"


@dataclass(frozen=True)
class SpeedscopeProfile:
    """A speedscope file written by py-spy: one sampled profile per thread over shared frames.

    ``stacks[i]`` is a sample's frame indices from the root outward, ``weights[i]`` its weight in
    seconds (``1 / rate``); ``threads`` names each sample's thread.
    """

    exporter: str
    frames: tuple[tuple[str, str, int | None], ...]
    stacks: tuple[tuple[int, ...], ...]
    weights: tuple[float, ...]
    threads: tuple[str, ...]
    thread_names: tuple[str, ...]

    @property
    def samples(self) -> int:
        return len(self.stacks)

    @property
    def sampled_s(self) -> float:
        """Total sample weight in seconds (threads add up: two busy threads give twice the wall time)."""
        return float(sum(self.weights))

    def top(self, n: int = 10, by: str = "self", per: str = "function") -> tuple[FrameShare, ...]:
        """The ``n`` largest shares of the sample weight, by ``self`` (on top of the stack) or ``total``
        (anywhere in it), ``per`` ``function`` (name and file; ``line`` is ``None``) or per ``line``
        (py-spy's frames: one per source line)."""
        if by not in ("self", "total") or per not in ("function", "line"):
            raise ValueError("by is 'self' or 'total'; per is 'function' or 'line'")
        total_w = self.sampled_s
        if not total_w:
            return ()
        keys = [(name, file, None) if per == "function" else (name, file, line)
                for name, file, line in self.frames]
        own: dict[tuple[str, str, int | None], float] = {}
        anywhere: dict[tuple[str, str, int | None], float] = {}
        for stack, w in zip(self.stacks, self.weights, strict=True):
            if not stack:
                continue
            top_key = keys[stack[-1]]
            own[top_key] = own.get(top_key, 0.0) + w
            for key in {keys[i] for i in stack}:
                anywhere[key] = anywhere.get(key, 0.0) + w
        pick = own if by == "self" else anywhere
        order = sorted(pick, key=lambda k: (-pick[k], k[0], k[1], k[2] or 0))[:n]
        return tuple(FrameShare(k[0], k[1], k[2], own.get(k, 0.0) / total_w, anywhere.get(k, 0.0) / total_w)
                     for k in order)


def parse_speedscope(data: Mapping[str, Any], where: str = "speedscope") -> SpeedscopeProfile:
    """A :class:`SpeedscopeProfile` from a parsed speedscope document; :class:`InputError` if malformed."""
    try:
        frames = tuple((str(f["name"]), str(f.get("file") or ""),
                        int(f["line"]) if f.get("line") is not None else None)
                       for f in data["shared"]["frames"])
        stacks: list[tuple[int, ...]] = []
        weights: list[float] = []
        threads: list[str] = []
        names: list[str] = []
        for prof in data["profiles"]:
            if prof.get("type") != "sampled":
                raise ValueError(f"profile type {prof.get('type')!r} is not 'sampled'")
            name = str(prof.get("name", ""))
            names.append(name)
            samples, ws = prof["samples"], prof["weights"]
            if len(samples) != len(ws):
                raise ValueError(f"{len(samples)} samples but {len(ws)} weights")
            for stack, w in zip(samples, ws, strict=True):
                if any(not 0 <= int(i) < len(frames) for i in stack):
                    raise ValueError("a sample refers to a frame that does not exist")
                stacks.append(tuple(int(i) for i in stack))
                weights.append(float(w))
                threads.append(name)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: not a py-spy speedscope profile ({type(exc).__name__}: {exc})") from None
    return SpeedscopeProfile(str(data.get("exporter", "")), frames, tuple(stacks), tuple(weights),
                             tuple(threads), tuple(names))


def load_speedscope(path: str | Path) -> SpeedscopeProfile:
    """Read a speedscope JSON file written by ``py-spy record --format speedscope``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read the speedscope profile ({exc})") from None
    return parse_speedscope(data, str(p))


def flamegraph_samples(svg: str) -> int:
    """The sample count a py-spy (inferno) flame graph SVG declares (``total_samples="N"``);
    :class:`InputError` if the text is not such an SVG."""
    if "<svg" not in svg:
        raise InputError("not an SVG file")
    m = _TOTAL_SAMPLES.search(svg)
    if not m:
        raise InputError("an SVG, but not a py-spy flame graph (no total_samples)")
    return int(m.group(1))
