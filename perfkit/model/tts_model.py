"""The whole text-to-speech model: generator + vocoder + text tokenizer, and the model-directory story.

A TTS model directory is laid out as the official release::

    DIR/config.json, DIR/model.safetensors        the generator (``talker.*`` tensors)
    DIR/tokenizer.json                            optional; else the byte-level fallback (perfkit.model.text)
    DIR/speech_tokenizer/config.json, …/model.safetensors
                                                  optional: the vocoder (``decoder.*`` tensors)

:meth:`TTSModel.load` reads the generator from ``DIR`` and the vocoder from
``DIR/speech_tokenizer`` when that exists; otherwise the vocoder is synthetic — the vocoder preset
whose geometry matches the generator (same number of code groups and codebook size), from the
given seed. :meth:`TTSModel.save` writes the same layout. A synthetic model comes from a preset
name: the generator preset of that name and the vocoder preset of the same name where one exists,
else the published ``qwen3-tts-12hz`` vocoder (``qwen3-tts-0.6b`` / ``qwen3-tts-1.7b``).

The generator's code groups and codebook size must match the vocoder's ``num_quantizers`` and
codebook sizes; a pair that does not is refused with both geometries in the message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ConfigError, InputError
from .generator_config import GeneratorConfig, generator_preset
from .generator_model import GeneratorModel
from .text import TextTokenizer, load_tokenizer
from .vocoder_config import VOCODER_PRESETS, VocoderConfig, vocoder_preset
from .vocoder_model import VocoderModel

SPEECH_TOKENIZER_DIR = "speech_tokenizer"
PUBLISHED_VOCODER = "qwen3-tts-12hz"


def check_pair(generator: GeneratorConfig, vocoder: VocoderConfig) -> None:
    """:class:`ConfigError` unless every code the generator makes is one the vocoder can decode."""
    problems = []
    if generator.num_code_groups != vocoder.num_quantizers:
        problems.append(f"the generator makes {generator.num_code_groups} code groups, "
                        f"the vocoder has {vocoder.num_quantizers} quantizers")
    sizes = {vocoder.codebook_size_of(q) for q in range(vocoder.num_quantizers)}
    if sizes != {generator.num_codes}:
        problems.append(f"the generator's codebook size is {generator.num_codes}, the vocoder's "
                        f"{' / '.join(str(s) for s in sorted(sizes))}")
    if problems:
        raise ConfigError("generator and vocoder do not match: " + "; ".join(problems))


def vocoder_preset_for(name: str) -> str:
    """The vocoder preset paired with generator preset ``name``."""
    return name if name in VOCODER_PRESETS else PUBLISHED_VOCODER


def matching_vocoder_preset(config: GeneratorConfig) -> str:
    """The first vocoder preset whose geometry matches ``config``; :class:`CheckpointError` if none does."""
    for name, voc in VOCODER_PRESETS.items():
        try:
            check_pair(config, voc)
            return name
        except ConfigError:
            continue
    raise CheckpointError(f"no vocoder preset matches a generator with {config.num_code_groups} code groups "
                          f"of {config.num_codes} codes; put the vocoder in {SPEECH_TOKENIZER_DIR}/")


@dataclass(frozen=True, eq=False)
class TTSModel:
    generator: GeneratorModel
    vocoder: VocoderModel
    tokenizer: TextTokenizer

    def __post_init__(self) -> None:
        check_pair(self.generator.config, self.vocoder.config)

    @classmethod
    def synthetic(cls, preset: str, seed: int = 0) -> TTSModel:
        """Synthetic weights for generator preset ``preset`` and its paired vocoder preset, from ``seed``."""
        gen = GeneratorModel.synthetic(generator_preset(preset), seed)
        voc = VocoderModel.synthetic(vocoder_preset(vocoder_preset_for(preset)), seed)
        return cls(gen, voc, load_tokenizer(gen.config))

    @classmethod
    def load(cls, directory: str | os.PathLike[str], seed: int = 0) -> TTSModel:
        """Generator from ``directory``, vocoder from ``directory/speech_tokenizer`` or synthetic."""
        gen = GeneratorModel.load(directory)
        sub = Path(directory) / SPEECH_TOKENIZER_DIR
        if sub.is_dir():
            voc = VocoderModel.load(sub)
            try:
                check_pair(gen.config, voc.config)
            except ConfigError as exc:
                raise CheckpointError(f"{directory}: {exc}") from None
        else:
            voc = VocoderModel.synthetic(vocoder_preset(matching_vocoder_preset(gen.config)), seed)
        return cls(gen, voc, load_tokenizer(gen.config, directory))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """The generator into ``directory``, the vocoder into ``directory/speech_tokenizer``."""
        path = self.generator.save(directory)
        self.vocoder.save(path / SPEECH_TOKENIZER_DIR)
        return path


def tts_from_args(preset: str | None, model_dir: str | None, seed: int = 0) -> TTSModel:
    """Exactly one of ``preset`` (synthetic weights from ``seed``) or ``model_dir``."""
    if (preset is None) == (model_dir is None):
        raise InputError("give exactly one of --preset (synthetic weights) or --model DIR")
    if model_dir is not None:
        return TTSModel.load(model_dir, seed)
    return TTSModel.synthetic(preset, seed)
