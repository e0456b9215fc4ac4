"""Writing waveforms: ``.wav`` (mono float32 at the model's rate) or ``.npy`` (raw float32 samples)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

AUDIO_SUFFIXES = (".wav", ".npy")


def check_audio_path(path: str | os.PathLike[str]) -> Path:
    """Fail early (before any work) on an output path perfkit cannot write."""
    p = Path(path)
    if p.suffix.lower() not in AUDIO_SUFFIXES:
        raise InputError(f"output {p}: use a .wav or .npy file name")
    if not p.parent.exists() and str(p.parent) not in ("", "."):
        raise InputError(f"output {p}: directory {p.parent} does not exist")
    return p


def write_audio(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> Path:
    """``samples``: ``(n,)`` floats. ``.wav`` -> 32-bit float WAV, ``.npy`` -> float32 array."""
    p = check_audio_path(path)
    data = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
    if p.suffix.lower() == ".npy":
        np.save(p, data, allow_pickle=False)
    else:
        import soundfile

        soundfile.write(str(p), data, sample_rate, subtype="FLOAT")
    return p
