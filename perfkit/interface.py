"""What a backend is. Read this module first.

A *backend* is one full implementation of the reference model (NumPy, Numba, torch, yours).
It is registered under the ``perfkit.backends`` entry-point group and configured by string
options, e.g. ``torch:device=cuda,dtype=bfloat16`` (a :class:`Variant`).

The framework never calls the model as a black box: it drives the model's canonical stages
(:mod:`perfkit.model.stages`) one at a time. That single mechanism gives per-stage timing
(run a stage, :meth:`Backend.synchronize`), per-stage parity (:meth:`Backend.to_host` and
compare with the float64 NumPy reference), streaming (the same stages with carried state),
and journal rows. A backend therefore implements:

- :meth:`Backend.load_vocoder` -> a :class:`VocoderRunner` whose :meth:`VocoderRunner.run_stage`
  runs one *fine* stage (``rvq_decode`` … ``block_0.tconv``, ``block_0.resunits`` … ``final``)
  on backend-native arrays;
- :meth:`Backend.load_generator` -> a generator runner (see :mod:`perfkit.generator_interface`);
- :meth:`Backend.synchronize` and :meth:`Backend.to_host` for its device.

The runners a backend returns are checked as they are made (:func:`check_vocoder_runner`,
:func:`check_generator_runner`, applied to every subclass's ``load_vocoder`` / ``load_generator``):
a runner must be of the right kind and declare exactly the canonical stage names, in order, or the
load fails with :class:`~perfkit.errors.BackendUnavailable` naming the difference — so a plugin can
never put stage names of its own into the results.

Streaming state: every vocoder stage is causal. A stage receives the ``state`` dict of the
utterance and keeps there what the next chunk needs (convolution tails, the sliding-window KV
cache, the position). A fresh state (:meth:`VocoderRunner.new_state`) means "start of the
utterance"; decoding offline is decoding one chunk with a fresh state, so streamed audio equals
offline audio by construction and a chunk's cost does not grow with its position.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import BackendUnavailable, InputError
from .model.codes import validate_codes
from .model.stages import GENERATOR_STAGES, substages, vocoder_fine_stages, vocoder_stages
from .model.vocoder_config import VocoderConfig

if TYPE_CHECKING:
    from .model.vocoder_model import VocoderModel

Array = Any
"""A backend-native array (``np.ndarray``, ``torch.Tensor`` …); only the backend looks inside."""

State = dict[str, Any]
"""Per-utterance streaming state, keyed by stage name; owned and interpreted by the runner."""


# --------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """A backend name plus options, written ``name`` or ``name:key=value,key=value``."""

    backend: str
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Variant:
        name, _, rest = spec.strip().partition(":")
        if not name:
            raise InputError(f"empty backend name in {spec!r}")
        opts: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise InputError(f"backend option {item!r} in {spec!r} is not key=value")
            if key in opts:
                raise InputError(f"backend option {key!r} given twice in {spec!r}")
            opts[key] = value
        return cls(name, tuple(sorted(opts.items())))

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)

    @property
    def label(self) -> str:
        """The canonical spelling, ``name:key=value,…`` with keys sorted (``name`` without options)."""
        if not self.options:
            return self.backend
        return self.backend + ":" + ",".join(f"{k}={v}" for k, v in self.options)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class VariantInfo:
    """One selectable configuration of a backend and whether it can run on this machine."""

    options: Mapping[str, str]
    available: bool
    reason: str = ""


# --------------------------------------------------------------------------- the backend
class Backend(abc.ABC):
    """One implementation of the reference model.

    Subclasses declare :attr:`name`, :attr:`option_choices` (every option with its allowed
    values, the first being the default) and implement the abstract methods. The constructor
    receives the options as strings and must raise :class:`BackendUnavailable` with a reason
    when the variant cannot run here (no CUDA device, unsupported dtype).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    worker_environment: ClassVar[Mapping[str, str]] = {}
    """Environment variables a perfkit worker measuring this backend starts with: settings its libraries
    read once, when they load, so they cannot be changed from inside the process (NumPy's OpenBLAS
    reads ``OPENBLAS_THREAD_TIMEOUT`` that way). A variable already set in perfkit's environment keeps
    its value. Code that uses the backend in its own process sets these itself, before the import."""

    def __init__(self, **options: str) -> None:
        self.options = self.resolve_options(options)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every ``load_vocoder`` / ``load_generator`` a subclass defines has its runner checked."""
        super().__init_subclass__(**kwargs)
        for method, check in (("load_vocoder", _checked_vocoder), ("load_generator", _checked_generator)):
            own = cls.__dict__.get(method)
            if own is not None and not getattr(own, "_perfkit_checked", False):
                setattr(cls, method, check(own))

    @classmethod
    def resolve_options(cls, options: Mapping[str, str]) -> dict[str, str]:
        """Defaults filled in; unknown options and values are :class:`InputError`."""
        resolved = {k: v[0] for k, v in cls.option_choices.items()}
        for key, value in options.items():
            if key not in cls.option_choices:
                known = ", ".join(cls.option_choices) or "none"
                raise InputError(f"backend {cls.name!r} has no option {key!r} (options: {known})")
            if value not in cls.option_choices[key]:
                raise InputError(
                    f"backend {cls.name!r}: {key}={value!r} is not one of {', '.join(cls.option_choices[key])}"
                )
            resolved[key] = value
        return resolved

    @classmethod
    def variants(cls) -> list[VariantInfo]:
        """Every combination worth listing with availability; default: try to construct each."""
        infos = []
        for combo in _combinations(cls.option_choices):
            try:
                cls.check_available(combo)
                infos.append(VariantInfo(combo, True))
            except BackendUnavailable as exc:
                infos.append(VariantInfo(combo, False, str(exc)))
        return infos

    @classmethod
    def check_available(cls, options: Mapping[str, str]) -> None:
        """Raise :class:`BackendUnavailable` if this variant cannot run here (cheap: no model loaded)."""
        return None

    @property
    def variant(self) -> Variant:
        """This instance's variant with every option spelled out (defaults included)."""
        return Variant(self.name, tuple(sorted(self.options.items())))

    @property
    def dtype_name(self) -> str:
        """The compute dtype, for tolerance tables (``float32``, ``float64``, ``bfloat16`` …)."""
        return self.options.get("dtype", "float32")

    # ---- device
    def synchronize(self) -> None:
        """Block until queued work is done (CPU backends: nothing to do)."""
        return None

    def compute_device(self) -> str:
        """Where this backend computes: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

        The measurement engine times ``cuda*`` backends with CUDA events (one synchronisation where a
        measurement ends) and reads torch's CUDA peak-memory counters for them. Default: the ``device``
        option when the backend has one, else ``"cpu"``.
        """
        return str(self.options.get("device", "cpu"))

    def event_timer(self) -> Any:
        """A :class:`perfkit.measure.timers.Timer` for a device the engine does not know, or ``None``
        (the default) to let it choose: ``perf_counter_ns`` on the CPU, CUDA events on ``cuda*``."""
        return None

    @abc.abstractmethod
    def to_host(self, x: Array) -> np.ndarray:
        """A backend array as a NumPy array on the host (a copy where needed)."""

    # ---- models
    @abc.abstractmethod
    def load_vocoder(self, model: VocoderModel) -> VocoderRunner:
        """Convert ``model``'s weights to this backend (dtype, device, layout) once."""

    def load_generator(self, model: Any, vocoder: VocoderModel | None = None) -> Any:
        """The generator runner (see :mod:`perfkit.generator_interface`); optional for vocoder-only backends."""
        raise BackendUnavailable(f"backend {self.name!r} does not implement the generator")

    def thread_settings(self) -> dict[str, int]:
        """Thread counts this backend's libraries use now (recorded with every result)."""
        return {}


