"""The peer: the official Qwen3-TTS decoder (``qwen-tts`` package) on perfkit's weights and codes.

``perfkit compare qwen-tts torch …`` puts the code users would otherwise run next to perfkit's
backends, on the same weights (:attr:`perfkit.model.vocoder_model.VocoderModel.weights`, official
names, loaded with strict checking) and the same codes. Variants: ``device`` ``cpu`` | ``cuda``,
``dtype`` ``float32`` | ``bfloat16`` (the module converted with ``.to(dtype)``, as a user would).
Attention is whatever transformers picks for the module (``sdpa`` with transformers 4.57).

Optional: the ``qwen-tts`` package (and ``transformers``) are *not* perfkit dependencies. Without
them the backend is listed as unavailable with the install command. Only the decoder's two source
files are imported (see :mod:`.official`), so torchaudio, librosa and the rest of the package's
extras need not be installed.

Limits of the official code, kept as they are (this is the baseline, not an optimisation target):
no per-stage API (the stages call its submodules in its own order, see :mod:`.vocoder`) and no
streaming state — a second chunk pushed with the same state raises :class:`BackendUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from perfkit.errors import BackendUnavailable
from perfkit.interface import Backend, VocoderRunner
from perfkit.model.vocoder_model import VocoderModel

from .official import load_official, unavailable_reason


class QwenTTSBackend(Backend):
    name = "qwen-tts"
    description = "the official Qwen3-TTS decoder (qwen-tts package, PyTorch) on the same weights: the peer"
    option_choices = {"device": ("cpu", "cuda"), "dtype": ("float32", "bfloat16")}

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.check_available(self.options)
        import torch

        self.official = load_official()
        self.device = torch.device(self.options["device"])
        self.dtype = getattr(torch, self.options["dtype"])
        if self.device.type == "cuda" and self.dtype == torch.float32:
            torch.backends.cudnn.allow_tf32 = False  # float32 means float32 (see perfkit's torch backend)
            torch.backends.cuda.matmul.allow_tf32 = False

    @classmethod
    def check_available(cls, options: Mapping[str, str]) -> None:
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        options = cls.resolve_options(options)
        if options["device"] == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BackendUnavailable(f"no CUDA device visible to torch {torch.__version__}")
            if options["dtype"] == "bfloat16" and not torch.cuda.is_bf16_supported():
                raise BackendUnavailable("bfloat16 needs a CUDA device of compute capability 8.0 or newer")

    # ---- device
    def synchronize(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def to_host(self, x: Any) -> np.ndarray:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach()
            if x.dtype in (torch.bfloat16, torch.float16):
                x = x.float()
            return x.cpu().numpy()
        return np.asarray(x)

    def thread_settings(self) -> dict[str, int]:
        import torch

        return {"torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads()}

    # ---- models
    def load_vocoder(self, model: VocoderModel) -> VocoderRunner:
        from .vocoder import QwenTTSVocoder

        return QwenTTSVocoder(model.config, model.weights, self.official, self.dtype, self.device)
