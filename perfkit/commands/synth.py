"""``perfkit synth``: text -> codes -> speech with one backend, offline or streamed."""

from __future__ import annotations

import argparse

import numpy as np

from .. import registry
from ..errors import InputError
from ..model.audio import check_audio_path, write_audio
from ..model.codes import check_codes_path
from ..model.sampling import (
    DEFAULT_REPETITION_PENALTY,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    DEFAULT_TOP_P,
    SamplingOptions,
)
from ..model.tts_model import tts_from_args
from ..synthesis import PHASES, Synthesizer

STOP_LABELS = {"eos": "EOS", "max_frames": "the frame limit", "fixed_frames": "the fixed frame count"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="synthesize speech from text (generator + vocoder)",
        description="Tokenize, generate codes with the talker and code predictor, decode them to 24 kHz "
                    "audio. Either synthetic weights (--preset: the generator preset and its vocoder) or a "
                    "model directory (--model DIR: the generator in DIR, the vocoder in DIR/speech_tokenizer "
                    "when present, else synthetic from --weights-seed; DIR/tokenizer.json when present, else "
                    "UTF-8 bytes as tokens). Generation stops at EOS or --max-frames; --frames N makes "
                    "exactly N frames (EOS ignored), a workload independent of the weights.",
    )
    p.add_argument("--backend", default="numpy", help="backend variant, e.g. numpy, numpy:dtype=float64")
    p.add_argument("--preset", help="synthetic model preset: tiny, small, qwen3-tts-0.6b, qwen3-tts-1.7b")
    p.add_argument("--model", metavar="DIR", help="model directory (config.json + model.safetensors, "
                                                  "optional speech_tokenizer/ and tokenizer.json)")
    p.add_argument("--text", required=True, help="the text to speak")
    p.add_argument("--frames", type=int, metavar="N", help="make exactly N frames, ignoring EOS (benchmarks)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames if EOS has not come "
                                                               "(default: 4096, bounded by the context)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--weights-seed", type=int, default=0, help="seed of synthetic weights (default 0)")
    p.add_argument("--greedy", action="store_true", help="greedy decoding (argmax) instead of sampling")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                   help=f"sampling temperature (default {DEFAULT_TEMPERATURE})")
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                   help=f"top-k, 0 = off (default {DEFAULT_TOP_K})")
    p.add_argument("--top-p", type=float, default=DEFAULT_TOP_P,
                   help=f"top-p, 1 = off (default {DEFAULT_TOP_P})")
    p.add_argument("--repetition-penalty", type=float, default=DEFAULT_REPETITION_PENALTY,
                   help=f"repetition penalty on code group 0, 1 = off (default {DEFAULT_REPETITION_PENALTY})")
    p.add_argument("--out", required=True, metavar="OUT", help="output .wav (float32, 24 kHz mono) or .npy")
    p.add_argument("--codes-out", metavar="FILE.npy",
                   help="also save the codes, int64 (num_quantizers, frames)")
    p.add_argument("--stream", action="store_true", help="stream: decode chunks as frames are made, report "
                                                         "first-chunk latency")
    p.add_argument("--chunk-frames", type=int, default=4, metavar="K",
                   help="frames per streamed chunk (default 4)")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> SamplingOptions:
    return SamplingOptions(greedy=args.greedy, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed,
                           max_frames=args.max_frames, fixed_frames=args.frames)


def run(args: argparse.Namespace) -> int:
    out = check_audio_path(args.out)
    codes_out = check_codes_path(args.codes_out) if args.codes_out else None
    if args.chunk_frames <= 0:
        raise InputError(f"--chunk-frames must be positive, got {args.chunk_frames}")
    options = options_from_args(args)
    backend = registry.create(args.backend)
    model = tts_from_args(args.preset, args.model, args.weights_seed)
    synth = Synthesizer.load(backend, model)
    synth.encode(args.text)  # bad text fails here, before any timing
    if args.stream:
        stream = synth.stream(args.text, options, args.chunk_frames)
        chunks = list(stream)
        stop = stream.stop
        codes = (np.concatenate([c.codes for c in chunks], axis=1) if chunks
                 else np.zeros((model.generator.config.num_code_groups, 0), dtype=np.int64))
        audio = np.concatenate([c.audio for c in chunks]) if chunks else np.zeros(0, dtype=np.float32)
        total = chunks[-1].elapsed_s if chunks else 0.0
        detail = (f"{len(chunks)} chunks of {args.chunk_frames} frames, first-chunk latency "
                  f"{chunks[0].elapsed_s * 1000:.1f} ms" if chunks else "no frames")
    else:
        result = synth.synthesize(args.text, options)
        codes, audio, total, stop = result.codes, result.audio, result.timings["total"], result.stop
        detail = ", ".join(f"{k} {result.timings[k] * 1000:.1f} ms" for k in PHASES)
    write_audio(out, audio, synth.sample_rate)
    if codes_out is not None:
        np.save(codes_out, codes.astype(np.int64), allow_pickle=False)
    audio_s = audio.shape[0] / synth.sample_rate
    rtf = f"RTF {total / audio_s:.3f}" if audio_s else "no audio"
    print(f"{out}: {audio.shape[0]} samples ({audio_s:.2f} s) from {codes.shape[1]} frames "
          f"(stopped by {STOP_LABELS.get(stop, stop)}) with {backend.variant.label}, "
          f"{options.mode}, text {model.tokenizer.kind}, in {total:.3f} s ({rtf}; {detail})")
    if codes_out is not None:
        print(f"{codes_out}: codes {codes.shape[0]} x {codes.shape[1]} int64")
    return 0
