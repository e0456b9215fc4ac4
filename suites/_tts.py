"""Passes over the whole TTS pipeline that several suites time: per stage, per phase, streamed.

Every pass makes exactly ``frames`` frames (EOS ignored: the workload does not depend on the
weights) from a fresh session, with greedy sampling (the rule still runs, so its cost is timed). A
case with ``batch = B > 1`` (the ``rtf`` suite's batch sweep) makes ``B`` utterances per pass through
the runner's batch stages (item ``i`` seeded ``seed + i``); the vocoder decodes them one after another.
Not a suite itself (the leading underscore keeps it off the suite list).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfkit.errors import InputError
from perfkit.interface import Backend, decode_to_host
from perfkit.measure.timers import Timer
from perfkit.model.generator_config import generator_preset
from perfkit.model.sampling import SamplingOptions
from perfkit.model.tts_model import TTSModel
from perfkit.store.records import Case
from perfkit.synthesis import Synthesizer, batch_options, run_batch_frames

from ._models import TEXTS, generator_preset_name

#: Spans of a per-stage generator pass, in execution order (``talker_step`` first appears in frame 1;
#: frame 0 laps it at zero cost so the order is the same in every pass).
GENERATOR_SPANS: tuple[str, ...] = (
    "tokenize", "prefill", "talker_step", "sampling", "code_predictor", "vocoder",
)
#: Spans of a per-phase pass (one synchronisation at each phase boundary, none inside a phase).
PHASE_SPANS: tuple[str, ...] = ("tokenize", "prefill", "generate", "vocoder")


@dataclass(frozen=True)
class TTSInputs:
    """What a worker prepares (untimed) for a TTS case: the synthetic model, the text, the case."""

    model: TTSModel
    text: str
    frames: int
    case: Case
    batch: int = 1


def text_of(case: Case) -> str:
    label = str(case.param("text", "short"))
    if label not in TEXTS:
        raise InputError(f"unknown text {label!r}; choose one of {', '.join(TEXTS)}")
    return TEXTS[label]


def prepare_tts(case: Case) -> TTSInputs:
    name = generator_preset_name(case.preset)
    generator_preset(name)
    batch = case.param("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        raise InputError(f"batch must be a positive integer, got {batch!r}")
    model = TTSModel.synthetic(name, int(case.param("seed", 0)))
    return TTSInputs(model, text_of(case), int(case.param("frames")), case, batch)


def chunk_count(frames: int, chunk_frames: int) -> int:
    return math.ceil(frames / chunk_frames)


class TTSPasses:
    """A synthesizer loaded into a backend and the passes the TTS suites time."""

    def __init__(self, backend: Backend, inputs: TTSInputs) -> None:
        self.backend = backend
        self.synth = Synthesizer.load(backend, inputs.model)
        self.text = inputs.text
        self.frames = inputs.frames
        self.options = SamplingOptions(greedy=True, fixed_frames=inputs.frames)
        self.batch = inputs.batch
        self.batch_options = batch_options(self.options, inputs.batch)
        dtype = backend.dtype_name
        parts = (inputs.model.generator.weight_bytes_in(dtype), inputs.model.vocoder.weight_bytes_in(dtype))
        self.weight_bytes = None if None in parts else sum(parts)  # as the backend holds them

    def synthesize(self, timer: Timer) -> None:
        """One span ``synthesize``: the whole utterance, tokenize to waveform (phase syncs only)."""
        timer.start()
        self.synth.synthesize(self.text, self.options)
        timer.end("synthesize")

    def stages(self, timer: Timer) -> None:
        """Every generator stage with a sync after each (per-frame stages accumulate over frames)."""
        synth, backend, runner = self.synth, self.backend, self.synth.generator
        timer.start()
        prompt = synth.encode(self.text)
        timer.lap("tokenize")
        session = runner.new_session(prompt, self.options)
        logits = runner.prefill(session)
        timer.lap("prefill")
        timer.lap("talker_step")
        for f in range(self.frames):
            if f > 0:
                logits = runner.talker_step(session)
                timer.lap("talker_step")
            runner.sample_group0(session, logits)
            timer.lap("sampling")
            runner.code_predictor(session)
            timer.lap("code_predictor")
            session.end_frame()
        codes = np.asarray(backend.to_host(runner.codes(session, 0, self.frames)), dtype=np.int64)
        decode_to_host(backend, synth.vocoder, codes)
        timer.lap("vocoder")

    def phases(self, timer: Timer) -> None:
        """Spans :data:`PHASE_SPANS`: tokenize, prefill, generate (every frame), vocoder decode."""
        if self.batch > 1:
            self.phases_batch(timer)
            return
        synth, backend, runner = self.synth, self.backend, self.synth.generator
        timer.start()
        prompt = synth.encode(self.text)
        timer.lap("tokenize")
        session = runner.new_session(prompt, self.options)
        logits = runner.prefill(session)
        timer.lap("prefill")
        for f in range(self.frames):
            if f > 0:
                logits = runner.talker_step(session)
            runner.sample_group0(session, logits)
            runner.code_predictor(session)
            session.end_frame()
        codes = np.asarray(backend.to_host(runner.codes(session, 0, self.frames)), dtype=np.int64)
        timer.lap("generate")
        decode_to_host(backend, synth.vocoder, codes)
        timer.lap("vocoder")

    def phases_batch(self, timer: Timer) -> None:
        """:data:`PHASE_SPANS` for ``batch`` utterances made together: tokenize every item, prefill and
        generate the batch (native or looped, as the runner does it), decode every item."""
        synth, backend, runner = self.synth, self.backend, self.synth.generator
        timer.start()
        prompts = [synth.encode(self.text) for _ in range(self.batch)]
        timer.lap("tokenize")
        batch = runner.new_batch(prompts, self.batch_options)
        logits = runner.prefill_batch(batch)
        timer.lap("prefill")
        for _ in run_batch_frames(runner, batch, logits):
            pass
        codes = [np.asarray(backend.to_host(c), dtype=np.int64) for c in runner.codes_batch(batch, 0, self.frames)]
        timer.lap("generate")
        for item in codes:
            decode_to_host(backend, synth.vocoder, item)
        timer.lap("vocoder")

    def stream(self, timer: Timer, chunk_frames: int) -> None:
        """Spans ``chunk_00`` …: the time to each audio chunk since the previous one (``chunk_00``, from the
        text, is the first-chunk latency: tokenize, prefill and the first chunk's frames and audio)."""
        timer.start()
        for chunk in self.synth.stream(self.text, self.options, chunk_frames):
            timer.lap(chunk_span(chunk.index))


def chunk_span(index: int) -> str:
    return f"chunk_{index:02d}"
