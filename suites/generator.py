"""``generator``: the TTS pipeline per stage — tokenize, prefill, talker step, sampling, code predictor,
vocoder decode — and end to end, on synthetic weights.

The generator half of per-stage timing (the vocoder half is the ``stages`` suite; reports put them
side by side). Case: ``preset`` (a generator preset, or ``qwen3-tts-12hz`` for the 0.6B talker),
``frames`` (fixed frame count, default 16; EOS ignored so the workload does not depend on the weights),
``seed``, ``text`` (``short`` | ``medium`` | ``long``, default ``short``). Series:

- ``e2e``: :meth:`perfkit.synthesis.Synthesizer.synthesize` — one span, synchronised at phase
  boundaries only;
- ``stages``: every stage with a device sync after each; the per-frame stages (``talker_step``,
  ``sampling``, ``code_predictor``) accumulate over the frames of the pass, so per-frame times are
  the span divided by ``frames`` (``talker_step`` runs ``frames - 1`` times: frame 0 comes from prefill).

Load time: converting the generator and the vocoder to the backend.
"""

from __future__ import annotations

from perfkit.errors import InputError
from perfkit.interface import Backend
from perfkit.measure.timers import Timer
from perfkit.run.suite import CaseRequest, Series, Suite, Workload
from perfkit.store.records import Case

from ._models import TEXTS, generator_preset_name
from ._tts import GENERATOR_SPANS, TTSInputs, TTSPasses, prepare_tts

DEFAULT_FRAMES = 16
_PARAMS = ("text",)


class GeneratorWorkload(Workload):
    def __init__(self, passes: TTSPasses) -> None:
        self.passes = passes
        self.weight_bytes = passes.weight_bytes
        self.series = (
            Series("e2e", ("synthesize",), synced=False),
            Series("stages", GENERATOR_SPANS, synced=True, covers="e2e"),
        )

    def run(self, series: str, timer: Timer) -> None:
        if series == "e2e":
            self.passes.synthesize(timer)
        elif series == "stages":
            self.passes.stages(timer)
        else:
            raise ValueError(f"unknown series {series!r}")


class GeneratorSuite(Suite):
    name = "generator"
    description = ("TTS per stage (tokenize, prefill, talker step, sampling, code predictor, vocoder) "
                   "and end to end")

    def cases(self, request: CaseRequest) -> list[Case]:
        generator_preset_name(request.preset)
        unknown = sorted(set(request.params) - set(_PARAMS))
        if unknown:
            raise InputError(f"suite 'generator' takes no parameter(s) {', '.join(unknown)} "
                             f"(parameters: {', '.join(_PARAMS)})")
        text = request.params.get("text", "short")
        if text not in TEXTS:
            raise InputError(f"unknown text {text!r}; choose one of {', '.join(TEXTS)}")
        frames = request.frames or (DEFAULT_FRAMES,)
        if any(f <= 0 for f in frames):
            raise InputError(f"frames must be positive, got {', '.join(map(str, frames))}")
        return [Case(request.preset, (("frames", int(f)), ("seed", int(request.seed)), ("text", text)))
                for f in dict.fromkeys(frames)]

    def prepare(self, case: Case) -> TTSInputs:
        return prepare_tts(case)

    def load(self, backend: Backend, prepared: TTSInputs) -> GeneratorWorkload:
        return GeneratorWorkload(TTSPasses(backend, prepared))


SUITE = GeneratorSuite()
