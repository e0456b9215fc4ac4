"""Backends come from the ``perfkit.backends`` entry-point group, loaded lazily.

In-tree backends are registered in ``pyproject.toml`` exactly like third-party ones. Loading a
backend imports its module only when it is asked for (or listed). A backend whose import fails
(a missing dependency) or whose class is malformed is listed as unavailable with the reason, and
never breaks the listing or the other backends.

Validation when an entry point is loaded (:func:`validate_backend_class`): the entry-point name, the
class (a concrete :class:`~perfkit.interface.Backend` subclass whose ``name`` is the entry-point name),
its option names and values (spellable in a variant: no ``,`` or ``=``). The stages of the runners it
makes are checked when they are made (:func:`perfkit.interface.check_vocoder_runner`). Plugin code that
raises anything but a perfkit error while options are resolved, availability is checked or the backend
is constructed makes that variant unavailable, with the exception as the reason
(:func:`resolve_options`, :func:`create`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from .errors import BackendUnavailable, InputError, PerfkitError
from .interface import Backend, Variant, VariantInfo

GROUP = "perfkit.backends"
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,39}$")
_OPTION = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_BAD_VALUE = re.compile(r"[,=\s]")


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend: its entry point and, once loaded, its class or why it cannot load."""

    name: str
    target: str
    cls: type[Backend] | None
    reason: str = ""

    @property
    def loadable(self) -> bool:
        return self.cls is not None


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=GROUP), key=lambda ep: ep.name)


def validate_backend_class(name: str, obj: object) -> type[Backend]:
    """Check a loaded entry point is a usable backend class; :class:`BackendUnavailable` says what is wrong."""
    if not _NAME.match(name):
        raise BackendUnavailable(f"entry point name {name!r} is not a valid backend name ([a-z][a-z0-9_-]*)")
    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        raise BackendUnavailable(f"entry point {name!r} does not point at a perfkit.interface.Backend subclass")
    if getattr(obj, "__abstractmethods__", None):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise BackendUnavailable(f"backend {name!r} does not implement {missing}")
    if obj.name != name:
        raise BackendUnavailable(f"backend class {obj.__qualname__} declares name {obj.name!r}, registered as {name!r}")
    if not isinstance(obj.option_choices, Mapping):
        raise BackendUnavailable(f"backend {name!r}: option_choices must map option names to their values")
    for key, values in obj.option_choices.items():
        if not isinstance(key, str) or not _OPTION.match(key):
            raise BackendUnavailable(f"backend {name!r}: option name {key!r} is not a valid option name "
                                     "([a-z][a-z0-9_]*)")
        if not isinstance(values, tuple | list) or not values or not all(isinstance(v, str) for v in values):
            raise BackendUnavailable(f"backend {name!r}: option {key!r} must list its allowed string values")
        bad = [v for v in values if not v or _BAD_VALUE.search(v)]
        if bad:
            raise BackendUnavailable(f"backend {name!r}: option {key!r} has value(s) {bad!r} that a variant "
                                     "cannot spell (empty, or with ',', '=' or spaces)")
    if not isinstance(obj.description, str):
        raise BackendUnavailable(f"backend {name!r}: description must be a string")
    return obj


def _load(ep: EntryPoint) -> BackendEntry:
    try:
        obj = ep.load()
    except ImportError as exc:
        return BackendEntry(ep.name, ep.value, None, f"cannot import: {exc}")
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the listing down
        return BackendEntry(ep.name, ep.value, None, f"import failed: {type(exc).__name__}: {exc}")
    try:
        return BackendEntry(ep.name, ep.value, validate_backend_class(ep.name, obj))
    except BackendUnavailable as exc:
        return BackendEntry(ep.name, ep.value, None, str(exc))


@cache
def _entry(name: str) -> BackendEntry | None:
    """The backend registered as ``name``, importing only its module; ``None`` if none is."""
    eps = [ep for ep in _entry_points() if ep.name == name]
    if not eps:
        return None
    entry = _load(eps[0])
    if len(eps) > 1:  # two distributions claim one name: keep the first, report the clash
        entry = BackendEntry(name, entry.target, entry.cls,
                             entry.reason or f"also registered by {eps[1].value} (ignored)")
    return entry


def _entries() -> dict[str, BackendEntry]:
    """Every registered backend, loaded (this imports all of them)."""
    names = dict.fromkeys(ep.name for ep in _entry_points())
    return {name: entry for name in names if (entry := _entry(name)) is not None}


def clear_cache() -> None:
    """Forget loaded entry points (tests that install plugins call this)."""
    _entry.cache_clear()


def backend_names() -> list[str]:
    """Registered backend names, in entry-point order (nothing is imported)."""
    return list(dict.fromkeys(ep.name for ep in _entry_points()))


def entries() -> list[BackendEntry]:
    return list(_entries().values())


def get_backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``, importing only that backend; :class:`InputError` if unknown,
    :class:`BackendUnavailable` if broken."""
    entry = _entry(name)
    if entry is None:
        raise InputError(f"unknown backend {name!r}; installed: {', '.join(backend_names()) or 'none'}")
    if entry.cls is None:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {entry.reason}")
    return entry.cls


def _plugin_failure(cls: type[Backend], what: str, exc: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"backend {cls.name!r} is unavailable: {what} failed: {type(exc).__name__}: {exc}")


def resolve_options(cls: type[Backend], options: Mapping[str, str]) -> dict[str, str]:
    """``options`` with defaults filled in, checked to run here (``check_available``).

    :class:`InputError` for unknown options or values, :class:`BackendUnavailable` when the variant
    cannot run here — or when the plugin's own code raises anything else (a bug is not a crash).
    """
    try:
        resolved = cls.resolve_options(options)
    except PerfkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - plugin code
        raise _plugin_failure(cls, "resolve_options", exc) from None
    try:
        cls.check_available(resolved)
    except PerfkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - plugin code
        raise _plugin_failure(cls, "check_available", exc) from None
    return resolved


def create(spec: str | Variant) -> Backend:
    """Instantiate a variant such as ``"torch:dtype=bfloat16"``; errors say why it cannot run (a
    constructor that raises anything but a perfkit error is :class:`BackendUnavailable` with the reason)."""
    variant = Variant.parse(spec) if isinstance(spec, str) else spec
    cls = get_backend_class(variant.backend)
    options = resolve_options(cls, variant.option_dict)
    try:
        return cls(**options)
    except PerfkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - plugin code
        raise _plugin_failure(cls, "the constructor", exc) from None


def describe_variants(name: str) -> list[VariantInfo]:
    """Every variant of ``name`` with availability; a backend that fails here is reported, not raised."""
    cls = get_backend_class(name)
    try:
        return cls.variants()
    except Exception as exc:  # noqa: BLE001 - plugin code
        return [VariantInfo({}, False, f"variants() failed: {type(exc).__name__}: {exc}")]


def iter_available(specs: Iterable[str], on_skip: Callable[[str, str], None] | None = None) -> list[Backend]:
    """Instantiate each spec; unavailable ones are reported through ``on_skip(spec, reason)`` and left out."""
    out: list[Backend] = []
    for spec in specs:
        try:
            out.append(create(spec))
        except BackendUnavailable as exc:
            if on_skip is None:
                raise
            on_skip(spec, str(exc))
    return out
