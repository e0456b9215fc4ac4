"""SnakeBeta, the decoder's activation, as the official decoder defines it, per channel ``c``::

    y = x + 1 / (exp(beta[c]) + 1e-9) * sin(exp(alpha[c]) * x)**2

Every backend precomputes the two per-channel factors once per layer with :func:`snake_factors`
and stores them in its own dtype and layout.
"""

from __future__ import annotations

import numpy as np

SNAKE_EPS = 1e-9


def snake_factors(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(exp(alpha), 1 / (exp(beta) + 1e-9))``, ``(C,)`` float64.

    Computed in float64 whatever the backend's dtype: a low-precision ``exp`` or reciprocal is what
    turns SnakeBeta into NaN.
    """
    a = np.exp(np.asarray(alpha, dtype=np.float64))
    inv_b = 1.0 / (np.exp(np.asarray(beta, dtype=np.float64)) + SNAKE_EPS)
    return a, inv_b
