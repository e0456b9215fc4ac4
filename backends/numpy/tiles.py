"""Time tiles: the long stages run a few thousand columns at a time, so their temporaries stay small.

A tile goes through the whole stage with the same tails that carry state between chunks, so tiling
is streaming inside one call and changes no value beyond float rounding. The scratch a stage holds
is then a few tiles, not a few copies of its largest activation (96 x 96000 float32, 37 MB, in the
published geometry's last block).
"""

from __future__ import annotations

from dataclasses import dataclass

TILE_ELEMENTS = 1 << 21
"""Elements per tile of the tiled array (8 MiB of float32): the published geometry's block 0
(768 x 1600) stays one tile, blocks 1-3 split into 2, 3 and 5. Narrower tiles cost wide layers
time (block 0's residual units 0.91x with 2^20 elements, in an interleaved run)."""
MIN_TILE_COLUMNS = 256
"""Fewest columns per tile, whatever the budget: a tile's GEMM packs the whole weight again (block 0's
ConvTranspose weight is 75 MB), so a wide layer is not cut into GEMMs of a few dozen columns."""


@dataclass(frozen=True)
class TimeTiles:
    """Splits ``length`` columns into near-equal ranges of at most ``elements / per_column`` columns
    each, ``per_column`` being the rows of the tiled array (channels), but at least ``min_columns``."""

    elements: int = TILE_ELEMENTS
    min_columns: int = MIN_TILE_COLUMNS

    def __post_init__(self) -> None:
        if self.elements < 1:
            raise ValueError(f"tile elements must be at least 1, got {self.elements}")
        if self.min_columns < 1:
            raise ValueError(f"tile columns must be at least 1, got {self.min_columns}")

    def ranges(self, length: int, per_column: int) -> list[tuple[int, int]]:
        """``(start, stop)`` column ranges covering ``[0, length)`` in order, widths differing by at most one."""
        width = max(self.min_columns, self.elements // max(per_column, 1))
        count = max(1, -(-length // width))
        bounds = [length * j // count for j in range(count + 1)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))
