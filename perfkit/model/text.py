"""Text -> token ids: a model directory's ``tokenizer.json``, or a byte-level fallback.

- :class:`JsonTokenizer`: the ``tokenizers`` library on ``DIR/tokenizer.json`` (the Qwen BPE for a
  real checkpoint). The published release ships ``vocab.json`` + ``merges.txt``; write its
  ``tokenizer.json`` once with ``transformers`` (``AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)``).
- :class:`ByteTokenizer`: the offline fallback, so synthetic models need no files. The special
  strings ``<|im_start|>`` and ``<|im_end|>`` map to the config's ``im_start_token_id`` /
  ``im_end_token_id``; every other character is its UTF-8 bytes, byte ``b`` -> text id ``b``
  (ids ``0 … 255`` of the text vocabulary, which every preset keeps free of special ids). One
  token per byte: text of ``n`` UTF-8 bytes is ``n`` tokens.

Text is checked first (:func:`check_text`): it must be valid UTF-8 and not blank.
"""

from __future__ import annotations

import abc
import os
import re
from pathlib import Path

from ..errors import CheckpointError, ConfigError, InputError
from .generator_config import GeneratorConfig

TOKENIZER_FILE = "tokenizer.json"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
BYTE_TOKENS = 256


def check_text(text: str | bytes) -> str:
    """The text as ``str``; :class:`InputError` if it is not valid UTF-8 or is empty / whitespace only."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"text is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. undecodable command-line bytes
        raise InputError(f"text is not valid UTF-8 (character {exc.start} cannot be encoded)") from None
    if not text.strip():
        raise InputError("text is empty: give some words to speak")
    return text


class TextTokenizer(abc.ABC):
    """Text -> ids in the generator's text vocabulary."""

    #: ``tokenizer.json`` or ``bytes``, for reports.
    kind: str = ""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special strings recognised, nothing added)."""


class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes as ids ``0 … 255``; ``<|im_start|>`` / ``<|im_end|>`` as the config's special ids."""

    kind = "bytes"
    _SPECIAL = re.compile(f"({re.escape(IM_START)}|{re.escape(IM_END)})")

    def __init__(self, config: GeneratorConfig) -> None:
        if config.text_vocab_size < BYTE_TOKENS:
            raise ConfigError(f"the byte-level fallback needs a text vocabulary of at least {BYTE_TOKENS} "
                              f"ids, the model has {config.text_vocab_size}; give the model a "
                              f"{TOKENIZER_FILE}")
        self.special = {IM_START: config.im_start_token_id, IM_END: config.im_end_token_id}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._SPECIAL.split(text):
            if piece in self.special:
                ids.append(self.special[piece])
            else:
                ids.extend(piece.encode("utf-8"))
        return ids


class JsonTokenizer(TextTokenizer):
    """A ``tokenizer.json`` through the ``tokenizers`` library; ids checked against the text vocabulary."""

    kind = TOKENIZER_FILE

    def __init__(self, path: str | os.PathLike[str], config: GeneratorConfig) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception subclasses
            raise CheckpointError(f"{self.path}: not a readable tokenizer ({exc})") from None
        self.vocab_size = config.text_vocab_size

    def encode(self, text: str) -> list[int]:
        ids = list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise CheckpointError(f"{self.path}: token id {bad[0]} is outside the model's text vocabulary "
                                  f"[0, {self.vocab_size})")
        return ids


def load_tokenizer(config: GeneratorConfig, directory: str | os.PathLike[str] | None = None) -> TextTokenizer:
    """``directory/tokenizer.json`` when there is one, else the byte-level fallback."""
    if directory is not None and (Path(directory) / TOKENIZER_FILE).is_file():
        return JsonTokenizer(Path(directory) / TOKENIZER_FILE, config)
    return ByteTokenizer(config)
