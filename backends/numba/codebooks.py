"""The RVQ codebook lookup: summed codebook rows per quantizer group, one row per frame."""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def gather_codebooks(codes: np.ndarray, books: np.ndarray, offsets: np.ndarray, semantic: int,
                     out: np.ndarray) -> None:
    """``out[t] = [sum_{q < S} B_q[codes[q, t]], sum_{q >= S} B_q[codes[q, t]]]``, ``out (T, 2*half)``.

    ``codes (Q, T)``; ``books (sum of rows, half)`` the normalised codebooks stacked, quantizer ``q``
    starting at row ``offsets[q]``; ``S = semantic`` quantizers form the first group. Rows are added
    in quantizer order, as the reference does.
    """
    nq, frames = codes.shape
    half = books.shape[1]
    for t in range(frames):
        for d in range(2 * half):
            out[t, d] = 0.0
        for q in range(nq):
            row = offsets[q] + codes[q, t]
            base = 0 if q < semantic else half
            for d in range(half):
                out[t, base + d] += books[row, d]
