"""The work of each stage of a stored case — FLOPs from the config (:mod:`perfkit.model.flops`) —
and the achieved GFLOP/s it implies: ``flops / median seconds / 1e9``.

Counts depend only on the preset, the frame count and the compute dtype's element size, all stored
with the case, so reports regenerated from the same results show the same numbers. Cases whose model
is unknown (imported pytest-benchmark runs with no preset) have no counts (``{}``).
"""

from __future__ import annotations

from ..errors import PerfkitError
from ..store.records import CaseRecord

BYTES_PER_ELEMENT = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}


def stage_flops(case: CaseRecord, suite: str) -> dict[str, int]:
    """FLOPs per stage name (fine and coarse vocoder stages; generator per-utterance stages)."""
    try:
        frames = int(case.case.param("frames", 0))
    except (TypeError, ValueError):
        return {}
    if frames <= 0:
        return {}
    b = BYTES_PER_ELEMENT.get(dict(case.options).get("dtype", "float32"), 4)
    try:
        if suite == "stages":
            return _vocoder(case.case.preset, frames, b)
        if suite == "generator":
            return _generator(case, frames, b)
    except (PerfkitError, ImportError, ValueError, KeyError):
        return {}
    return {}


def _vocoder(preset: str, frames: int, b: int) -> dict[str, int]:
    from ..model.flops import coarse_costs, vocoder_stage_costs
    from ..model.vocoder_config import vocoder_preset
    from ..suites._models import vocoder_preset_name

    fine = vocoder_stage_costs(vocoder_preset(vocoder_preset_name(preset)), frames, bytes_per_element=b)
    out = {k: v.flops for k, v in fine.items()}
    out.update({k: v.flops for k, v in coarse_costs(fine).items()})
    out["decode"] = sum(v.flops for v in fine.values())
    return out


def _generator(case: CaseRecord, frames: int, b: int) -> dict[str, int]:
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
    talker = sum(talker_step_cost(config, prompt.prefill_length + f - 1, b).flops for f in range(1, frames))
    vocoder = total_cost(vocoder_stage_costs(vocoder_preset(vocoder_preset_for(name)), frames,
                                             bytes_per_element=b).values()).flops
    return {"talker_step": talker, "code_predictor": frames * code_predictor_cost(config, b).flops,
            "vocoder": vocoder}


def gflops(flops: int | None, median_ns: float | None) -> float | None:
    """Achieved GFLOP/s, or ``None`` when either side is unknown."""
    if not flops or not median_ns or median_ns <= 0:
        return None
    return flops / median_ns  # FLOP per ns == GFLOP per s
