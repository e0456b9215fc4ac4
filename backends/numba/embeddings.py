"""Embedding lookups of the generator: text rows (cast to the compute dtype), codec rows, frame sums."""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def gather_rows(table: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = table[ids[i]]`` (cast to ``out``'s dtype); ``table (rows, D)``, ``out (N, D)``."""
    for i in range(ids.shape[0]):
        r = ids[i]
        for c in range(out.shape[1]):
            out[i, c] = table[r, c]


@kernel
def add_codec_rows(table: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
    """``out[i] += table[ids[i]]`` where ``ids[i] >= 0`` (``-1``: no codec term at that position)."""
    for i in range(ids.shape[0]):
        r = ids[i]
        if r >= 0:
            for c in range(out.shape[1]):
                out[i, c] += table[r, c]


@kernel
def embed_frame(codes: np.ndarray, frame: int, group0: np.ndarray, groups: np.ndarray, text: np.ndarray,
                out: np.ndarray) -> None:
    """Talker input after ``frame``: ``out (1, H) = group0[c_0] + sum_g groups[g-1][c_g] + text``.

    ``codes (G, F)`` int64, ``group0 (V, H)`` the talker's codec embedding, ``groups (G-1, C, H)`` the
    code predictor's, ``text (H,)``; summed in the reference's order (group 0, 1 … G-1, then text).
    """
    h = out.shape[1]
    c0 = codes[0, frame]
    for c in range(h):
        out[0, c] = group0[c0, c]
    for g in range(1, codes.shape[0]):
        r = codes[g, frame]
        for c in range(h):
            out[0, c] += groups[g - 1, r, c]
    for c in range(h):
        out[0, c] += text[c]
