"""The work of each stage of a stored case — FLOPs and bytes from the config (:mod:`perfkit.model.flops`) —
the achieved GFLOP/s it implies (``flops / median seconds / 1e9``), and, when the run recorded this
machine's measured peaks (``settings["machine_peaks"]``, see :func:`perfkit.measure.peak.recorded_peaks`),
the percentage of the peak (:func:`perfkit.measure.peak.roofline`: of the GEMM peak for a compute-bound
stage, of the memory bandwidth for a memory-bound one).

Counts depend only on the preset, the frame count and the compute dtype's element size, all stored
with the case, so reports regenerated from the same results show the same numbers. Cases whose model
is unknown (imported pytest-benchmark runs with no preset) have no counts (``{}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import PerfkitError
from ..measure.peak import MachinePeaks, Roofline, peak_library, roofline
from ..model.dtypes import element_bytes
from ..model.flops import StageCost
from ..store.records import CaseRecord


def stage_flops(case: CaseRecord, suite: str) -> dict[str, int]:
    """FLOPs per stage name (fine and coarse vocoder stages; generator per-utterance stages)."""
    return {k: v.flops for k, v in stage_costs(case, suite).items()}


def stage_costs(case: CaseRecord, suite: str) -> dict[str, StageCost]:
    """FLOPs and bytes per stage name; ``decode`` (vocoder) is the whole chain; ``{}`` when unknown."""
    try:
        frames = int(case.case.param("frames", 0))
    except (TypeError, ValueError):
        return {}
    if frames <= 0:
        return {}
    b = element_bytes(dict(case.options).get("dtype", "float32")) or 4
    try:
        if suite == "stages":
            return _vocoder(case.case.preset, frames, b)
        if suite == "generator":
            return _generator(case, frames, b)
    except (PerfkitError, ImportError, ValueError, KeyError):
        return {}
    return {}


def _vocoder(preset: str, frames: int, b: int) -> dict[str, StageCost]:
    from ..model.flops import coarse_costs, total_cost, vocoder_stage_costs
    from ..model.vocoder_config import vocoder_preset
    from ..suites._models import vocoder_preset_name

    fine = vocoder_stage_costs(vocoder_preset(vocoder_preset_name(preset)), frames, bytes_per_element=b)
    return {**fine, **coarse_costs(fine), "decode": total_cost(fine.values())}


def _generator(case: CaseRecord, frames: int, b: int) -> dict[str, StageCost]:
    from ..model.flops import code_predictor_cost, talker_step_cost, total_cost, vocoder_stage_costs
    from ..model.generator_config import generator_preset
    from ..model.prompt import encode_prompt
    from ..model.text import load_tokenizer
    from ..model.tts_model import vocoder_preset_for
    from ..model.vocoder_config import vocoder_preset
    from ..suites._models import TEXTS, generator_preset_name

    name = generator_preset_name(case.case.preset)
    config = generator_preset(name)
    prompt = encode_prompt(config, load_tokenizer(config), TEXTS[str(case.case.param("text", "short"))])
    talker = total_cost(talker_step_cost(config, prompt.prefill_length + f - 1, b) for f in range(1, frames))
    vocoder = total_cost(vocoder_stage_costs(vocoder_preset(vocoder_preset_for(name)), frames,
                                             bytes_per_element=b).values())
    return {"talker_step": talker, "code_predictor": total_cost([code_predictor_cost(config, b)] * frames),
            "vocoder": vocoder}


def stage_rooflines(case: CaseRecord, costs: Mapping[str, StageCost], medians_ns: Mapping[str, float],
                    peaks: Mapping[str, Any] | None) -> dict[str, Roofline]:
    """The :class:`~perfkit.measure.peak.Roofline` of each of ``costs`` (:func:`stage_costs`) at its median,
    against the GEMM peak of the library the backend competes with in its compute dtype and the measured
    bandwidth. ``{}`` when the run recorded no peaks or none fits the case's dtype/library."""
    if not peaks:
        return {}
    try:
        machine = MachinePeaks.from_dict(peaks)
    except (KeyError, TypeError, ValueError):
        return {}
    dtype = dict(case.options).get("dtype", "float32")
    library = peak_library(case.backend, case.device)
    if not machine.has_gemm(library, dtype):
        return {}
    out: dict[str, Roofline] = {}
    for stage, cost in costs.items():
        median = medians_ns.get(stage)
        if not cost.flops or not median or median <= 0:
            continue
        try:
            out[stage] = roofline(cost, median / 1e9, machine, dtype, library)
        except (PerfkitError, ValueError):
            return {}
    return out


def percent_cell(r: Roofline) -> str:
    """``"41% C"``: the share of the peak, ``C`` compute-bound (of the GEMM peak), ``M`` memory-bound (of
    the bandwidth)."""
    return f"{r.percent_of_peak:.0f}% {'C' if r.bound == 'compute' else 'M'}"


def percent_of_peak(case: CaseRecord, costs: Mapping[str, StageCost], medians_ns: Mapping[str, float],
                    peaks: Mapping[str, Any] | None) -> dict[str, str]:
    """``{stage: "41% C"}`` (:func:`percent_cell`) for each of :func:`stage_rooflines`."""
    return {stage: percent_cell(r) for stage, r in stage_rooflines(case, costs, medians_ns, peaks).items()}


def gflops(flops: int | None, median_ns: float | None) -> float | None:
    """Achieved GFLOP/s, or ``None`` when either side is unknown."""
    if not flops or not median_ns or median_ns <= 0:
        return None
    return flops / median_ns  # FLOP per ns == GFLOP per s
