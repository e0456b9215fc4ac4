"""hyperfine: building its command line, running it, and reading its JSON and markdown exports.

hyperfine (``apt-get install hyperfine``; a Debian/Ubuntu package, also ``cargo install hyperfine``)
times whole commands from a cold process start: ``--warmup N`` untimed runs, then ``--runs N`` timed
runs per command, and exports every run's wall time (``--export-json``: ``times`` in seconds, plus mean,
median, user and system time, exit codes) and a summary table (``--export-markdown``).

Each benchmarked command reaches hyperfine as one string, in one argument of its own (perfkit never
assembles a shell line). How hyperfine runs that string depends on ``--shell``:

- commands perfkit builds itself (:meth:`Benchmark.from_argv`) are joined with :func:`shlex.join` and run
  with ``--shell=none``: hyperfine splits the string with POSIX shell-word rules and executes the
  program directly, so no shell start-up is in the timing and nothing is interpreted;
- commands a user gives (``NAME=COMMAND``) are run by hyperfine's default shell (``sh -c`` on Unix,
  its start-up time measured and subtracted by hyperfine), so quoting, pipes and ``&&`` inside the one
  string behave as in a shell — exactly as if the user had typed ``hyperfine 'COMMAND'``. Give
  ``shell="none"`` to run them directly.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ToolError
from ..store.records import CASE_FAILED, CASE_OK, Case, CaseRecord, Failure, SeriesRecord, StageRecord
from .locate import ToolSpec, find_tool

HYPERFINE = ToolSpec(
    name="hyperfine",
    purpose="to time whole commands (perfkit hyperfine)",
    install="apt-get install hyperfine  (a Debian/Ubuntu package; elsewhere `cargo install hyperfine` or "
            "`brew install hyperfine`)",
)

JSON_FILE = "hyperfine.json"
MARKDOWN_FILE = "hyperfine.md"

_NAME = re.compile(r"^[A-Za-z0-9_.:+@/,=-]+$")
_UNIT_SCALE = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def find_hyperfine() -> str:
    """The hyperfine executable; :class:`~perfkit.errors.ToolMissing` saying how to install it otherwise."""
    return find_tool(HYPERFINE)


@dataclass(frozen=True)
class Benchmark:
    """One command to time: ``name`` (as hyperfine shows and exports it), ``command`` (the one string
    hyperfine gets) and, for commands perfkit built, the ``argv`` it was joined from."""

    name: str
    command: str
    argv: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InputError(f"benchmark name {self.name!r} must be letters, digits and _.:+@/,=- only")
        if not self.command.strip():
            raise InputError(f"benchmark {self.name!r} has an empty command")

    @classmethod
    def from_argv(cls, name: str, argv: Sequence[str]) -> Benchmark:
        """A command perfkit builds: the argument list, quoted for hyperfine's ``--shell=none`` splitting."""
        if not argv:
            raise InputError(f"benchmark {name!r} has an empty command")
        return cls(name, shlex.join(argv), tuple(argv))

    @classmethod
    def parse(cls, spec: str) -> Benchmark:
        """``NAME=COMMAND`` as typed by a user (split at the first ``=``; the name cannot hold one)."""
        name, eq, command = spec.partition("=")
        if not eq or not name.strip():
            raise InputError(f"{spec!r} is not NAME=COMMAND (e.g. 'numpy=perfkit vocode --preset tiny "
                             "--frames 50 --out /tmp/a.wav')")
        return cls(name.strip(), command)


@dataclass(frozen=True)
class HyperfineOptions:
    """``warmup`` untimed runs and ``runs`` timed runs per command (``None``: hyperfine decides, at least
    10); ``shell``: ``None`` for hyperfine's default shell, ``"none"`` to execute directly, or a shell."""

    warmup: int = 1
    runs: int | None = 5
    shell: str | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise InputError(f"--warmup must be at least 0, got {self.warmup}")
        if self.runs is not None and self.runs < 2:
            raise InputError(f"--runs must be at least 2 (hyperfine needs two for a spread), got {self.runs}")

    def to_dict(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "runs": self.runs, "shell": self.shell}


def check_benchmarks(benchmarks: Sequence[Benchmark]) -> None:
    """:class:`InputError` unless there is at least one benchmark and every name is unique."""
    if not benchmarks:
        raise InputError("nothing to benchmark: give at least one NAME=COMMAND")
    names = [b.name for b in benchmarks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"benchmark names must be unique; repeated: {', '.join(dup)}")


def build_command(executable: str, benchmarks: Sequence[Benchmark], options: HyperfineOptions,
                  export_json: str | Path, export_markdown: str | Path) -> list[str]:
    """The hyperfine argument list: options, exports, one ``--command-name`` per benchmark, then ``--``
    and the commands (one argument each, so a command starting with ``-`` is not taken for an option)."""
    check_benchmarks(benchmarks)
    cmd = [executable, "--style", "basic", "--warmup", str(options.warmup)]
    if options.runs is not None:
        cmd += ["--runs", str(options.runs)]
    if options.shell is not None:
        cmd.append(f"--shell={options.shell}")
    cmd += ["--export-json", str(export_json), "--export-markdown", str(export_markdown)]
    for b in benchmarks:
        cmd += ["--command-name", b.name]
    cmd.append("--")
    cmd += [b.command for b in benchmarks]
    return cmd


