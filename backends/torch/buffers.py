"""Two buffers the long stages' outputs alternate between, kept for the runner's lifetime.

A fresh ``torch.empty`` of a block's output (block 3 of a 50-frame decode: 96000 x 96 float32, 35 MiB)
is memory glibc maps anew on every call, and every first write to it is a page fault (9,000–18,000 a
decode). The runner contract (:meth:`perfkit.interface.VocoderRunner.run_stage`) keeps a stage's output
valid only until two more stages have run, so these outputs can come from two buffers used in turn,
the one that does not hold the stage's input, as the numba runner's workspace does. Each buffer grows
to the largest request and is then reused; a smaller request is a view of its first elements.

:meth:`StageOutputs.reserve` sizes both buffers once, for the largest output still to come: grown
stage by stage instead, a decode frees a buffer of every block's size, and glibc keeps those freed
blocks resident (in a 50-frame decode, 2 x (4.9 + 12.3 + 24.6) MB before block 3's 2 x 36.9 MB).
Pages of a reserved buffer that are never written never become resident.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _storage(t: Tensor) -> int:
    return t.untyped_storage().data_ptr()


class StageOutputs:
    """Stage outputs of one dtype on one device, from two growable flat buffers."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype, self.device = dtype, device
        self._flat: list[Tensor | None] = [None, None]

    def get(self, shape: tuple[int, ...], avoid: Tensor) -> Tensor:
        """A contiguous ``shape`` tensor (contents undefined) in the buffer that does not hold ``avoid``
        (the stage's input)."""
        i = 1 if self._in(0, avoid) else 0
        size = math.prod(shape)
        return self._grow(i, size)[:size].view(shape)

    def reserve(self, numel: int, avoid: Tensor) -> None:
        """Grow each buffer that does not hold ``avoid`` (the stage's input) to at least ``numel`` elements."""
        for i in (0, 1):
            if not self._in(i, avoid):
                self._grow(i, numel)

    def _grow(self, i: int, numel: int) -> Tensor:
        """Buffer ``i``, replaced by one of ``numel`` elements first if it is smaller."""
        flat = self._flat[i]
        if flat is None or flat.numel() < numel:
            self._flat[i] = None  # free the smaller buffer before the larger one is made
            flat = torch.empty(max(numel, 1), dtype=self.dtype, device=self.device)
            self._flat[i] = flat
        return flat

    def holds(self, t: Tensor) -> bool:
        """Whether ``t`` lies in one of the buffers (so the next stages but one may overwrite it)."""
        return self._in(0, t) or self._in(1, t)

    def _in(self, i: int, t: Tensor) -> bool:
        flat = self._flat[i]
        return flat is not None and _storage(flat) == _storage(t)

    @property
    def nbytes(self) -> int:
        """Bytes held by both buffers."""
        return sum(f.numel() * f.element_size() for f in self._flat if f is not None)
