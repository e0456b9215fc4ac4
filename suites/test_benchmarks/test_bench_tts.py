"""The ``generator``, ``rtf`` and ``streaming`` suites under pytest-benchmark (backends with a generator)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bench_support import BACKENDS, PRESET, REFERENCE, ROUNDS, SEED, parity_info
from perfkit.suites._models import TEXTS, generator_preset_name, word_count

from perfkit import registry
from perfkit.errors import BackendUnavailable
from perfkit.measure.parity import compare
from perfkit.model.sampling import SamplingOptions
from perfkit.model.tts_model import TTSModel
from perfkit.synthesis import Synthesizer

GEN_FRAMES = 16
STREAM_FRAMES = 24
CHUNKS = (1, 4, 12)
TTS_ROUNDS = max(3, ROUNDS // 5)
_SYNTHS: dict[str, Any] = {}


@pytest.fixture(scope="session")
def tts_model() -> TTSModel:
    return TTSModel.synthetic(generator_preset_name(PRESET), SEED)


def synthesizer(spec: str, model: TTSModel) -> Synthesizer:
    if spec not in _SYNTHS:
        try:
            backend = registry.create(spec)
            _SYNTHS[spec] = Synthesizer.load(backend, model)
        except BackendUnavailable as exc:
            _SYNTHS[spec] = exc
    got = _SYNTHS[spec]
    if isinstance(got, Exception):
        pytest.skip(f"{spec}: {got}")
    return got


@pytest.fixture(scope="session")
def reference_audio(tts_model: TTSModel) -> dict[str, np.ndarray]:
    """The float64 reference's greedy codes and audio for the generator case."""
    result = synthesizer(REFERENCE, tts_model).synthesize(TEXTS["short"], SamplingOptions(greedy=True,
                                                                                          fixed_frames=GEN_FRAMES))
    return {"codes": result.codes, "audio": result.audio}


def _info(synth: Synthesizer, suite: str, series: str, stage: str, case: dict[str, Any]) -> dict[str, Any]:
    return {"suite": suite, "variant": synth.backend.variant.label, "preset": PRESET, "series": series,
            "stage": stage, "case": {**case, "seed": SEED}}


@pytest.mark.parametrize("spec", BACKENDS)
def test_synthesize(benchmark, spec: str, tts_model: TTSModel,
                    reference_audio: dict[str, np.ndarray]) -> None:
    """Text to waveform, ``GEN_FRAMES`` greedy frames, after checking the audio against the reference's."""
    synth = synthesizer(spec, tts_model)
    options = SamplingOptions(greedy=True, fixed_frames=GEN_FRAMES)
    result = synth.synthesize(TEXTS["short"], options)
    same_codes = np.array_equal(result.codes, reference_audio["codes"])
    info = parity_info(compare(result.audio, reference_audio["audio"]), synth.backend.dtype_name)
    info["greedy_codes_equal"] = bool(same_codes)
    benchmark.extra_info.update(_info(synth, "generator", "e2e", "synthesize",
                                      {"frames": GEN_FRAMES, "text": "short"}), **info)
    benchmark.pedantic(synth.synthesize, args=(TEXTS["short"], options), rounds=TTS_ROUNDS, iterations=1,
                       warmup_rounds=1)
    assert info["parity_passed"] or not same_codes, f"{spec}: audio fails parity: {info['parity']}"


@pytest.mark.parametrize("text", tuple(TEXTS))
@pytest.mark.parametrize("spec", BACKENDS)
def test_rtf(benchmark, spec: str, text: str, tts_model: TTSModel) -> None:
    """Wall time of a whole utterance per text length (one frame per word; RTF = wall / audio)."""
    synth = synthesizer(spec, tts_model)
    words = word_count(TEXTS[text])
    options = SamplingOptions(greedy=True, fixed_frames=words)
    audio = synth.synthesize(TEXTS[text], options).audio
    assert np.all(np.isfinite(audio)), f"{spec}: non-finite audio"
    benchmark.extra_info.update(_info(synth, "rtf", "e2e", "synthesize",
                                      {"text": text, "words": words, "frames": words}))
    benchmark.pedantic(synth.synthesize, args=(TEXTS[text], options), rounds=TTS_ROUNDS, iterations=1,
                       warmup_rounds=1)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("spec", BACKENDS)
def test_first_chunk(benchmark, spec: str, chunk: int, tts_model: TTSModel) -> None:
    """Time from the text to the first audio chunk of ``chunk`` frames."""
    synth = synthesizer(spec, tts_model)
    options = SamplingOptions(greedy=True, fixed_frames=STREAM_FRAMES)

    def first_chunk() -> np.ndarray:
        return next(iter(synth.stream(TEXTS["short"], options, chunk))).audio

    assert np.all(np.isfinite(first_chunk())), f"{spec}: non-finite audio"
    benchmark.extra_info.update(_info(synth, "streaming", "stream", "chunk_00",
                                      {"chunk_frames": chunk, "frames": STREAM_FRAMES, "text": "short"}))
    benchmark.pedantic(first_chunk, rounds=ROUNDS, iterations=1, warmup_rounds=1)
