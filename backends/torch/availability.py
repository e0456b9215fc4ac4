"""Whether a torch variant can run here, and why not, importing torch only where the answer needs it.

The parent process of a run resolves every variant (``perfkit compare``, ``perfkit run``, ``perfkit
backends``) before any worker starts, and the workers import torch again anyway: importing it in the
parent as well cost 3.7 s of the 53 s that ``perfkit compare numpy numba torch --preset tiny`` took on
the 2-core development machine. A CPU variant's check therefore asks only whether torch is installed
(``importlib.util.find_spec``); CUDA variants and ``compile=on`` import it to ask torch itself. A torch
that is installed but fails to import is reported by the worker that loads it, at set-up.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Mapping

DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""The ``dtype`` option's values; the first is the default (:data:`.device.DTYPES` maps them to torch's)."""

INSTALL_HINT = "pip install 'perfkit[torch]'"


def torch_missing_reason() -> str:
    """``"torch is not installed …"`` when no ``torch`` package is found, else ``""`` (nothing imported)."""
    if importlib.util.find_spec("torch") is None:
        return f"torch is not installed ({INSTALL_HINT})"
    return ""


def cuda_unavailable_reason() -> str:
    """Why ``device=cuda`` cannot run here, or ``""`` when it can (imports torch)."""
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"no CUDA device: this torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    return ""


def compile_unavailable_reason(device: str) -> str:
    """Why ``compile=on`` cannot run here, or ``""``: dynamo, and the compiler inductor needs per device."""
    import torch

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
    """Why the variant ``options`` (``device``, ``dtype``, ``compile``, ``graphs``) cannot run here, or ``""``.

    Imports torch only for ``device=cuda`` or ``compile=on``.
    """
    missing = torch_missing_reason()
    if missing:
        return missing
    device, dtype = options["device"], options["dtype"]
    if device == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            return reason
        import torch

        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            return "bfloat16 needs a CUDA device of compute capability 8.0 or newer"
    elif dtype == "float16":
        return "float16 is unsupported on the CPU (no fast float16 kernels; use bfloat16)"
    elif options.get("graphs", "off") == "on":
        return "CUDA graphs need device=cuda"
    if options.get("compile", "off") == "on":
        return compile_unavailable_reason(device)
    return ""
