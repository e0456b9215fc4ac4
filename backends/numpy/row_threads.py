"""Elementwise NumPy kernels split over channel rows, one block of rows per thread.

BLAS already runs the GEMMs on every thread it is given; NumPy's ufuncs run on one. A kernel
``f(x, *per_row, out)`` on ``(C, T)`` arrays is elementwise per row, so rows ``[r0, r1)`` are an
independent piece of work: :class:`RowThreads` gives each of ``n`` threads ``C / n`` rows (the calling
thread takes the first block). NumPy releases the GIL inside ufunc loops, so the blocks run in parallel,
and the result is bit-identical to the serial call (every element sees the same operations).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many elements a split costs more (thread hand-off, ~10-50 us) than it saves.
MIN_SPLIT_ELEMENTS = 1 << 16

RowKernel = Callable[..., None]


def blas_threads() -> int:
    """The thread count of the loaded BLAS (threadpoolctl), which ``--threads`` has set; at least 1."""
    from threadpoolctl import threadpool_info

    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(1, max(counts, default=1))


class RowThreads:
    """Runs ``kernel(*arrays, out)`` over row blocks on ``threads`` threads.

    Every array argument has ``C`` rows (``(C, T)`` data or ``(C, 1)`` per-channel factors); ``out`` is
    ``(C, T)``. A kernel may alias ``out`` with its input when it is safe row by row.
    """

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="numpy-rows") if threads > 1 else None

    def run(self, kernel: RowKernel, *arrays: np.ndarray, out: np.ndarray) -> np.ndarray:
        rows = out.shape[0]
        parts = min(self.threads, rows)
        if self._pool is None or parts < 2 or out.size < MIN_SPLIT_ELEMENTS:
            kernel(*arrays, out)
            return out
        bounds = np.linspace(0, rows, parts + 1).astype(int)
        spans = zip(bounds[:-1], bounds[1:], strict=True)
        blocks = [tuple(a[r0:r1] for a in arrays) + (out[r0:r1],) for r0, r1 in spans]
        futures = [self._pool.submit(kernel, *b) for b in blocks[1:]]
        kernel(*blocks[0])
        for f in futures:
            f.result()
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
