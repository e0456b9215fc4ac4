"""``rtf``: real-time factor of the whole TTS pipeline for short, medium and long texts.

RTF = wall time / audio duration (lower is better; below 1 is faster than real time) and xRT = its
inverse (audio seconds made per second). Reports say which in every table.

Cases (``preset`` a generator preset, ``seed``):

- without ``--frames``: the texts ``short``, ``medium``, ``long`` (13, 53 and 115 words, as in the
  generator journal; ``--param texts=short,long`` picks some), each with a fixed frame count of
  ``round(words * frames_per_word)`` (``--param frames_per_word=F``, default 5: 0.4 s of audio per
  word at 12.5 frames/s, a natural speaking rate);
- with ``--frames N …`` (or ``--param frames=25,100,400``, as ``perfkit compare`` passes it): fixed frame
  counts for one text (``--param text=medium``), the length sweep;
- ``--param batch=1,2,4`` (default 1): the batch sweep, every case above at each batch size ``B``.
  A batch is ``B`` requests of the case's text made together (item ``i`` seeded ``seed + i``) through
  :meth:`perfkit.generator_interface.GeneratorRunner.new_batch`: natively batched where the backend
  supports it (one pass per stage for the whole batch, each weight read serving ``B`` items), item after
  item otherwise; the vocoder decodes item after item. A sample's wall time is the whole batch's and its
  audio is ``B`` items' (the case's ``batch`` parameter, present when ``B > 1`` so batch-1 cases keep
  their names); the worker records ``batch_mode`` (``native`` / ``looped``) with the case.

EOS is ignored (the frame count is fixed), so the work does not depend on the synthetic weights. One
series, ``phases``: tokenize, prefill, generate (every frame), vocoder decode, with a sync at each
phase boundary only; its total per sample is the wall time. Thread sweeps are runs with different
``--threads`` (the thread count is stored with each run).
"""

from __future__ import annotations

from perfkit.errors import InputError
from perfkit.interface import Backend
from perfkit.measure.protocol import Protocol
from perfkit.measure.timers import Timer
from perfkit.run.suite import CaseRequest, Series, Suite, Workload
from perfkit.store.records import Case, Param

from ._models import TEXTS, generator_preset_name, word_count
from ._tts import PHASE_SPANS, TTSInputs, TTSPasses, prepare_tts

DEFAULT_FRAMES_PER_WORD = 5.0
_PARAMS = ("texts", "text", "frames_per_word", "frames", "batch")

#: A protocol that suits passes of seconds: fewer warm-ups and samples than the engine's default.
PROTOCOL = Protocol(warmup_rounds=1, min_samples=5, max_samples=30, budget_s=10.0, round_samples=2)


class RtfWorkload(Workload):
    def __init__(self, passes: TTSPasses) -> None:
        self.passes = passes
        self.weight_bytes = passes.weight_bytes
        self.series = (Series("phases", PHASE_SPANS, synced=True),)

    def metadata(self) -> dict[str, object]:
        """``batch`` and how the backend runs a batch: ``native`` or ``looped`` (batch-1 sessions in turn)."""
        return {"batch": self.passes.batch, "batch_mode": self.passes.synth.generator.batch_mode}

    def run(self, series: str, timer: Timer) -> None:
        if series != "phases":
            raise ValueError(f"unknown series {series!r}")
        self.passes.phases(timer)


def _batches(request: CaseRequest) -> list[int]:
    """``--param batch=1,2,4``: positive integers, in the order given, duplicates dropped; default ``[1]``."""
    raw = request.params.get("batch", "1")
    items = [b.strip() for b in raw.split(",")]
    if not any(items) or not all(b.isdigit() and int(b) > 0 for b in items):
        raise InputError(f"batch must be positive integers separated by commas, got {raw!r}")
    return list(dict.fromkeys(int(b) for b in items))


def _with_batches(cases: list[tuple[tuple[str, Param], ...]], preset: str, batches: list[int]) -> list[Case]:
    """Every case at every batch size; ``("batch", B)`` is added only for ``B > 1`` (batch-1 names unchanged)."""
    return [Case(preset, params + ((("batch", b),) if b > 1 else ())) for params in cases for b in batches]


def _texts(request: CaseRequest) -> list[str]:
    raw = request.params.get("texts")
    labels = [t.strip() for t in raw.split(",") if t.strip()] if raw else list(TEXTS)
    for label in labels:
        if label not in TEXTS:
            raise InputError(f"unknown text {label!r}; choose among {', '.join(TEXTS)}")
    return list(dict.fromkeys(labels))


class RtfSuite(Suite):
    name = "rtf"
    description = "real-time factor (wall / audio) of text -> speech for short, medium and long texts"
    protocol = PROTOCOL
    memory = True

    def cases(self, request: CaseRequest) -> list[Case]:
        generator_preset_name(request.preset)
        unknown = sorted(set(request.params) - set(_PARAMS))
        if unknown:
            raise InputError(f"suite 'rtf' takes no parameter(s) {', '.join(unknown)} "
                             f"(parameters: {', '.join(_PARAMS)})")
        try:
            per_word = float(request.params.get("frames_per_word", DEFAULT_FRAMES_PER_WORD))
        except ValueError:
            raise InputError("frames_per_word must be a number") from None
        if not per_word > 0:
            raise InputError(f"frames_per_word must be positive, got {per_word}")
        seed = int(request.seed)
        batches = _batches(request)
        fixed = tuple(request.frames)
        if not fixed and request.params.get("frames"):
            try:
                fixed = tuple(int(f) for f in request.params["frames"].split(",") if f.strip())
            except ValueError:
                raise InputError(f"frames must be integers separated by commas, got {request.params['frames']!r}") \
                    from None
        if fixed:
            if any(f <= 0 for f in fixed):
                raise InputError(f"frames must be positive, got {', '.join(map(str, fixed))}")
            text = request.params.get("text", "medium")
            if text not in TEXTS:
                raise InputError(f"unknown text {text!r}; choose one of {', '.join(TEXTS)}")
            words = word_count(TEXTS[text])
            return _with_batches([(("text", text), ("words", words), ("frames", int(f)), ("seed", seed))
                                  for f in dict.fromkeys(fixed)], request.preset, batches)
        cases = []
        for label in _texts(request):
            words = word_count(TEXTS[label])
            frames = max(1, round(words * per_word))
            cases.append((("text", label), ("words", words), ("frames", frames), ("seed", seed)))
        return _with_batches(cases, request.preset, batches)

    def prepare(self, case: Case) -> TTSInputs:
        return prepare_tts(case)

    def load(self, backend: Backend, prepared: TTSInputs) -> RtfWorkload:
        return RtfWorkload(TTSPasses(backend, prepared))


SUITE = RtfSuite()
