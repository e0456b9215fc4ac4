"""SnakeBeta followed by a causal convolution, tiled over time: the residual units and the final layer.

These are the vocoder's largest tensors (up to ``96 x 96000`` per decoder block for 50 frames),
so the work goes tile by tile (``tile`` samples of every channel) and stays in the L2 cache:

    h   = snake_1(x[:, tile])                    (C, P + tile)  with P = (k-1)*d samples of look-back
    acc = b1 + sum_j W1[j] @ h[:, j*d : j*d+tile] (C, tile)      k GEMMs, implicit (no im2col)
    acc = snake_2(acc)
    x[:, tile] += W2 @ acc + b2                  one GEMM, accumulating into the stage output

The look-back ``h[:, :P]`` of a tile is the end of the previous tile's ``h`` (shifted, never
recomputed); for the first tile it is the streaming ``tail`` (``snake_1`` of the previous chunk's
last ``P`` inputs), which is updated in place at the end.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .activations import snake
from .blas import gemm
from .conv import conv_taps
from .elementwise import copy_columns
from .jit import elementwise_kernel, kernel


@elementwise_kernel
def snake_copy(x: np.ndarray, a: np.ndarray, inv_b: np.ndarray, k: np.ndarray, out: np.ndarray,
               copy: np.ndarray) -> None:
    """:func:`~.activations.snake` of ``x`` into ``out``, and ``copy[:] = x`` in the same pass."""
    two_over_pi, p1, p2, p3 = k[0], k[1], k[2], k[3]
    s0, s1, s2, s3, s4, s5 = k[4], k[5], k[6], k[7], k[8], k[9]
    half, one, two = k[10], k[11], k[12]
    channels, length = x.shape
    for c in prange(channels):
        ac = a[c]
        bc = inv_b[c]
        for t in range(length):
            xv = x[c, t]
            copy[c, t] = xv
            r = ac * xv
            n = np.floor(r * two_over_pi + half)
            y = ((r - n * p1) - n * p2) - n * p3
            z = y * y
            s = y + y * z * (s0 + z * (s1 + z * (s2 + z * (s3 + z * (s4 + z * s5)))))
            sq = s * s
            odd = n - two * np.floor(n * half)
            out[c, t] = xv + bc * (sq + odd * (one - two * sq))


@kernel
def residual_unit(src: np.ndarray, dst: np.ndarray, first: bool,
                  a1: np.ndarray, ib1: np.ndarray, w1: np.ndarray, b1: np.ndarray, dilation: int,
                  a2: np.ndarray, ib2: np.ndarray, w2: np.ndarray, b2: np.ndarray, k: np.ndarray,
                  tail: np.ndarray, hbuf: np.ndarray, acc: np.ndarray) -> None:
    """``dst = src + W2 @ snake_2(conv_{W1, d}(snake_1(src))) + b2`` over ``(C, L)``, tile by tile.

    ``first``: ``dst`` is a different array and receives ``src`` as it goes (the unit's residual);
    otherwise ``dst is src`` and is updated in place. ``w1 (k, C, C)``, ``w2 (C, C)``,
    ``tail (C, P)``, scratch ``hbuf (C, P + tile)``, ``acc (C, tile)``; ``tile >= P``.
    """
    length = src.shape[1]
    pad = tail.shape[1]
    tile = acc.shape[1]
    copy_columns(tail, 0, hbuf, 0, pad)
    for t0 in range(0, length, tile):
        tw = min(tile, length - t0)
        if first:
            snake_copy(src[:, t0:t0 + tw], a1, ib1, k, hbuf[:, pad:pad + tw], dst[:, t0:t0 + tw])
        else:
            snake(src[:, t0:t0 + tw], a1, ib1, k, hbuf[:, pad:pad + tw])
        at = acc[:, :tw]
        conv_taps(hbuf[:, :pad + tw], w1, b1, dilation, at)
        snake(at, a2, ib2, k, at)
        dt = dst[:, t0:t0 + tw]
        for c in range(dt.shape[0]):  # the 1x1 conv's bias
            for i in range(tw):
                dt[c, i] += b2[c]
        gemm(w2, at, dt, 1.0)
        copy_columns(hbuf, tw, hbuf, 0, pad)
    copy_columns(hbuf, 0, tail, 0, pad)


@kernel
def snake_conv(src: np.ndarray, a: np.ndarray, ib: np.ndarray, k: np.ndarray, w: np.ndarray, b: np.ndarray,
               dilation: int, tail: np.ndarray, hbuf: np.ndarray, dst: np.ndarray) -> None:
    """``dst (Cout, L) = conv_{w, d}(snake(src (C, L)))``; ``tail (C, P)``, scratch ``hbuf (C, P + tile)``."""
    length = src.shape[1]
    pad = tail.shape[1]
    tile = hbuf.shape[1] - pad
    copy_columns(tail, 0, hbuf, 0, pad)
    for t0 in range(0, length, tile):
        tw = min(tile, length - t0)
        snake(src[:, t0:t0 + tw], a, ib, k, hbuf[:, pad:pad + tw])
        conv_taps(hbuf[:, :pad + tw], w, b, dilation, dst[:, t0:t0 + tw])
        copy_columns(hbuf, tw, hbuf, 0, pad)
    copy_columns(hbuf, 0, tail, 0, pad)


