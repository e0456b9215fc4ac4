"""Sampling, specified once for every backend: options, the host-drawn randomness, and the rule.

Identical codes on every backend for the same seed come from two choices:

1. **The randomness is drawn once, on the host, from the seed**: a table of uniforms
   ``u[frame, group]`` in ``[0, 1)`` (:func:`sampling_uniforms`), float64, from NumPy's
   ``SeedSequence``. Row ``f`` does not depend on how many frames are drawn, so the table can be
   cut to any length. A GPU backend uploads it once per utterance; nothing is drawn on the device.
2. **Each backend applies the same deterministic rule** to a logits row ``z`` and its uniform ``u``
   (:func:`process_logits` then :func:`pick`), in this order:

   a. *repetition penalty* ``r`` (code group 0 only, as the official talker; the history is the
      group-0 codes of this utterance so far): for each *distinct* id ``i`` in the history,
      ``z[i] = z[i] / r`` if ``z[i] > 0`` else ``z[i] * r``;
   b. *masks*: ``z[i] = -inf`` for ids that may not be produced (group 0: the codec special ids
      other than EOS always, EOS before ``min_frames`` and whenever EOS is ignored;
      see :func:`group0_allowed`);
   c. *greedy*: ``argmax z`` (the first index on ties) — the steps below are skipped;
   d. *temperature* ``T``: ``z = z / T``;
   e. *top-k* ``k`` (``0`` = off): with ``t`` the ``k``-th largest value of ``z``, ``z[z < t] = -inf``
      (ties with ``t`` are kept);
   f. *top-p* ``p`` (``1`` = off): ``q = softmax(z)``; order the ids by ``z`` descending (a stable
      sort: equal values keep id order); keep an id iff the probability mass of the ids *before* it
      in that order is ``< p`` (the most likely id is always kept); ``z = -inf`` elsewhere;
   g. *pick*: ``q = softmax(z)``, ``c = cumsum(q)`` **in id order**, and the pick is the first id
      ``i`` with ``c[i] > u * c[-1]`` (an inverse-CDF draw; ids with ``q = 0`` are never picked).

   Steps a and d commute (both scale by a positive factor that keeps the sign), so this order
   gives the same result as the official ``transformers`` order (penalty before temperature).

The NumPy reference below computes the rule in float64. A backend that computes it on the device
in float32 agrees except when ``u * c[-1]`` lands within rounding distance of a CDF boundary, or
when logits tie within rounding for greedy; parity suites therefore compare codes under greedy
decoding and teacher forcing, where that is measurable.

The uniforms of a frame: column 0 for group 0 (the talker), column ``g`` for group ``g`` (the code
predictor). The same options drive every group; the repetition penalty and the masks apply to
group 0 only (the official sub-talker samples without either).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .generator_config import GeneratorConfig

#: The official generate() defaults (qwen-tts 0.1.1): sampling, top-k 50, top-p 1, temperature 0.9,
#: repetition penalty 1.05, at least 2 frames, at most 4096 frames.
DEFAULT_TEMPERATURE = 0.9
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 1.0
DEFAULT_REPETITION_PENALTY = 1.05
DEFAULT_MIN_FRAMES = 2
DEFAULT_MAX_FRAMES = 4096

_UNIFORM_TAG = 0x5A3B1E


@dataclass(frozen=True)
class SamplingOptions:
    """How codes are chosen, and how many frames are made.

    ``greedy`` ignores ``temperature``, ``top_k`` and ``top_p`` (the repetition penalty still
    applies, as in ``transformers``). ``fixed_frames`` makes exactly that many frames with EOS
    masked out — a workload independent of the weights, for benchmarks; otherwise generation stops
    at EOS or after ``max_frames`` (``None``: the official 4096, bounded by the context).
    """

    greedy: bool = False
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    seed: int = 0
    max_frames: int | None = None
    fixed_frames: int | None = None
    min_frames: int = DEFAULT_MIN_FRAMES

    def __post_init__(self) -> None:
        if not (_is_number(self.temperature) and self.temperature > 0):
            raise InputError(f"temperature must be a positive number, got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InputError(f"top-k must be a non-negative integer (0 = off), got {self.top_k!r}")
        if not (_is_number(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise InputError(f"top-p must be in (0, 1], got {self.top_p!r}")
        if not (_is_number(self.repetition_penalty) and self.repetition_penalty > 0):
            raise InputError(f"repetition penalty must be a positive number (1 = off), "
                             f"got {self.repetition_penalty!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("max_frames", "fixed_frames"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise InputError(f"{name.replace('_', ' ')} must be a positive integer, got {value!r}")
        if not isinstance(self.min_frames, int) or self.min_frames < 0:
            raise InputError(f"min frames must be a non-negative integer, got {self.min_frames!r}")
        if self.fixed_frames is not None and (self.max_frames or self.fixed_frames) < self.fixed_frames:
            raise InputError(f"max frames ({self.max_frames}) is below the fixed frame count "
                             f"({self.fixed_frames})")

    @property
    def ignore_eos(self) -> bool:
        return self.fixed_frames is not None

    @property
    def mode(self) -> str:
        """A short label: ``greedy`` or ``sample(T=…,k=…,p=…)``, with ``rp=…`` when the penalty is on."""
        label = "greedy" if self.greedy else f"sample(T={self.temperature:g},k={self.top_k},p={self.top_p:g})"
        return label if self.repetition_penalty == 1.0 else f"{label},rp={self.repetition_penalty:g}"


def sampling_uniforms(seed: int, frames: int, groups: int) -> np.ndarray:
    """``(frames, groups)`` float64 uniforms in ``[0, 1)`` from ``seed``; row ``f`` is the same for any
    ``frames``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _UNIFORM_TAG]))
    return rng.random((int(frames), int(groups)))


