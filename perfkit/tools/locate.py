"""Finding the optional external tools (py-spy, hyperfine) and reading their versions.

A tool is looked up with :func:`shutil.which` on ``PATH``, then next to the running interpreter (a
``pip install py-spy`` into a virtual environment that is not activated puts it there). A tool that is
in neither place raises :class:`~perfkit.errors.ToolMissing` whose message names the tool and says how
to install it, so every command that needs one fails the same way: one line, non-zero exit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolMissing

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class ToolSpec:
    """An external tool: its executable ``name``, what it is ``for`` and how to ``install`` it."""

    name: str
    purpose: str
    install: str

    def missing_message(self) -> str:
        return (f"{self.name} is not installed (not found on PATH nor next to {sys.executable}); "
                f"it is needed {self.purpose}. Install it with: {self.install}")


def find_tool(tool: ToolSpec) -> str:
    """The absolute path of ``tool``'s executable; :class:`ToolMissing` saying how to install it."""
    found = shutil.which(tool.name)
    if found:
        return found
    beside = Path(sys.executable).parent / tool.name
    if beside.is_file() and shutil.which(str(beside)):
        return str(beside)
    raise ToolMissing(tool.missing_message())


def parse_version(text: str) -> str | None:
    """The first ``X.Y[.Z]`` in a ``--version`` output (``"hyperfine 1.15.0"`` -> ``"1.15.0"``)."""
    m = _VERSION.search(text)
    return m.group(1) if m else None


def tool_version(executable: str, timeout_s: float = 10.0) -> str | None:
    """``executable --version``, parsed; ``None`` if it cannot be read (never raises)."""
    try:
        proc = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(proc.stdout + proc.stderr)
