"""The sampling rule of :mod:`perfkit.model.sampling`, on the device, without host synchronisation.

Every step is a fixed-shape tensor operation (no ``.item()``, no data-dependent shapes), so it runs
inside a CUDA graph too. The rule is evaluated in float64 as the NumPy reference does (a ``V``-long
row: the cost is nothing next to the model), with the host-drawn uniform ``u`` of the step:

a. repetition penalty over the *distinct* group-0 history, kept as a ``seen (V,)`` bool mask:
   ``z = where(seen, where(z > 0, z / r, z * r), z)``;
b. masks: ``z = -inf`` where not allowed (group 0 only);
c. greedy: ``argmax z`` (first index on ties);
d. temperature ``z / T``; e. top-k: ``z < kth largest -> -inf``;
f. top-p: stable descending sort, keep ids whose preceding mass is ``< p`` (the first always);
g. pick: ``c = cumsum(softmax(z))`` in id order, the first ``i`` with ``c[i] > u * c[-1]``, capped at
   the last finite id.
"""

from __future__ import annotations

import numpy as np
import torch

from perfkit.model.generator_config import GeneratorConfig
from perfkit.model.sampling import SamplingOptions, group0_allowed

from .layers import Tensor


class DeviceSampler:
    """The rule for one utterance's options; group-0 masks uploaded once."""

    def __init__(self, config: GeneratorConfig, options: SamplingOptions, device: torch.device) -> None:
        self.options = options
        rows = np.stack([group0_allowed(config, 0, options), group0_allowed(config, options.min_frames, options)])
        self.allowed = torch.from_numpy(rows).to(device)  # (2, V): before / from min_frames
        self.min_frames = options.min_frames

    def group0_allowed(self, frame: Tensor) -> Tensor:
        """``(V,)`` bool for the frame in ``frame (1,)`` int64 (device-side choice of the two rows)."""
        return self.allowed.index_select(0, (frame >= self.min_frames).long())[0]

    def process(self, logits: Tensor, seen: Tensor | None = None, allowed: Tensor | None = None) -> Tensor:
        """Steps a–f on ``logits (V,)``: float64 ``(V,)`` with ``-inf`` outside the support."""
        opts = self.options
        z = logits.double()
        if seen is not None and opts.repetition_penalty != 1.0:
            r = opts.repetition_penalty
            z = torch.where(seen, torch.where(z > 0, z / r, z * r), z)
        if allowed is not None:
            z = z.masked_fill(~allowed, float("-inf"))
        if opts.greedy:
            return z
        z = z / opts.temperature
        if 0 < opts.top_k < z.shape[0]:
            kth = torch.topk(z, opts.top_k).values[-1:]  # (1,) the k-th largest
            z = z.masked_fill(z < kth, float("-inf"))
        if opts.top_p < 1.0:
            q = torch.softmax(z, dim=0)
            _, order = torch.sort(z, descending=True, stable=True)  # (V,)
            q_sorted = q.gather(0, order)
            keep_sorted = (torch.cumsum(q_sorted, dim=0) - q_sorted) < opts.top_p
            keep_sorted[0] = True
            keep = torch.empty_like(keep_sorted).scatter_(0, order, keep_sorted)
            z = z.masked_fill(~keep, float("-inf"))
        return z

    def pick(self, z: Tensor, u: Tensor) -> Tensor:
        """Step g (or c): the chosen id as a ``(1,)`` int64 tensor; ``u (1,)`` float64."""
        if self.options.greedy:
            return torch.argmax(z).view(1)
        c = torch.cumsum(torch.softmax(z, dim=0), dim=0)  # (V,)
        i = torch.searchsorted(c, u * c[-1:], right=True)  # (1,)
        finite = torch.isfinite(z)
        last = (z.shape[0] - 1) - torch.argmax(finite.flip(0).to(torch.uint8)).view(1)  # last finite id
        return torch.minimum(i, last)
