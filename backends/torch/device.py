"""Devices and dtypes of the torch backend once torch is imported: dtypes, precision, syncs, host copies.

Why a variant cannot run here is :mod:`.availability`, which does not import torch for CPU variants.
"""

from __future__ import annotations

import numpy as np
import torch

from .availability import DTYPE_NAMES

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}
"""Compute dtypes by option value (:data:`.availability.DTYPE_NAMES`, ``float32`` the default)."""


def configure_precision(device: torch.device, dtype: torch.dtype) -> None:
    """float32 means float32: no TF32 in cuDNN convolutions or cuBLAS matmuls for a float32 variant.

    (cuDNN allows TF32 by default, which would cost float32 parity ~30 dB.) Process-wide settings;
    a measurement runs one variant per worker process.
    """
    if device.type == "cuda" and dtype == torch.float32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (``torch.cuda.synchronize``); the CPU runs eagerly."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_host(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A tensor as a float32 (or float64, int64) NumPy array on the host that owns its memory; low
    precision widened to float32. A CPU tensor is copied, since ``.numpy()`` would share its memory and
    the runner reuses its stage outputs' buffers (:mod:`.buffers`)."""
    if isinstance(x, np.ndarray):
        return x
    t = x.detach()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    host = t.cpu()
    return (host.clone() if host.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() else host).numpy()
