"""Choosing a model from the command line: a preset + seed (synthetic weights) or a directory."""

from __future__ import annotations

from ..errors import InputError
from .vocoder_config import vocoder_preset
from .vocoder_model import VocoderModel


def vocoder_from_args(preset: str | None, model_dir: str | None, seed: int = 0) -> VocoderModel:
    """Exactly one of ``preset`` or ``model_dir``."""
    if (preset is None) == (model_dir is None):
        raise InputError("give exactly one of --preset (synthetic weights) or --model DIR")
    if model_dir is not None:
        return VocoderModel.load(model_dir)
    return VocoderModel.synthetic(vocoder_preset(preset), seed)