def run_hyperfine(command: Sequence[str], timeout_s: float | None = None) -> str:
    """Run hyperfine, its progress going to this process's stdout (file descriptor 1); returns what it
    wrote on stderr (its warnings).

    :class:`ToolError` with hyperfine's own message if it fails (a benchmarked command that exits
    non-zero, a command that cannot be started, bad options).
    """
    try:
        proc = subprocess.run(list(command), stdout=None, stderr=subprocess.PIPE, text=True,
                              timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ToolError(f"hyperfine could not be started ({command[0]} vanished); "
                        f"{HYPERFINE.install}") from None
    except PermissionError as exc:
        raise ToolError(f"hyperfine could not be executed ({exc}); check the file's permissions") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"hyperfine did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error")] or lines[-3:] or ["no message"]
        raise ToolError(f"hyperfine failed (exit status {proc.returncode}): {' '.join(errors)}")
    return proc.stderr or ""


# ----------------------------------------------------------------------------- --export-json
@dataclass(frozen=True)
class CommandResult:
    """One command's entry in hyperfine's JSON export; times in seconds, as hyperfine writes them.

    ``memory_usage_byte`` (hyperfine >= 1.19, one value per run) and ``parameters`` (with
    ``--parameter-scan``/``--parameter-list``) are kept when present.
    """

    command: str
    times_s: tuple[float, ...]
    mean_s: float
    stddev_s: float | None
    median_s: float
    min_s: float
    max_s: float
    user_s: float
    system_s: float
    exit_codes: tuple[int | None, ...]
    memory_usage_byte: tuple[int, ...] | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def times_ns(self) -> tuple[int, ...]:
        """Every timed run, integer nanoseconds (how perfkit stores samples)."""
        return tuple(round(t * 1e9) for t in self.times_s)

    @property
    def failed_runs(self) -> int:
        return sum(1 for c in self.exit_codes if c != 0)


def _num(d: Mapping[str, Any], key: str, where: str, optional: bool = False) -> float | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{where}: field {key!r} is not a number")
    return float(v)


def parse_json(data: Any, where: str = "hyperfine JSON") -> tuple[CommandResult, ...]:
    """The results of a parsed ``--export-json`` document; :class:`InputError` naming what is wrong."""
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
        raise InputError(f"{where}: not a hyperfine export (no \"results\" list)")
    out = []
    for i, r in enumerate(data["results"]):
        w = f"{where}: results[{i}]"
        if not isinstance(r, Mapping) or not isinstance(r.get("command"), str):
            raise InputError(f"{w}: no \"command\" string")
        times = r.get("times")
        if not isinstance(times, list) or not times or not all(
                isinstance(t, int | float) and not isinstance(t, bool) for t in times):
            raise InputError(f"{w}: \"times\" must be a non-empty list of seconds")
        codes = r.get("exit_codes", [])
        if not isinstance(codes, list) or not all(c is None or isinstance(c, int) for c in codes):
            raise InputError(f"{w}: \"exit_codes\" must be a list of integers")
        mem = r.get("memory_usage_byte")
        if mem is not None and (not isinstance(mem, list) or not all(isinstance(m, int) for m in mem)):
            raise InputError(f"{w}: \"memory_usage_byte\" must be a list of integers")
        params = r.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise InputError(f"{w}: \"parameters\" must be an object")
        out.append(CommandResult(
            command=r["command"], times_s=tuple(float(t) for t in times),
            mean_s=_num(r, "mean", w), stddev_s=_num(r, "stddev", w, optional=True),
            median_s=_num(r, "median", w), min_s=_num(r, "min", w), max_s=_num(r, "max", w),
            user_s=_num(r, "user", w), system_s=_num(r, "system", w), exit_codes=tuple(codes),
            memory_usage_byte=None if mem is None else tuple(mem),
            parameters={str(k): str(v) for k, v in params.items()},
        ))
    return tuple(out)


def load_json(path: str | Path) -> tuple[CommandResult, ...]:
    """Read a hyperfine ``--export-json`` file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read the hyperfine export ({exc})") from None
    return parse_json(data, str(p))


# ----------------------------------------------------------------------------- --export-markdown
@dataclass(frozen=True)
class MarkdownRow:
    """One row of hyperfine's markdown table, times converted to seconds; ``relative`` is the mean
    over the fastest command's mean (1.00 for the fastest), ``relative_error`` its ± (``None`` for it)."""

    command: str
    mean_s: float
    stddev_s: float | None
    min_s: float
    max_s: float
    relative: float
    relative_error: float | None


_PLUS_MINUS = re.compile(r"^\s*([0-9.eE+-]+)\s*(?:±\s*([0-9.eE+-]+))?\s*$")


