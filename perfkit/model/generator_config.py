"""Geometry of the Qwen3-TTS generator: the talker (a Qwen3 decoder over text + codec embeddings) and
its code predictor (a small Qwen3 decoder that fills in code groups 1 … G-1 of every frame).

Field names are the official ones of qwen-tts 0.1.1 (``Qwen3TTSTalkerConfig``,
``Qwen3TTSTalkerCodePredictorConfig``; the text special ids come from the enclosing
``Qwen3TTSConfig``), so an official ``config.json`` maps onto :class:`GeneratorConfig` one to one.
Shapes used throughout perfkit (``H`` = ``hidden_size``, ``Hc`` = code predictor width, ``G`` =
``num_code_groups``):

- text ids ``(N,)`` -> ``text_embedding`` ``(N, text_hidden_size)`` -> ``text_projection`` ``(N, H)``;
- talker input ``(T, H)`` -> decoder layers -> RMSNorm -> ``codec_head`` logits ``(T, vocab_size)``
  for code group 0 (the codec vocabulary: ``num_codes`` audio codes + special ids above them);
- code predictor input ``(t, H)`` -> ``small_to_mtp_projection`` (identity when ``Hc == H``) ``(t, Hc)``
  -> decoder layers -> RMSNorm -> ``lm_head[g-1]`` logits ``(code_predictor.vocab_size,)`` for group ``g``;
- codes per frame ``(G,)``, an utterance ``(G, frames)`` — the vocoder's ``(num_quantizers, T)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

#: Codec special ids are fixed offsets above the audio codes in the published checkpoints
#: (codes 0…2047; pad 2148, bos 2149, eos 2150, think 2154, nothink 2155, think_bos 2156, think_eos 2157).
_SPECIAL_OFFSETS = {"codec_pad_id": 100, "codec_bos_id": 101, "codec_eos_token_id": 102,
                    "codec_think_id": 106, "codec_nothink_id": 107, "codec_think_bos_id": 108,
                    "codec_think_eos_id": 109}
_TEXT_SPECIALS = ("im_start_token_id", "im_end_token_id", "tts_pad_token_id", "tts_bos_token_id",
                  "tts_eos_token_id")


def _check_positive(where: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")


def _check_attention(where: str, obj: Any) -> None:
    if obj.num_attention_heads % obj.num_key_value_heads:
        raise ConfigError(f"{where}: num_attention_heads ({obj.num_attention_heads}) must be a multiple of "
                          f"num_key_value_heads ({obj.num_key_value_heads})")
    if obj.head_dim % 2:
        raise ConfigError(f"{where}: head_dim must be even (RoPE), got {obj.head_dim}")
    if not obj.rms_norm_eps > 0:
        raise ConfigError(f"{where}: rms_norm_eps must be positive, got {obj.rms_norm_eps}")
    if not obj.rope_theta > 0:
        raise ConfigError(f"{where}: rope_theta must be positive, got {obj.rope_theta}")
    if obj.hidden_act != "silu":
        raise ConfigError(f"{where}: only hidden_act='silu' is supported, got {obj.hidden_act!r}")


def _check_full_attention(where: str, data: Mapping[str, Any]) -> None:
    """:class:`ConfigError` for an official config that asks for sliding-window attention.

    The official classes take ``use_sliding_window`` (and per-layer ``layer_types``); the published
    models use full causal attention everywhere, which is all perfkit computes, so a config asking for
    anything else is refused rather than silently decoded differently.
    """
    if data.get("use_sliding_window"):
        raise ConfigError(f"{where}: use_sliding_window=true is not supported (full causal attention only)")
    layer_types = data.get("layer_types") or ()
    if isinstance(layer_types, str) or not isinstance(layer_types, list | tuple):
        raise ConfigError(f"{where}: layer_types must be a list, got {layer_types!r}")
    other = sorted({str(t) for t in layer_types} - {"full_attention"})
    if other:
        raise ConfigError(f"{where}: layer_types {other} are not supported (full causal attention only)")


def _kwargs(cls: type, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    _check_full_attention(where, data)
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class CodePredictorConfig:
    """The code predictor (official ``code_predictor_config``); defaults are the published model's.

    ``vocab_size`` is the codebook size of every group 1 … G-1 (and the number of audio codes of group 0).
    Its ``codec_embedding`` tables are ``talker.hidden_size`` wide (they are summed into the talker input).
    """

    vocab_size: int = 2048
    hidden_size: int = 1024
    intermediate_size: int = 3072
    num_hidden_layers: int = 5
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    hidden_act: str = "silu"
    max_position_embeddings: int = 65536
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    attention_bias: bool = False
    num_code_groups: int = 16

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        where = "generator config: code_predictor_config"
        _check_positive(where, self, ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "num_key_value_heads", "head_dim",
                                      "max_position_embeddings", "num_code_groups"))
        _check_attention(where, self)
        if self.num_code_groups < 2:
            raise ConfigError(f"{where}: num_code_groups must be at least 2, got {self.num_code_groups}")
        if self.max_position_embeddings < self.num_code_groups:
            raise ConfigError(f"{where}: max_position_embeddings ({self.max_position_embeddings}) must hold "
                              f"one frame's {self.num_code_groups} positions")

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "qwen3_tts_talker_code_predictor", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodePredictorConfig:
        kwargs = _kwargs(cls, data, "generator config: code_predictor_config")
        if data.get("rope_scaling") not in (None, {}):
            rope_type = dict(data["rope_scaling"]).get("rope_type", dict(data["rope_scaling"]).get("type"))
            if rope_type not in (None, "default"):
                raise ConfigError(f"generator config: code predictor rope_scaling type {rope_type!r} "
                                  f"is not supported")
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"generator config: code_predictor_config: {exc}") from None


@dataclass(frozen=True)
class GeneratorConfig:
    """The talker (official ``talker_config``) plus the text special ids of the enclosing config.

    Defaults are the published 0.6B model's. ``mrope_section`` / ``mrope_interleaved`` mirror the
    official ``rope_scaling``: the talker's multimodal RoPE, which for text-only input (all three
    position rows equal) is plain 1-D RoPE over ``head_dim``; they are kept only to write configs the
    official code can load (``None``: derived from ``head_dim``, ``(24, 20, 20)`` for 128).
    """

    vocab_size: int = 3072
    hidden_size: int = 1024
    intermediate_size: int = 3072
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    attention_bias: bool = False
    num_code_groups: int = 16
    text_hidden_size: int = 2048
    text_vocab_size: int = 151936
    codec_eos_token_id: int = 2150
    codec_think_id: int = 2154
    codec_nothink_id: int = 2155
    codec_think_bos_id: int = 2156
    codec_think_eos_id: int = 2157
    codec_pad_id: int = 2148
    codec_bos_id: int = 2149
    im_start_token_id: int = 151644
    im_end_token_id: int = 151645
    tts_pad_token_id: int = 151671
    tts_bos_token_id: int = 151672
    tts_eos_token_id: int = 151673
    mrope_section: tuple[int, ...] | None = None
    mrope_interleaved: bool = True
    code_predictor_config: CodePredictorConfig = field(default_factory=CodePredictorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.code_predictor_config, Mapping):
            cp = CodePredictorConfig.from_dict(self.code_predictor_config)
            object.__setattr__(self, "code_predictor_config", cp)
        if self.mrope_section is None and isinstance(self.head_dim, int):
            half = self.head_dim // 2
            side = half * 5 // 16  # (24, 20, 20) for head_dim 128, the published split
            object.__setattr__(self, "mrope_section", (half - 2 * side, side, side))
        if self.mrope_section is not None:
            object.__setattr__(self, "mrope_section", tuple(int(s) for s in self.mrope_section))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` when the geometry or the special ids are inconsistent."""
        where = "generator config"
        _check_positive(where, self, ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "num_key_value_heads", "head_dim",
                                      "max_position_embeddings", "num_code_groups", "text_hidden_size",
                                      "text_vocab_size"))
        _check_attention(where, self)
        cp = self.code_predictor_config
        if not isinstance(cp, CodePredictorConfig):
            raise ConfigError(f"{where}: code_predictor_config must be an object, got {type(cp).__name__}")
        if cp.num_code_groups != self.num_code_groups:
            raise ConfigError(f"{where}: num_code_groups is {self.num_code_groups} but the code predictor's "
                              f"is {cp.num_code_groups}")
        if cp.vocab_size >= self.vocab_size:
            raise ConfigError(f"{where}: the codec vocabulary (vocab_size={self.vocab_size}) must hold the "
                              f"{cp.vocab_size} audio codes plus the special ids above them")
        for name in _SPECIAL_OFFSETS:
            value = getattr(self, name)
            if not isinstance(value, int) or not self.num_codes <= value < self.vocab_size:
                raise ConfigError(f"{where}: {name}={value!r} must be a special id in [{self.num_codes}, "
                                  f"{self.vocab_size}) (above the audio codes)")
        for name in _TEXT_SPECIALS:
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.text_vocab_size:
                raise ConfigError(f"{where}: {name}={value!r} is outside the text vocabulary "
                                  f"[0, {self.text_vocab_size})")
        if self.mrope_section is not None and sum(self.mrope_section) != self.head_dim // 2:
            raise ConfigError(f"{where}: rope_scaling.mrope_section {list(self.mrope_section)} must sum to "
                              f"head_dim / 2 = {self.head_dim // 2}")

    # ----------------------------------------------------------------- derived
    @property
    def num_codes(self) -> int:
        """Audio codes per group (the codebook size); group 0's are ``[0, num_codes)`` of the codec vocab."""
        return self.code_predictor_config.vocab_size

    @property
    def has_projection(self) -> bool:
        """Whether the code predictor has ``small_to_mtp_projection`` (talker and predictor widths differ)."""
        return self.code_predictor_config.hidden_size != self.hidden_size

    # ----------------------------------------------------------------- (de)serialisation
    def talker_dict(self) -> dict[str, Any]:
        """The official ``talker_config`` mapping (with its nested ``code_predictor_config``)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in _TEXT_SPECIALS and f.name not in ("mrope_section", "mrope_interleaved",
                                                                "code_predictor_config")}
        d["model_type"] = "qwen3_tts_talker"
        d["rope_scaling"] = {"rope_type": "default", "mrope_section": list(self.mrope_section or ()),
                             "interleaved": self.mrope_interleaved}
        d["code_predictor_config"] = self.code_predictor_config.to_dict()
        return d

    def to_dict(self) -> dict[str, Any]:
        """The official top-level ``Qwen3TTSConfig`` layout: text special ids + ``talker_config``."""
        return {"model_type": "qwen3_tts", **{k: getattr(self, k) for k in _TEXT_SPECIALS},
                "talker_config": self.talker_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorConfig:
        """Build from an official ``config.json`` (talker under ``talker_config``) or a bare talker config.

        Unknown keys are ignored; the text special ids are read from the top level, or from the
        talker mapping itself for a bare config; missing ones are the published ids when the text
        vocabulary holds them, else the top of the vocabulary as the small presets use (``im_start``
        ``V-8``, ``im_end`` ``V-7``, ``tts_pad`` ``V-3``, ``tts_bos`` ``V-2``, ``tts_eos`` ``V-1``).
        ``head_dim`` defaults to ``hidden_size // num_attention_heads`` as the official attention
        does; a missing ``code_predictor_config`` means the official defaults.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"generator config: expected an object, got {type(data).__name__}")
        talker = data.get("talker_config", data)
        if not isinstance(talker, Mapping):
            raise ConfigError("generator config: talker_config must be an object")
        kwargs = _kwargs(cls, talker, "generator config")
        for name in _TEXT_SPECIALS:
            if name in data:
                kwargs[name] = data[name]
        text_vocab = kwargs.get("text_vocab_size", cls.text_vocab_size)
        if isinstance(text_vocab, int) and text_vocab <= max(getattr(cls, n) for n in _TEXT_SPECIALS):
            for name, value in _small_text_specials(text_vocab).items():
                kwargs.setdefault(name, value)
        hidden = talker.get("hidden_size", cls.hidden_size)
        heads = talker.get("num_attention_heads", cls.num_attention_heads)
        if "head_dim" not in kwargs and isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
            kwargs["head_dim"] = hidden // heads
        rope = talker.get("rope_scaling")
        if rope is not None:
            if not isinstance(rope, Mapping):
                raise ConfigError("generator config: rope_scaling must be an object or null")
            rope_type = rope.get("rope_type", rope.get("type", "default"))
            if rope_type != "default":
                raise ConfigError(f"generator config: rope_scaling type {rope_type!r} is not supported "
                                  f"(only the default multimodal RoPE)")
            if "mrope_section" in rope:
                kwargs["mrope_section"] = tuple(rope["mrope_section"])
            kwargs["mrope_interleaved"] = bool(rope.get("interleaved", rope.get("mrope_interleaved", True)))
        cp = talker.get("code_predictor_config")
        kwargs["code_predictor_config"] = CodePredictorConfig.from_dict(cp if cp is not None else {})
        try:
            return cls(**kwargs)
        except TypeError as exc:  # wrong value types
            raise ConfigError(f"generator config: {exc}") from None

    def replace(self, **changes: Any) -> GeneratorConfig:
        return dataclasses.replace(self, **changes)


