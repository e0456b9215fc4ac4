"""Text -> codes -> speech on one backend, offline or streamed: the driver of the generator stages.

The stages run in the canonical order (:mod:`perfkit.generator_interface`): ``tokenize`` on the
host, ``prefill``, then per frame ``talker_step`` (from frame 1), ``sampling`` (group 0 and the
EOS check), ``code_predictor``, and the ``vocoder`` decode.

- :meth:`Synthesizer.synthesize` makes the whole utterance, then decodes it once; its timings are
  per phase (tokenize, prefill, generate, vocoder) with one synchronisation at each phase boundary
  and none inside a phase.
- :meth:`Synthesizer.stream` yields audio chunks of ``chunk_frames`` frames as soon as those frames
  exist, decoding incrementally with :class:`perfkit.interface.VocoderStream`: every vocoder stage
  carries its state (convolution tails, the sliding-window KV cache), so the streamed audio equals
  the offline decode of the same codes and a chunk's cost does not grow with its position.

- :meth:`Synthesizer.synthesize_batch` makes ``B`` requests of one text together (item ``i`` with
  seed ``seed + i``, a fixed frame count) through :meth:`perfkit.generator_interface.GeneratorRunner.new_batch`
  — natively batched where the runner supports it, item after item otherwise — then decodes each
  item's codes with the vocoder, one item after another (the vocoder has no batch dimension).

Host synchronisation per frame: one scalar (the group-0 code, for the EOS check), none with a
fixed frame count; the codes come to the host per chunk (streaming) or once (offline).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .generator_interface import Array, GeneratorBatch, GeneratorRunner, GeneratorSession
from .interface import Backend, VocoderRunner, VocoderStream, decode_to_host
from .model.prompt import Prompt, encode_prompt
from .model.sampling import SamplingOptions
from .model.text import TextTokenizer
from .model.tts_model import TTSModel, check_pair

PHASES: tuple[str, ...] = ("tokenize", "prefill", "generate", "vocoder")


def run_frames(backend: Backend, runner: GeneratorRunner, session: GeneratorSession, logits: Array
               ) -> Iterator[int]:
    """The frame loop after ``runner.prefill(session)`` gave ``logits``; yields the finished frame count.

    Stops at EOS (group 0 sampled as ``codec_eos_token_id``; that frame is not kept, as in the
    official code), after ``session.max_frames`` frames, or at the fixed frame count (EOS masked);
    ``session.stop`` says which.
    """
    eos = runner.config.codec_eos_token_id
    check_eos = not session.options.ignore_eos
    while session.frame < session.max_frames:
        if session.frame > 0:
            logits = runner.talker_step(session)
        code0 = runner.sample_group0(session, logits)
        if check_eos and int(backend.to_host(code0)) == eos:
            session.stop = "eos"
            return
        runner.code_predictor(session)
        session.end_frame()
        yield session.frame
    session.stop = "fixed_frames" if session.options.ignore_eos else "max_frames"


def run_batch_frames(runner: GeneratorRunner, batch: GeneratorBatch, logits: Sequence[Array]) -> Iterator[int]:
    """The batch's frame loop after ``runner.prefill_batch(batch)`` gave ``logits``; yields the finished
    frame count. Every item makes ``batch.max_frames`` frames (fixed, EOS ignored)."""
    while batch.frame < batch.max_frames:
        if batch.frame > 0:
            logits = runner.talker_step_batch(batch)
        runner.sample_group0_batch(batch, logits)
        runner.code_predictor_batch(batch)
        batch.end_frame()
        yield batch.frame
    for session in batch.sessions:
        session.stop = "fixed_frames"


def batch_options(options: SamplingOptions, size: int) -> list[SamplingOptions]:
    """``size`` copies of ``options``, item ``i`` with seed ``options.seed + i``; :class:`InputError` unless
    ``size`` is a positive integer."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InputError(f"batch size must be a positive integer, got {size!r}")
    return [dataclasses.replace(options, seed=options.seed + i) for i in range(size)]


@dataclass(frozen=True, eq=False)
class SynthesisResult:
    """One utterance: ``codes (G, frames)`` int64 (the vocoder's codes format), ``audio (frames * 1920,)``."""

    codes: np.ndarray
    audio: np.ndarray
    sample_rate: int
    prompt: Prompt
    stop: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, and "total"

    @property
    def frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def audio_seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate

    @property
    def rtf(self) -> float:
        """Real-time factor: wall time / audio duration (lower is better); ``inf`` for no audio."""
        return self.timings["total"] / self.audio_seconds if self.audio_seconds else float("inf")


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """Frames ``[start_frame, start_frame + codes.shape[1])`` and their audio, ready ``elapsed_s`` after the
    text arrived."""

    index: int
    start_frame: int
    codes: np.ndarray
    audio: np.ndarray
    elapsed_s: float


