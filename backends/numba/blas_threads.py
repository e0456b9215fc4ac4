"""The thread count of the BLAS that numba's GEMMs call (SciPy's ``cython_blas`` library).

The kernels parallelise with numba's own threads and call BLAS *inside* them, one single-threaded
GEMM per thread (:func:`.linear.pgemm`). A multi-threaded BLAS underneath would run a second pool
of threads against numba's: on a 2-core machine the two pools spin against each other and a decode
gets many times slower. The backend keeps SciPy's BLAS on one thread for the
duration of the backend's calls (:func:`ensure_single_threaded_blas`); NumPy's own BLAS (a separate
library) is untouched.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


@cache
def _scipy_blas_controllers() -> tuple[Any, ...]:
    """threadpoolctl controllers of the BLAS library SciPy's ``cython_blas`` is linked against."""
    import numpy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library)
    from threadpoolctl import ThreadpoolController

    blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    numpy_dir = Path(numpy.__file__).resolve().parent
    numpy_libs = (numpy_dir, numpy_dir.parent / "numpy.libs")

    def is_numpy_own(lib: Any) -> bool:
        return Path(lib.filepath).resolve().parent in numpy_libs

    scipy_own = [lib for lib in blas if "scipy" in Path(lib.filepath).resolve().parent.name]
    return tuple(scipy_own or [lib for lib in blas if not is_numpy_own(lib)] or blas)


def blas_threads() -> int:
    """The thread count of SciPy's BLAS now (the largest, if several libraries qualify)."""
    return max((int(lib.get_num_threads()) for lib in _scipy_blas_controllers()), default=1)


def ensure_single_threaded_blas() -> None:
    """Set SciPy's BLAS to one thread unless it already is (about 1 us when it is).

    Not restored afterwards: switching OpenBLAS back to several threads costs tens of microseconds
    per call, and nothing else in a perfkit process uses SciPy's BLAS (NumPy has its own). Runners
    call this at every entry, so a ``threadpool_limits`` elsewhere cannot leave two pools running.
    """
    for lib in _scipy_blas_controllers():
        if lib.get_num_threads() != 1:
            lib.set_num_threads(1)
