"""Devices and dtypes of the torch backend: what a variant needs, and why it cannot run here.

Everything here is cheap (no model is loaded): ``perfkit backends`` calls
:func:`unavailable_reason` for every combination of ``device`` × ``dtype`` × ``compile``.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Mapping

import numpy as np
import torch

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Compute dtypes by option value; the order is the option's order (``float32`` is the default)."""


def cuda_unavailable_reason() -> str:
    """Why ``device=cuda`` cannot run here, or ``""`` when it can."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"no CUDA device: this torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    return ""


def compile_unavailable_reason(device: str) -> str:
    """Why ``compile=on`` cannot run here, or ``""``: dynamo, and the compiler inductor needs per device."""
    if not hasattr(torch, "compile"):
        return f"torch.compile unavailable (torch {torch.__version__})"
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return "torch.compile unavailable: dynamo does not support this Python version"
    except Exception as exc:  # noqa: BLE001 - any import problem means "cannot compile"
        return f"torch.compile unavailable: {type(exc).__name__}: {exc}"
    if device == "cpu":
        if not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
            return "torch.compile unavailable: inductor needs a C++ compiler (g++) on the CPU"
    elif importlib.util.find_spec("triton") is None:
        return "torch.compile unavailable: inductor needs triton on CUDA"
    return ""


def unavailable_reason(options: Mapping[str, str]) -> str:
    """Why the variant ``options`` (``device``, ``dtype``, ``compile``, ``graphs``) cannot run here, or ``""``."""
    device, dtype = options["device"], options["dtype"]
    if device == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            return reason
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            return "bfloat16 needs a CUDA device of compute capability 8.0 or newer"
    elif dtype == "float16":
        return "float16 is unsupported on the CPU (no fast float16 kernels; use bfloat16)"
    elif options.get("graphs", "off") == "on":
        return "CUDA graphs need device=cuda"
    if options.get("compile", "off") == "on":
        return compile_unavailable_reason(device)
    return ""


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
    """A tensor as a float32 (or float64, int64) NumPy array on the host; low precision widened to float32."""
    if isinstance(x, np.ndarray):
        return x
    t = x.detach()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.cpu().numpy()
