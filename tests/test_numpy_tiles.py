"""Time tiles of the NumPy vocoder: ranges that cover the input in order, near-equal, never empty."""

from __future__ import annotations

import pytest
from perfkit.backends.numpy.tiles import TimeTiles


def test_tiles_cover_the_input_in_near_equal_ranges():
    tiles = TimeTiles(elements=1000, min_columns=1).ranges(1001, 10)  # at most 100 columns a tile: 11 tiles of 91
    assert tiles[0][0] == 0 and tiles[-1][1] == 1001 and len(tiles) == 11
    assert all(a[1] == b[0] for a, b in zip(tiles[:-1], tiles[1:], strict=True))
    assert {hi - lo for lo, hi in tiles} == {91}


def test_widths_differ_by_at_most_one_column_and_stay_within_the_budget():
    tiles = TimeTiles(elements=640, min_columns=1).ranges(1000, 10)  # at most 64 columns: 16 tiles
    assert len(tiles) == 16 and {hi - lo for lo, hi in tiles} == {62, 63}


def test_edge_lengths():
    assert TimeTiles(elements=10, min_columns=1).ranges(3, 10**6) == [(0, 1), (1, 2), (2, 3)]  # never empty
    assert TimeTiles().ranges(5, 10) == [(0, 5)]
    assert TimeTiles().ranges(0, 10) == [(0, 0)]


def test_min_columns_bounds_the_width_from_below():
    """``min_columns`` wins over the element budget: 10 columns a tile is the budget, 25 the minimum."""
    assert len(TimeTiles(elements=100, min_columns=1).ranges(100, 10)) == 10
    assert TimeTiles(elements=100, min_columns=25).ranges(100, 10) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert TimeTiles(elements=100, min_columns=25).ranges(100, 1) == [(0, 100)]  # the budget is wider
    assert TimeTiles().ranges(200, 12288) == [(0, 200)]  # block 0's tconv at 50 frames: 170 columns, floor 256


@pytest.mark.parametrize("elements,columns", [(0, 1), (-5, 1), (10, 0)])
def test_tiles_refuse_non_positive_sizes(elements, columns):
    with pytest.raises(ValueError, match="at least 1"):
        TimeTiles(elements, columns)
