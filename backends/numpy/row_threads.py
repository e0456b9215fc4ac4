"""Elementwise NumPy kernels split over channel rows, one block of rows per thread.

BLAS already runs the GEMMs on every thread it is given; NumPy's ufuncs run on one. A kernel
``f(x, *per_row, out)`` on ``(C, T)`` arrays is elementwise per row, so rows ``[r0, r1)`` are an
independent piece of work: :class:`RowThreads` gives each of ``n`` threads ``C / n`` rows (the calling
thread takes the first block). NumPy releases the GIL inside ufunc loops, so the blocks run in parallel,
and the result is bit-identical to the serial call (every element sees the same operations).

OpenBLAS's own threads keep spinning after a GEMM returns, for ``2**28`` cycles (about 0.1 s) unless
``OPENBLAS_THREAD_TIMEOUT`` says less, and a split right after a GEMM shares the cores with them. So the
backend's workers start with a short timeout (:attr:`~perfkit.backends.numpy.NumpyBackend.worker_environment`).
SnakeBeta on one block-3 tile (96 x 21845 float32) on the 2-core Xeon: 2.6 ms serial; split, 2.8 ms
with the default timeout and 1.5 ms with ``2**4`` cycles (the ``numpy-row-threads-scratch`` and
``numpy-blas-accumulate`` entries of ``reports/optimizations``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many elements a split costs more than it saves. Measured on the 2-core AMD EPYC: handing a
# block to the pool costs about 140 us; SnakeBeta on 2**18 float32 elements takes 0.90 ms serial and
# 0.75 ms split, a plain add breaks even near 2**20 (0.30 ms). Every array the published geometry
# splits has at least 1536 x 200 elements.
MIN_SPLIT_ELEMENTS = 1 << 18

RowKernel = Callable[..., None]
RowRunner = Callable[..., np.ndarray]
"""``run(kernel, *arrays, out)``: calls ``kernel(*arrays, out)``, at once (:func:`serial_rows`) or split over
row blocks of every argument (:meth:`RowThreads.run`); what a layer that can be split takes."""


def serial_rows(kernel: RowKernel, *arrays: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A :data:`RowRunner` that runs ``kernel(*arrays, out)`` once, on this thread."""
    kernel(*arrays, out)
    return out


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
        bounds = [rows * i // parts for i in range(parts + 1)]
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
