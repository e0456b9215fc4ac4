"""nox sessions: tests, lint, bench, journal.

torch is pinned to the CPU build through constraints.txt so a session never pulls CUDA packages.
"""

from __future__ import annotations

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
