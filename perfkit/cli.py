"""``perfkit`` command line: one sub-command per module in :mod:`perfkit.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Errors the user can fix (:class:`perfkit.errors.PerfkitError`) print one
line and exit non-zero; ``--debug`` shows the traceback of any error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import PerfkitError

#: Command modules under perfkit.commands, in help order. Add yours here.
COMMANDS: tuple[str, ...] = (
    "backends",
    "vocode",
    "synth",
    "run",
    "results",
    "machine",
    "profile",
    "hyperfine",
    "compare",
    "journal",
    "import_benchmark",
)


def requested_command(argv: Sequence[str]) -> str | None:
    """The command module ``argv`` asks for (its first word that is not an option), if it is one."""
    for word in argv:
        if not word.startswith("-"):
            name = word.replace("-", "_")
            return name if name in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with command ``only`` alone: a command then imports just its
    own module (not the plotting or statistics libraries another one needs), so it starts quickly."""
    parser = argparse.ArgumentParser(
        prog="perfkit",
        description="Measure, compare and journal TTS inference backends on the Qwen3-TTS reference model.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"perfkit.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(requested_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PerfkitError as exc:
        if args.debug:
            raise
        print(f"perfkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("perfkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"perfkit: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
