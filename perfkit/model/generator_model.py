"""A generator model: a config plus its float32 tensors, from a seed or from a model directory.

A directory holds the official layout: ``config.json`` (the top-level ``Qwen3TTSConfig`` with the
talker under ``talker_config``, or a bare talker config) and ``model.safetensors`` with the
generator's tensors under ``talker.`` (other tensors of an official checkpoint, such as
``speaker_encoder.*``, are ignored).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError
from .checkpoint import check_tensors, read_config, read_tensors, write_model_dir
from .dtypes import weight_bytes_in
from .generator_config import GeneratorConfig
from .generator_weights import PREFIX, generator_tensor_shapes, synthetic_generator_weights


@dataclass(frozen=True, eq=False)
class GeneratorModel:
    """``config`` and ``weights`` (official names without the ``talker.`` prefix, float32)."""

    config: GeneratorConfig
    weights: Mapping[str, np.ndarray] = field(repr=False)
    source: str = "synthetic"

    @classmethod
    def synthetic(cls, config: GeneratorConfig, seed: int = 0) -> GeneratorModel:
        return cls(config, synthetic_generator_weights(config, seed), source=f"synthetic(seed={seed})")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> GeneratorModel:
        """Load ``config.json`` + ``model.safetensors``; :class:`CheckpointError` naming what is wrong."""
        raw = read_config(directory)
        try:
            config = GeneratorConfig.from_dict(raw)
        except ConfigError as exc:
            raise CheckpointError(f"{Path(directory) / 'config.json'}: {exc}") from None
        tensors = read_tensors(directory, PREFIX)
        if not tensors:
            raise CheckpointError(f"{Path(directory) / 'model.safetensors'}: no tensors named '{PREFIX}*' "
                                  f"(not a Qwen3-TTS generator)")
        weights = check_tensors(tensors, generator_tensor_shapes(config),
                                where=str(Path(directory) / "model.safetensors"))
        return cls(config, weights, source=str(directory))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the official layout: the ``Qwen3TTSConfig`` mapping and ``talker.*`` tensors."""
        return write_model_dir(directory, self.config.to_dict(), self.weights, PREFIX)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights as stored here (float32)."""
        return sum(int(w.nbytes) for w in self.weights.values())

    def weight_bytes_in(self, dtype: str) -> int | None:
        """Bytes of the weights as a backend computing in ``dtype`` holds them (:func:`.dtypes.weight_bytes_in`)."""
        return weight_bytes_in(self.weights, dtype)
