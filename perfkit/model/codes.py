"""Codec codes: ``(num_quantizers, frames)`` integer arrays, saved as ``.npy``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .vocoder_config import VocoderConfig


def synthetic_codes(config: VocoderConfig, frames: int, seed: int = 0) -> np.ndarray:
    """Uniformly random valid codes, ``(num_quantizers, frames)`` int64, deterministic per seed."""
    if frames <= 0:
        raise InputError(f"frames must be positive, got {frames}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC0DE5]))
    highs = np.array([config.codebook_size_of(q) for q in range(config.num_quantizers)])[:, None]
    return (rng.random((config.num_quantizers, frames)) * highs).astype(np.int64)


def check_codes_path(path: str | os.PathLike[str]) -> Path:
    """Fail early on a codes output perfkit cannot write: a ``.npy`` name in an existing directory."""
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise InputError(f"codes output {p}: use a .npy file name")
    if str(p.parent) not in ("", ".") and not p.parent.exists():
        raise InputError(f"codes output {p}: directory {p.parent} does not exist")
    return p


def load_codes(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.npy`` codes file (no pickle) as int64; :class:`InputError` if it cannot be."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"codes file not found: {p}")
    try:
        codes = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{p}: not a readable .npy array ({exc})") from None
    if not np.issubdtype(codes.dtype, np.integer):
        raise InputError(f"{p}: codes must be integers, got dtype {codes.dtype}")
    return codes.astype(np.int64)


def validate_codes(codes: np.ndarray, config: VocoderConfig) -> np.ndarray:
    """Check shape ``(num_quantizers, frames)`` and every code against its codebook; return int64 codes."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise InputError(f"codes must have shape (num_quantizers, frames), got shape {codes.shape}")
    if codes.shape[0] != config.num_quantizers:
        raise InputError(f"codes have {codes.shape[0]} codebooks, the model expects {config.num_quantizers}")
    if codes.shape[1] == 0:
        raise InputError("codes have zero frames")
    if not np.issubdtype(codes.dtype, np.integer):
        raise InputError(f"codes must be integers, got dtype {codes.dtype}")
    for q in range(codes.shape[0]):
        high = config.codebook_size_of(q)
        row = codes[q]
        bad = np.flatnonzero((row < 0) | (row >= high))
        if bad.size:
            t = int(bad[0])
            raise InputError(f"code {int(row[t])} at codebook {q}, frame {t} is out of range [0, {high})")
    return codes.astype(np.int64, copy=False)
