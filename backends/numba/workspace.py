"""Scratch buffers sized once per model and input length, reused by every call.

A :class:`Workspace` hands out C-contiguous arrays by name. Each name owns one flat buffer that
grows (reallocates) only when a larger shape is asked for; a later, smaller request returns a
contiguous view of its first elements. Decoding the same length again therefore allocates
nothing, and a stream of equal chunks allocates only for its first chunk.

An array handed out stays valid until the same name is asked for again. Stage outputs come from
two buffers used in turn (:meth:`Workspace.output`: the one that does not hold the stage's input),
so the scratch of a decode is two of its largest activations plus tile-sized buffers, not one
buffer per stage; a stage's output stays valid until two more stages have run. Scratch shared
between stages (``snake``, ``cols`` …) is never returned to callers.
"""

from __future__ import annotations

import math

import numpy as np

#: The two buffers stage outputs alternate between.
OUTPUT_BUFFERS = ("out.0", "out.1")


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

    def output(self, shape: tuple[int, ...], avoid: np.ndarray) -> np.ndarray:
        """A stage's output array: from the first of :data:`OUTPUT_BUFFERS` that does not hold ``avoid``
        (the stage's input), so that a chain of stages alternates between the two."""
        first, second = OUTPUT_BUFFERS
        held = self._flat.get(first)
        return self.get(second if held is not None and np.may_share_memory(held, avoid) else first, shape)

    @property
    def sizes(self) -> dict[str, int]:
        """Bytes held per buffer name."""
        return {name: int(b.nbytes) for name, b in self._flat.items()}

    @property
    def nbytes(self) -> int:
        """Bytes held by every buffer (the scratch memory of the runner)."""
        return sum(self.sizes.values())

    def clear(self) -> None:
        self._flat.clear()
