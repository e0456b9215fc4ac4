"""Backends come from the ``perfkit.backends`` entry-point group, loaded lazily.

In-tree backends are registered in ``pyproject.toml`` exactly like third-party ones. Loading a
backend imports its module only when it is asked for (or listed). A backend whose import fails
(a missing dependency) or whose class is malformed is listed as unavailable with the reason, and
never breaks the listing or the other backends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from .errors import BackendUnavailable, InputError
from .interface import Backend, Variant, VariantInfo

GROUP = "perfkit.backends"
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,39}$")


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
    for key, values in obj.option_choices.items():
        if not values or not all(isinstance(v, str) for v in values):
            raise BackendUnavailable(f"backend {name!r}: option {key!r} must list its allowed string values")
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
def _entries() -> dict[str, BackendEntry]:
    entries: dict[str, BackendEntry] = {}
    for ep in _entry_points():
        if ep.name in entries:  # two distributions claim one name: keep the first, report the clash
            first = entries[ep.name]
            entries[ep.name] = BackendEntry(ep.name, first.target, first.cls,
                                            first.reason or f"also registered by {ep.value} (ignored)")
            continue
        entries[ep.name] = _load(ep)
    return entries


def clear_cache() -> None:
    """Forget loaded entry points (tests that install plugins call this)."""
    _entries.cache_clear()


def backend_names() -> list[str]:
    return list(_entries())


def entries() -> list[BackendEntry]:
    return list(_entries().values())


def get_backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; :class:`InputError` if unknown, :class:`BackendUnavailable` if broken."""
    table = _entries()
    if name not in table:
        raise InputError(f"unknown backend {name!r}; installed: {', '.join(table) or 'none'}")
    entry = table[name]
    if entry.cls is None:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {entry.reason}")
    return entry.cls


def create(spec: str | Variant) -> Backend:
    """Instantiate a variant such as ``"torch:dtype=bfloat16"``; errors say why it cannot run."""
    variant = Variant.parse(spec) if isinstance(spec, str) else spec
    cls = get_backend_class(variant.backend)
    options = cls.resolve_options(variant.option_dict)
    cls.check_available(options)
    return cls(**options)


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
