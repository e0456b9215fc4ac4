"""Text: checks, the byte-level fallback, tokenizer.json, and the prompt built from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perfkit.errors import CheckpointError, InputError
from perfkit.model.generator_config import generator_preset
from perfkit.model.prompt import NO_CODEC, build_prompt, encode_prompt, frame_budget
from perfkit.model.sampling import SamplingOptions
from perfkit.model.text import ByteTokenizer, JsonTokenizer, check_text, load_tokenizer

TINY = generator_preset("tiny")


def write_word_tokenizer(path, vocab: dict[str, int]) -> None:
    """A tokenizer.json written by the ``tokenizers`` library: whitespace-split words, Qwen-style specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation()])
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken("<|im_start|>", special=True), AddedToken("<|im_end|>", special=True)])
    tok.save(str(path))


@pytest.mark.parametrize("bad,match", [("", "text is empty"), ("  \n\t ", "text is empty"),
                                       (b"\xff\xfeabc", "not valid UTF-8"), ("abc\udcff", "not valid UTF-8"),
                                       (3, "text must be a string")])
def test_bad_text_is_refused(bad, match):
    with pytest.raises(InputError, match=match):
        check_text(bad)


def test_bytes_are_decoded():
    assert check_text("héllo".encode()) == "héllo"


def test_byte_fallback_maps_utf8_bytes_and_specials():
    tok = ByteTokenizer(TINY)
    assert tok.encode("Aé") == [65, 0xC3, 0xA9]
    assert tok.encode("<|im_start|>assistant\n") == [TINY.im_start_token_id, *b"assistant\n"]
    assert tok.encode("x<|im_end|>") == [120, TINY.im_end_token_id]
    assert load_tokenizer(TINY).kind == "bytes"


def test_prompt_layout_is_the_official_one():
    text_ids = [10, 20, 30]
    p = build_prompt(TINY, text_ids, role_ids=[1, 2, 3])
    pad, bos, eos = TINY.tts_pad_token_id, TINY.tts_bos_token_id, TINY.tts_eos_token_id
    assert p.prefill_length == 3 + 5
    np.testing.assert_array_equal(p.prefill_text_ids, [1, 2, 3, pad, pad, pad, bos, 10])
    np.testing.assert_array_equal(p.prefill_codec_ids, [NO_CODEC] * 3 + [
        TINY.codec_nothink_id, TINY.codec_think_bos_id, TINY.codec_think_eos_id, TINY.codec_pad_id,
        TINY.codec_bos_id])
    np.testing.assert_array_equal(p.stream_text_ids, [20, 30, eos])
    assert [p.stream_text_id(f) for f in range(1, 7)] == [20, 30, eos, pad, pad, pad]


def test_encode_prompt_with_the_byte_fallback():
    p = encode_prompt(TINY, ByteTokenizer(TINY), "Hi!")
    np.testing.assert_array_equal(p.text_ids, list(b"Hi!"))
    np.testing.assert_array_equal(p.role_ids, [TINY.im_start_token_id, *b"assistant\n"])
    with pytest.raises(InputError, match="text is empty"):
        encode_prompt(TINY, ByteTokenizer(TINY), " ")


def test_tokenizer_json_is_used_and_sliced_like_the_official_code(tmp_path):
    vocab = {"[UNK]": 0, "assistant": 1, "hello": 2, "world": 3, "!": 4,
             "<|im_start|>": TINY.im_start_token_id, "<|im_end|>": TINY.im_end_token_id}
    write_word_tokenizer(tmp_path / "tokenizer.json", vocab)
    tok = load_tokenizer(TINY, tmp_path)
    assert isinstance(tok, JsonTokenizer) and tok.kind == "tokenizer.json"
    p = encode_prompt(TINY, tok, "hello world !")
    np.testing.assert_array_equal(p.role_ids, [TINY.im_start_token_id, 1])
    np.testing.assert_array_equal(p.text_ids, [2, 3, 4])


def test_tokenizer_ids_outside_the_text_vocabulary_are_refused(tmp_path):
    write_word_tokenizer(tmp_path / "tokenizer.json", {"[UNK]": 0, "big": 5000})
    with pytest.raises(CheckpointError, match="token id 5000 is outside the model's text vocabulary"):
        load_tokenizer(TINY, tmp_path).encode("big")
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a readable tokenizer"):
        load_tokenizer(TINY, tmp_path)


def test_text_longer_than_the_context_is_refused():
    cfg = dataclasses.replace(TINY, max_position_embeddings=64)
    tok = ByteTokenizer(cfg)
    fits = encode_prompt(cfg, tok, "x" * 40)  # 16 prefill positions + 41 frames <= 64 + 1
    assert frame_budget(cfg, fits, SamplingOptions()) == 64 - 16 + 1
    long = encode_prompt(cfg, tok, "x" * 60)
    with pytest.raises(InputError, match="text is too long: 60 tokens.*context of 64 positions"):
        frame_budget(cfg, long, SamplingOptions())
    with pytest.raises(InputError, match="100 frames do not fit the context"):
        frame_budget(cfg, fits, SamplingOptions(fixed_frames=100))


def test_byte_fallback_needs_256_text_ids():
    from perfkit.errors import ConfigError

    cfg = dataclasses.replace(TINY, text_vocab_size=200, im_start_token_id=190, im_end_token_id=191,
                              tts_pad_token_id=192, tts_bos_token_id=193, tts_eos_token_id=194)
    with pytest.raises(ConfigError, match="at least 256 ids"):
        ByteTokenizer(cfg)
