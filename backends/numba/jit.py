"""How perfkit's numba kernels are compiled: one place for the ``njit`` flags.

Threads: every parallel kernel uses numba's thread pool (``prange``); BLAS is called from
inside those kernels single-threaded (:mod:`.blas_threads`), one GEMM per thread on its own slice
(:func:`.linear.pgemm`), so exactly one pool of threads runs at any time: no oversubscription, no
two pools spinning against each other on a small machine.

Every kernel is cached on disk (``cache=True``: the first process compiles, later ones load the
machine code; the compile cost shows up as the measurement engine's first-call time, never in a
sample). ``nogil`` lets a caller overlap kernels with other Python threads.

numba checks a cached kernel against its own source file only, so a change to a kernel it calls in
another module (``blas.py``, say) would leave the caller's stale machine code in use. The cache
therefore lives in a directory named by the hash of every module of this package
(:data:`CACHE_DIR`, ``__pycache__/kernels-<hash>``): any change to the package starts a
fresh cache, and the directories of older versions are removed. ``NUMBA_CACHE_DIR``, when set, wins.

Fast-math: only the ``contract`` flag (fused multiply-add) is used, and only in elementwise
kernels (polynomial SnakeBeta, GELU, SiLU): FMA rounds once instead of twice, so it is at least as
accurate as the separate multiply and add. Reassociation (``reassoc``), ``nnan``/``ninf`` and
approximate functions are never enabled: reductions (norms, softmax, convolution sums) keep
their order, NaN and Inf propagate, and float32 parity stays at float32 rounding level.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba
import numpy as np

from perfkit.measure.environment import source_hash

F = TypeVar("F", bound=Callable[..., Any])

#: LLVM fast-math flags for elementwise kernels: FMA contraction only.
ELEMENTWISE_FASTMATH = frozenset({"contract"})

CACHE_PREFIX = "kernels-"
"""Cache directories are ``__pycache__/kernels-<source hash>``."""


def versioned_cache_dir(package: str | None = __package__, root: Path = Path(__file__).parent / "__pycache__"
                        ) -> Path | None:
    """``root/kernels-<source hash of package>``, after removing the directories of other versions; ``None``
    when ``NUMBA_CACHE_DIR`` is set (the user's choice stands) or the package's source cannot be hashed."""
    if os.environ.get("NUMBA_CACHE_DIR") or not package:
        return None
    digest = source_hash(package)
    if digest is None:
        return None
    target = root / f"{CACHE_PREFIX}{digest}"
    if root.is_dir():
        for old in root.glob(f"{CACHE_PREFIX}*"):
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return target


CACHE_DIR = versioned_cache_dir()
"""Where this package's kernels are cached (``None``: numba's own choice)."""


def _njit(fn: F, **flags: Any) -> F:
    """``numba.njit(cache=True, nogil=True, **flags)(fn)``, cached in :data:`CACHE_DIR`.

    numba picks a function's cache directory when it is decorated (from ``numba.config.CACHE_DIR``), so
    the setting is swapped in for the decoration only: other numba code in the process keeps its own.
    """
    saved = numba.config.CACHE_DIR
    if CACHE_DIR is not None:
        numba.config.CACHE_DIR = str(CACHE_DIR)
    try:
        return numba.njit(cache=True, nogil=True, **flags)(fn)
    finally:
        numba.config.CACHE_DIR = saved


def kernel(fn: F) -> F:
    """A serial kernel: ``njit(cache=True, nogil=True)``."""
    return _njit(fn)


def parallel_kernel(fn: F) -> F:
    """A kernel with ``prange`` loops: ``njit(parallel=True, cache=True, nogil=True)``."""
    return _njit(fn, parallel=True)


def fma_kernel(fn: F) -> F:
    """A serial elementwise kernel with FMA contraction (see the module docstring)."""
    return _njit(fn, fastmath=set(ELEMENTWISE_FASTMATH))


def parallel_fma_kernel(fn: F) -> F:
    """A parallel elementwise kernel with FMA contraction (see the module docstring)."""
    return _njit(fn, parallel=True, fastmath=set(ELEMENTWISE_FASTMATH))


@kernel
def _first_call(x: np.ndarray) -> float:
    return x[0] + 1.0


def start_runtime() -> None:
    """Bring up numba's compiler runtime (LLVM) now, with one trivial cached kernel.

    numba starts LLVM on the first call of any compiled function, a cached one too: 62-69 MiB of
    resident memory and 0.3 s here, whatever the model (a fresh process calling one two-line cached
    function). :class:`~perfkit.backends.numba.NumbaBackend` calls this when it is made, so that cost
    counts with the libraries (the memory suite's baseline, as torch's import does for torch) and a
    run's working memory is what the kernels themselves load and allocate.
    """
    _first_call(np.zeros(1))
