"""SnakeBeta followed by a causal convolution, tiled over time: the residual units and the final layer.

These are the vocoder's largest tensors (up to ``96 x 96000`` per decoder block for 50 frames).
The time axis is cut into one contiguous block per thread; each thread walks its block tile by
tile (``tile`` samples of every channel), with its own scratch that stays in its core's L2 cache:

    h   = snake_1(src[:, tile])                  (C, P + tile)  with P = (k-1)*d samples of look-back
    acc = b1 + sum_j W1[j] @ h[:, j*d : j*d+tile] (C, tile)      k GEMMs, implicit (no im2col)
    acc = snake_2(acc)
    dst[:, tile] = src[:, tile] + b2 + W2 @ acc  one GEMM, accumulating (beta = 1)

The look-back ``h[:, :P]`` of a tile is the end of the previous tile's ``h`` (shifted, never
recomputed); a block's first tile recomputes it from ``src`` (``P`` columns), the utterance's
first block takes it from the streaming ``tail`` (``snake_1`` of the previous chunk's last ``P``
inputs). Both kernels read every block's look-back and the next chunk's ``tail`` before the
parallel loop (:func:`_read_look_backs`), and a residual unit's tile reads ``src[:, tile]``
before it writes ``dst[:, tile]``, so ``dst`` may be ``src``: a decoder block's second and third
units run in place. All BLAS calls are single-threaded, one per thread (see :mod:`.blas_threads`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .activations import snake_columns
from .blas import gemm
from .conv import conv_taps
from .elementwise import copy_columns
from .jit import kernel, parallel_kernel

#: A thread's block is at least this many samples (and at least the look-back), else fewer blocks.
MIN_BLOCK = 256


@kernel
def _block_bounds(length: int, pad: int, threads: int) -> int:
    """How many blocks ``length`` samples are cut into: at most ``threads``, each ``>= max(pad, MIN_BLOCK)``."""
    return max(1, min(threads, length // max(pad, MIN_BLOCK)))


@kernel
def _look_back(src: np.ndarray, start: int, a: np.ndarray, ib: np.ndarray, k: np.ndarray, tail: np.ndarray,
               h: np.ndarray) -> None:
    """``h[:, :P]`` = ``snake(src[:, start-P:start])``, or the streaming ``tail`` for ``start == 0``."""
    pad = tail.shape[1]
    if start == 0:
        copy_columns(tail, 0, h, 0, pad)
    else:
        snake_columns(src, start - pad, a, ib, k, h, 0, pad)


@kernel
def push_snake_tail(src: np.ndarray, a: np.ndarray, ib: np.ndarray, k: np.ndarray, tail: np.ndarray) -> None:
    """``tail (C, P)`` = the last ``P`` columns of ``[tail, snake(src)]`` (the next chunk's look-back)."""
    length = src.shape[1]
    pad = tail.shape[1]
    if length >= pad:
        snake_columns(src, length - pad, a, ib, k, tail, 0, pad)
    else:
        copy_columns(tail, length, tail, 0, pad - length)  # ascending: a safe left shift in place
        snake_columns(src, 0, a, ib, k, tail, pad - length, length)


@kernel
def _read_look_backs(src: np.ndarray, blocks: int, a: np.ndarray, ib: np.ndarray, k: np.ndarray,
                     tail: np.ndarray, h: np.ndarray) -> None:
    """Before the parallel loop: every block's look-back into ``h[blk][:, :P]``, then the next chunk's
    ``tail``, the only inputs a block reads outside its own tiles."""
    length = src.shape[1]
    for blk in range(blocks):
        _look_back(src, blk * length // blocks, a, ib, k, tail, h[blk])
    push_snake_tail(src, a, ib, k, tail)


@kernel
def _unit_block(src: np.ndarray, dst: np.ndarray, start: int, stop: int,
                a1: np.ndarray, ib1: np.ndarray, w1: np.ndarray, b1: np.ndarray, dilation: int,
                a2: np.ndarray, ib2: np.ndarray, w2: np.ndarray, b2: np.ndarray, k: np.ndarray,
                tail: np.ndarray, h: np.ndarray, acc: np.ndarray) -> None:
    """One thread's block ``[start, stop)`` of :func:`residual_unit`, tile by tile; ``h[:, :P]`` holds
    its look-back already."""
    pad = tail.shape[1]
    tile = acc.shape[1]
    channels = src.shape[0]
    for t0 in range(start, stop, tile):
        tw = min(tile, stop - t0)
        snake_columns(src, t0, a1, ib1, k, h, pad, tw)
        at = acc[:, :tw]
        conv_taps(h[:, :pad + tw], w1, b1, dilation, at)
        snake_columns(acc, 0, a2, ib2, k, acc, 0, tw)
        for c in range(channels):  # the residual and the 1x1 conv's bias, then its GEMM on top
            bc = b2[c]
            for i in range(tw):
                dst[c, t0 + i] = src[c, t0 + i] + bc
        gemm(w2, at, dst[:, t0:t0 + tw], 1.0)
        copy_columns(h, tw, h, 0, pad)


@parallel_kernel
def residual_unit(src: np.ndarray, dst: np.ndarray,
                  a1: np.ndarray, ib1: np.ndarray, w1: np.ndarray, b1: np.ndarray, dilation: int,
                  a2: np.ndarray, ib2: np.ndarray, w2: np.ndarray, b2: np.ndarray, k: np.ndarray,
                  tail: np.ndarray, h: np.ndarray, acc: np.ndarray) -> None:
    """``dst = src + W2 @ snake_2(conv_{W1, d}(snake_1(src))) + b2`` over ``(C, L)``; ``dst`` may be ``src``.

    ``w1 (k, C, C)``, ``w2 (C, C)``, ``tail (C, P)`` updated; per-thread scratch ``h (n, C, P + tile)``,
    ``acc (n, C, tile)`` for up to ``n`` blocks. Every input the loop does not read in its own tile
    (the blocks' look-backs, the next ``tail``) is read first.
    """
    length = src.shape[1]
    pad = tail.shape[1]
    blocks = _block_bounds(length, pad, h.shape[0])
    _read_look_backs(src, blocks, a1, ib1, k, tail, h)
    for blk in prange(blocks):
        _unit_block(src, dst, blk * length // blocks, (blk + 1) * length // blocks, a1, ib1, w1, b1, dilation,
                    a2, ib2, w2, b2, k, tail, h[blk], acc[blk])


@kernel
def _snake_conv_block(src: np.ndarray, start: int, stop: int, a: np.ndarray, ib: np.ndarray, k: np.ndarray,
                      w: np.ndarray, b: np.ndarray, dilation: int, tail: np.ndarray, h: np.ndarray,
                      dst: np.ndarray) -> None:
    """One thread's block ``[start, stop)`` of :func:`snake_conv`; ``h[:, :P]`` holds its look-back already."""
    pad = tail.shape[1]
    tile = h.shape[1] - pad
    for t0 in range(start, stop, tile):
        tw = min(tile, stop - t0)
        snake_columns(src, t0, a, ib, k, h, pad, tw)
        conv_taps(h[:, :pad + tw], w, b, dilation, dst[:, t0:t0 + tw])
        copy_columns(h, tw, h, 0, pad)


@parallel_kernel
def snake_conv(src: np.ndarray, a: np.ndarray, ib: np.ndarray, k: np.ndarray, w: np.ndarray, b: np.ndarray,
               dilation: int, tail: np.ndarray, h: np.ndarray, dst: np.ndarray) -> None:
    """``dst (Cout, L) = conv_{w, d}(snake(src (C, L)))``; ``tail (C, P)``, scratch ``h (n, C, P + tile)``."""
    length = src.shape[1]
    pad = tail.shape[1]
    blocks = _block_bounds(length, pad, h.shape[0])
    _read_look_backs(src, blocks, a, ib, k, tail, h)
    for blk in prange(blocks):
        _snake_conv_block(src, blk * length // blocks, (blk + 1) * length // blocks, a, ib, k, w, b, dilation,
                          tail, h[blk], dst)
