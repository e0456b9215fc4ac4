"""``perfkit vocode``: decode codes to audio with one backend."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .. import registry
from ..errors import InputError
from ..interface import decode_to_host
from ..model.audio import check_audio_path, write_audio
from ..model.codes import check_codes_path, load_codes, synthetic_codes
from ..model.loading import vocoder_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vocode", help="decode codec codes to a waveform",
        description="Decode codes (num_quantizers, frames) to 24 kHz audio. Either synthetic weights and random "
                    "codes (--preset, --frames, --seed) or a model directory and a codes file (--model, --codes).",
    )
    p.add_argument("--backend", default="numpy", help="backend variant, e.g. numpy, torch:dtype=bfloat16")
    p.add_argument("--preset", help="synthetic model preset: tiny, small, qwen3-tts-12hz")
    p.add_argument("--frames", type=int, help="random codes of this many frames (with --preset)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights and codes (default 0)")
    p.add_argument("--model", metavar="DIR", help="model directory (config.json + model.safetensors)")
    p.add_argument("--codes", metavar="FILE.npy", help="codes file, integer array (num_quantizers, frames)")
    p.add_argument("--out", required=True, metavar="OUT", help="output .wav (float32, 24 kHz mono) or .npy")
    p.add_argument("--codes-out", metavar="FILE.npy", help="also save the codes decoded, int64 (num_quantizers, "
                                                           "frames): a codes file for --codes")
    p.add_argument("--save-model", metavar="DIR", help="also write the model as a model directory (config.json "
                                                       "+ model.safetensors, official names): a DIR for --model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = check_audio_path(args.out)
    codes_out = check_codes_path(args.codes_out) if args.codes_out else None
    if args.save_model is not None and Path(args.save_model).exists() and not Path(args.save_model).is_dir():
        raise InputError(f"--save-model {args.save_model}: exists and is not a directory")
    if (args.preset is None) == (args.model is None):
        raise InputError("give exactly one of --preset (synthetic weights) or --model DIR")
    if args.model is not None and args.frames is not None:
        raise InputError("--frames goes with --preset; with --model the codes file sets the length")
    if args.codes is not None and args.frames is not None:
        raise InputError("give --frames or --codes, not both")
    backend = registry.create(args.backend)
    model = vocoder_from_args(args.preset, args.model, args.seed)
    if args.codes is not None:
        codes = load_codes(args.codes)
    elif args.frames is not None:
        codes = synthetic_codes(model.config, args.frames, args.seed)
    else:
        raise InputError("give --codes FILE.npy, or --frames N with --preset")
    runner = backend.load_vocoder(model)
    start = time.perf_counter()
    wav = decode_to_host(backend, runner, codes)
    elapsed = time.perf_counter() - start
    write_audio(out, wav, model.config.sample_rate)
    if codes_out is not None:
        np.save(codes_out, codes.astype(np.int64), allow_pickle=False)
    if args.save_model is not None:
        model.save(args.save_model)
    audio_s = wav.shape[0] / model.config.sample_rate
    print(f"{out}: {wav.shape[0]} samples ({audio_s:.2f} s) from {codes.shape[1]} frames with "
          f"{backend.variant.label} in {elapsed:.3f} s (RTF {elapsed / audio_s:.3f})")
    if codes_out is not None:
        print(f"{codes_out}: codes {codes.shape[0]} x {codes.shape[1]} int64")
    if args.save_model is not None:
        print(f"{args.save_model}: model directory ({model.source})")
    return 0
