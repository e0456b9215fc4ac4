"""Result files: one JSON file per run, written atomically, never overwritten, read defensively.

Naming: ``<UTC start, %Y%m%dT%H%M%SZ>-<suite>-<pid>-<6 random hex>.json``; the stem is the run id. Two
runs started in the same second differ by process id, and two in one process by the random suffix.

Writing (:func:`write_run`): the JSON goes to a hidden temporary file in the same directory
(``.<name>.<random>.tmp``, created with ``O_EXCL``), is flushed and ``fsync``-ed, then *hard-linked* to its
final name — ``link`` fails rather than replace an existing file, so nothing is ever overwritten (where
the file system has no hard links, ``os.replace`` after a check that the name is free) — and the
temporary is removed. A process killed at any point leaves either the complete file or no ``*.json``
at all (at worst a hidden ``.tmp`` file, which readers ignore).

Reading (:func:`load_run`, :func:`load_runs`): a file that is empty, not JSON, not perfkit's, from a
newer schema, or malformed raises :class:`~perfkit.store.schema.ResultFileError` with the reason;
:func:`load_runs` reports such files and skips them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .records import RecordError, Run
from .schema import FORMAT, SCHEMA_VERSION, ResultFileError, upgrade

DEFAULT_RESULTS_DIR = "results"
MAX_FILE_BYTES = 512 * 2**20
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9_.-]`` (other runs of characters become ``_``), for file names."""
    return _UNSAFE.sub("_", text).strip("._") or "run"


def new_run_id(suite: str, started: _dt.datetime | None = None) -> str:
    """``<UTC start>-<suite>-<pid>-<random>``; see the module docstring."""
    started = started or _dt.datetime.now(_dt.UTC)
    stamp = f"{started.astimezone(_dt.UTC):%Y%m%dT%H%M%SZ}"
    return f"{stamp}-{safe_name(suite)}-{os.getpid()}-{secrets.token_hex(3)}"


def dumps_run(run: Run) -> str:
    """The file content: header (format, schema version) then the run's fields."""
    doc = {"format": FORMAT, "schema_version": SCHEMA_VERSION, **run.to_dict()}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_tmp(directory: Path, stem: str, text: str) -> Path:
    tmp = directory / f".{stem}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _publish(tmp: Path, final: Path) -> bool:
    """Give ``tmp`` the name ``final`` unless that name exists; ``False`` if it does."""
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    if final.exists():
        return False
    os.replace(tmp, final)
    return True


def write_run(run: Run, directory: str | os.PathLike[str] = DEFAULT_RESULTS_DIR) -> Path:
    """Write ``run`` as ``<directory>/<run_id>.json`` atomically, never replacing a file.

    Should the name exist already (practically impossible), the run gets a fresh id and tries again.
    Returns the path written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        final = out / f"{run.run_id}.json"
        tmp = _write_tmp(out, run.run_id, dumps_run(run))
        try:
            if _publish(tmp, final):
                _fsync_dir(out)
                return final
        finally:
            tmp.unlink(missing_ok=True)
        run = dataclasses.replace(run, run_id=new_run_id(run.suite))
    raise OSError(f"could not find a free result file name in {out}")


def result_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The result files of a directory (``*.json``, hidden and temporary files excluded), sorted by name."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*.json") if not p.name.startswith(".") and p.is_file())


def parse_run(text: str | bytes, where: str = "result") -> Run:
    """A run from a file's content (upgraded to the current schema); :class:`ResultFileError` otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ResultFileError(f"{where}: not UTF-8 text (corrupt?)") from None
    if not text.strip():
        raise ResultFileError(f"{where}: empty file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}; "
                              "truncated or corrupt?)") from None
    except RecursionError:
        raise ResultFileError(f"{where}: JSON nested too deeply") from None
    doc = upgrade(doc, where)
    try:
        return Run.from_dict(doc, "run")
    except (RecordError, TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise ResultFileError(f"{where}: malformed result ({exc})") from None


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read one result file; :class:`ResultFileError` with the reason if it cannot be."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ResultFileError(f"{p}: larger than {MAX_FILE_BYTES // 2**20} MiB, not a perfkit result")
        data = p.read_bytes()
    except FileNotFoundError:
        raise ResultFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ResultFileError(f"{p}: is a directory") from None
    except OSError as exc:
        raise ResultFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return parse_run(data, str(p))


@dataclass(frozen=True)
class Unreadable:
    """A file :func:`load_runs` skipped, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load_runs` read and what it skipped."""

    runs: tuple[Run, ...]
    skipped: tuple[Unreadable, ...]
    paths: tuple[Path, ...] = ()
    """The file each run came from (parallel to ``runs``)."""


def load_runs(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> LoadResult:
    """Every readable run among ``sources`` (files, or directories of result files), in order;
    unreadable files are reported in ``skipped`` with the reason, never raised."""
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    files: list[Path] = []
    skipped: list[Unreadable] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            files.extend(result_files(p))
        elif p.exists():
            files.append(p)
        else:
            skipped.append(Unreadable(p, "no such file or directory"))
    runs: list[Run] = []
    paths: list[Path] = []
    seen: set[Path] = set()
    for f in files:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            runs.append(load_run(f))
            paths.append(f)
        except ResultFileError as exc:
            skipped.append(Unreadable(f, str(exc).removeprefix(f"{f}: ")))
    return LoadResult(tuple(runs), tuple(skipped), tuple(paths))
