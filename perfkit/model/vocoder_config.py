"""Geometry of the Qwen3-TTS 12 Hz speech-tokenizer decoder (the vocoder).

The field names are the official ``decoder_config`` names of qwen-tts 0.1.1
(``Qwen3TTSTokenizerV2DecoderConfig``), so a checkpoint's ``config.json`` maps onto
:class:`VocoderConfig` one to one. Shapes used throughout perfkit:

- codes: ``(num_quantizers, T)`` integers, ``T`` frames;
- hidden after ``rvq_decode``: ``(codebook_dim, T)``; after ``pre_conv`` and the
  pre-transformer: ``(latent_dim, T)``; after the two upsample stages
  ``(latent_dim, T * prod(upsampling_ratios))``;
- decoder block ``i``: ``(decoder_dim / 2**i, L) -> (decoder_dim / 2**(i+1), L * upsample_rates[i])``;
- waveform: ``(T * total_upsample,)`` float samples in [-1, 1] at 24 kHz.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class VocoderConfig:
    """The decoder geometry; defaults are the published 12 Hz tokenizer's."""

    codebook_size: int = 2048
    codebook_dim: int = 512
    num_quantizers: int = 16
    num_semantic_quantizers: int = 1
    semantic_codebook_size: int = 2048
    latent_dim: int = 1024
    hidden_size: int = 512
    intermediate_size: int = 1024
    head_dim: int = 64
    num_attention_heads: int = 16
    num_key_value_heads: int = 16
    num_hidden_layers: int = 8
    attention_bias: bool = False
    sliding_window: int = 72
    max_position_embeddings: int = 8000
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    layer_scale_initial_scale: float = 0.01
    hidden_act: str = "silu"
    upsample_rates: tuple[int, ...] = (8, 5, 4, 3)
    upsampling_ratios: tuple[int, ...] = (2, 2)
    decoder_dim: int = 1536
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        object.__setattr__(self, "upsample_rates", tuple(int(r) for r in self.upsample_rates))
        object.__setattr__(self, "upsampling_ratios", tuple(int(r) for r in self.upsampling_ratios))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` when the geometry is inconsistent."""
        positive = (
            "codebook_size", "codebook_dim", "num_quantizers", "semantic_codebook_size", "latent_dim",
            "hidden_size", "intermediate_size", "head_dim", "num_attention_heads", "num_key_value_heads",
            "num_hidden_layers", "sliding_window", "decoder_dim",
        )
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"vocoder config: {name} must be positive, got {getattr(self, name)}")
        if not 1 <= self.num_semantic_quantizers < self.num_quantizers:
            raise ConfigError(
                f"vocoder config: num_semantic_quantizers must be in [1, num_quantizers), "
                f"got {self.num_semantic_quantizers} of {self.num_quantizers}"
            )
        if self.codebook_dim % 2:
            raise ConfigError(f"vocoder config: codebook_dim must be even, got {self.codebook_dim}")
        if self.head_dim % 2:
            raise ConfigError(f"vocoder config: head_dim must be even (RoPE), got {self.head_dim}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"vocoder config: num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.decoder_dim % (2 ** len(self.upsample_rates)):
            raise ConfigError(
                f"vocoder config: decoder_dim ({self.decoder_dim}) must be divisible by "
                f"2**{len(self.upsample_rates)}"
            )
        if not self.upsample_rates or any(r <= 0 for r in self.upsample_rates + self.upsampling_ratios):
            raise ConfigError("vocoder config: upsample rates and ratios must be positive")
        if self.hidden_act != "silu":
            raise ConfigError(f"vocoder config: only hidden_act='silu' is supported, got {self.hidden_act!r}")

    # ----------------------------------------------------------------- derived geometry
    @property
    def codebook_half_dim(self) -> int:
        """Width of each codebook row: ``codebook_dim // 2`` (the official RVQ ``dimension``)."""
        return self.codebook_dim // 2

    @property
    def num_acoustic_quantizers(self) -> int:
        return self.num_quantizers - self.num_semantic_quantizers

    @property
    def num_blocks(self) -> int:
        return len(self.upsample_rates)

    @property
    def total_upsample(self) -> int:
        """Samples per frame: ``prod(upsampling_ratios) * prod(upsample_rates)`` (1920 for the real geometry)."""
        return math.prod(self.upsampling_ratios) * math.prod(self.upsample_rates)

    @property
    def frame_rate(self) -> float:
        """Frames per second of audio (12.5 for the real geometry)."""
        return self.sample_rate / self.total_upsample

    def block_dims(self, i: int) -> tuple[int, int]:
        """``(in_channels, out_channels)`` of decoder block ``i``."""
        return self.decoder_dim // 2**i, self.decoder_dim // 2 ** (i + 1)

    @property
    def output_dim(self) -> int:
        """Channels entering the final SnakeBeta + conv: ``decoder_dim / 2**num_blocks``."""
        return self.decoder_dim // 2**self.num_blocks

    def codebook_size_of(self, quantizer: int) -> int:
        """Rows of quantizer ``quantizer``'s codebook (semantic ones may differ)."""
        if quantizer < self.num_semantic_quantizers:
            return self.semantic_codebook_size
        return self.codebook_size

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["upsample_rates"] = list(self.upsample_rates)
        d["upsampling_ratios"] = list(self.upsampling_ratios)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VocoderConfig:
        """Build from an official ``decoder_config`` mapping; unknown keys are ignored.

        ``head_dim`` defaults to ``hidden_size // num_attention_heads`` and
        ``semantic_codebook_size`` to ``codebook_size``, as the official code does.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs.setdefault("head_dim", int(data.get("hidden_size", cls.hidden_size))
                          // int(data.get("num_attention_heads", cls.num_attention_heads)))
        kwargs.setdefault("semantic_codebook_size", int(data.get("codebook_size", cls.codebook_size)))
        try:
            return cls(**kwargs)
        except TypeError as exc:  # wrong value types
            raise ConfigError(f"vocoder config: {exc}") from exc

    def replace(self, **changes: Any) -> VocoderConfig:
        return dataclasses.replace(self, **changes)


VOCODER_PRESETS: dict[str, VocoderConfig] = {
    # Tests: narrow and shallow, but the real upsampling, so one frame is 1920 samples.
    "tiny": VocoderConfig(
        codebook_size=64, semantic_codebook_size=64, codebook_dim=32, latent_dim=32, hidden_size=32,
        intermediate_size=64, head_dim=8, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
        sliding_window=8, decoder_dim=64,
    ),
    # Quick benchmarks: a quarter of the real widths, half the layers.
    "small": VocoderConfig(
        codebook_size=512, semantic_codebook_size=512, codebook_dim=128, latent_dim=256, hidden_size=128,
        intermediate_size=256, head_dim=32, num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=4,
        sliding_window=32, decoder_dim=384,
    ),
    # The published Qwen3-TTS-Tokenizer-12Hz decoder geometry (~114 M parameters, ~5 GFLOP per frame).
    "qwen3-tts-12hz": VocoderConfig(),
}


def vocoder_preset(name: str) -> VocoderConfig:
    """The named preset; :class:`ConfigError` listing the choices otherwise."""
    try:
        return VOCODER_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown vocoder preset {name!r}; choose one of {', '.join(VOCODER_PRESETS)}") from None
