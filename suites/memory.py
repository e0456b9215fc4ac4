"""``memory``: peak memory per backend and configuration, with the baseline and the weights.

Memory is measured by the engine in a pass of its own, in a fresh worker (see
:mod:`perfkit.measure.memory`): RSS before the model loads (*baseline*: interpreter, libraries,
backend), after it loads, and the peak over the load and a few passes of the workload, plus the
weight bytes and, on CUDA, torch's peak allocated and reserved bytes. Reports derive, as the GGML
report's memory tables do, *model memory* (weights) and *working memory* (peak − baseline − weights:
activations, scratch, caches).

Configurations (``--param configs=vocoder,stream,tts``, each at every ``--frames`` — or
``--param frames=50,1500`` — default 25 and 100):

- ``vocoder``: one offline decode of ``frames`` frames of synthetic codes;
- ``stream``: the same codes decoded in chunks of 12 frames with carried state (its peak should not
  grow with the length);
- ``tts``: the whole pipeline — tokenize, ``frames`` generated frames, vocoder decode.

Timing here only drives the memory pass (a couple of samples); use ``stages`` / ``rtf`` for speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfkit.errors import InputError
from perfkit.interface import Backend, VocoderRunner, VocoderStream
from perfkit.measure.protocol import Protocol
from perfkit.measure.timers import Timer
from perfkit.model.codes import synthetic_codes
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.run.suite import CaseRequest, Series, Suite, Workload
from perfkit.store.records import Case

from ._models import generator_preset_name, vocoder_preset_name
from ._tts import TTSPasses, prepare_tts

CONFIGS: tuple[str, ...] = ("vocoder", "stream", "tts")
DEFAULT_FRAMES: tuple[int, ...] = (25, 100)
STREAM_CHUNK_FRAMES = 12
_PARAMS = ("configs", "frames")

#: Timing only drives the memory pass: the fewest samples the engine accepts.
PROTOCOL = Protocol(warmup_rounds=0, min_samples=1, max_samples=1, budget_s=0.1, round_samples=1, visit_warmup=0,
                    memory_passes=2)


class VocoderMemoryWorkload(Workload):
    """``decode``: offline; ``stream``: chunks of :data:`STREAM_CHUNK_FRAMES` frames with carried state."""

    def __init__(self, backend: Backend, runner: VocoderRunner, codes: np.ndarray, streamed: bool,
                 weight_bytes: int | None) -> None:
        self.backend = backend
        self.runner = runner
        self.codes = codes
        self.streamed = streamed
        self.uploaded = runner.upload_codes(codes)
        self.weight_bytes = weight_bytes
        self.series = (Series("stream" if streamed else "decode", ("decode",), synced=False),)

    def run(self, series: str, timer: Timer) -> None:
        timer.start()
        if self.streamed:
            stream = VocoderStream(self.backend, self.runner)
            for a in range(0, self.codes.shape[1], STREAM_CHUNK_FRAMES):
                stream.push(self.codes[:, a:a + STREAM_CHUNK_FRAMES])
        else:
            self.runner.decode(self.uploaded, self.runner.new_state())
        timer.end("decode")


class TTSMemoryWorkload(Workload):
    def __init__(self, passes: TTSPasses) -> None:
        self.passes = passes
        self.weight_bytes = passes.weight_bytes
        self.series = (Series("synthesize", ("synthesize",), synced=False),)

    def run(self, series: str, timer: Timer) -> None:
        self.passes.synthesize(timer)


class MemorySuite(Suite):
    name = "memory"
    description = "peak RSS (and CUDA peak) per configuration, with baseline and weight bytes"
    protocol = PROTOCOL
    memory = True

    def cases(self, request: CaseRequest) -> list[Case]:
        unknown = sorted(set(request.params) - set(_PARAMS))
        if unknown:
            raise InputError(f"suite 'memory' takes no parameter(s) {', '.join(unknown)} "
                             f"(parameters: {', '.join(_PARAMS)})")
        raw = request.params.get("configs")
        configs = [c.strip() for c in raw.split(",") if c.strip()] if raw else list(CONFIGS)
        bad = [c for c in configs if c not in CONFIGS]
        if bad:
            raise InputError(f"unknown memory configuration(s) {', '.join(bad)}; "
                             f"choose among {', '.join(CONFIGS)}")
        vocoder_preset_name(request.preset)
        if "tts" in configs:
            generator_preset_name(request.preset)
        frames = request.frames or DEFAULT_FRAMES
        if request.params.get("frames"):
            try:
                frames = tuple(int(f) for f in request.params["frames"].split(",") if f.strip())
            except ValueError:
                raise InputError(f"frames must be integers separated by commas, got {request.params['frames']!r}") \
                    from None
        if any(f <= 0 for f in frames):
            raise InputError(f"frames must be positive, got {', '.join(map(str, frames))}")
        return [Case(request.preset, (("config", c), ("frames", int(f)), ("seed", int(request.seed))))
                for c in dict.fromkeys(configs) for f in dict.fromkeys(frames)]

    def prepare(self, case: Case) -> Any:
        if case.param("config") == "tts":
            return prepare_tts(case)
        seed = int(case.param("seed", 0))
        model = VocoderModel.synthetic(vocoder_preset(vocoder_preset_name(case.preset)), seed)
        return case, model, synthetic_codes(model.config, int(case.param("frames")), seed)

    def load(self, backend: Backend, prepared: Any) -> Workload:
        if not isinstance(prepared, tuple):
            return TTSMemoryWorkload(TTSPasses(backend, prepared))
        case, model, codes = prepared
        runner = backend.load_vocoder(model)
        streamed = case.param("config") == "stream"
        weights = model.weight_bytes_in(backend.dtype_name)  # as the backend holds them
        return VocoderMemoryWorkload(backend, runner, codes, streamed, weights)


SUITE = MemorySuite()
