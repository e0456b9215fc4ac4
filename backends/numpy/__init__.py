"""The NumPy backend: the reference implementation, float32 and float64.

float64 is the parity reference for every other backend. The code is written to be read: one
function per layer, the tensor shapes in every docstring. The vocoder runs its GEMMs on BLAS's
threads and splits its large elementwise passes over as many threads by channel rows, which leaves
every value as the serial code makes it (``row_threads.py``), and runs its long stages in time tiles,
so its scratch is a few tiles whatever the input's length (``tiles.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfkit.generator_interface import GeneratorRunner
from perfkit.interface import Backend, VocoderRunner
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.vocoder_model import VocoderModel

from .generator import NumpyGenerator
from .vocoder import NumpyVocoder


class NumpyBackend(Backend):
    name = "numpy"
    description = "reference implementation in NumPy (float64 is the parity reference)"
    option_choices = {"dtype": ("float32", "float64")}
    worker_environment = {"OPENBLAS_THREAD_TIMEOUT": "20"}
    """OpenBLAS's idle threads spin for ``2**n`` cycles after a GEMM before they sleep: ``2**28`` (about
    0.1 s) by default, ``2**20`` (0.4 ms at 2.6 GHz) here. Spinning, they hold the cores the row threads
    split SnakeBeta and the residual adds over. Measured on the 2-core Xeon, one process per setting,
    one after another: the 50-frame vocoder (float32) takes 1047 ms with the default, 942 ms with 20,
    937 ms with 18; the 0.6B generator's frame loop, which waits on BLAS's threads between many small
    GEMVs, is 1% slower with 20 than with the default, 5% with 18, 23% with 4."""

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def load_vocoder(self, model: VocoderModel) -> VocoderRunner:
        return NumpyVocoder(model.config, model.weights, np.dtype(self.options["dtype"]))

    def load_generator(self, model: GeneratorModel, vocoder: VocoderModel | None = None) -> GeneratorRunner:
        """The talker + code predictor; ``vocoder`` is not needed here (load it with :meth:`load_vocoder`)."""
        return NumpyGenerator(model.config, model.weights, np.dtype(self.options["dtype"]))

    def thread_settings(self) -> dict[str, int]:
        from threadpoolctl import threadpool_info

        return {f"{i['internal_api']}": int(i["num_threads"]) for i in threadpool_info()}
