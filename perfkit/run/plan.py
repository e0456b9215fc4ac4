"""The plan: which backend variants, which cases, under which protocol and worker settings.

:func:`make_plan` resolves what the user typed: each backend spec to its full variant label (defaults
spelled out, duplicates merged), unavailable variants set aside with their reason (reported and
skipped, never fatal), and the suite's cases. Unknown backends, options, suites or presets are
:class:`~perfkit.errors.InputError` / ``ConfigError``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any

from .. import registry
from ..errors import BackendUnavailable, InputError
from ..interface import Backend, Variant
from ..measure.protocol import Protocol
from ..store.records import Case, Skipped
from .suite import CaseRequest, get_suite, suite_module

#: Thread variables a worker gets when a thread count is set (read before libraries load).
THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS",
)


@dataclass(frozen=True)
class BackendRef:
    """A backend variant to measure: ``spec`` (``name:key=value,…``) and, for a backend outside the
    registry (the tests' fake), ``target`` = ``module:Class``.

    ``source``: the root of another source tree (a git worktree of this repository) whose code the
    worker runs instead of this tree's (:mod:`perfkit.run.source_tree`), and ``tag`` (e.g. ``base``),
    which tells the two apart: the label is then ``numpy:dtype=float32@base``.
    """

    spec: str
    target: str = ""
    source: str = ""
    tag: str = ""

    def __post_init__(self) -> None:
        if self.source and not self.tag:
            raise InputError(f"{self.spec}: a variant from another source tree needs a tag")
        if "@" in self.tag or "," in self.tag:
            raise InputError(f"tag {self.tag!r} may not contain '@' or ','")

    @property
    def variant(self) -> Variant:
        return Variant.parse(self.spec)

    @property
    def label(self) -> str:
        """The variant's label, with ``@tag`` when tagged."""
        return self.variant.label + (f"@{self.tag}" if self.tag else "")

    def untagged(self) -> BackendRef:
        """This variant as measured from this tree."""
        return BackendRef(self.spec, self.target)

    def from_source(self, source: str, tag: str) -> BackendRef:
        """This variant, measured from the tree at ``source`` and labelled ``…@tag``."""
        return BackendRef(self.spec, self.target, source, tag)

    @property
    def module(self) -> str | None:
        """The module holding the backend (for its source hash), or ``None`` if unknown."""
        if self.target:
            return self.target.partition(":")[0]
        eps = [ep for ep in entry_points(group=registry.GROUP) if ep.name == self.variant.backend]
        return eps[0].value.partition(":")[0] if eps else None

    def to_dict(self) -> dict[str, str]:
        extra = {"source": self.source, "tag": self.tag} if self.source or self.tag else {}
        return {"spec": self.spec, "target": self.target, **extra}


@dataclass(frozen=True)
class WorkerSettings:
    """Per-worker settings: ``threads`` for every thread pool (``None``: leave them as they are),
    ``timeout_s`` for any one request (set-up or one visit), ``memory_limit_bytes`` (``RLIMIT_AS``)."""

    threads: int | None = None
    timeout_s: float = 600.0
    memory_limit_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        if not self.timeout_s > 0:
            raise InputError(f"timeout must be positive, got {self.timeout_s}")
        if self.memory_limit_bytes is not None and self.memory_limit_bytes < 64 * 2**20:
            raise InputError(f"memory limit must be at least 64 MiB, got {self.memory_limit_bytes} bytes")

    def worker_env(self, base: Mapping[str, str] | None = None,
                   backend: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a worker: ``base`` (default ``os.environ``) with the thread variables set,
        then the backend's :attr:`~perfkit.interface.Backend.worker_environment` for every variable
        ``base`` does not set."""
        env = dict(os.environ if base is None else base)
        if self.threads is not None:
            env.update(dict.fromkeys(THREAD_ENV_VARS, str(self.threads)))
        for key, value in (backend or {}).items():
            env.setdefault(key, value)
        return env

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """Variants x cases of one suite; ``memory`` adds a memory pass per (variant, case)."""

    suite: str
    variants: tuple[BackendRef, ...]
    cases: tuple[Case, ...]
    protocol: Protocol = field(default_factory=Protocol)
    settings: WorkerSettings = field(default_factory=WorkerSettings)
    memory: bool = False
    skipped: tuple[Skipped, ...] = ()

    @property
    def suite_module(self) -> str:
        return suite_module(self.suite)


def paired_plan(plan: Plan, source: str, tag: str = "base") -> Plan:
    """``plan`` with every variant measured twice, from ``source`` (tagged ``tag``) and from this tree,
    side by side (``A@base, A, B@base, B …``): the engine interleaves their visits, so drift in the
    machine hits both commits alike."""
    variants = tuple(r for ref in plan.variants for r in (ref.from_source(source, tag), ref))
    return replace(plan, variants=variants)


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name``, importing *only* that backend (a worker measuring NumPy
    must not carry torch in its memory or its start-up): :func:`perfkit.registry.get_backend_class`.
    :class:`InputError` for an unknown name, :class:`BackendUnavailable` for one that cannot be imported
    or is malformed."""
    return registry.get_backend_class(name)


def ref_class(spec: str, target: str = "") -> type[Backend]:
    """The class of a variant: ``target`` (``module:Class``, imported) when given, else the registry's
    backend named in ``spec``."""
    if target:
        module, _, cls_name = target.partition(":")
        return getattr(importlib.import_module(module), cls_name)
    return backend_class(Variant.parse(spec).backend)


def worker_environment(spec: str, target: str = "") -> dict[str, str]:
    """The variables a worker measuring this variant starts with
    (:attr:`~perfkit.interface.Backend.worker_environment`); ``{}`` when the class cannot be imported
    (its worker then reports why)."""
    try:
        return {str(k): str(v) for k, v in ref_class(spec, target).worker_environment.items()}
    except (BackendUnavailable, ImportError, AttributeError):
        return {}


def resolve_variant(spec: str) -> BackendRef:
    """``spec`` with every option spelled out; :class:`BackendUnavailable` if it cannot run here,
    :class:`InputError` if the backend or an option is unknown."""
    variant = Variant.parse(spec)
    cls = backend_class(variant.backend)
    options = registry.resolve_options(cls, variant.option_dict)
    return BackendRef(Variant(variant.backend, tuple(sorted(options.items()))).label)


def make_plan(suite: str, specs: Iterable[str], request: CaseRequest, *, protocol: Protocol | None = None,
              settings: WorkerSettings | None = None, memory: bool = False,
              extra: Iterable[BackendRef] = ()) -> Plan:
    """Resolve ``specs`` (registry backends) plus ``extra`` refs (used as given) into a :class:`Plan`."""
    cases = tuple(get_suite(suite).cases(request))
    if not cases:
        raise InputError(f"suite {suite!r} has no cases for preset {request.preset!r}")
    refs: dict[str, BackendRef] = {}
    skipped: list[Skipped] = []
    for spec in specs:
        try:
            ref = resolve_variant(spec)
        except BackendUnavailable as exc:
            skipped.append(Skipped(spec, str(exc)))
            continue
        refs.setdefault(ref.label, ref)
    for ref in extra:
        refs.setdefault(ref.label, ref)
    return Plan(suite, tuple(refs.values()), cases, protocol or Protocol(), settings or WorkerSettings(),
                memory, tuple(skipped))
