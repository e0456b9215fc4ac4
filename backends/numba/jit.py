"""How perfkit's numba kernels are compiled: one place for the ``njit`` flags.

Threads: every parallel kernel uses numba's thread pool (``prange``); BLAS is called from
inside those kernels single-threaded (:mod:`.blas_threads`), one GEMM per thread on its own slice
(:func:`.linear.pgemm`), so exactly one pool of threads runs at any time: no oversubscription, no
two pools spinning against each other on a small machine.

Every kernel is cached on disk (``cache=True``: the first process compiles, later ones load the
machine code; the compile cost shows up as the measurement engine's first-call time, never in a
sample). ``nogil`` lets a caller overlap kernels with other Python threads.

Fast-math: only the ``contract`` flag (fused multiply-add) is used, and only in elementwise
kernels (polynomial SnakeBeta, GELU, SiLU): FMA rounds once instead of twice, so it is at least as
accurate as the separate multiply and add. Reassociation (``reassoc``), ``nnan``/``ninf`` and
approximate functions are never enabled: reductions (norms, softmax, convolution sums) keep
their order, NaN and Inf propagate, and float32 parity stays at float32 rounding level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

#: LLVM fast-math flags for elementwise kernels: FMA contraction only.
ELEMENTWISE_FASTMATH = frozenset({"contract"})


def kernel(fn: F) -> F:
    """A serial kernel: ``njit(cache=True, nogil=True)``."""
    return numba.njit(cache=True, nogil=True)(fn)


def parallel_kernel(fn: F) -> F:
    """A kernel with ``prange`` loops: ``njit(parallel=True, cache=True, nogil=True)``."""
    return numba.njit(cache=True, nogil=True, parallel=True)(fn)


def fma_kernel(fn: F) -> F:
    """A serial elementwise kernel with FMA contraction (see the module docstring)."""
    return numba.njit(cache=True, nogil=True, fastmath=set(ELEMENTWISE_FASTMATH))(fn)


def parallel_fma_kernel(fn: F) -> F:
    """A parallel elementwise kernel with FMA contraction (see the module docstring)."""
    return numba.njit(cache=True, nogil=True, parallel=True, fastmath=set(ELEMENTWISE_FASTMATH))(fn)
