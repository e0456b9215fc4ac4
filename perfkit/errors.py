"""The exceptions perfkit raises for bad input; the CLI prints them as one line and exits non-zero.

Anything else that escapes is a bug in perfkit or in a backend, and is shown with its traceback
only under ``--debug``.
"""

from __future__ import annotations


class PerfkitError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, unavailable backend)."""

    exit_code: int = 2


class ConfigError(PerfkitError, ValueError):
    """A configuration that cannot describe a model (bad field, bad value, unknown preset)."""


class CheckpointError(PerfkitError, ValueError):
    """A model directory that cannot be loaded: missing files, missing/unexpected/mis-shaped tensors."""


class InputError(PerfkitError, ValueError):
    """Bad user input: codes out of range, wrong codebook count, empty text, unreadable file."""


class BackendUnavailable(PerfkitError, RuntimeError):
    """A backend (or a variant of it) that cannot run here; the message says why."""


class ToolError(PerfkitError, RuntimeError):
    """An external tool (py-spy, hyperfine) that could not do its job; the message says why and what to do."""


class ToolMissing(ToolError):
    """An optional external tool that is not installed; the message names it and how to install it."""
