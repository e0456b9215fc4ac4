"""``perfkit hyperfine``: whole-process timings with hyperfine, stored as a perfkit run.

Two ways to name what is timed:

- ``perfkit hyperfine NAME=COMMAND …``: each COMMAND is one argument, handed to hyperfine as one
  argument and run by hyperfine's shell (``sh -c``) unless ``--shell none`` — quote it once for your own
  shell, as you would for ``hyperfine 'COMMAND'``;
- ``perfkit hyperfine --vocode numpy,torch`` / ``--synth numpy,torch`` (with ``--preset``, ``--frames``,
  ``--seed``, ``--text``): perfkit builds ``python -m perfkit.cli vocode|synth --backend B …`` for every
  backend variant as an argument list and runs it with ``--shell=none`` (nothing is interpreted by a
  shell, and no shell start-up is timed). Variants that cannot run here are reported and skipped.

The exports (``hyperfine.json``, ``hyperfine.md``) go to ``<results>/<run-id>.hyperfine/``; the run
(suite ``hyperfine``) holds every timed run as a sample of series ``process`` (see
:func:`perfkit.tools.hyperfine.case_records`), so ``perfkit results`` and the journals compare
whole-process timings like any other.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.console import Console

from ..errors import BackendUnavailable, InputError
from ..measure.environment import capture_environment, preflight_warnings
from ..run.plan import resolve_variant
from ..store.files import DEFAULT_RESULTS_DIR, new_run_id
from ..store.records import RUN_COMPLETE, Case, Run, Skipped
from ..tools.artefacts import artefacts_setting, discard, publish, staging_dir
from ..tools.hyperfine import (
    JSON_FILE,
    MARKDOWN_FILE,
    Benchmark,
    HyperfineOptions,
    VariantParts,
    build_command,
    case_records,
    check_benchmarks,
    command_details,
    find_hyperfine,
    load_json,
    parse_markdown,
    run_hyperfine,
)
from ..tools.locate import tool_version

KIND = "hyperfine"
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
DEFAULT_FRAMES = 50
EXPORTS = {"json": JSON_FILE, "markdown": MARKDOWN_FILE}
CUSTOM_CASE = Case("custom")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hyperfine", help="time whole commands with hyperfine and store the run",
        description="Time whole processes with hyperfine (apt-get install hyperfine): warm-up runs, then "
                    "timed runs; export its JSON and markdown next to the stored run and keep every timed "
                    "run as a sample. Either NAME=COMMAND arguments (each run by hyperfine's shell; quote "
                    "each command once) or --vocode/--synth BACKENDS to compare `perfkit vocode` or "
                    "`perfkit synth` across backend variants (run without a shell).",
    )
    p.add_argument("commands", nargs="*", metavar="NAME=COMMAND",
                   help="a named command, e.g. 'cold=perfkit vocode --preset tiny --frames 50 --out a.wav'")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--vocode", action="append", metavar="BACKENDS",
                      help="compare `perfkit vocode` across backend variants (comma-separated, repeatable), "
                           "e.g. numpy,torch or numpy:dtype=float64")
    what.add_argument("--synth", action="append", metavar="BACKENDS",
                      help="compare `perfkit synth` across backend variants (comma-separated, repeatable)")
    p.add_argument("--preset", default="tiny", help="model preset for --vocode/--synth (default: tiny)")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="N",
                   help=f"frames for --vocode/--synth (default {DEFAULT_FRAMES})")
    p.add_argument("--seed", type=int, default=0, help="seed for --vocode/--synth (default 0)")
    p.add_argument("--text", default=DEFAULT_TEXT, help="text for --synth")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed runs per command (default 1)")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="timed runs per command (default 5)")
    p.add_argument("--shell", metavar="SHELL",
                   help="hyperfine's --shell for NAME=COMMAND ('none': no shell; default: sh)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="stop hyperfine after S seconds (default: no limit)")
    p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="results directory")
    p.set_defaults(func=run)


def split_specs(values: Sequence[str]) -> list[str]:
    """Backend variants from comma-separated lists, keeping a variant's own options together:
    ``numpy,torch:dtype=bfloat16,device=cpu`` -> ``numpy``, ``torch:dtype=bfloat16,device=cpu`` (a piece
    with ``=`` but no ``:`` continues the previous variant's options)."""
    specs: list[str] = []
    for value in values:
        for piece in (p.strip() for p in value.split(",")):
            if not piece:
                continue
            if "=" in piece and ":" not in piece and specs and ":" in specs[-1]:
                specs[-1] += "," + piece
            else:
                specs.append(piece)
    if not specs:
        raise InputError("no backend variant given")
    return list(dict.fromkeys(specs))


def perfkit_argv(command: str, label: str, args: argparse.Namespace, out: Path) -> list[str]:
    """``python -m perfkit.cli vocode|synth --backend LABEL …`` as an argument list (this interpreter)."""
    argv = [sys.executable, "-m", "perfkit.cli", command, "--backend", label, "--preset", args.preset,
            "--frames", str(args.frames), "--seed", str(args.seed)]
    if command == "synth":
        argv += ["--text", args.text]
    return [*argv, "--out", str(out)]


@dataclass(frozen=True)
class Selection:
    """What one ``perfkit hyperfine`` times: the benchmarks, each one's backend and options (shorthand
    only), the variants skipped as unavailable, and the case they all share."""

    benchmarks: tuple[Benchmark, ...]
    variants: dict[str, VariantParts]
    skipped: tuple[Skipped, ...]
    case: Case


def shorthand(command: str, specs: Sequence[str], args: argparse.Namespace, workdir: Path) -> Selection:
    """Benchmarks comparing ``perfkit <command>`` across ``specs``; unavailable variants are skipped."""
    if args.frames < 1:
        raise InputError(f"--frames must be positive, got {args.frames}")
    benches: list[Benchmark] = []
    variants: dict[str, VariantParts] = {}
    skipped: list[Skipped] = []
    for spec in split_specs(specs):
        try:
            ref = resolve_variant(spec)
        except BackendUnavailable as exc:
            skipped.append(Skipped(spec, str(exc)))
            continue
        if ref.label in variants:
            continue
        out = workdir / f"{len(benches)}.wav"
        benches.append(Benchmark.from_argv(ref.label, perfkit_argv(command, ref.label, args, out)))
        variants[ref.label] = (ref.variant.backend, ref.variant.options)
    params: list[tuple[str, int | str]] = [("command", command), ("frames", args.frames), ("seed", args.seed)]
    if command == "synth":
        params.append(("words", len(args.text.split())))
    return Selection(tuple(benches), variants, tuple(skipped), Case(args.preset, tuple(params)))


def select(args: argparse.Namespace, workdir: Path) -> Selection:
    """The :class:`Selection` for the parsed arguments; :class:`InputError` when they do not make one."""
    chosen = [c for c in ("vocode", "synth") if getattr(args, c)]
    if chosen and args.commands:
        raise InputError(f"give NAME=COMMAND arguments or --{chosen[0]}, not both")
    if not chosen and not args.commands:
        raise InputError("nothing to time: give NAME=COMMAND arguments, or --vocode/--synth BACKENDS")
    if not chosen:
        benchmarks = tuple(Benchmark.parse(c) for c in args.commands)
        check_benchmarks(benchmarks)
        return Selection(benchmarks, {}, (), CUSTOM_CASE)
    if args.shell is not None:
        raise InputError("--shell applies to NAME=COMMAND arguments; --vocode/--synth run without a shell")
    selection = shorthand(chosen[0], getattr(args, chosen[0]), args, workdir)
    if not selection.benchmarks:
        raise BackendUnavailable("no backend variant can run here: "
                                 + "; ".join(f"{s.variant}: {s.reason}" for s in selection.skipped))
    return selection


def _perfkit_version() -> str:
    try:
        return version("perfkit")
    except PackageNotFoundError:
        return ""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def run(args: argparse.Namespace) -> int:
    from .run import print_run  # here, not at the top: it pulls in scipy, and the CLI imports every command

    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    if args.runs < 2 or args.warmup < 0:
        HyperfineOptions(warmup=args.warmup, runs=args.runs)  # raises the InputError that says why
    with tempfile.TemporaryDirectory(prefix="perfkit-hyperfine-") as work:
        sel = select(args, Path(work))  # bad arguments are reported first, whether or not hyperfine is here
        exe = find_hyperfine()
        options = HyperfineOptions(warmup=args.warmup, runs=args.runs,
                                   shell="none" if sel.variants else args.shell)
        for s in sel.skipped:
            err.print(f"[yellow]skipped {s.variant}: {s.reason}[/yellow]", highlight=False)
        started = _now()
        run_id = new_run_id(KIND)
        staging = staging_dir(args.results, run_id, KIND)
        try:
            cmd = build_command(exe, sel.benchmarks, options, staging / JSON_FILE, staging / MARKDOWN_FILE)
            stderr_text = run_hyperfine(cmd, timeout_s=args.timeout)
            results = load_json(staging / JSON_FILE)
            rows = parse_markdown((staging / MARKDOWN_FILE).read_text(encoding="utf-8"), MARKDOWN_FILE)
            env = capture_environment()
            argv0 = sys.argv[0] if sys.argv else ""
            record = Run(
                run_id=run_id, suite=KIND, status=RUN_COMPLETE, started_utc=started, finished_utc=_now(),
                perfkit_version=_perfkit_version(),
                command=("perfkit", *sys.argv[1:]) if argv0.endswith("perfkit") else ("perfkit", KIND),
                protocol={"tool": "hyperfine", "tool_version": tool_version(exe), **options.to_dict(),
                          "order": "each command's runs back to back, commands in order"},
                settings={"hyperfine": {"commands": command_details(results, sel.benchmarks),
                                        "relative": {r.command: r.relative for r in rows}, "argv": cmd},
                          "artefacts": artefacts_setting(KIND, EXPORTS)},
                environment=env, warnings=tuple(preflight_warnings(env)), skipped=sel.skipped,
                cases=case_records(results, sel.benchmarks, sel.case, sel.variants),
            )
            record, path, directory = publish(record, staging, args.results, KIND)
        except BaseException:
            discard(staging)
            raise
    for line in (ln.strip() for ln in stderr_text.splitlines()):
        if line:
            err.print(f"[yellow]hyperfine: {line}[/yellow]", highlight=False)
    print_run(out, record)
    out.print(f"exports: {directory / JSON_FILE}, {directory / MARKDOWN_FILE}", highlight=False)
    out.print(f"result: {path}", highlight=False)
    return 0
