"""The Numba backend: the vocoder (and generator) as ``numba.njit`` kernels, float32 and float64.

Options (first value is the default):

- ``dtype``: ``float32`` | ``float64``, the compute dtype of activations and weights;
- ``threads``: ``auto`` | ``1`` | ``2`` | ``4`` | ``8`` | ``16``: numba's parallel kernels and the
  BLAS they call (SciPy's OpenBLAS) use this many threads; ``auto`` leaves both at their defaults
  (every core, or ``NUMBA_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``). More threads than cores is
  reported unavailable.

There is no fast-math option: elementwise kernels use only FMA contraction, which is at least as
accurate as separate rounding, and reductions keep their order (see :mod:`.jit`); float32 parity is
at float32 rounding level either way.

numba is imported lazily: this module imports, and the backend registers and lists, without it;
:meth:`NumbaBackend.check_available` then says why it cannot run. Kernels compile on their first
call and are cached on disk (``cache=True``, in a directory versioned by this package's source, see
:mod:`.jit`), so only the first call of a fresh installation, or the first after a change, pays the
compile time, and that cost lands on the first call of a run (the measurement engine reports it as
first-call time, apart from the samples). Nothing compiles after the first call: one call
compiles every kernel for every input length. ``runner.warmup()`` compiles eagerly, for callers
that want it at load. Making the backend starts numba's compiler runtime (:func:`.jit.start_runtime`:
about 60 MiB and 0.3 s, the same for every model), so the memory suite counts it in the baseline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from perfkit.errors import BackendUnavailable
from perfkit.interface import Backend, VariantInfo, VocoderRunner

if TYPE_CHECKING:
    from perfkit.generator_interface import GeneratorRunner
    from perfkit.model.generator_model import GeneratorModel
    from perfkit.model.vocoder_model import VocoderModel

THREAD_CHOICES = ("auto", "1", "2", "4", "8", "16")


@cache
def _import_problem() -> str:
    """Why numba (or the BLAS it calls through SciPy) cannot be used here; empty when it can."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        return f"numba is not installed: {exc}"
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot / gemm go through it)
    except ImportError as exc:
        return f"numba needs SciPy for BLAS, which is not installed: {exc}"
    return ""


class NumbaBackend(Backend):
    name = "numba"
    description = "numba.njit kernels (parallel, cached on disk), BLAS GEMMs; float32 and float64"
    option_choices = {"dtype": ("float32", "float64"), "threads": THREAD_CHOICES}

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.check_available(self.options)
        self._apply_threads()
        from .jit import start_runtime

        start_runtime()  # LLVM's fixed cost counts with the libraries, not with a run (see start_runtime)

    @classmethod
    def check_available(cls, options: Mapping[str, str]) -> None:
        problem = _import_problem()
        if problem:
            raise BackendUnavailable(problem)
        threads = options.get("threads", "auto")
        cores = os.cpu_count() or 1
        if threads != "auto" and int(threads) > cores:
            raise BackendUnavailable(f"threads={threads} is more than the {cores} cores of this machine")

    @classmethod
    def variants(cls) -> list[VariantInfo]:
        """Each dtype with the default thread count (any ``threads=N`` up to the core count also runs)."""
        infos = []
        for dtype in cls.option_choices["dtype"]:
            combo = {"dtype": dtype, "threads": "auto"}
            try:
                cls.check_available(combo)
                infos.append(VariantInfo(combo, True))
            except BackendUnavailable as exc:
                infos.append(VariantInfo(combo, False, str(exc)))
        return infos

    # ---- threads
    def _threads(self) -> int | None:
        """The thread count asked for (``None``: ``auto``), capped at numba's pool size."""
        threads = self.options["threads"]
        if threads == "auto":
            return None
        import numba

        return min(int(threads), numba.config.NUMBA_NUM_THREADS)

    def _apply_threads(self) -> None:
        """Limit BLAS process-wide (threadpoolctl) and numba's pool here; runners re-apply numba's."""
        n = self._threads()
        if n is None:
            return
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(n)
        self._blas_limits = threadpool_limits(limits=n, user_api="blas")

    def thread_settings(self) -> dict[str, int]:
        import numba
        from threadpoolctl import threadpool_info

        out = {"numba": int(numba.get_num_threads()), "numba_layer_max": int(numba.config.NUMBA_NUM_THREADS)}
        for info in threadpool_info():
            out[f"{info['internal_api']}:{info['prefix']}"] = int(info["num_threads"])
        return out

    # ---- device
    def to_host(self, x: Any) -> np.ndarray:
        """A copy: the runner reuses its buffers, so what reaches the host must not change later."""
        return np.array(x, copy=True)

    # ---- models
    def load_vocoder(self, model: VocoderModel) -> VocoderRunner:
        from .vocoder import NumbaVocoder

        return NumbaVocoder(model.config, model.weights, np.dtype(self.options["dtype"]), self._threads())

    def load_generator(self, model: GeneratorModel, vocoder: VocoderModel | None = None) -> GeneratorRunner:
        """The talker + code predictor; ``vocoder`` is not needed here (load it with :meth:`load_vocoder`)."""
        from .generator import NumbaGenerator

        return NumbaGenerator(model.config, model.weights, np.dtype(self.options["dtype"]), self._threads())