def _specials(num_codes: int) -> dict[str, int]:
    """Codec special ids at the published offsets above ``num_codes``."""
    return {name: num_codes + off for name, off in _SPECIAL_OFFSETS.items()}


def _small_text_specials(text_vocab: int) -> dict[str, int]:
    """Text special ids at the top of a small text vocabulary (bytes 0…255 stay free for the fallback)."""
    return {"im_start_token_id": text_vocab - 8, "im_end_token_id": text_vocab - 7,
            "tts_pad_token_id": text_vocab - 3, "tts_bos_token_id": text_vocab - 2,
            "tts_eos_token_id": text_vocab - 1}


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    # Tests: two narrow layers; the code predictor narrower than the talker, so the projection is exercised.
    # 64 codes per group and 16 groups, as the tiny vocoder; the codec vocabulary is codes + 1024 (published).
    "tiny": GeneratorConfig(
        vocab_size=64 + 1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
        text_hidden_size=48, text_vocab_size=320,
        **_specials(64), **_small_text_specials(320),
        code_predictor_config=CodePredictorConfig(
            vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=12, max_position_embeddings=64),
    ),
    # Quick benchmarks: a quarter of the real widths; 512 codes per group, as the small vocoder.
    "small": GeneratorConfig(
        vocab_size=512 + 1024, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=8192,
        text_hidden_size=512, text_vocab_size=4096,
        **_specials(512), **_small_text_specials(4096),
        code_predictor_config=CodePredictorConfig(
            vocab_size=512, hidden_size=256, intermediate_size=768, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=1024),
    ),
    # The published Qwen3-TTS-12Hz-0.6B talker (talker and code predictor both 1024 wide: no projection).
    "qwen3-tts-0.6b": GeneratorConfig(),
    # The published Qwen3-TTS-12Hz-1.7B talker: 2048 wide, the same code predictor behind a 2048 -> 1024
    # projection.
    "qwen3-tts-1.7b": GeneratorConfig(hidden_size=2048, intermediate_size=6144),
}


def generator_preset(name: str) -> GeneratorConfig:
    """The named preset; :class:`ConfigError` listing the choices otherwise."""
    try:
        return GENERATOR_PRESETS[name]
    except KeyError:
        choices = ", ".join(GENERATOR_PRESETS)
        raise ConfigError(f"unknown generator preset {name!r}; choose one of {choices}") from None
