"""The sampling rule of :mod:`perfkit.model.sampling` as one compiled call, in float64.

On one logits row ``z (V,)`` with the host-drawn uniform ``u``, in the rule's order: (a) repetition
penalty over the distinct ids of ``history`` (``z/r`` if ``z > 0`` else ``z*r``); (b) masks: only ids
``< limit`` and the id ``extra`` (``-1``: none) survive; (c) greedy: the first argmax; else (d)
``z / T``; (e) top-k: ``z < k-th largest`` -> ``-inf``; (f) top-p over a stable descending order;
(g) the inverse-CDF pick ``first i with cumsum(softmax(z))[i] > u * sum``. Scratch: ``z, zs``
float64 ``(V,)`` and ``seen`` bool ``(V,)``, so a greedy or top-k step allocates nothing.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import kernel


@kernel
def _softmax_into(z: np.ndarray, q: np.ndarray) -> None:
    """``q = exp(z - max z) / sum`` (``-inf`` -> 0)."""
    m = -np.inf
    for i in range(z.shape[0]):
        if z[i] > m:
            m = z[i]
    s = 0.0
    for i in range(z.shape[0]):
        q[i] = math.exp(z[i] - m)
        s += q[i]
    for i in range(z.shape[0]):
        q[i] /= s


@kernel
def sample_logits(logits: np.ndarray, u: float, greedy: bool, temperature: float, top_k: int, top_p: float,
                  penalty: float, history: np.ndarray, limit: int, extra: int,
                  z: np.ndarray, zs: np.ndarray, seen: np.ndarray) -> int:
    """The chosen id of ``logits (V,)`` under the rule (module docstring)."""
    v = logits.shape[0]
    for i in range(v):
        z[i] = np.float64(logits[i])
    if history.shape[0] > 0 and penalty != 1.0:
        for i in range(v):
            seen[i] = False
        for j in range(history.shape[0]):
            i = history[j]
            if 0 <= i < v:
                seen[i] = True
        for i in range(v):
            if seen[i]:
                z[i] = z[i] / penalty if z[i] > 0 else z[i] * penalty
    for i in range(v):
        if i >= limit and i != extra:
            z[i] = -np.inf
    if greedy:
        best = 0
        for i in range(1, v):
            if z[i] > z[best]:
                best = i
        return best
    for i in range(v):
        z[i] = z[i] / temperature
    if 0 < top_k < v:
        for i in range(v):
            zs[i] = z[i]
        zs.sort()
        kth = zs[v - top_k]
        for i in range(v):
            if z[i] < kth:
                z[i] = -np.inf
    if top_p < 1.0:
        _softmax_into(z, zs)
        order = np.argsort(-z, kind="mergesort")  # stable: equal values keep id order
        cum = 0.0
        for j in range(v):  # keep an id iff the mass before it is < top_p (the first always)
            i = order[j]
            cum += zs[i]
            if j > 0 and not (cum - zs[i] < top_p):
                z[i] = -np.inf
    _softmax_into(z, zs)
    total = 0.0
    for i in range(v):
        total += zs[i]
        zs[i] = total
    target = u * zs[v - 1]
    last_finite = 0
    for i in range(v):
        if np.isfinite(z[i]):
            last_finite = i
    for i in range(v):
        if zs[i] > target:
            return min(i, last_finite)
    return last_finite