def _pm(cell: str, where: str) -> tuple[float, float | None]:
    m = _PLUS_MINUS.match(cell)
    if not m:
        raise InputError(f"{where}: {cell!r} is not a number (± spread)")
    return float(m.group(1)), None if m.group(2) is None else float(m.group(2))


def parse_markdown(text: str, where: str = "hyperfine markdown") -> tuple[MarkdownRow, ...]:
    """The rows of a ``--export-markdown`` table:
    ``| Command | Mean [ms] | Min [ms] | Max [ms] | Relative |``."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        raise InputError(f"{where}: no markdown table")
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    unit_m = re.match(r"Mean \[(\S+)\]", headers[1]) if len(headers) > 1 else None
    if headers[0] != "Command" or unit_m is None or headers[-1] != "Relative" or len(headers) != 5:
        raise InputError(f"{where}: unexpected header {lines[0]!r}")
    unit = unit_m.group(1)
    if unit not in _UNIT_SCALE:
        raise InputError(f"{where}: unknown time unit {unit!r}")
    scale = _UNIT_SCALE[unit]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 5:
            raise InputError(f"{where}: row {line!r} has {len(cells)} cells, expected 5")
        mean, std = _pm(cells[1], where)
        rel, rel_err = _pm(cells[4], where)
        low, high = _pm(cells[2], where)[0], _pm(cells[3], where)[0]
        rows.append(MarkdownRow(cells[0].strip("`"), mean * scale, None if std is None else std * scale,
                                low * scale, high * scale, rel, rel_err))
    return tuple(rows)


# ----------------------------------------------------------------------------- as perfkit records
#: The series (and its one span) a whole-process timing is stored as: not ``e2e``, which times the
#: measured region inside one process; ``process`` includes interpreter start, imports and load.
SERIES = "process"


VariantParts = tuple[str, tuple[tuple[str, str], ...]]
"""A backend name and its options, as a :class:`~perfkit.store.records.CaseRecord` holds them."""


def case_records(results: Sequence[CommandResult], benchmarks: Sequence[Benchmark], case: Case,
                 variants: Mapping[str, VariantParts] | None = None) -> tuple[CaseRecord, ...]:
    """One :class:`~perfkit.store.records.CaseRecord` per benchmark, all of ``case``, so comparisons put
    them side by side; the timed runs are the samples of series :data:`SERIES` (integer ns, one span).

    hyperfine runs each command's timed runs back to back, commands in order, so ``visits`` number the
    runs in the order they happened across the commands (command 0: ``0 … n-1``, command 1: ``n …``).
    ``variants`` maps a benchmark name to its ``(backend, options)``; others are stored as backend
    ``command``. Results are matched to benchmarks by position (hyperfine keeps the order) and checked
    by name. A time of zero or less (a command shorter than the shell start-up hyperfine subtracts) is
    a :class:`~perfkit.errors.ToolError`: such samples cannot be compared.
    """
    if len(results) != len(benchmarks):
        raise InputError(f"hyperfine exported {len(results)} results for {len(benchmarks)} commands")
    for bench, res in zip(benchmarks, results, strict=True):
        if min(res.times_s) <= 0:
            raise ToolError(f"hyperfine reported a time of {min(res.times_s):g} s for {bench.name!r}: "
                            "the command finishes faster than hyperfine's correction for the shell start-up, "
                            "so its times mean nothing; time it without a shell (--shell none)")
    records = []
    visit = 0
    for bench, res in zip(benchmarks, results, strict=True):
        if res.command not in (bench.name, bench.command):
            raise InputError(f"hyperfine result {res.command!r} does not match benchmark {bench.name!r}")
        n = len(res.times_s)
        backend, options = (variants or {}).get(bench.name, ("command", ()))
        failed = res.failed_runs
        codes = sorted({c for c in res.exit_codes if c != 0}, key=str)
        failures = (Failure("error", "round", f"{failed} of {len(res.exit_codes)} runs exited non-zero "
                                              f"(exit codes {codes})"),) if failed else ()
        series = SeriesRecord(SERIES, synced=False, loops=1, visits=tuple(range(visit, visit + n)),
                              stages=(StageRecord(SERIES, res.times_ns),))
        visit += n
        records.append(CaseRecord(variant=bench.name, backend=backend, options=options, case=case,
                                  status=CASE_FAILED if failed else CASE_OK, failures=failures,
                                  device="process", series=(series,)))
    return tuple(records)


def command_details(results: Sequence[CommandResult], benchmarks: Sequence[Benchmark]) -> dict[str, Any]:
    """What the records do not hold, per benchmark name: the command, its argv, hyperfine's user and
    system CPU time (means), exit codes, memory when reported."""
    out: dict[str, Any] = {}
    for bench, res in zip(benchmarks, results, strict=True):
        out[bench.name] = {"command": bench.command, "argv": None if bench.argv is None else list(bench.argv),
                           "mean_s": res.mean_s, "median_s": res.median_s, "user_s": res.user_s,
                           "system_s": res.system_s, "exit_codes": list(res.exit_codes),
                           "memory_usage_byte": (None if res.memory_usage_byte is None
                                                 else list(res.memory_usage_byte))}
    return out