def group0_allowed(config: GeneratorConfig, frame: int, options: SamplingOptions) -> np.ndarray:
    """``(vocab_size,)`` bool: the ids code group 0 may take at ``frame``.

    The audio codes ``[0, num_codes)`` always; EOS when ``frame >= min_frames`` and EOS is not
    ignored; never the other special ids. (The official code suppresses ``[vocab_size - 1024,
    vocab_size)`` except EOS, which is the same set for the published geometry, where the codes
    are ``[0, 2048)`` of 3072.)
    """
    allowed = np.zeros(config.vocab_size, dtype=bool)
    allowed[: config.num_codes] = True
    if not options.ignore_eos and frame >= options.min_frames:
        allowed[config.codec_eos_token_id] = True
    return allowed


def process_logits(
    logits: np.ndarray,
    options: SamplingOptions,
    *,
    history: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Steps a–f of the rule on one ``(V,)`` logits row; float64, ``-inf`` outside the support."""
    z = np.array(logits, dtype=np.float64).reshape(-1)
    if history is not None and len(history) and options.repetition_penalty != 1.0:
        ids = np.unique(np.asarray(history, dtype=np.int64))
        ids = ids[(ids >= 0) & (ids < z.size)]
        seen = z[ids]
        z[ids] = np.where(seen > 0, seen / options.repetition_penalty, seen * options.repetition_penalty)
    if allowed is not None:
        z = np.where(allowed, z, -np.inf)
    if options.greedy:
        return z
    z = z / options.temperature
    if 0 < options.top_k < z.size:
        kth = np.partition(z, z.size - options.top_k)[z.size - options.top_k]
        z = np.where(z < kth, -np.inf, z)
    if options.top_p < 1.0:
        q = _softmax(z)
        order = np.argsort(-z, kind="stable")
        before = np.cumsum(q[order]) - q[order]
        keep = np.zeros(z.size, dtype=bool)
        keep[order] = before < options.top_p
        keep[order[0]] = True
        z = np.where(keep, z, -np.inf)
    return z


def pick(z: np.ndarray, u: float, greedy: bool) -> int:
    """Step g (or c): the chosen id from processed logits ``z`` and the uniform ``u``."""
    if greedy:
        return int(np.argmax(z))
    c = np.cumsum(_softmax(z))
    i = int(np.searchsorted(c, u * c[-1], side="right"))
    return min(i, int(np.flatnonzero(np.isfinite(z))[-1]))


def sample(
    logits: np.ndarray,
    u: float,
    options: SamplingOptions,
    *,
    history: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> int:
    """The whole rule on one logits row: :func:`process_logits` then :func:`pick`."""
    return pick(process_logits(logits, options, history=history, allowed=allowed), u, options.greedy)


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and bool(np.isfinite(x))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z))
    return e / e.sum()
