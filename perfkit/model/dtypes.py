"""Element sizes of the compute dtypes perfkit names, and what a model's weights weigh in one of them.

By name, not ``np.dtype``: NumPy has no bfloat16. The models keep their weights in float32 whatever a
backend computes in; a backend converts them once at load, so the bytes it holds are about the parameter
count times its compute dtype's element size (a bfloat16 backend half the float32 bytes, float64 twice).
About: what a backend keeps in float32 on purpose is counted at the compute dtype — torch's codec
embedding table and norms (the 0.6B generator in bfloat16 holds about 68 MB more than counted), the NumPy
float64 generator's host text embedding (1.2 GB less than counted); packed layouts may pad.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

BYTES_PER_ELEMENT: Mapping[str, int] = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}


def element_bytes(dtype: str) -> int | None:
    """Bytes per element of the compute dtype ``dtype`` (``float32``, ``bfloat16`` …); ``None`` if unknown."""
    return BYTES_PER_ELEMENT.get(dtype)


def parameter_count(weights: Iterable[np.ndarray]) -> int:
    """Elements over every tensor."""
    return sum(int(w.size) for w in weights)


def weight_bytes_in(weights: Mapping[str, np.ndarray], dtype: str) -> int | None:
    """Bytes of ``weights`` held in ``dtype``: ``parameter_count * element_bytes(dtype)``; ``None`` for a
    dtype perfkit does not know (an out-of-tree backend's ``int8``, say), so no figure is made up."""
    size = element_bytes(dtype)
    return None if size is None else parameter_count(weights.values()) * size
