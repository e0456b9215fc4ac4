"""The talker's prompt: which text and codec embeddings are summed at each position.

This is the official prompt of qwen-tts 0.1.1 (``Qwen3TTSForConditionalGeneration.generate``) for
its simplest case — no speaker, language ``auto``, streaming text input — and nothing more (no
chat template beyond the role tokens, no voice cloning, no instructions). The text is tokenized
as the official wrapper does, inside
``"<|im_start|>assistant\\n{text}<|im_end|>\\n<|im_start|>assistant\\n"``; the ``R`` role ids
(``<|im_start|>assistant\\n``: 3 with the Qwen tokenizer) open the prompt and the closing ids are
dropped. With ``t_0 … t_{N-1}`` the text ids, ``E_t(i) = text_projection(
text_embedding(i))`` and ``E_c(i) = codec_embedding(i)``, the prefill has ``P = R + 5`` positions:

=====================  ======================  =========================
position               text stream             codec stream
=====================  ======================  =========================
``0 … R-1``            ``E_t(role_j)``         (none)
``R, R+1, R+2``        ``E_t(tts_pad)``        ``E_c(nothink)``, ``E_c(think_bos)``, ``E_c(think_eos)``
``R+3``                ``E_t(tts_bos)``        ``E_c(codec_pad)``
``R+4``                ``E_t(t_0)``            ``E_c(codec_bos)``
=====================  ======================  =========================

The prefill's last hidden state gives frame 0's group-0 logits. After that the text arrives one
token per frame: the talker input of frame ``f >= 1`` is the sum of the ``G`` codec embeddings of
frame ``f-1`` plus ``E_t`` of the text stream's entry ``f-1`` of ``[t_1, …, t_{N-1}, tts_eos]``,
and ``E_t(tts_pad)`` once that is consumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .generator_config import GeneratorConfig
from .sampling import DEFAULT_MAX_FRAMES, SamplingOptions
from .text import IM_END, IM_START, TextTokenizer, check_text

ROLE_TEXT = f"{IM_START}assistant\n"
END_TEXT = f"{IM_END}\n{IM_START}assistant\n"
NO_CODEC = -1


@dataclass(frozen=True, eq=False)
class Prompt:
    """Token ids of one utterance, as the talker consumes them (all int64 arrays).

    ``prefill_text_ids (P,)`` / ``prefill_codec_ids (P,)``: the prefill position ``i`` embeds as
    ``E_t(prefill_text_ids[i]) + (E_c(prefill_codec_ids[i]) if it is not -1)``.
    ``stream_text_ids (N,)``: the text stream of frames ``1 … N`` (``[t_1 … t_{N-1}, tts_eos]``);
    ``pad_text_id``: the text id of every later frame.
    """

    text_ids: np.ndarray
    role_ids: np.ndarray
    prefill_text_ids: np.ndarray
    prefill_codec_ids: np.ndarray
    stream_text_ids: np.ndarray
    pad_text_id: int

    @property
    def prefill_length(self) -> int:
        return int(self.prefill_text_ids.shape[0])

    @property
    def text_length(self) -> int:
        return int(self.text_ids.shape[0])

    def stream_text_id(self, frame: int) -> int:
        """The text id added to the talker input of ``frame >= 1``."""
        if frame < 1:
            raise ValueError("frame 0 comes from the prefill")
        i = frame - 1
        return int(self.stream_text_ids[i]) if i < self.stream_text_ids.shape[0] else self.pad_text_id


def build_prompt(config: GeneratorConfig, text_ids: list[int] | np.ndarray, role_ids: list[int] | np.ndarray
                 ) -> Prompt:
    """The prompt from text ids and role ids (see the module docstring for the layout)."""
    text = np.asarray(text_ids, dtype=np.int64).reshape(-1)
    role = np.asarray(role_ids, dtype=np.int64).reshape(-1)
    if text.size == 0:
        raise InputError("text is empty: it tokenizes to no tokens")
    for name, ids in (("text", text), ("role", role)):
        bad = ids[(ids < 0) | (ids >= config.text_vocab_size)]
        if bad.size:
            raise InputError(f"{name} token id {int(bad[0])} is outside the text vocabulary "
                             f"[0, {config.text_vocab_size})")
    pad, bos = config.tts_pad_token_id, config.tts_bos_token_id
    prefill_text = np.concatenate([role, [pad, pad, pad, bos], text[:1]]).astype(np.int64)
    codec = [config.codec_nothink_id, config.codec_think_bos_id, config.codec_think_eos_id,
             config.codec_pad_id, config.codec_bos_id]
    prefill_codec = np.concatenate([np.full(role.size, NO_CODEC), codec]).astype(np.int64)
    stream = np.concatenate([text[1:], [config.tts_eos_token_id]]).astype(np.int64)
    return Prompt(text, role, prefill_text, prefill_codec, stream, pad)


def encode_prompt(config: GeneratorConfig, tokenizer: TextTokenizer, text: str | bytes) -> Prompt:
    """Check and tokenize ``text`` the official way, then :func:`build_prompt`.

    The whole ``ROLE_TEXT + text + END_TEXT`` is tokenized and the role / closing ids cut off (so a
    BPE sees the text in its official context); should a merge cross those borders, the text is
    tokenized on its own instead.
    """
    text = check_text(text)
    role = tokenizer.encode(ROLE_TEXT)
    end = tokenizer.encode(END_TEXT)
    ids = tokenizer.encode(ROLE_TEXT + text + END_TEXT)
    if ids[: len(role)] == role and ids[len(ids) - len(end):] == end and len(ids) > len(role) + len(end):
        text_ids = ids[len(role): len(ids) - len(end)]
    else:
        text_ids = tokenizer.encode(text)
    return build_prompt(config, text_ids, role)


def frame_budget(config: GeneratorConfig, prompt: Prompt, options: SamplingOptions) -> int:
    """How many frames this utterance may make: the KV cache holds ``prefill_length + frames - 1`` positions.

    ``fixed_frames`` or ``max_frames`` when given (:class:`InputError` if the context cannot hold
    them), else the official 4096 bounded by the context. :class:`InputError` too when the context
    cannot even hold the prompt and one frame per text token (the text is longer than the context).
    """
    context = config.max_position_embeddings
    room = context - prompt.prefill_length + 1  # frames that fit
    if room < prompt.text_length + 1:
        raise InputError(f"text is too long: {prompt.text_length} tokens need a prompt of "
                         f"{prompt.prefill_length} positions plus one frame per token, more than the model's "
                         f"context of {context} positions; split the text")
    wanted = options.fixed_frames or options.max_frames
    if wanted is None:
        return min(DEFAULT_MAX_FRAMES, room)
    if wanted > room:
        raise InputError(f"{wanted} frames do not fit the context: the prompt takes {prompt.prefill_length} "
                         f"of {context} positions, leaving room for {room} frames")
    return int(wanted)
