"""The official ``Qwen3TTSTokenizerV2Decoder`` driven stage by stage.

The official module has one ``forward(codes)``; it has no per-stage API and no streaming state. The
fine stages call its submodules in the order ``forward`` does (``qwen_tts`` 0.1.1)::

    rvq_decode        quantizer.decode(codes)                   (1, Q, T) -> (1, codebook_dim, T)
    pre_conv          pre_conv                                  -> (1, latent, T)
    pre_transformer   pre_transformer(inputs_embeds=x^T).last_hidden_state^T
    upsample_i        upsample[i][0] (ConvTranspose), upsample[i][1] (ConvNeXt)
    decoder_in        decoder[0]
    block_i.tconv     decoder[i+1].block[0] (SnakeBeta), block[1] (ConvTranspose)
    block_i.resunits  decoder[i+1].block[2], [3], [4] (residual units, dilations 1, 3, 9)
    final             decoder[-2] (SnakeBeta), decoder[-1] (conv), clamp(-1, 1)

Arrays between stages are ``(C, L)`` tensors (the batch axis of one is added and removed around each
call, views only), the waveform ``(L,)``. Every stage runs under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from perfkit.errors import BackendUnavailable, CheckpointError
from perfkit.interface import State, VocoderRunner
from perfkit.model.vocoder_config import VocoderConfig

from .official import OfficialDecoder

#: Checkpoint tensors the official module has and decoding never reads (perfkit does not carry them).
UNUSED_TENSORS = frozenset({"quantizer.rvq_first.input_proj.weight", "quantizer.rvq_rest.input_proj.weight"})
_STARTED = "qwen-tts.decoded"


def official_config(official: OfficialDecoder, config: VocoderConfig) -> Any:
    """The official ``Qwen3TTSTokenizerV2DecoderConfig`` for ``config`` (perfkit uses its field names).

    The official quantizer hard-codes one semantic quantizer whose codebook has ``codebook_size`` rows,
    so geometries outside that are refused.
    """
    if config.num_semantic_quantizers != 1:
        raise BackendUnavailable(f"the official decoder has exactly one semantic quantizer; this model has "
                                 f"{config.num_semantic_quantizers}")
    if config.semantic_codebook_size != config.codebook_size:
        raise BackendUnavailable(f"the official decoder gives every codebook codebook_size rows; this "
                                 f"model's semantic codebook has {config.semantic_codebook_size}, the others "
                                 f"{config.codebook_size}")
    fields = config.to_dict()
    fields.pop("sample_rate", None)
    fields.pop("num_semantic_quantizers", None)
    fields.pop("semantic_codebook_size", None)
    return official.config_cls(**fields)


def build_official_decoder(official: OfficialDecoder, config: VocoderConfig,
                           weights: Mapping[str, np.ndarray]) -> torch.nn.Module:
    """An official decoder in float32 on the CPU holding ``weights``, checked strictly.

    Every official parameter and buffer saved in a checkpoint must be given, except the two RVQ
    ``input_proj`` tensors (encoder side, never read by decoding); no extra tensor is accepted.
    """
    module = _construct(official, official_config(official, config))
    state = {name: torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for name, w in weights.items()}
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"the official decoder rejects these weights: {exc}") from None
    missing = sorted(set(missing) - UNUSED_TENSORS)
    if missing or unexpected:
        raise CheckpointError(f"weights do not match the official decoder: missing {missing or 'none'}, "
                              f"unexpected {sorted(unexpected) or 'none'}")
    return module.eval()


def _construct(official: OfficialDecoder, cfg: Any) -> torch.nn.Module:
    """``Qwen3TTSTokenizerV2Decoder(cfg)`` without random initialisation (every used tensor is loaded)."""
    try:
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # older/newer transformers: initialise, it only costs time
        return official.decoder_cls(cfg)
    with no_init_weights():
        return official.decoder_cls(cfg)


class QwenTTSVocoder(VocoderRunner):
    """The official decoder on ``device`` in ``dtype``; fine stages as in the module docstring."""

    def __init__(self, config: VocoderConfig, weights: Mapping[str, np.ndarray], official: OfficialDecoder,
                 dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(config)
        self.official = official
        self.dtype = dtype
        self.device = device
        self.module = build_official_decoder(official, config, weights).to(device=device, dtype=dtype)
        self.attn_implementation = str(getattr(self.module.config, "_attn_implementation", ""))
        self._fns = self._stage_functions()

    def _stage_functions(self) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        dec = self.module
        fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "rvq_decode": dec.quantizer.decode,
            "pre_conv": dec.pre_conv,
            "pre_transformer": lambda x: dec.pre_transformer(
                inputs_embeds=x.transpose(1, 2)).last_hidden_state.permute(0, 2, 1),
            "decoder_in": dec.decoder[0],
            "final": lambda x: dec.decoder[-1](dec.decoder[-2](x)).clamp(min=-1, max=1)[:, 0],
        }
        for i, blocks in enumerate(dec.upsample):
            fns[f"upsample_{i}"] = lambda x, blocks=blocks: blocks[1](blocks[0](x))
        for i in range(self.config.num_blocks):
            block = dec.decoder[i + 1].block
            fns[f"block_{i}.tconv"] = lambda x, b=block: b[1](b[0](x))
            fns[f"block_{i}.resunits"] = lambda x, b=block: b[4](b[3](b[2](x)))
        return fns

    def upload_codes(self, codes: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(codes, dtype=np.int64), device=self.device)

    def run_stage(self, stage: str, x: torch.Tensor, state: State) -> torch.Tensor:
        """One fine stage on ``(C, L)`` (codes ``(Q, T)``); offline only: one chunk per :meth:`new_state`."""
        if stage == "rvq_decode":
            if state.get(_STARTED):
                raise BackendUnavailable(
                    "backend 'qwen-tts' cannot stream: the official decoder keeps no state between chunks "
                    "(decode each utterance as one chunk, with a fresh state)")
            state[_STARTED] = True
        with torch.inference_mode():
            return self._fns[stage](x[None])[0]
