"""A vocoder model: a config plus its float32 tensors, from a seed or from a model directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError
from .checkpoint import check_tensors, read_config, read_tensors, write_model_dir
from .dtypes import weight_bytes_in
from .vocoder_config import VocoderConfig
from .vocoder_weights import UNUSED_SUFFIXES, synthetic_vocoder_weights, vocoder_tensor_shapes

PREFIX = "decoder."
_FIRST_CODEBOOK = "quantizer.rvq_first.vq.layers.0._codebook.embedding_sum"
_REST_CODEBOOK = "quantizer.rvq_rest.vq.layers.0._codebook.embedding_sum"


@dataclass(frozen=True, eq=False)
class VocoderModel:
    """``config`` and ``weights`` (official names without the ``decoder.`` prefix, float32)."""

    config: VocoderConfig
    weights: Mapping[str, np.ndarray] = field(repr=False)
    source: str = "synthetic"

    @classmethod
    def synthetic(cls, config: VocoderConfig, seed: int = 0) -> VocoderModel:
        return cls(config, synthetic_vocoder_weights(config, seed), source=f"synthetic(seed={seed})")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> VocoderModel:
        """Load a tokenizer directory (geometry under ``decoder_config``) or a bare decoder config.

        Codebook sizes follow the tensors; every other field comes from ``config.json``.
        """
        raw = read_config(directory)
        decoder_cfg = raw.get("decoder_config", raw)
        if not isinstance(decoder_cfg, dict):
            raise CheckpointError(f"{directory}/config.json: decoder_config must be an object")
        tensors = read_tensors(directory, PREFIX)
        if not tensors:
            raise CheckpointError(f"{directory}/model.safetensors: no tensors named '{PREFIX}*' (not a vocoder)")
        sizes: dict[str, Any] = {}
        if _REST_CODEBOOK in tensors:
            sizes["codebook_size"] = int(tensors[_REST_CODEBOOK].shape[0])
        if _FIRST_CODEBOOK in tensors:
            sizes["semantic_codebook_size"] = int(tensors[_FIRST_CODEBOOK].shape[0])
        try:
            config = VocoderConfig.from_dict({**decoder_cfg, **sizes})
        except ConfigError as exc:
            raise CheckpointError(f"{directory}/config.json: {exc}") from None
        where = str(Path(directory) / "model.safetensors")
        weights = check_tensors(tensors, vocoder_tensor_shapes(config), where=where,
                                ignored_suffixes=UNUSED_SUFFIXES, prefix=PREFIX)
        return cls(config, weights, source=str(directory))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the official layout: ``{"decoder_config": …}`` and ``decoder.*`` tensors."""
        config = {"model_type": "qwen3_tts_tokenizer_12hz", "decoder_config": self.config.to_dict(),
                  "output_sample_rate": self.config.sample_rate, "decode_upsample_rate": self.config.total_upsample}
        return write_model_dir(directory, config, self.weights, PREFIX)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights as stored here (float32)."""
        return sum(int(w.nbytes) for w in self.weights.values())

    def weight_bytes_in(self, dtype: str) -> int | None:
        """Bytes of the weights as a backend computing in ``dtype`` holds them (:func:`.dtypes.weight_bytes_in`)."""
        return weight_bytes_in(self.weights, dtype)
