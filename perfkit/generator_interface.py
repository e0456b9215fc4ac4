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
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any

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


class GeneratorRunner(abc.ABC):
    """A generator loaded into a backend (weights converted once). See the module docstring for the loop."""

    stages: tuple[str, ...] = GENERATOR_STAGES

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
        max_frames = frame_budget(self.config, prompt, options)
        uniforms = sampling_uniforms(options.seed, max_frames, self.config.num_code_groups)
        session = GeneratorSession(prompt, options, max_frames, uniforms, forced_codes=forced_codes,
                                   logits_log=logits_log)
        self.allocate(session)
        return session

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


def _with_fixed_frames(options: SamplingOptions, frames: int) -> SamplingOptions:
    return dataclasses.replace(options, fixed_frames=frames, max_frames=None)
