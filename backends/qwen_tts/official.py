"""Finding and importing the official decoder code of the ``qwen-tts`` package without its heavy extras.

``import qwen_tts`` runs the package ``__init__``, which imports the whole inference stack (the talker,
the 25 Hz tokenizer, and through them torchaudio, librosa, soundfile, …). The decoder perfkit compares
against needs only two files, ``qwen_tts/core/tokenizer_12hz/configuration_qwen3_tts_tokenizer_v2.py``
and ``modeling_qwen3_tts_tokenizer_v2.py``, and those need only ``torch`` and ``transformers``. So:

1. if the official modeling module is already imported (the user imported ``qwen_tts``), it is used;
2. otherwise the installed package is *located* with :func:`importlib.util.find_spec` (which does not run
   its ``__init__``), and the two files are executed as modules of a private package,
   ``_perfkit_qwen_tts_12hz``, whose ``__path__`` is the ``tokenizer_12hz`` directory, so the modeling
   file's relative import of its configuration resolves there. Nothing is added under the ``qwen_tts``
   name: a later ``import qwen_tts`` by the user imports the real package normally.

The code that runs is the installed package's own source, unmodified.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from perfkit.errors import BackendUnavailable

INSTALL_HINT = ("pip install --no-deps qwen-tts==0.1.1 && pip install transformers==4.57.3 accelerate "
                "(--no-deps: the decoder needs none of the package's audio dependencies)")
NOT_INSTALLED = f"the qwen-tts package is not installed: {INSTALL_HINT}"
OFFICIAL_PACKAGE = "qwen_tts.core.tokenizer_12hz"
CONFIG_MODULE = "configuration_qwen3_tts_tokenizer_v2"
MODELING_MODULE = "modeling_qwen3_tts_tokenizer_v2"
PRIVATE_PACKAGE = "_perfkit_qwen_tts_12hz"
REQUIRED = ("torch", "transformers")
TESTED_VERSION = "0.1.1"


@dataclass(frozen=True)
class OfficialDecoder:
    """The official classes and where they came from."""

    config_cls: Any  # Qwen3TTSTokenizerV2DecoderConfig
    decoder_cls: Any  # Qwen3TTSTokenizerV2Decoder
    source: str  # the tokenizer_12hz directory
    qwen_tts_version: str | None
    transformers_version: str | None


def _find_spec(name: str) -> Any:
    """:func:`importlib.util.find_spec`: locates a top-level package without running it (tests replace it)."""
    return importlib.util.find_spec(name)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _exec_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_private(directory: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """Execute the two files as ``_perfkit_qwen_tts_12hz.<module>`` (once per process)."""
    pkg = sys.modules.get(PRIVATE_PACKAGE)
    if pkg is None:
        pkg = types.ModuleType(PRIVATE_PACKAGE, "private home of qwen_tts/core/tokenizer_12hz (see perfkit)")
        pkg.__path__ = [str(directory)]
        sys.modules[PRIVATE_PACKAGE] = pkg
    try:
        cfg = sys.modules.get(f"{PRIVATE_PACKAGE}.{CONFIG_MODULE}") or _exec_file(
            f"{PRIVATE_PACKAGE}.{CONFIG_MODULE}", directory / f"{CONFIG_MODULE}.py")
        modeling = sys.modules.get(f"{PRIVATE_PACKAGE}.{MODELING_MODULE}") or _exec_file(
            f"{PRIVATE_PACKAGE}.{MODELING_MODULE}", directory / f"{MODELING_MODULE}.py")
    except BaseException:
        for name in [k for k in sys.modules if k == PRIVATE_PACKAGE or k.startswith(PRIVATE_PACKAGE + ".")]:
            del sys.modules[name]
        raise
    return cfg, modeling


def load_official() -> OfficialDecoder:
    """The official decoder classes; :class:`BackendUnavailable` saying why not (both cached per process)."""
    found, reason = _load_once()
    if found is None:
        raise BackendUnavailable(reason)
    return found


@cache
def _load_once() -> tuple[OfficialDecoder | None, str]:
    try:
        return _load(), ""
    except BackendUnavailable as exc:
        return None, str(exc)


def _load() -> OfficialDecoder:
    already = sys.modules.get(f"{OFFICIAL_PACKAGE}.{MODELING_MODULE}")
    if already is not None:
        cfg_mod = sys.modules[f"{OFFICIAL_PACKAGE}.{CONFIG_MODULE}"]
        return OfficialDecoder(cfg_mod.Qwen3TTSTokenizerV2DecoderConfig, already.Qwen3TTSTokenizerV2Decoder,
                               str(Path(already.__file__ or "").parent), _version("qwen-tts"),
                               _version("transformers"))
    try:
        spec = _find_spec("qwen_tts")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(NOT_INSTALLED)
    directory = Path(list(spec.submodule_search_locations)[0]) / "core" / "tokenizer_12hz"
    if not (directory / f"{MODELING_MODULE}.py").is_file():
        found = _version("qwen-tts") or "unknown"
        raise BackendUnavailable(f"the installed qwen-tts ({found}) has no {directory}/{MODELING_MODULE}.py; "
                                 f"{INSTALL_HINT}")
    for dep in REQUIRED:
        if _find_spec(dep) is None:
            raise BackendUnavailable(f"the official decoder needs {dep}, which is not installed: "
                                     f"{INSTALL_HINT}")
    try:
        cfg_mod, modeling = _load_private(directory)
    except Exception as exc:  # noqa: BLE001 - an incompatible transformers fails in many ways
        raise BackendUnavailable(
            f"cannot import the official decoder from {directory} with transformers "
            f"{_version('transformers')}: {type(exc).__name__}: {exc} ({INSTALL_HINT})") from exc
    return OfficialDecoder(cfg_mod.Qwen3TTSTokenizerV2DecoderConfig, modeling.Qwen3TTSTokenizerV2Decoder,
                           str(directory), _version("qwen-tts"), _version("transformers"))


def unavailable_reason() -> str:
    """Why the official decoder cannot be imported here, or ``""``."""
    try:
        load_official()
    except BackendUnavailable as exc:
        return str(exc)
    return ""