class VocoderRunner(abc.ABC):
    """A vocoder loaded into a backend. Arrays are backend-native; shapes as in :mod:`perfkit.model.vocoder_config`."""

    def __init__(self, config: VocoderConfig) -> None:
        self.config = config

    @property
    def stages(self) -> tuple[str, ...]:
        """Fine stages in order (``block_i`` split into ``block_i.tconv`` / ``block_i.resunits``)."""
        return vocoder_fine_stages(self.config)

    @property
    def coarse_stages(self) -> tuple[str, ...]:
        return vocoder_stages(self.config)

    def new_state(self) -> State:
        """State for the start of an utterance."""
        return {}

    @abc.abstractmethod
    def upload_codes(self, codes: np.ndarray) -> Array:
        """``(Q, T)`` int64 host codes -> the backend array ``rvq_decode`` takes."""

    @abc.abstractmethod
    def run_stage(self, stage: str, x: Array, state: State) -> Array:
        """Run one fine stage on ``x`` (the previous stage's output, or uploaded codes for ``rvq_decode``).

        A stage leaves ``x`` unchanged. Its output is valid at least until two more stages have run: a
        runner may reuse that memory then (the numba runner alternates two buffers), so a caller that
        keeps an output longer keeps a copy (:meth:`Backend.to_host`, or ``copy.deepcopy``).
        """

    def run_coarse(self, stage: str, x: Array, state: State) -> Array:
        """A coarse stage: its fine stages back to back, no synchronisation in between."""
        for fine in substages(stage):
            x = self.run_stage(fine, x, state)
        return x

    def decode(self, codes: Array, state: State | None = None) -> Array:
        """Every stage in order: uploaded codes -> ``(T * total_upsample,)`` waveform (no syncs)."""
        state = self.new_state() if state is None else state
        x = codes
        for stage in self.stages:
            x = self.run_stage(stage, x, state)
        return x

    def trace(self, codes: Array, state: State | None = None) -> Iterator[tuple[str, Array]]:
        """Run every fine stage, yielding ``(stage, output)`` as each finishes (for parity)."""
        state = self.new_state() if state is None else state
        x = codes
        for stage in self.stages:
            x = self.run_stage(stage, x, state)
            yield stage, x


