"""Canonical stage names, defined once and used everywhere (timing, parity, FLOPs, reports).

The vocoder is a fixed chain of stages; each stage consumes the previous stage's output::

    codes (Q, T) -> rvq_decode -> pre_conv -> pre_transformer -> upsample_0 -> upsample_1
          -> decoder_in -> block_0 ... block_{n-1} -> final -> waveform (T * 1920,)

Each decoder block is itself two *sub-stages*, ``block_i.tconv`` (SnakeBeta + causal
ConvTranspose) and ``block_i.resunits`` (three residual units, dilations 1, 3, 9). Backends
implement the *fine* chain (:func:`vocoder_fine_stages`); a coarse stage is the
composition of its sub-stages, run without a synchronisation in between.

The generator's stages are per utterance (``tokenize``, ``prefill``, ``vocoder``) and per
frame (``talker_step``, ``code_predictor``, ``sampling``).
"""

from __future__ import annotations

from .vocoder_config import VocoderConfig

SUBSTAGES: tuple[str, ...] = ("tconv", "resunits")

GENERATOR_STAGES: tuple[str, ...] = ("tokenize", "prefill", "talker_step", "code_predictor", "sampling", "vocoder")
GENERATOR_FRAME_STAGES: tuple[str, ...] = ("talker_step", "code_predictor", "sampling")


def block_name(i: int) -> str:
    return f"block_{i}"


def vocoder_stages(config: VocoderConfig) -> tuple[str, ...]:
    """Coarse stage names in execution order."""
    ups = tuple(f"upsample_{i}" for i in range(len(config.upsampling_ratios)))
    blocks = tuple(block_name(i) for i in range(config.num_blocks))
    return ("rvq_decode", "pre_conv", "pre_transformer", *ups, "decoder_in", *blocks, "final")


def vocoder_fine_stages(config: VocoderConfig) -> tuple[str, ...]:
    """Stage names with each block split into ``block_i.tconv`` and ``block_i.resunits``."""
    out: list[str] = []
    for stage in vocoder_stages(config):
        out.extend(substages(stage))
    return tuple(out)


def substages(stage: str) -> tuple[str, ...]:
    """The fine stages a coarse stage is made of (itself, unless it is a decoder block)."""
    if stage.startswith("block_") and "." not in stage:
        return tuple(f"{stage}.{sub}" for sub in SUBSTAGES)
    return (stage,)


def parent_stage(stage: str) -> str:
    """``block_2.tconv`` -> ``block_2``; coarse names map to themselves."""
    return stage.split(".", 1)[0]
