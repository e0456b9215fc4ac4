"""Rotary position embeddings (rotate-half convention) for the vocoder's and the generator's transformers."""

from __future__ import annotations

import numpy as np
import torch

from .layers import Tensor, to_tensor


class RopeTable:
    """``cos``/``sin`` of ``pos * inv_freq`` (rotate-half layout, ``(P, head_dim)`` float32), grown on demand.

    ``inv_freq = theta ** (-arange(0, d, 2) / d)``; angles are computed in float64 on the host, so
    positions far into a stream keep full float32 accuracy on every device.
    """

    def __init__(self, head_dim: int, theta: float, device: torch.device, length: int) -> None:
        self.head_dim, self.theta, self.device = head_dim, theta, device
        self.cos, self.sin = self._build(length)

    def _build(self, length: int) -> tuple[Tensor, Tensor]:
        d = self.head_dim
        inv_freq = 1.0 / (self.theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
        ang = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]  # (P, d/2)
        ang = np.concatenate([ang, ang], axis=-1)  # (P, d)
        return to_tensor(np.cos(ang), torch.float32, self.device), to_tensor(np.sin(ang), torch.float32, self.device)

    def at(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        """``(cos, sin)`` rows for positions ``start … start + length - 1``, each ``(length, d)``."""
        if start + length > self.cos.shape[0]:
            self.cos, self.sin = self._build(2 * (start + length))
        return self.cos[start: start + length], self.sin[start: start + length]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``x (n, T, d)`` float32: ``x * cos + rotate_half(x) * sin`` with ``rotate_half([a, b]) = [-b, a]``."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (n, T, d)
    return x * cos + rotated * sin
