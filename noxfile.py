"""nox sessions: tests, lint, bench, journal.

torch is pinned to the CPU build through constraints.txt so a session never pulls CUDA packages.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
CONSTRAINTS = ("-c", "constraints.txt")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the README's test command runs the same pytest)."""
    session.install(*CONSTRAINTS, "-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, backends, suites and tests."""
    session.install("ruff")
    session.run("ruff", "check", "perfkit", "backends", "suites", "tests", "noxfile.py")


# --- bench and journal (issue 7) -------------------------------------------------------------------------
#: What `nox -s bench` measures: every suite on the tiny preset, sized to finish in a few minutes on 2 cores.
BENCH_PRESET = "tiny"
BENCH_BACKENDS = ("numpy", "numba", "torch")
BENCH_ARGS = ("--suite", "all", "--budget", "2", "--param", "rtf.frames_per_word=1",
              "--param", "memory.configs=vocoder,stream")
#: Written by `nox -s journal` beside pr.md only when the journal found a significant regression or a
#: parity failure (the CI workflow tells that apart from a journal that could not be made).
REGRESSION_MARKER = "REGRESSION.txt"
#: What `nox -s journal` measures at both commits (smaller: every variant is measured twice, base and head).
JOURNAL_ARGS = ("--suite", "parity", "--suite", "stages", "--suite", "generator", "--budget", "3")
#: The interleaved journal's worker processes per variant: with one per side, two processes of identical
#: code differed by up to 3x on sub-millisecond stages of the tiny preset (memory layout, thread
#: placement) and the journal called that a regression; visits rotated over three per side gave none.
#: (The sequential fallback runs an old merge-base's `perfkit compare`, which may not know the option.)
JOURNAL_WORKERS = ("--workers", "3")


@nox.session
def bench(session: nox.Session) -> None:
    """The default suites on the default preset: results/ and reports/compare-*/ (paths printed at the end).

    Extra arguments go to `perfkit compare`, e.g. `nox -s bench -- --preset small`.
    """
    session.install(*CONSTRAINTS, "-e", ".[dev]")
    session.run("perfkit", "compare", *BENCH_BACKENDS, "--preset", BENCH_PRESET, *BENCH_ARGS,
                *session.posargs)
    session.log("results: results/ (one file per suite); report and plots: the reports/compare-* path above")


#: `perfkit compare`'s exit status when `--base-source` was given and the base tree could not be measured.
BASE_NOT_MEASURED = 3


def _compare(session: nox.Session, results: Path, reports: Path, *extra: str) -> None:
    session.run("perfkit", "compare", *BENCH_BACKENDS, "--preset", BENCH_PRESET, *JOURNAL_ARGS, *extra,
                "--results", str(results), "--reports", str(reports), "--no-plots", success_codes=[0, 1])


def _journal_interleaved(session: nox.Session, worktree: Path, results: Path, out_dir: Path) -> bool:
    """Base and head in one `perfkit compare --base-source` run, their visits interleaved: machine drift
    hits both alike. Writes results/base and results/head; ``False`` when it could not measure the base
    (an old merge-base whose worker does not understand this engine, or no perfkit tree there)."""
    from nox.command import CommandFailed

    try:
        _compare(session, results, (out_dir / "compare").resolve(), "--base-source", str(worktree),
                 *JOURNAL_WORKERS)
    except CommandFailed as exc:
        if exc.return_code not in (BASE_NOT_MEASURED, 2):
            raise
        session.warn(f"the interleaved run could not measure the merge-base (exit status {exc.return_code}); "
                     "falling back to measuring it and HEAD one after the other, where machine drift may show "
                     "up as false changes")
        return False
    return True


def _journal_sequential(session: nox.Session, worktree: Path, results: Path, out_dir: Path) -> bool:
    """The fallback: bench the merge-base installed from its worktree, then HEAD; ``False`` when the
    merge-base could not be benched at all."""
    base_ok = True
    try:
        session.install("--no-deps", "-e", str(worktree))
        try:
            _compare(session, results / "base", (out_dir / "base").resolve())
        except Exception as exc:  # noqa: BLE001 - an old merge-base may not have `perfkit compare` yet
            base_ok = False
            session.warn(f"could not bench the merge-base: {exc}")
    finally:
        session.install("--no-deps", "-e", ".")
    _compare(session, results / "head", (out_dir / "head").resolve())
    return base_ok


@nox.session
def journal(session: nox.Session) -> None:
    """The PR journal: bench the merge-base (a git worktree) and HEAD, then `perfkit journal` between them.

    Both are measured in one engine run (`perfkit compare --base-source WORKTREE`): every variant's
    workers for the merge-base import the worktree's code, and their visits are interleaved with HEAD's,
    so drift in a shared machine hits both commits alike. Only when that run cannot measure the
    merge-base (a merge-base older than the engine's protocol) are they benched one after the other,
    with a warning. Base ref: first positional argument or $PERFKIT_BASE_REF (default origin/main).
    Writes results/journal/<base>-<head>/{base,head}/, reports/journal/pr.md (+ plots) and, when the
    journal finds a significant regression (a stage slower by the verdict, or HEAD failing parity),
    reports/journal/REGRESSION.txt listing it; with $PERFKIT_FAIL_ON_REGRESSION=1 the session then fails
    (any other failure fails it too, without the file).
    """
    import os
    import shutil

    session.install(*CONSTRAINTS, "-e", ".[dev]")
    ref = session.posargs[0] if session.posargs else os.environ.get("PERFKIT_BASE_REF", "origin/main")

    def git(*args: str) -> str:
        return str(session.run("git", *args, external=True, silent=True)).strip()

    base, head = git("merge-base", "HEAD", ref), git("rev-parse", "HEAD")
    out_dir = Path("reports", "journal")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = Path("results", "journal", f"{base[:12]}-{head[:12]}").resolve()
    dirs = {"base": results / "base", "head": results / "head"}
    shutil.rmtree(results, ignore_errors=True)
    worktree = Path(session.create_tmp()).resolve() / "merge-base"
    shutil.rmtree(worktree, ignore_errors=True)
    session.run("git", "worktree", "add", "--detach", str(worktree), base, external=True)
    try:
        base_ok = _journal_interleaved(session, worktree, results, out_dir)
        if not base_ok:
            shutil.rmtree(results, ignore_errors=True)
            base_ok = _journal_sequential(session, worktree, results, out_dir)
    finally:
        session.run("git", "worktree", "remove", "--force", str(worktree), external=True)
    pr = out_dir / "pr.md"
    if not base_ok or not any(dirs["base"].glob("*.json")):
        pr.write_text(f"# Performance journal\n\nThe merge-base {base[:12]} could not be benchmarked "
                      f"(see the CI log); HEAD {head[:12]} was measured: results in {dirs['head']}.\n")
        session.log(f"journal: {pr}")
        return
    strict = os.environ.get("PERFKIT_FAIL_ON_REGRESSION", "") not in ("", "0")
    marker = out_dir / REGRESSION_MARKER
    marker.unlink(missing_ok=True)
    output = session.run("perfkit", "journal", "--base", str(dirs["base"]), "--head", str(dirs["head"]),
                         "--label", f"merge-base {base[:10]}", "--label", f"HEAD {head[:10]}",
                         "--title", f"Performance journal: {base[:10]} -> {head[:10]}", "--out", str(pr),
                         "--fail-on-regression", success_codes=[0, 1], silent=True)
    session.log(str(output).rstrip())
    findings = [line for line in str(output).splitlines() if line.startswith("perfkit: ")]
    if any(line.startswith("perfkit: failing:") for line in findings):
        marker.write_text("\n".join(findings) + "\n", encoding="utf-8")
        if strict:
            session.error(f"significant regression or parity failure (see {pr}; listed in {marker})")
        session.warn(f"significant regression or parity failure (see {pr}; listed in {marker})")
