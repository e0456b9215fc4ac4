"""Scratch buffers sized once per model and input length, reused by every call.

A :class:`Workspace` hands out C-contiguous arrays by name. Each name owns one flat buffer that
grows (reallocates) only when a larger shape is asked for; a later, smaller request returns a
contiguous view of its first elements. Decoding the same length again therefore allocates
nothing, and a stream of equal chunks allocates only for its first chunk.

An array handed out stays valid until the same name is asked for again; stage outputs each have
their own name (``out.<stage>``), so every output of one decode stays valid until the next
decode, and scratch shared between stages (``snake``, ``cols`` …) is never returned to callers.
"""

from __future__ import annotations

import math

import numpy as np


class Workspace:
    """Named, growable scratch arrays of one dtype."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self._flat: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype | None = None) -> np.ndarray:
        """A C-contiguous ``shape`` array (contents undefined) backed by buffer ``name``."""
        dt = self.dtype if dtype is None else np.dtype(dtype)
        size = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.size < size or flat.dtype != dt:
            flat = np.empty(max(size, 1), dtype=dt)
            self._flat[name] = flat
        return flat[:size].reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes held by every buffer (the scratch memory of the runner)."""
        return sum(int(b.nbytes) for b in self._flat.values())

    def clear(self) -> None:
        self._flat.clear()
