"""The torch backend: CPU and CUDA, float32 / bfloat16 / float16, optional ``torch.compile``.

Variants (first value is the default): ``device`` ``cpu`` | ``cuda``, ``dtype`` ``float32`` |
``bfloat16`` | ``float16`` (CUDA only), ``compile`` ``off`` | ``on`` (the vocoder's SnakeBeta fused by
``torch.compile``), ``graphs`` ``off`` | ``on`` (the generator's per-frame stages replayed as CUDA
graphs; CUDA only). Weights are converted to the device, dtype and packed layouts once, at load;
every call runs under ``torch.inference_mode``.

torch is imported when a backend is constructed, not when this module is: the parent process that
resolves a run's variants never loads it (:mod:`.availability`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from perfkit.errors import BackendUnavailable
from perfkit.interface import Backend, VocoderRunner

from .availability import DTYPE_NAMES, unavailable_reason

if TYPE_CHECKING:
    from perfkit.generator_interface import GeneratorRunner
    from perfkit.model.generator_model import GeneratorModel
    from perfkit.model.vocoder_model import VocoderModel


class TorchBackend(Backend):
    name = "torch"
    description = "PyTorch on CPU (oneDNN/MKL) or CUDA; float32, bfloat16, float16 (CUDA)"
    option_choices = {
        "device": ("cpu", "cuda"),
        "dtype": DTYPE_NAMES,
        "compile": ("off", "on"),
        "graphs": ("off", "on"),
    }

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.check_available(self.options)
        import torch

        from . import device  # imports torch

        self._device_ops = device
        self.device = torch.device(self.options["device"])
        self.dtype = device.DTYPES[self.options["dtype"]]
        self.compile = self.options["compile"] == "on"
        self.graphs = self.options["graphs"] == "on"
        device.configure_precision(self.device, self.dtype)

    @classmethod
    def check_available(cls, options: Mapping[str, str]) -> None:
        reason = unavailable_reason(cls.resolve_options(options))
        if reason:
            raise BackendUnavailable(reason)

    # ---- device
    def synchronize(self) -> None:
        self._device_ops.synchronize(self.device)

    def to_host(self, x: Any) -> np.ndarray:
        return self._device_ops.to_host(x)

    def thread_settings(self) -> dict[str, int]:
        import torch

        return {"torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads()}

    # ---- models
    def load_vocoder(self, model: VocoderModel) -> VocoderRunner:
        from .vocoder import TorchVocoder

        return TorchVocoder(model.config, model.weights, self.dtype, self.device, compiled=self.compile)

    def load_generator(self, model: GeneratorModel, vocoder: VocoderModel | None = None) -> GeneratorRunner:
        """The talker + code predictor; ``vocoder`` is not needed here (load it with :meth:`load_vocoder`)."""
        from .generator import TorchGenerator

        return TorchGenerator(model.config, model.weights, self.dtype, self.device, graphs=self.graphs)
