"""Work buffers kept between calls, so the vocoder's large temporaries are allocated once, not per use.

A stage of the long blocks makes the same few ``(C, T)`` temporaries again and again: three residual
units, seven taps each, in every time tile (:mod:`.tiles`) of every decode. A fresh array each time
costs its page faults and zeroing, about as much as one pass over it (96 x 96000 float32: an add into
a kept array 4.8 ms, into a new one 9.5 ms). Buffers are shared by role ("in", "out", "work", ...),
not by layer, so every stage reuses the same few and the memory held is that of the largest tile's
temporaries (the layouts tried are in ``reports/optimizations/README.md``). A stage's output is
never a scratch buffer: the caller (``trace``, a stream) may keep it.
"""

from __future__ import annotations

import math

import numpy as np


class Scratch:
    """One flat buffer per name, grown to the largest size asked; :meth:`get` returns a contiguous view.

    Two names never share memory, so buffers with different names may be used together; a name asked
    for again reuses (overwrites) the same memory, so the first view must be dead by then.

    A name's first buffer holds at least ``reserve`` elements (the vocoder's: a tile and its look-back),
    so it is allocated once instead of grown stage by stage as the tiles widen. Growing frees the old
    buffer, and the allocator keeps freed memory resident (a 4-chunk stream of the published geometry:
    23 growths, a peak 5.7 MiB higher: ``reports/optimizations/numpy-scratch-reserve``); pages of the
    reserve that are never written are never resident.
    """

    def __init__(self, dtype: np.dtype, reserve: int = 0) -> None:
        if reserve < 0:
            raise ValueError(f"reserve must be at least 0 elements, got {reserve}")
        self.dtype = np.dtype(dtype)
        self.reserve = reserve
        self._flat: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        buf = self._flat.get(name)
        if buf is None or buf.size < size:
            buf = self._flat[name] = np.empty(max(size, self.reserve if buf is None else 0), dtype=self.dtype)
        return buf[:size].reshape(shape)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._flat)

    @property
    def nbytes(self) -> int:
        """Bytes held by every buffer."""
        return sum(b.nbytes for b in self._flat.values())
