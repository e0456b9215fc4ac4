"""Two buffers the long stages' outputs alternate between, kept for the runner's lifetime.

A fresh ``torch.empty`` of a block's output (block 3 of a 50-frame decode: 96000 x 96 float32, 35 MiB)
is memory glibc maps anew on every call, and every first write to it is a page fault (9,000–18,000 a
decode). The runner contract (:meth:`perfkit.interface.VocoderRunner.run_stage`) keeps a stage's output
valid only until two more stages have run, so these outputs can come from two buffers used in turn,
the one that does not hold the stage's input, as the numba runner's workspace does. Each buffer grows
to the largest request and is then reused; a smaller request is a view of its first elements.
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
        flat = self._flat[i]
        if flat is None or flat.numel() < size:
            self._flat[i] = None  # free the smaller buffer before the larger one is made
            flat = torch.empty(max(size, 1), dtype=self.dtype, device=self.device)
            self._flat[i] = flat
        return flat[:size].view(shape)

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
