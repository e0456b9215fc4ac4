"""``streaming``: first-chunk latency and the gaps between chunks, for chunks of 1, 2, 4, 8 and 12 frames.

Each pass streams one utterance of ``frames`` frames (default 24, EOS ignored) through
:meth:`perfkit.synthesis.Synthesizer.stream`: the generator makes frames and, every ``chunk_frames``
frames, the vocoder decodes them incrementally (its stages carry their state, so a chunk's cost does
not grow with its position). Spans ``chunk_00``, ``chunk_01`` …: the time from the previous chunk
(from the text, for ``chunk_00``) to this chunk's audio on the host. So:

- **first-chunk latency** = ``chunk_00`` (tokenize + prefill + the first chunk's frames + its decode);
- **gaps** = ``chunk_01`` … pooled over every pass; reports give their median and p99, and compare a
  gap with the audio a chunk holds (``chunk_frames / 12.5`` s): a stream keeps up with playback while
  its gaps stay below that.

Case: ``preset`` (generator preset), ``chunk_frames`` (``--param chunks=1,2,4,8,12``), ``frames``, ``seed``.
"""

from __future__ import annotations

from perfkit.errors import InputError
from perfkit.interface import Backend
from perfkit.measure.protocol import Protocol
from perfkit.measure.timers import Timer
from perfkit.run.suite import CaseRequest, Series, Suite, Workload
from perfkit.store.records import Case

from ._models import generator_preset_name
from ._tts import TTSInputs, TTSPasses, chunk_count, chunk_span, prepare_tts

DEFAULT_FRAMES = 24
DEFAULT_CHUNKS: tuple[int, ...] = (1, 2, 4, 8, 12)
_PARAMS = ("chunks", "text")

PROTOCOL = Protocol(warmup_rounds=1, min_samples=5, max_samples=40, budget_s=4.0, round_samples=3)


class StreamingWorkload(Workload):
    def __init__(self, passes: TTSPasses, chunk_frames: int) -> None:
        self.passes = passes
        self.chunk_frames = chunk_frames
        self.weight_bytes = passes.weight_bytes
        n = chunk_count(passes.frames, chunk_frames)
        self.series = (Series("stream", tuple(chunk_span(i) for i in range(n)), synced=True),)

    def run(self, series: str, timer: Timer) -> None:
        if series != "stream":
            raise ValueError(f"unknown series {series!r}")
        self.passes.stream(timer, self.chunk_frames)


class StreamingSuite(Suite):
    name = "streaming"
    description = "first-chunk latency and gaps between chunks for chunk sizes of 1, 2, 4, 8, 12 frames"
    protocol = PROTOCOL

    def cases(self, request: CaseRequest) -> list[Case]:
        generator_preset_name(request.preset)
        unknown = sorted(set(request.params) - set(_PARAMS))
        if unknown:
            raise InputError(f"suite 'streaming' takes no parameter(s) {', '.join(unknown)} "
                             f"(parameters: {', '.join(_PARAMS)})")
        raw = request.params.get("chunks")
        try:
            chunks = tuple(int(c) for c in raw.split(",") if c.strip()) if raw else DEFAULT_CHUNKS
        except ValueError:
            raise InputError(f"chunks must be integers separated by commas, got {raw!r}") from None
        frames = request.frames or (DEFAULT_FRAMES,)
        if any(c <= 0 for c in chunks) or any(f <= 0 for f in frames):
            raise InputError("chunk sizes and frames must be positive")
        text = request.params.get("text", "short")
        return [Case(request.preset, (("chunk_frames", c), ("frames", int(f)), ("seed", int(request.seed)),
                                      ("text", text)))
                for f in dict.fromkeys(frames) for c in dict.fromkeys(chunks)]

    def prepare(self, case: Case) -> TTSInputs:
        return prepare_tts(case)

    def load(self, backend: Backend, prepared: TTSInputs) -> StreamingWorkload:
        return StreamingWorkload(TTSPasses(backend, prepared), int(prepared.case.param("chunk_frames")))


SUITE = StreamingSuite()
