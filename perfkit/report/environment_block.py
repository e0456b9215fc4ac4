"""The environment block of a report: the machine and software a run was measured on, from the run's
stored :class:`~perfkit.measure.environment.Environment` (never from the machine rendering the report)."""

from __future__ import annotations

from collections.abc import Sequence

from ..measure.speed_check import recorded_checks, speed_ratios
from ..store.records import Run
from . import units
from .escape import md
from .labels import commit_label
from .markdown import bullets

PACKAGES = ("perfkit", "numpy", "scipy", "numba", "torch", "pandas")


def _pool(t: dict) -> str:
    version = f" {t['version']}" if t.get("version") else ""
    return f"{t.get('internal_api', '?')}{version} ({t.get('num_threads', '?')} threads)"


def environment_lines(run: Run) -> list[str]:
    """What stays the same between runs on one machine and commit (CPU, software, threads, commit)."""
    env = run.environment
    lines = []
    if env.cpu_model:
        cores = "/".join(
            str(x) if x is not None else "?" for x in (env.cpu_count_physical, env.cpu_count_logical)
        )
        affinity = f", {env.cpu_affinity} usable" if env.cpu_affinity else ""
        lines.append(f"CPU: {md(env.cpu_model)} ({cores} physical/logical cores{affinity})")
    extras = []
    if env.cpu_features is not None:
        extras.append("ISA " + (", ".join(md(f) for f in env.cpu_features) or "none of avx2, avx512, amx"))
    if env.cpu_governor:
        extras.append(f"governor {md(env.cpu_governor)}")
    if env.memory_total_bytes:
        extras.append(f"memory {units.mib(env.memory_total_bytes / 1024, 1)} GiB")
    if extras:
        lines.append("Machine: " + ", ".join(extras))
    for gpu in env.gpus:
        lines.append(f"GPU: {md(gpu.get('name', '?'))} (driver {md(gpu.get('driver') or '-')})")
    if env.python_version:
        lines.append(
            f"Python {md(env.python_version)} ({md(env.python_implementation or '')})"
            + (f" on {md(env.platform)}" if env.platform else "")
        )
    pk = [f"{p} {md(env.packages[p])}" for p in PACKAGES if env.packages.get(p)]
    if pk:
        lines.append("Packages: " + ", ".join(pk))
    pools = sorted({_pool(t) for t in env.threadpools})
    if pools:
        lines.append("BLAS/OpenMP: " + ", ".join(md(p) for p in pools))
    threads = run.settings.get("threads")
    lines.append(f"Threads per worker: {threads if threads is not None else 'library defaults'}")
    lines.append(f"Commit: {md(commit_label(env.git_commit, env.git_dirty))}")
    return lines


def run_conditions(run: Run) -> str:
    """What changes from run to run: the load average when it started, the speed check against the cached
    peaks (:mod:`perfkit.measure.speed_check`) and the pre-flight warnings."""
    parts = []
    if run.environment.load_avg:
        parts.append("load average " + " ".join(f"{x:.2f}" for x in run.environment.load_avg))
    speed = speed_ratios(recorded_checks(run.settings))
    if speed:
        parts.append(md(speed))
    if run.warnings:
        parts.append("warnings: " + "; ".join(md(w) for w in run.warnings))
    return f"{md(run.run_id)} ({md(run.suite)}, {md(run.started_utc)}): " + (
        ", ".join(parts) or "no warnings"
    )


def environment_block(runs: Sequence[Run], heading_level: int = 3) -> str:
    """The machine and software once per distinct environment, then each run's load and warnings."""
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(environment_lines(run)), []).append(run)
    parts = []
    for lines, members in groups.items():
        parts.append(bullets([*lines, "Runs:" + "".join(f"\n  - {run_conditions(r)}" for r in members)]))
    return "\n\n".join(parts)
