"""``perfkit profile``: a py-spy flame graph and speedscope profile of one case's measured region.

See :mod:`perfkit.tools.profiling` for how load, first call and warm-up are kept out of the recording,
and :mod:`perfkit.tools.artefacts` for where the files go.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from ..errors import InputError
from ..run.plan import resolve_variant
from ..run.suite import CaseRequest, get_suite
from ..store.files import DEFAULT_RESULTS_DIR
from ..tools.profiling import ProfileRequest, profile_case
from ..tools.pyspy import FORMATS, RecordOptions, find_pyspy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="record a py-spy flame graph of one case's measured region",
        description="Load one suite case on BACKEND in a process of its own, make the first call and warm "
                    "up, then attach py-spy (by pid) while the process loops the measured region: a flame "
                    "graph SVG and a speedscope JSON, each recorded for --duration seconds. Stored as a run "
                    "of its own (suite 'profile', no timings) with the files in <results>/<run-id>.profile/. "
                    "Needs py-spy (pip install py-spy) and permission to ptrace.",
    )
    p.add_argument("backend", metavar="BACKEND",
                   help="backend variant, e.g. numpy, numba, torch:dtype=bfloat16")
    p.add_argument("--suite", default="stages", help="suite whose case is profiled (default: stages)")
    p.add_argument("--preset", default="tiny", help="model preset (default: tiny)")
    p.add_argument("--frames", type=int, metavar="N", help="frames of the case (default: the suite's)")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic weights and inputs (default 0)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="suite parameter, repeatable")
    p.add_argument("--series", help="which series of the workload to loop (default: its first, e.g. e2e)")
    p.add_argument("--native", action="store_true",
                   help="include native frames (C/C++/Cython: numba kernels, torch operators, BLAS)")
    p.add_argument("--rate", type=int, default=100, metavar="HZ", help="samples per second (default 100)")
    p.add_argument("--duration", type=int, default=5, metavar="S",
                   help="whole seconds per recording; two recordings (SVG, speedscope) are made (default 5)")
    p.add_argument("--subprocesses", action="store_true", help="also sample child processes of the target")
    p.add_argument("--idle", action="store_true", help="include idle threads")
    p.add_argument("--nonblocking", action="store_true",
                   help="sample without pausing the target (less overhead, less exact; not with --native)")
    p.add_argument("--warmup", type=int, default=2, metavar="N",
                   help="warm-up passes after the first call, before recording (default 2)")
    p.add_argument("--threads", type=int, metavar="N", help="threads for every library in the target")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="seconds allowed for load, first call and warm-up (default 600)")
    p.add_argument("--results", default=DEFAULT_RESULTS_DIR, metavar="DIR", help="results directory")
    p.set_defaults(func=run)


def build_request(args: argparse.Namespace) -> ProfileRequest:
    """The :class:`ProfileRequest` for the parsed arguments (:class:`InputError` for bad ones)."""
    params: dict[str, str] = {}
    for item in args.param:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InputError(f"--param {item!r} is not KEY=VALUE")
        params[key] = value
    if args.warmup < 0:
        raise InputError(f"--warmup must be at least 0, got {args.warmup}")
    options = RecordOptions(rate_hz=args.rate, duration_s=args.duration, native=args.native,
                            subprocesses=args.subprocesses, idle=args.idle, nonblocking=args.nonblocking)
    suite = get_suite(args.suite)
    frames = (args.frames,) if args.frames is not None else ()
    cases = suite.cases(CaseRequest(args.preset, frames, args.seed, params))
    if len(cases) != 1:
        raise InputError(f"a profile records one case; suite {args.suite!r} gives {len(cases)} for these "
                         "options: " + ", ".join(c.name for c in cases))
    return ProfileRequest(backend=resolve_variant(args.backend), suite=args.suite, case=cases[0],
                          options=options, series=args.series, warmup=args.warmup, threads=args.threads,
                          setup_timeout_s=args.timeout)


def run(args: argparse.Namespace) -> int:
    request = build_request(args)  # bad arguments are reported first, whether or not py-spy is here
    exe = find_pyspy()  # a missing py-spy is reported before anything is loaded
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"profiling {request.backend.label} on {request.suite}/{request.case.name}: loading and "
              f"warming up, then {len(FORMATS)} × {request.options.duration_s} s of py-spy at "
              f"{request.options.rate_hz} Hz", highlight=False)
    argv0 = sys.argv[0] if sys.argv else ""
    command = ("perfkit", *sys.argv[1:]) if argv0.endswith("perfkit") else ("perfkit", "profile")
    outcome = profile_case(request, args.results, command=command, pyspy=exe)
    info = outcome.run.settings["profile"]
    table = Table(title=f"hottest functions (self time) — {request.backend.label}, series {info['series']}",
                  title_justify="left")
    for col in ("function", "self", "total"):
        table.add_column(col, justify="left" if col == "function" else "right")
    for f in outcome.top[:10]:
        table.add_row(f.label, f"{f.self_fraction:.1%}", f"{f.total_fraction:.1%}")
    out.print(table)
    for w in outcome.run.warnings:
        err.print(f"[yellow]warning: {w}[/yellow]", highlight=False)
    for r in outcome.recordings:
        samples = "" if r.samples is None else f" ({r.samples} samples, {r.errors} errors)"
        out.print(f"{r.fmt}: {r.path}{samples}", highlight=False)
    out.print(f"passes of the measured region while recorded: {info['passes_recorded']}", highlight=False)
    out.print(f"result: {outcome.path}", highlight=False)
    return 0