class AudioStream:
    """An utterance being streamed: iterate for :class:`AudioChunk` s; ``stop`` says why it ended."""

    def __init__(self, synth: Synthesizer, session: GeneratorSession, chunk_frames: int, t0: float) -> None:
        self.synth = synth
        self.session = session
        self.chunk_frames = chunk_frames
        self.t0 = t0

    @property
    def prompt(self) -> Prompt:
        return self.session.prompt

    @property
    def stop(self) -> str:
        """``eos``, ``max_frames`` or ``fixed_frames`` once iteration is over, ``""`` before."""
        return self.session.stop

    def __iter__(self) -> Iterator[AudioChunk]:
        synth, session = self.synth, self.session
        backend, runner = synth.backend, synth.generator
        logits = runner.prefill(session)
        vocoder = VocoderStream(backend, synth.vocoder)
        start, index = 0, 0
        for done in run_frames(backend, runner, session, logits):
            if done - start == self.chunk_frames:
                yield self._chunk(vocoder, index, start, done)
                start, index = done, index + 1
        if session.frame > start:
            yield self._chunk(vocoder, index, start, session.frame)

    def _chunk(self, vocoder: VocoderStream, index: int, start: int, stop: int) -> AudioChunk:
        host = self.synth.backend.to_host(self.synth.generator.codes(self.session, start, stop))
        codes = np.asarray(host, dtype=np.int64)
        return AudioChunk(index, start, codes, vocoder.push(codes), time.perf_counter() - self.t0)


class Synthesizer:
    """A TTS model loaded into one backend: the generator runner, the vocoder runner and the tokenizer."""

    def __init__(self, backend: Backend, generator: GeneratorRunner, vocoder: VocoderRunner,
                 tokenizer: TextTokenizer) -> None:
        check_pair(generator.config, vocoder.config)
        self.backend = backend
        self.generator = generator
        self.vocoder = vocoder
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, backend: Backend, model: TTSModel) -> Synthesizer:
        """Convert the model's weights to ``backend`` once."""
        generator = backend.load_generator(model.generator, model.vocoder)
        return cls(backend, generator, backend.load_vocoder(model.vocoder), model.tokenizer)

    @property
    def sample_rate(self) -> int:
        return self.vocoder.config.sample_rate

    def encode(self, text: str | bytes) -> Prompt:
        """Stage ``tokenize``: check the text and build the prompt (:class:`InputError` for bad text)."""
        return encode_prompt(self.generator.config, self.tokenizer, text)

    def new_session(self, text: str | bytes, options: SamplingOptions) -> GeneratorSession:
        return self.generator.new_session(self.encode(text), options)

    def synthesize(self, text: str | bytes, options: SamplingOptions | None = None) -> SynthesisResult:
        """The whole utterance, then one vocoder decode; per-phase timings in seconds."""
        options = options or SamplingOptions()
        backend, runner = self.backend, self.generator
        clock = time.perf_counter
        t0 = clock()
        prompt = self.encode(text)
        t1 = clock()
        session = runner.new_session(prompt, options)
        logits = runner.prefill(session)
        backend.synchronize()
        t2 = clock()
        for _ in run_frames(backend, runner, session, logits):
            pass
        codes = np.asarray(backend.to_host(runner.codes(session, 0, session.frame)), dtype=np.int64)
        t3 = clock()
        audio = self._decode(codes)
        t4 = clock()
        timings = {"tokenize": t1 - t0, "prefill": t2 - t1, "generate": t3 - t2, "vocoder": t4 - t3,
                   "total": t4 - t0}
        return SynthesisResult(codes, audio, self.sample_rate, prompt, session.stop, timings)

    def synthesize_batch(self, text: str | bytes, options: SamplingOptions, size: int
                         ) -> tuple[list[SynthesisResult], dict[str, float]]:
        """``size`` utterances of ``text`` made together (item ``i``: seed ``options.seed + i``; ``options``
        must fix the frame count), then decoded item by item.

        Returns the per-item results (their ``timings`` are empty: the work is shared) and the batch's
        per-phase timings in seconds (tokenize: every item's; ``total``: the whole batch).
        """
        items = batch_options(options, size)
        backend, runner = self.backend, self.generator
        clock = time.perf_counter
        t0 = clock()
        prompts = [self.encode(text) for _ in items]
        t1 = clock()
        batch = runner.new_batch(prompts, items)
        logits = runner.prefill_batch(batch)
        backend.synchronize()
        t2 = clock()
        for _ in run_batch_frames(runner, batch, logits):
            pass
        codes = [np.asarray(backend.to_host(c), dtype=np.int64) for c in runner.codes_batch(batch, 0, batch.frame)]
        t3 = clock()
        audio = [self._decode(c) for c in codes]
        t4 = clock()
        timings = {"tokenize": t1 - t0, "prefill": t2 - t1, "generate": t3 - t2, "vocoder": t4 - t3,
                   "total": t4 - t0}
        results = [SynthesisResult(c, a, self.sample_rate, p, s.stop)
                   for c, a, p, s in zip(codes, audio, prompts, batch.sessions, strict=True)]
        return results, timings

    def stream(self, text: str | bytes, options: SamplingOptions | None = None, chunk_frames: int = 4
               ) -> AudioStream:
        """Audio chunks of ``chunk_frames`` frames (the last may be shorter), each once its frames exist.

        The text is checked and tokenized now (bad text raises here); generation runs as the returned
        :class:`AudioStream` is iterated. Chunk times count from this call.
        """
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames <= 0:
            raise InputError(f"chunk frames must be a positive integer, got {chunk_frames!r}")
        t0 = time.perf_counter()
        session = self.generator.new_session(self.encode(text), options or SamplingOptions())
        return AudioStream(self, session, chunk_frames, t0)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        if codes.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        return decode_to_host(self.backend, self.vocoder, codes)
