"""Stored runs built from synthetic samples (no timing): for report, journal and plot tests.

``stages_run`` makes a ``stages`` run of the tiny vocoder whose stage samples are drawn from a seeded
normal distribution around fixed medians, with chosen stages slowed by a factor; ``parity_run`` makes
the matching parity run (passing or failing). Everything is deterministic for given arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from perfkit.measure.environment import Environment
from perfkit.measure.parity import ParityResult, tolerance_for
from perfkit.model.stages import parent_stage, substages, vocoder_fine_stages, vocoder_stages
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.store.parity_records import GeneratorParity, ParityRecord, StageParity
from perfkit.store.records import (
    Case,
    CaseRecord,
    Failure,
    MemoryRecord,
    Run,
    SeriesRecord,
    StageRecord,
)

TINY = vocoder_preset("tiny")
FINE = vocoder_fine_stages(TINY)
COARSE = vocoder_stages(TINY)
CASE = Case("tiny", (("frames", 25), ("seed", 0)))
#: Median per fine stage (ns): decoder blocks dominate, as in the seeds.
BASE_NS: dict[str, int] = {
    s: (400_000 if "tconv" in s else 900_000 if "resunits" in s else 50_000) for s in FINE
}


def environment(commit: str, dirty: bool = False) -> Environment:
    return Environment(
        captured_utc="2026-01-01T00:00:00+00:00",
        hostname="bench",
        platform="Linux-test",
        cpu_model="Test CPU 3000",
        cpu_count_logical=2,
        cpu_count_physical=2,
        cpu_affinity=2,
        cpu_governor="performance",
        load_avg=(0.1, 0.2, 0.3),
        memory_total_bytes=8 * 2**30,
        memory_available_bytes=6 * 2**30,
        python_version="3.11.7",
        python_implementation="CPython",
        packages={"perfkit": "0.1.0", "numpy": "2.4.6", "torch": None},
        threadpools=({"internal_api": "openblas", "version": "0.3.27", "num_threads": 2},),
        git_commit=commit,
        git_dirty=dirty,
    )


def _samples(rng: np.random.Generator, median: float, n: int, noise: float) -> tuple[int, ...]:
    return tuple(int(v) for v in np.maximum(1, rng.normal(median, median * noise, n)).round())


def stage_case(
    variant: str,
    seed: int,
    slow: Mapping[str, float] = {},
    n: int = 30,
    noise: float = 0.01,
    memory_peak: int | None = 120 * 2**20,
    scale: float = 1.0,
) -> CaseRecord:
    """One vocoder case of ``variant``: ``stages`` (fine), ``coarse`` and ``e2e`` series."""
    rng = np.random.default_rng(seed)
    med = {s: BASE_NS[s] * scale * slow.get(s, slow.get(parent_stage(s), 1.0)) for s in FINE}
    fine = tuple(StageRecord(s, _samples(rng, med[s], n, noise)) for s in FINE)
    coarse = tuple(StageRecord(c, _samples(rng, sum(med[f] for f in substages(c)), n, noise)) for c in COARSE)
    e2e = (StageRecord("decode", _samples(rng, 0.97 * sum(med.values()), n, noise)),)
    visits = tuple(range(n))
    backend, _, opts = variant.partition(":")
    options = tuple(sorted(tuple(o.split("=", 1)) for o in opts.split(",") if o))
    memory = None
    if memory_peak is not None:
        memory = MemoryRecord(
            baseline_rss_bytes=60 * 2**20,
            rss_after_load_bytes=70 * 2**20,
            peak_rss_bytes=memory_peak,
            ru_maxrss_bytes=memory_peak,
            weight_bytes=2 * 2**20,
            peak_uss_bytes=memory_peak - 10 * 2**20,
            polls=10,
            interval_s=0.002,
            passes=3,
        )
    return CaseRecord(
        variant=variant,
        backend=backend,
        options=options,
        case=CASE,
        weight_bytes=2 * 2**20,
        series=(
            SeriesRecord("e2e", False, 1, visits, e2e),
            SeriesRecord("stages", True, 1, visits, fine, covers="e2e"),
            SeriesRecord("coarse", True, 1, visits, coarse, covers="e2e"),
        ),
        memory=memory,
        source_hash="abc123",
    )


def stages_run(
    run_id: str,
    commit: str,
    cases: Sequence[CaseRecord],
    started: str = "2026-01-01T00:00:00+00:00",
    threads: int | None = None,
) -> Run:
    return Run(
        run_id=run_id,
        suite="stages",
        status="complete",
        started_utc=started,
        finished_utc=started,
        perfkit_version="0.1.0",
        command=("perfkit", "run"),
        protocol={"min_samples": 10},
        settings={"threads": threads, "memory_pass": True},
        environment=environment(commit),
        cases=tuple(cases),
    )


def _stage_parity(stage: str, snr: float, dtype: str, failure: str = "") -> StageParity:
    if failure:
        result = ParityResult(float("nan"), float("nan"), float("nan"), float("nan"), failure)
    else:
        nmse = 10 ** (-snr / 10)
        result = ParityResult(snr, 1 - nmse / 2, 1e-6 * 10 ** ((118 - snr) / 20), nmse)
    return StageParity.of(stage, result, tolerance_for(dtype))


def parity_record(
    variant: str,
    dtype: str = "float32",
    fail_stage: str | None = None,
    failure: str = "nan",
    preset: str = "tiny",
) -> ParityRecord:
    stages = []
    broken = False
    for i, s in enumerate(FINE):
        broken = broken or s == fail_stage
        stages.append(_stage_parity(s, 130.0 - i, dtype, failure if broken else ""))
    wave = _stage_parity("waveform", 118.7, dtype, failure if broken else "")
    gen = GeneratorParity(8, 1.0, None, _stage_parity("logits", 131.0, dtype))
    return ParityRecord(
        variant,
        CASE.name if preset == "tiny" else f"{preset}/frames=25/seed=0",
        preset,
        dtype,
        "numpy:dtype=float64",
        tolerance_for(dtype),
        tuple(stages),
        wave,
        gen,
    )


def parity_run(
    run_id: str, commit: str, records: Sequence[ParityRecord], started: str = "2026-01-01T00:00:00+00:00"
) -> Run:
    cases = []
    for r in records:
        backend, _, _ = r.variant.partition(":")
        failures = () if r.passed else (Failure("error", "parity", f"parity: {r.first_failure}"),)
        cases.append(
            CaseRecord(
                variant=r.variant,
                backend=backend,
                options=(),
                case=CASE,
                status="ok" if r.passed else "failed",
                failures=failures,
            )
        )
    return Run(
        run_id=run_id,
        suite="parity",
        status="complete",
        started_utc=started,
        finished_utc=started,
        settings={"parity": [r.to_dict() for r in records], "reference": "numpy:dtype=float64"},
        environment=environment(commit),
        cases=tuple(cases),
    )
