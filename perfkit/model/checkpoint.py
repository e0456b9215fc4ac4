"""Model directories: ``config.json`` + ``model.safetensors``, read and written with safetensors only.

Nothing in a model directory is executed and nothing is unpickled. The layout is the official one:
tensors under their state-dict names (the vocoder's behind a ``decoder.`` prefix, the generator's
behind ``talker.``), the geometry in ``config.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
Shape = tuple[int, ...]


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.json`` of a model directory; :class:`CheckpointError` if missing or malformed."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"model directory not found: {path}")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing (a model directory needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{cfg_path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_tensors(directory: str | os.PathLike[str], prefix: str) -> dict[str, np.ndarray]:
    """All tensors whose name starts with ``prefix``, the prefix stripped, as NumPy arrays.

    bfloat16 tensors are widened to float32 (NumPy has no bfloat16).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a model directory needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="numpy") as f:
            names = [k for k in f.keys() if k.startswith(prefix)]
            for key in names:
                out[key[len(prefix):]] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        if "bf16" in str(exc).lower() or "bfloat16" in str(exc).lower():  # NumPy has no bfloat16
            return _read_bf16_via_torch(path, prefix)
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    return out


def _read_bf16_via_torch(path: Path, prefix: str) -> dict[str, np.ndarray]:
    """bfloat16 checkpoints (the published ones) need torch to widen to float32."""
    try:
        import torch
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{path}: holds bfloat16 tensors; install torch to read them") from None
    tensors = load_file(str(path))
    return {k[len(prefix):]: v.to(torch.float32).numpy() for k, v in tensors.items() if k.startswith(prefix)}


def check_tensors(
    tensors: Mapping[str, np.ndarray],
    expected: Mapping[str, Shape],
    *,
    where: str,
    ignored_suffixes: tuple[str, ...] = (),
    prefix: str = "",
) -> dict[str, np.ndarray]:
    """Validate names, shapes and values; return the expected tensors as contiguous float32.

    Raises :class:`CheckpointError` naming the first missing, unexpected, mis-shaped or
    non-finite tensor (with both shapes where they differ), spelled as stored (``prefix`` + name).
    """
    missing = [k for k in expected if k not in tensors]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        name = missing[0]
        raise CheckpointError(f"{where}: missing tensor {prefix + name!r}, expected shape {expected[name]}{more}")
    unexpected = [k for k in tensors if k not in expected and not k.endswith(ignored_suffixes)]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{where}: unexpected tensor {prefix + unexpected[0]!r}{more}")
    out: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        arr = np.asarray(tensors[name])
        label = f"{where}: tensor {prefix + name!r}"
        if tuple(arr.shape) != tuple(shape):
            raise CheckpointError(f"{label} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointError(f"{label} has dtype {arr.dtype}, expected a float type")
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{label} holds NaN or Inf values")
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def write_model_dir(
    directory: str | os.PathLike[str],
    config: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    prefix: str,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (tensors under ``prefix``), each atomically.

    An existing directory is updated in place; its other files are left alone.
    """
    from safetensors.numpy import save_file

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    payload = {f"{prefix}{k}": np.ascontiguousarray(v) for k, v in tensors.items()}
    _atomic_write(path / WEIGHTS_FILE, lambda tmp: save_file(payload, tmp))
    text = json.dumps(dict(config), indent=2, sort_keys=True) + "\n"
    _atomic_write(path / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def _atomic_write(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