def _stage_difference(declared: object, canonical: tuple[str, ...]) -> str:
    try:
        got = tuple(declared)  # type: ignore[call-overload]
    except TypeError:
        return f"{type(declared).__name__}, not a sequence of stage names"
    missing = [s for s in canonical if s not in got]
    extra = [str(s) for s in got if s not in canonical]
    parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(extra)}" if extra else ""]
    return "; ".join(p for p in parts if p) or "the canonical stages in another order"


def check_vocoder_runner(backend: str, runner: object, config: VocoderConfig) -> VocoderRunner:
    """``runner`` if it is a :class:`VocoderRunner` declaring the canonical fine and coarse stages of
    ``config``; :class:`BackendUnavailable` saying what differs otherwise."""
    if not isinstance(runner, VocoderRunner):
        raise BackendUnavailable(f"backend {backend!r}: load_vocoder returned a {type(runner).__name__}, "
                                 "not a perfkit.interface.VocoderRunner")
    for what, declared, canonical in (("stages", runner.stages, vocoder_fine_stages(config)),
                                      ("coarse_stages", runner.coarse_stages, vocoder_stages(config))):
        if not isinstance(declared, tuple | list) or tuple(declared) != canonical:
            raise BackendUnavailable(f"backend {backend!r}: its vocoder runner's {what} are not the canonical "
                                     f"stages ({_stage_difference(declared, canonical)})")
    return runner


def check_generator_runner(backend: str, runner: object) -> Any:
    """``runner`` if it declares exactly :data:`~perfkit.model.stages.GENERATOR_STAGES`;
    :class:`BackendUnavailable` otherwise (the class is checked by the generator interface's users)."""
    declared = getattr(runner, "stages", None)
    if not isinstance(declared, tuple | list) or tuple(declared) != GENERATOR_STAGES:
        raise BackendUnavailable(f"backend {backend!r}: its generator runner's stages are not the canonical "
                                 f"stages ({_stage_difference(declared, GENERATOR_STAGES)})")
    return runner


def _checked_vocoder(load: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(load)
    def load_vocoder(self: Backend, model: VocoderModel, *args: Any, **kwargs: Any) -> VocoderRunner:
        return check_vocoder_runner(self.name, load(self, model, *args, **kwargs), model.config)

    load_vocoder._perfkit_checked = True  # type: ignore[attr-defined]
    return load_vocoder


def _checked_generator(load: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(load)
    def load_generator(self: Backend, *args: Any, **kwargs: Any) -> Any:
        return check_generator_runner(self.name, load(self, *args, **kwargs))

    load_generator._perfkit_checked = True  # type: ignore[attr-defined]
    return load_generator


def decode_to_host(backend: Backend, runner: VocoderRunner, codes: np.ndarray) -> np.ndarray:
    """Validate host codes, decode them, return the float waveform on the host."""
    codes = validate_codes(codes, runner.config)
    wav = runner.decode(runner.upload_codes(codes))
    backend.synchronize()
    return backend.to_host(wav)


@dataclass
class VocoderStream:
    """Incremental decoding: push code chunks, get exactly the matching audio chunk back.

    ``push(codes[:, a:b])`` returns ``(b - a) * total_upsample`` samples equal to that slice of the
    offline decode, because every stage carries its state between chunks.
    """

    backend: Backend
    runner: VocoderRunner
    state: State = field(default_factory=dict)
    frames: int = 0

    def __post_init__(self) -> None:
        self.state = self.runner.new_state()

    def push(self, codes: np.ndarray) -> np.ndarray:
        codes = validate_codes(codes, self.runner.config)
        wav = self.runner.decode(self.runner.upload_codes(codes), self.state)
        self.backend.synchronize()
        self.frames += codes.shape[1]
        return self.backend.to_host(wav)


def _combinations(choices: Mapping[str, tuple[str, ...]]) -> list[dict[str, str]]:
    combos: list[dict[str, str]] = [{}]
    for key, values in choices.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return combos
