"""What the suites share: preset names for the vocoder and the generator, and the benchmark texts.

A suite case names one preset. Vocoder suites accept a vocoder preset (``tiny``, ``small``,
``qwen3-tts-12hz``) or a generator preset (its paired vocoder); generator suites accept a generator
preset (``tiny``, ``small``, ``qwen3-tts-0.6b``, ``qwen3-tts-1.7b``) or the published vocoder's name,
which stands for the 0.6B talker. Not a suite itself (the leading underscore keeps it off the list).
"""

from __future__ import annotations

from perfkit.errors import ConfigError
from perfkit.model.generator_config import GENERATOR_PRESETS
from perfkit.model.tts_model import PUBLISHED_VOCODER, vocoder_preset_for
from perfkit.model.vocoder_config import VOCODER_PRESETS

#: The generator preset that stands for the published vocoder's name.
PUBLISHED_GENERATOR = "qwen3-tts-0.6b"

#: Generator presets small enough for a parity check by default (the float64 reference runs them too).
LIGHT_GENERATORS: tuple[str, ...] = ("tiny", "small")

#: The benchmark texts, about 13, 53 and 115 words as in the generator journal the RTF tables follow.
TEXTS: dict[str, str] = {
    "short": "The quick brown fox jumps over the lazy dog while the band plays.",
    "medium": (
        "Streaming speech synthesis lets a listener hear the first words of an answer while the rest is "
        "still being generated on the server side. To make that work, every single stage must keep up "
        "with real time: the talker that predicts codec frames, the code predictor that fills in detail, "
        "and the vocoder."
    ),
    "long": (
        "When we measured the first version of the pipeline, almost all of the time went into the vocoder, "
        "and most of that into a single transposed convolution written as a scatter loop. Rewriting it as "
        "one matrix multiplication followed by a cheap column-to-image pass made that stage fifty times "
        "faster, and the profile shifted completely: the residual units became the new bottleneck. Each "
        "change was kept only when the numbers showed that it paid and the output still matched the "
        "reference. The lesson of that work is simple: measure every stage, compare against a trusted "
        "reference every time, and write the results down in a form that other people can check and "
        "repeat again later."
    ),
}


def word_count(text: str) -> int:
    return len(text.split())


def vocoder_preset_name(preset: str) -> str:
    """The vocoder preset a case of ``preset`` uses; :class:`ConfigError` listing the choices otherwise."""
    if preset in VOCODER_PRESETS:
        return preset
    if preset in GENERATOR_PRESETS:
        return vocoder_preset_for(preset)
    raise ConfigError(f"unknown preset {preset!r}; choose one of "
                      f"{', '.join(dict.fromkeys([*VOCODER_PRESETS, *GENERATOR_PRESETS]))}")


def generator_preset_name(preset: str) -> str:
    """The generator preset a case of ``preset`` uses; :class:`ConfigError` listing the choices otherwise."""
    if preset in GENERATOR_PRESETS:
        return preset
    if preset == PUBLISHED_VOCODER:
        return PUBLISHED_GENERATOR
    raise ConfigError(f"unknown preset {preset!r} for the generator; choose one of "
                      f"{', '.join(GENERATOR_PRESETS)} (or {PUBLISHED_VOCODER})")
