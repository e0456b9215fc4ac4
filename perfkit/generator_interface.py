"""The generator runner every backend implements: the talker and code predictor as canonical stages.

:meth:`perfkit.interface.Backend.load_generator` returns a :class:`GeneratorRunner`. The framework
(:mod:`perfkit.synthesis`, the suites) drives it stage by stage — the stage names are
:data:`perfkit.model.stages.GENERATOR_STAGES` — so timing, parity and streaming work the same way
for every backend. Host-side parts are shared and framework-free: tokenization
(:mod:`perfkit.model.text`, stage ``tokenize``), the prompt layout (:mod:`perfkit.model.prompt`) and
the sampling rule with its host-drawn uniforms (:mod:`perfkit.model.sampling`). A backend supplies
the device parts::

    session = runner.new_session(prompt, options)   # plan, draw uniforms, allocate()   (per utterance)
    logits = runner.prefill(session)                 # stage "prefill": prompt -> frame 0's group-0 logits
    loop, frame f = session.frame = 0, 1, …:
        if f > 0: logits = runner.talker_step(session)   # stage "talker_step"
        code0 = runner.sample_group0(session, logits)     # stage "sampling": group 0 of frame f
        (EOS check on the host: to_host(code0) == codec_eos_token_id -> stop; skipped with fixed frames)
        runner.code_predictor(session)                    # stage "code_predictor": groups 1 … G-1 of frame f
        session.end_frame()                               # the framework advances the frame
    runner.codes(session, a, b)                      # (G, b - a) codes of finished frames, for the vocoder

Arrays are backend-native (``Array``): logits ``(vocab_size,)``, codes integer; the framework
brings to the host only what it must (the group-0 code for the EOS check, code chunks for the
vocoder) through :meth:`perfkit.interface.Backend.to_host`. What a runner must guarantee:

- **Preallocation**: :meth:`GeneratorRunner.allocate` creates, once per utterance, the talker KV
  cache for ``prefill_length + max_frames - 1`` positions, the code predictor's for
  ``num_code_groups`` positions (reset, not reallocated, every frame), the codes buffer
  ``(num_code_groups, max_frames)`` and the uploaded uniforms ``(max_frames, num_code_groups)``.
  Nothing grows per step.
- **Sampling**: the rule of :mod:`perfkit.model.sampling`, with uniform ``session.uniforms[f, g]``
  for group ``g`` of frame ``f``, the group-0 history ``codes[0, :f]`` for the repetition penalty and
  :func:`perfkit.model.sampling.group0_allowed` for the masks — on the device if the backend likes.
- **Teacher forcing** (parity): when ``session.forced_codes`` ``(G, frames)`` is set, every
  sampling step takes the forced code of its frame and group instead of drawing one (the rule is
  still applied, so its cost is still timed); when ``session.logits_log`` is a list, every logits
  row a step samples from is appended to it as ``(frame, group, logits)`` (backend array, unmasked:
  the model's raw output).
- ``session.frame`` belongs to the framework; a runner reads it and never changes it.

**Batches** (optional, the ``rtf`` suite's batch sweep): :meth:`GeneratorRunner.new_batch` plans
``B`` same-length requests (equal prefill length, a fixed frame count, EOS ignored: no padding and
no masking) as a :class:`GeneratorBatch`, and the ``*_batch`` methods run each stage for every item
in lockstep::

    batch = runner.new_batch(prompts, options)          # B sessions planned; allocate_batch()
    logits = runner.prefill_batch(batch)                 # logits[i]: item i's (vocab_size,) row
    loop, frame f = batch.frame = 0, 1, …, frames - 1:
        if f > 0: logits = runner.talker_step_batch(batch)
        runner.sample_group0_batch(batch, logits)        # codes0[i]: item i's group-0 code
        runner.code_predictor_batch(batch)
        batch.end_frame()
    runner.codes_batch(batch, a, b)                      # [i]: item i's (G, b - a) codes

The default implementations loop over the items' batch-1 sessions one after another, so every runner
supports batches unchanged (``batch_mode`` ``"looped"``). A runner that sets ``native_batch = True``
overrides :meth:`allocate_batch` and the ``*_batch`` stages to run all items in one pass — caches and
activations with a leading batch dimension, so each weight read serves ``B`` items (the talker step
and the code predictor are memory-bandwidth bound) — and reports ``batch_mode`` ``"native"``. Item
``i`` of a batch must make the codes a batch-1 session of request ``i`` makes.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .errors import InputError
from .model.generator_config import GeneratorConfig
from .model.prompt import Prompt, frame_budget
from .model.sampling import SamplingOptions, sampling_uniforms
from .model.stages import GENERATOR_STAGES

Array = Any
"""A backend-native array (``np.ndarray``, ``torch.Tensor`` …); only the backend looks inside."""


@dataclass(eq=False)
class GeneratorSession:
    """One utterance in progress: what the framework decided (host) plus the runner's ``state``.

    ``max_frames``: frames this session may make (the KV cache is sized for it);
    ``uniforms (max_frames, G)`` float64: the sampling randomness, drawn on the host from the seed;
    ``frame``: the frame being made (advanced by :meth:`end_frame`, never by the runner);
    ``stop``: why generation ended (``eos``, ``max_frames``, ``fixed_frames``; set by the framework);
    ``state``: the runner's own (KV caches, codes buffer, last hidden state …).
    """

    prompt: Prompt
    options: SamplingOptions
    max_frames: int
    uniforms: np.ndarray
    frame: int = 0
    forced_codes: np.ndarray | None = None
    logits_log: list[tuple[int, int, Array]] | None = None
    stop: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    def end_frame(self) -> None:
        """Frame ``frame`` is complete (group 0 and the code predictor's groups are in the codes buffer)."""
        if self.frame >= self.max_frames:
            raise RuntimeError(f"session already made its {self.max_frames} frames")
        self.frame += 1

    def forced(self, group: int) -> int | None:
        """The teacher-forced code of ``group`` at the current frame, or ``None`` when sampling freely."""
        if self.forced_codes is None:
            return None
        return int(self.forced_codes[group, self.frame])


@dataclass(eq=False)
class GeneratorBatch:
    """``B`` utterances made in lockstep: one planned :class:`GeneratorSession` per item plus ``state``.

    ``sessions[i]`` holds item ``i``'s prompt, options (its own seed) and uniforms; in the default
    (looped) mode each session also holds its own runner state, in the native mode ``state`` holds the
    batched one (KV caches ``(B, …)``, codes ``(B, G, frames)`` …). Every item has the same
    ``prefill_length`` and ``max_frames`` (a fixed frame count), so their ``frame`` counters agree.
    """

    sessions: tuple[GeneratorSession, ...]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """``B``."""
        return len(self.sessions)

    @property
    def frame(self) -> int:
        """The frame being made by every item (advanced by :meth:`end_frame`, never by the runner)."""
        return self.sessions[0].frame

    @property
    def max_frames(self) -> int:
        return self.sessions[0].max_frames

    def end_frame(self) -> None:
        """Frame ``frame`` is complete for every item."""
        for session in self.sessions:
            session.end_frame()


class GeneratorRunner(abc.ABC):
    """A generator loaded into a backend (weights converted once). See the module docstring for the loop."""

    stages: tuple[str, ...] = GENERATOR_STAGES
    #: ``True`` when the runner overrides the ``*_batch`` stages to run a batch in one pass; ``False``:
    #: the default implementations loop over batch-1 sessions.
    native_batch: ClassVar[bool] = False

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config

    # ---- per utterance
    def new_session(
        self,
        prompt: Prompt,
        options: SamplingOptions,
        *,
        forced_codes: np.ndarray | None = None,
        logits_log: list[tuple[int, int, Array]] | None = None,
    ) -> GeneratorSession:
        """Plan the frame budget (:func:`perfkit.model.prompt.frame_budget`), draw the uniforms, allocate.

        ``forced_codes (G, F)``: teacher forcing over ``F`` frames (the budget becomes ``F``,
        EOS is not checked).
        """
        if forced_codes is not None:
            forced_codes = np.asarray(forced_codes, dtype=np.int64)
            g = self.config.num_code_groups
            if forced_codes.ndim != 2 or forced_codes.shape[0] != g or forced_codes.shape[1] == 0:
                raise InputError(f"forced codes must have shape ({g}, frames), got {forced_codes.shape}")
            options = _with_fixed_frames(options, forced_codes.shape[1])
        session = self.plan_session(prompt, options, forced_codes=forced_codes, logits_log=logits_log)
        self.allocate(session)
        return session

    def plan_session(
        self,
        prompt: Prompt,
        options: SamplingOptions,
        *,
        forced_codes: np.ndarray | None = None,
        logits_log: list[tuple[int, int, Array]] | None = None,
    ) -> GeneratorSession:
        """A session with its frame budget and uniforms drawn, but nothing allocated (``state`` empty)."""
        max_frames = frame_budget(self.config, prompt, options)
        uniforms = sampling_uniforms(options.seed, max_frames, self.config.num_code_groups)
        return GeneratorSession(prompt, options, max_frames, uniforms, forced_codes=forced_codes,
                                logits_log=logits_log)

    @abc.abstractmethod
    def allocate(self, session: GeneratorSession) -> None:
        """Create ``session.state``: KV caches, codes buffer, uploaded uniforms (sizes: module docstring)."""

    @abc.abstractmethod
    def prefill(self, session: GeneratorSession) -> Array:
        """Stage ``prefill``: embed the prompt (text projection, codec embeddings), run the talker over its
        ``prefill_length`` positions filling the KV cache; return frame 0's group-0 logits
        ``(vocab_size,)``."""

    # ---- per frame
    @abc.abstractmethod
    def talker_step(self, session: GeneratorSession) -> Array:
        """Stage ``talker_step`` (frame ``f = session.frame >= 1``): the input is the sum of the ``G`` codec
        embeddings of frame ``f-1`` (group 0: ``codec_embedding``; group ``g``: the code predictor's
        ``codec_embedding[g-1]``) plus the text stream's embedding ``prompt.stream_text_id(f)``; one talker
        position; keep the final (normed) hidden state for the code predictor; return logits
        ``(vocab_size,)``."""

    @abc.abstractmethod
    def sample_group0(self, session: GeneratorSession, logits: Array) -> Array:
        """Stage ``sampling``: the sampling rule on ``logits`` with the repetition penalty over
        ``codes[0, :f]`` and the group-0 masks; write the code to ``codes[0, f]`` and return it (a 0-d
        integer array)."""

    @abc.abstractmethod
    def code_predictor(self, session: GeneratorSession) -> Array:
        """Stage ``code_predictor``: groups ``1 … G-1`` of frame ``f``, autoregressively with the predictor's
        own (reset) KV cache: positions 0, 1 take the talker's last hidden state and group 0's codec
        embedding (both through ``small_to_mtp_projection``), ``lm_head[0]`` gives group 1; position
        ``g`` (2 … G-1) takes ``codec_embedding[g-2]`` of group ``g-1``, ``lm_head[g-1]`` gives group ``g``.
        Each group sampled by the rule (no penalty, no masks); write ``codes[1:, f]`` and return them
        ``(G-1,)``."""

    @abc.abstractmethod
    def codes(self, session: GeneratorSession, start: int, stop: int) -> Array:
        """Codes of finished frames ``[start, stop)``: ``(G, stop - start)`` integers."""

    # ---- batches (optional to override: the defaults loop over batch-1 sessions)
    @property
    def batch_mode(self) -> str:
        """``"native"`` (one pass per stage for the whole batch) or ``"looped"`` (item after item)."""
        return "native" if self.native_batch else "looped"

    def new_batch(self, prompts: Sequence[Prompt], options: Sequence[SamplingOptions]) -> GeneratorBatch:
        """Plan ``B = len(prompts)`` same-length requests and allocate (:meth:`allocate_batch`).

        :class:`InputError` unless ``B >= 1``, there is one options per prompt, every item has a fixed
        frame count (EOS ignored) and every item has the same prefill length and frame count.
        """
        prompts, options = tuple(prompts), tuple(options)
        if not prompts:
            raise InputError("a batch needs at least one request")
        if len(options) != len(prompts):
            raise InputError(f"a batch needs one sampling options per prompt, got {len(options)} for "
                             f"{len(prompts)} prompts")
        if any(not o.ignore_eos for o in options):
            raise InputError("a batch needs a fixed frame count per request (EOS ignored): items stop together")
        sessions = tuple(self.plan_session(p, o) for p, o in zip(prompts, options, strict=True))
        shapes = {(s.prompt.prefill_length, s.max_frames) for s in sessions}
        if len(shapes) > 1:
            got = ", ".join(f"{p} positions / {f} frames" for p, f in sorted(shapes))
            raise InputError(f"a batch needs requests of the same length (prefill positions and frames), got {got}")
        batch = GeneratorBatch(sessions)
        self.allocate_batch(batch)
        return batch

    def allocate_batch(self, batch: GeneratorBatch) -> None:
        """Create the batch's state; the default allocates every item's batch-1 session."""
        for session in batch.sessions:
            self.allocate(session)

    def prefill_batch(self, batch: GeneratorBatch) -> Sequence[Array]:
        """Stage ``prefill`` for every item: ``[i]`` is item ``i``'s frame-0 group-0 logits ``(vocab_size,)``
        (a ``(B, vocab_size)`` array natively, a list of ``B`` rows in the default loop)."""
        return [self.prefill(s) for s in batch.sessions]

    def talker_step_batch(self, batch: GeneratorBatch) -> Sequence[Array]:
        """Stage ``talker_step`` for every item: ``[i]`` is item ``i``'s logits ``(vocab_size,)``."""
        return [self.talker_step(s) for s in batch.sessions]

    def sample_group0_batch(self, batch: GeneratorBatch, logits: Sequence[Array]) -> Sequence[Array]:
        """Stage ``sampling`` for every item (``logits[i]`` item ``i``'s row): ``[i]`` is its group-0 code."""
        return [self.sample_group0(s, row) for s, row in zip(batch.sessions, logits, strict=True)]

    def code_predictor_batch(self, batch: GeneratorBatch) -> Sequence[Array]:
        """Stage ``code_predictor`` for every item: ``[i]`` is item ``i``'s groups ``1 … G-1`` ``(G-1,)``."""
        return [self.code_predictor(s) for s in batch.sessions]

    def codes_batch(self, batch: GeneratorBatch, start: int, stop: int) -> Sequence[Array]:
        """Codes of finished frames ``[start, stop)``: ``[i]`` is item ``i``'s ``(G, stop - start)``."""
        return [self.codes(s, start, stop) for s in batch.sessions]


def _with_fixed_frames(options: SamplingOptions, frames: int) -> SamplingOptions:
    return dataclasses.replace(options, fixed_frames=frames, max_frames=None)
