"""``stages``: vocoder timing per stage and end to end, on synthetic weights.

Case: ``preset`` (a vocoder preset), ``frames`` (codes length; default 25 = 2 s of audio at 12.5 frames/s),
``seed`` (weights and codes). Three series per case, every pass from a fresh streaming state:

- ``e2e``: ``runner.decode`` — every fine stage back to back, one synchronisation at the end;
- ``stages``: every *fine* stage (``rvq_decode`` … ``block_i.tconv``, ``block_i.resunits`` … ``final``)
  with a device sync after each;
- ``coarse``: every coarse stage (decoder blocks whole) with a sync after each.

The per-stage series ``cover`` ``e2e``: the overhead of per-stage timing is ``sum(stage medians) /
median(e2e) - 1``. Load time is ``backend.load_vocoder`` plus uploading the codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfkit.errors import InputError
from perfkit.interface import Backend, VocoderRunner
from perfkit.measure.timers import Timer
from perfkit.model.codes import synthetic_codes
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.run.suite import CaseRequest, Series, Suite, Workload
from perfkit.store.records import Case

DEFAULT_FRAMES = 25


class VocoderStagesWorkload(Workload):
    """A vocoder runner with its uploaded codes; passes of ``e2e``, ``stages`` or ``coarse``."""

    def __init__(self, runner: VocoderRunner, codes: Any, weight_bytes: int | None) -> None:
        self.runner = runner
        self.codes = codes
        self.weight_bytes = weight_bytes
        self.series = (
            Series("e2e", ("decode",), synced=False),
            Series("stages", runner.stages, synced=True, covers="e2e"),
            Series("coarse", runner.coarse_stages, synced=True, covers="e2e"),
        )

    def run(self, series: str, timer: Timer) -> None:
        runner = self.runner
        state = runner.new_state()
        x = self.codes
        if series == "e2e":
            timer.start()
            runner.decode(x, state)
            timer.end("decode")
        elif series == "stages":
            timer.start()
            for stage in runner.stages:
                x = runner.run_stage(stage, x, state)
                timer.lap(stage)
        elif series == "coarse":
            timer.start()
            for stage in runner.coarse_stages:
                x = runner.run_coarse(stage, x, state)
                timer.lap(stage)
        else:
            raise ValueError(f"unknown series {series!r}")


class StagesSuite(Suite):
    name = "stages"
    description = "vocoder per-stage (fine and coarse) and end-to-end timing on synthetic weights"

    def cases(self, request: CaseRequest) -> list[Case]:
        vocoder_preset(request.preset)  # ConfigError listing the presets if unknown
        frames = request.frames or (DEFAULT_FRAMES,)
        if any(f <= 0 for f in frames):
            raise InputError(f"frames must be positive, got {', '.join(map(str, frames))}")
        unknown = sorted(set(request.params))
        if unknown:
            raise InputError(f"suite 'stages' takes no parameter(s) {', '.join(unknown)}")
        return [Case(request.preset, (("frames", int(f)), ("seed", int(request.seed))))
                for f in dict.fromkeys(frames)]

    def prepare(self, case: Case) -> tuple[VocoderModel, np.ndarray]:
        config = vocoder_preset(case.preset)
        seed = int(case.param("seed", 0))
        model = VocoderModel.synthetic(config, seed)
        return model, synthetic_codes(config, int(case.param("frames", DEFAULT_FRAMES)), seed)

    def load(self, backend: Backend, prepared: tuple[VocoderModel, np.ndarray]) -> VocoderStagesWorkload:
        model, codes = prepared
        runner = backend.load_vocoder(model)
        weights = model.weight_bytes_in(backend.dtype_name)  # as the backend holds them
        return VocoderStagesWorkload(runner, runner.upload_codes(codes), weights)


SUITE = StagesSuite()
