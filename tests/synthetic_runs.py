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
BASE_NS: dict[str, int] = {s: (400_000 if "tconv" in s else 900_000 if "resunits" in s else 50_000) for s in FINE}


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


def _complete_run(run_id: str, suite: str, commit: str, started: str, settings: dict, cases: list) -> Run:
    """A complete run of ``suite`` started and finished at ``started`` on the fixture environment."""
    return Run(run_id=run_id, suite=suite, status="complete", started_utc=started, finished_utc=started,
               settings=settings, environment=environment(commit), cases=tuple(cases))


def _one_series_case(variant: str, case: Case, series: SeriesRecord,
                     memory: MemoryRecord | None = None) -> CaseRecord:
    """A case of ``variant`` (no options) holding one series."""
    return CaseRecord(variant=variant, backend=variant.partition(":")[0], options=(), case=case,
                      series=(series,), memory=memory)


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
    settings = {"parity": [r.to_dict() for r in records], "reference": "numpy:dtype=float64"}
    return _complete_run(run_id, "parity", commit, started, settings, cases)


def rtf_run(
    run_id: str,
    commit: str,
    variant: str = "numpy:dtype=float32",
    seed: int = 5,
    started: str = "2026-01-02T00:00:00+00:00",
    threads: int | None = None,
) -> Run:
    """An ``rtf`` run: three texts, series ``phases`` (tokenize, prefill, generate, vocoder), a memory pass."""
    rng = np.random.default_rng(seed)
    cases = []
    for text, words in (("short", 13), ("medium", 53), ("long", 115)):
        frames = words * 5
        med = {
            "tokenize": 20_000,
            "prefill": 2_000_000,
            "generate": 4_000_000 * frames // 10,
            "vocoder": 3_000_000 * frames // 10,
        }
        stages = tuple(StageRecord(k, _samples(rng, v, 8, 0.02)) for k, v in med.items())
        case = Case("tiny", (("text", text), ("words", words), ("frames", frames), ("seed", 0)))
        memory = MemoryRecord(
            baseline_rss_bytes=60 * 2**20,
            rss_after_load_bytes=66 * 2**20,
            peak_rss_bytes=(70 + frames // 50) * 2**20,
            ru_maxrss_bytes=90 * 2**20,
            weight_bytes=2 * 2**20,
            passes=3,
        )
        cases.append(_one_series_case(variant, case, SeriesRecord("phases", True, 1, tuple(range(8)), stages),
                                      memory))
    return _complete_run(run_id, "rtf", commit, started, {"threads": threads, "memory_pass": True}, cases)


def streaming_run(
    run_id: str,
    commit: str,
    variant: str = "numpy:dtype=float32",
    seed: int = 6,
    started: str = "2026-01-02T00:00:00+00:00",
) -> Run:
    """A ``streaming`` run: chunk sizes 1, 4 and 12 over 24 frames; first chunk slower than the gaps."""
    rng = np.random.default_rng(seed)
    cases = []
    for chunk in (1, 4, 12):
        n = -(-24 // chunk)
        stages = tuple(
            StageRecord(f"chunk_{i:02d}", _samples(rng, (8_000_000 if i == 0 else 0) + 3_000_000 * chunk, 10, 0.03))
            for i in range(n)
        )
        case = Case("tiny", (("chunk_frames", chunk), ("frames", 24), ("seed", 0), ("text", "short")))
        cases.append(_one_series_case(variant, case, SeriesRecord("stream", True, 1, tuple(range(10)), stages)))
    return _complete_run(run_id, "streaming", commit, started, {"threads": None}, cases)


def profile_run(
    run_id: str, commit: str, variant: str = "numpy:dtype=float32", started: str = "2026-01-02T00:00:00+00:00"
) -> Run:
    """A ``profile`` run as ``perfkit profile`` stores it: no series, the sampling settings in
    ``protocol``, what was recorded in ``settings["profile"]``, its files in ``settings["artefacts"]``."""
    case = CaseRecord(variant=variant, backend=variant.partition(":")[0], options=(), case=CASE,
                      load_ns=1_000_000, first_call_ns=2_000_000)
    top = [{"function": "causal_conv", "file": "layers.py", "line": None, "self_fraction": 0.8,
            "total_fraction": 0.8},
           {"function": "snake_beta", "file": "layers.py", "line": None, "self_fraction": 0.1,
            "total_fraction": 0.1}]
    return Run(
        run_id=run_id,
        suite="profile",
        status="complete",
        started_utc=started,
        finished_utc=started,
        command=("perfkit", "profile", variant),
        protocol={"tool": "py-spy", "rate_hz": 100, "duration_s": 5, "native": True},
        settings={
            "profile": {"suite": "stages", "series": "e2e", "passes_recorded": 10,
                        "recordings": {"flamegraph": {"file": "flamegraph.svg", "samples": 499, "errors": 0}},
                        "top_self": top},
            "artefacts": {"kind": "profile", "files": {"flamegraph": "flamegraph.svg",
                                                       "speedscope": "profile.speedscope.json"}},
        },
        environment=environment(commit),
        cases=(case,),
    )


NUMPY = "numpy:dtype=float32"
TORCH = "torch:device=cpu,dtype=float32"
BASE_DAY = "2026-01-01T00:00:00+00:00"
HEAD_DAY = "2026-01-02T00:00:00+00:00"


def fixture_sets() -> dict[str, list[Run]]:
    """The stored results the report tests render (written to ``tests/fixtures/report/<name>/``).

    - ``base``: numpy and torch, both passing parity;
    - ``head``: numpy's ``upsample_1`` 1.5x slower, torch unchanged but failing parity (NaN from
      ``block_2.tconv``), plus RTF and streaming runs;
    - ``same``: the base distributions again, fresh samples (no change anywhere).
    """
    return {
        "base": [
            stages_run(
                "20260101T000000Z-stages-base",
                "aaaa1111",
                [stage_case(NUMPY, 1), stage_case(TORCH, 2, scale=0.8)],
                BASE_DAY,
            ),
            parity_run(
                "20260101T000000Z-parity-base", "aaaa1111", [parity_record(NUMPY), parity_record(TORCH)], BASE_DAY
            ),
        ],
        "head": [
            stages_run(
                "20260102T000000Z-stages-head",
                "bbbb2222",
                [
                    stage_case(NUMPY, 3, slow={"upsample_1": 1.5}, memory_peak=130 * 2**20),
                    stage_case(TORCH, 4, scale=0.8),
                ],
                HEAD_DAY,
            ),
            parity_run(
                "20260102T000000Z-parity-head",
                "bbbb2222",
                [parity_record(NUMPY), parity_record(TORCH, fail_stage="block_2.tconv")],
                HEAD_DAY,
            ),
            rtf_run("20260102T000000Z-rtf-head", "bbbb2222", started=HEAD_DAY),
            streaming_run("20260102T000000Z-streaming-head", "bbbb2222", started=HEAD_DAY),
        ],
        "same": [
            stages_run(
                "20260103T000000Z-stages-same",
                "cccc3333",
                [stage_case(NUMPY, 7), stage_case(TORCH, 8, scale=0.8)],
                "2026-01-03T00:00:00+00:00",
            ),
            parity_run(
                "20260103T000000Z-parity-same",
                "cccc3333",
                [parity_record(NUMPY), parity_record(TORCH)],
                "2026-01-03T00:00:00+00:00",
            ),
        ],
    }


if __name__ == "__main__":  # python tests/synthetic_runs.py: rewrite tests/fixtures/report/
    import shutil
    from pathlib import Path

    from perfkit.store.files import dumps_run

    root = Path(__file__).parent / "fixtures" / "report"
    for name, runs in fixture_sets().items():
        shutil.rmtree(root / name, ignore_errors=True)
        (root / name).mkdir(parents=True)
        for run in runs:
            (root / name / f"{run.run_id}.json").write_text(dumps_run(run))
    print(f"wrote {root}")
