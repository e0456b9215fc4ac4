"""``perfkit machine``: this machine's measured limits (peak GEMM throughput, memory bandwidth), cached."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import InputError
from ..measure.environment import HIGH_LOAD_PER_CPU
from ..measure.peak import GEMM, MachinePeaks, cache_path, machine_peaks
from ..measure.speed_check import check_speed, speed_ratios, speed_warning


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "machine", help="measure (once, then cached) the peak GEMM throughput and memory bandwidth",
        description="Peak GEMM throughput per library and dtype (NumPy/BLAS float32 and float64; torch "
                    "float32 on both MKL and oneDNN, the faster one its peak, and bfloat16; CUDA when "
                    "available) and memory bandwidth (copy, triad), each "
                    "the best of several repetitions, cached per machine fingerprint (CPU, cores, threads, "
                    "library versions) under $PERFKIT_CACHE_DIR or ~/.cache/perfkit. Roofline columns of the "
                    "reports compare against these numbers. Cached peaks are shown with a speed check: "
                    "NumPy's float32 GEMM and copy measured again, briefly, as every run does before it "
                    "records the peaks; a machine that has become slower or faster (a shared host) is "
                    "warned about, and --refresh measures everything again.",
    )
    p.add_argument("--refresh", action="store_true", help="measure again even when cached")
    p.add_argument("--threads", type=int, help="compute threads (default: every usable CPU)")
    p.add_argument("--json", action="store_true", help="print the cached entry as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads <= 0:
        raise InputError(f"--threads must be positive, got {args.threads}")
    progress = None if args.json else (lambda what: print(f"measuring {what} …", file=sys.stderr, flush=True))
    peaks = machine_peaks(refresh=args.refresh, threads=args.threads, progress=progress)
    if args.json:
        print(json.dumps(peaks.to_dict(), indent=1, sort_keys=True))
    else:
        print_peaks(peaks)
        if peaks.from_cache:
            print_speed_check(peaks)
    return 0


def print_speed_check(peaks: MachinePeaks) -> None:
    """Cached peaks: measure NumPy's GEMM and copy again (2 to 3 s) and say whether they still hold."""
    print("checking the speed against the cached peaks …", file=sys.stderr, flush=True)
    checks = check_speed(peaks)
    print(speed_ratios(checks))
    warning = speed_warning(checks)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def print_peaks(peaks: MachinePeaks) -> None:
    """A rich table: one row per measurement; GEMM rows with their ridge point against the bandwidth.

    A library measured on several GEMM engines (torch's CPU float32: MKL and oneDNN) has a row per engine;
    its peak, the one reports use, is the fastest engine's."""
    from rich.console import Console
    from rich.table import Table

    fp = peaks.fingerprint
    source = "cached" if peaks.from_cache else "measured now"
    load = f", load average before measuring {' '.join(f'{x:.2f}' for x in peaks.load_avg)}" if peaks.load_avg else ""
    table = Table(title=f"{fp.cpu_model} · {fp.threads} thread(s) of {fp.cpu_count_usable} usable CPUs",
                  caption=f"fingerprint {fp.key} · {source} {peaks.measured_utc}{load} · {cache_path()}\n"
                          + " · ".join(f"{k} {v}" for k, v in fp.libraries))
    for name, justify in (("kernel", "left"), ("library", "left"), ("dtype", "left"), ("threads", "right"),
                          ("size", "right"), ("best", "right"), ("median", "right"), ("spread", "right"),
                          ("unit", "left"), ("ridge FLOP/B", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for m in peaks.measurements:
        if m.kind == GEMM:
            size = f"{m.size}x{m.size}"
            try:
                ridge = f"{m.best / peaks.bandwidth_gbs(m.device):.1f}"
            except InputError:
                ridge = "-"
        else:
            size, ridge = f"{m.size / 2**20:.0f} MiB", ""
        dtype = m.dtype if m.kind == GEMM else ""
        library = f"{m.library} ({m.engine})" if m.engine else m.library
        table.add_row(m.kind, library, dtype, str(m.threads), size, f"{m.best:.1f}", f"{m.median:.1f}",
                      f"{100 * m.spread:.0f}%", m.unit, ridge)
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    warning = load_warning(peaks)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def load_warning(peaks: MachinePeaks) -> str:
    """Why the peaks may be low: the 1-minute load average just before measuring exceeded half a core per
    usable CPU. Peaks measured under load make every later "% of peak" too high; ``--refresh`` on a quiet machine."""
    if not peaks.load_avg or peaks.load_avg[0] <= HIGH_LOAD_PER_CPU * peaks.fingerprint.cpu_count_usable:
        return ""
    return (f"measured under load (1-minute load average {peaks.load_avg[0]:.2f} on "
            f"{peaks.fingerprint.cpu_count_usable} usable CPUs): the peaks are likely too low, and every "
            "'% peak' computed from them too high; run `perfkit machine --refresh` on a quiet machine")
