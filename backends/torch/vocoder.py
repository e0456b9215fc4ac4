"""The Qwen3-TTS 12 Hz decoder's fine stages in torch, mirroring :mod:`perfkit.backends.numpy.vocoder`.

Stage outputs keep the canonical logical shapes ``(C, L)`` (``(L,)`` for ``final``) but are stored
time-major: each is the transposed view ``y.t()`` of a contiguous ``(L, C)`` tensor, so passing
stages along costs nothing and :func:`~perfkit.backends.torch.device.to_host` still returns the
reference's ``(C, L)``. The decoder blocks' outputs come from two buffers the runner keeps and uses in
turn (:mod:`.buffers`), which the runner contract allows: an output is reused after two more stages.
Each block's tconv first reserves both for the largest block output still to come, so they are sized
once a decode (or a stream chunk) rather than at every block.

Long stages run in *time tiles*: a tile goes through the whole stage with the same tails that carry
state between chunks, so tiling is exactly streaming inside one call (identical results), bounds the
scratch memory by the tile size, and keeps each tile's working set in cache. On CUDA one tile
covers the whole input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from perfkit.interface import State, VocoderRunner
from perfkit.model.vocoder_config import VocoderConfig

from .buffers import StageOutputs
from .layers import (
    CausalConv,
    CausalConvTranspose,
    DepthwiseCausalConv,
    Linear,
    PointwiseConv,
    SnakeBeta,
    TapSumConv,
    Tensor,
    layer_norm,
    to_tensor,
)
from .transformer import PreTransformer

CODEBOOK_EPS = 1e-5
RESIDUAL_DILATIONS = (1, 3, 9)
CPU_TILE_ELEMENTS = 1 << 18
"""Activation elements per time tile on the CPU (1 MiB of float32): a tile's working set stays in L2.
Longer tiles for the residual units alone (2^20) were measured twice and not kept
(``reports/optimizations/torch-resunit-tiles``)."""
MIN_TILE_ROWS = 512
"""Fewest rows per tile, so wide layers still give the GEMMs a long ``M`` dimension."""


@dataclass(frozen=True)
class ResidualUnit:
    """``x + conv2(snake2(conv1(snake1(x))))``: conv1 k7 dilated, conv2 1x1; ``(L, C) -> (L, C)``."""

    snake1: SnakeBeta
    conv1: CausalConv
    snake2: SnakeBeta
    conv2: PointwiseConv

    def __call__(self, x: Tensor, tail: Tensor, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (r, C)``, ``tail (pad, C)`` -> ``(y (r, C), new tail)``; ``y`` written into ``out`` if given."""
        pad, rows = self.conv1.pad, x.shape[0]
        xp = torch.empty((pad + rows, x.shape[1]), dtype=x.dtype, device=x.device)  # (pad + r, C)
        xp[:pad] = tail
        self.snake1(x, out=xp[pad:])
        h = self.conv1(xp)  # (r, C)
        self.snake2(h, out=h)
        y = self.conv2.plus(h, x)  # x + conv2(h)
        return (y if out is None else out.copy_(y)), xp[rows:]


@dataclass(frozen=True)
class DecoderBlock:
    """SnakeBeta + causal ConvTranspose ``(C, L) -> (C/2, L*rate)``, then three residual units."""

    snake: SnakeBeta
    tconv: CausalConvTranspose
    units: tuple[ResidualUnit, ...]


@dataclass(frozen=True)
class UpsampleBlock:
    """Causal ConvTranspose (``k = stride = ratio``) then a ConvNeXt block, ``(L, D) -> (L*ratio, D)``."""

    tconv: CausalConvTranspose
    dwconv: DepthwiseCausalConv
    norm_weight: Tensor  # (D,) float32
    norm_bias: Tensor  # (D,) float32
    pwconv1: Linear  # D -> 4D
    pwconv2: Linear  # 4D -> D, gamma folded


class TorchVocoder(VocoderRunner):
    """The vocoder on one device in one compute dtype; weights converted and packed once here."""

    def __init__(self, config: VocoderConfig, weights: Mapping[str, np.ndarray], dtype: torch.dtype,
                 device: torch.device, tile_elements: int | None = None, compiled: bool = False) -> None:
        super().__init__(config)
        self.dtype, self.device, self.compiled = dtype, device, compiled
        if tile_elements is None:
            tile_elements = CPU_TILE_ELEMENTS if device.type == "cpu" else 1 << 40
        self.tile_elements = tile_elements
        self.outputs = StageOutputs(dtype, device)  # the blocks' tconv and residual-unit outputs
        with torch.inference_mode():
            self._pack(config, weights)
        self._stage_fns: dict[str, Callable[[Tensor, State], Tensor]] = {
            "rvq_decode": self.rvq_decode,
            "pre_conv": lambda x, s: self._conv_stage(self.pre_conv, x, s, "pre_conv"),
            "pre_transformer": self.pre_transformer,
            "decoder_in": lambda x, s: self._conv_stage(self.decoder_in, x, s, "decoder_in"),
            "final": self.final,
        }
        for i in range(len(config.upsampling_ratios)):
            self._stage_fns[f"upsample_{i}"] = lambda x, s, i=i: self.upsample(i, x, s)
        for i in range(config.num_blocks):
            self._stage_fns[f"block_{i}.tconv"] = lambda x, s, i=i: self.block_tconv(i, x, s)
            self._stage_fns[f"block_{i}.resunits"] = lambda x, s, i=i: self.block_resunits(i, x, s)

    # ------------------------------------------------------------------ load
    def _pack(self, cfg: VocoderConfig, w: Mapping[str, np.ndarray]) -> None:
        dt, dev, compiled = self.dtype, self.device, self.compiled
        self._pack_codebooks(cfg, w)
        self.pre_conv = CausalConv.pack(w, "pre_conv", dt, dev)
        self.transformer = PreTransformer(cfg, w, dt, dev)
        self.upsamples = [
            UpsampleBlock(
                tconv=CausalConvTranspose.pack(w, f"upsample.{i}.0", ratio, dt, dev),
                dwconv=DepthwiseCausalConv.pack(w, f"upsample.{i}.1.dwconv", dev),
                norm_weight=to_tensor(w[f"upsample.{i}.1.norm.weight"], torch.float32, dev),
                norm_bias=to_tensor(w[f"upsample.{i}.1.norm.bias"], torch.float32, dev),
                pwconv1=Linear.pack(w, f"upsample.{i}.1.pwconv1", dt, dev),
                pwconv2=Linear.pack(w, f"upsample.{i}.1.pwconv2", dt, dev, scale=w[f"upsample.{i}.1.gamma"]),
            )
            for i, ratio in enumerate(cfg.upsampling_ratios)
        ]
        self.decoder_in = CausalConv.pack(w, "decoder.0", dt, dev)
        self.blocks = []
        for i, rate in enumerate(cfg.upsample_rates):
            p = f"decoder.{i + 1}.block"
            units = tuple(
                ResidualUnit(SnakeBeta.pack(w, f"{p}.{u + 2}.act1", dev, compiled),
                             CausalConv.pack(w, f"{p}.{u + 2}.conv1", dt, dev, dilation),
                             SnakeBeta.pack(w, f"{p}.{u + 2}.act2", dev, compiled),
                             PointwiseConv.pack(w, f"{p}.{u + 2}.conv2", dt, dev))
                for u, dilation in enumerate(RESIDUAL_DILATIONS)
            )
            self.blocks.append(DecoderBlock(SnakeBeta.pack(w, f"{p}.0", dev, compiled),
                                            CausalConvTranspose.pack(w, f"{p}.1", rate, dt, dev), units))
        n = cfg.num_blocks
        self.final_snake = SnakeBeta.pack(w, f"decoder.{n + 1}", dev, compiled)
        self.final_conv = TapSumConv.pack(w, f"decoder.{n + 2}", dev)  # Cout = 1: a GEMM and a tap sum

    def _pack_codebooks(self, cfg: VocoderConfig, w: Mapping[str, np.ndarray]) -> None:
        """Per group: all codebooks ``embedding_sum / clamp(cluster_usage, 1e-5)`` stacked ``(sum rows, half)``.

        Kept in float32 (a sum of up to 15 rows), with each quantizer's row offset; the group's 1x1
        output projection as ``(half, codebook_dim)``.
        """
        sem = cfg.num_semantic_quantizers
        self.rvq_groups: list[tuple[slice, Tensor, Tensor, Tensor]] = []
        for group, quantizers in (("rvq_first", range(sem)), ("rvq_rest", range(sem, cfg.num_quantizers))):
            books, offsets, start = [], [], 0
            for i, _ in enumerate(quantizers):
                p = f"quantizer.{group}.vq.layers.{i}._codebook"
                usage = np.maximum(np.asarray(w[f"{p}.cluster_usage"], dtype=np.float64), CODEBOOK_EPS)
                books.append(np.asarray(w[f"{p}.embedding_sum"], dtype=np.float64) / usage[:, None])
                offsets.append(start)
                start += books[-1].shape[0]
            proj = np.asarray(w[f"quantizer.{group}.output_proj.weight"], dtype=np.float64)[:, :, 0].T
            self.rvq_groups.append((
                slice(quantizers.start, quantizers.stop),
                to_tensor(np.concatenate(books, axis=0), torch.float32, self.device),  # (rows, half)
                torch.tensor(offsets, dtype=torch.int64, device=self.device),  # (n,)
                to_tensor(proj, torch.float32, self.device),  # (half, codebook_dim)
            ))

    # ------------------------------------------------------------------ interface
    def upload_codes(self, codes: np.ndarray) -> Tensor:
        """``(Q, T)`` host codes -> int64 tensor on the device."""
        return torch.as_tensor(np.asarray(codes, dtype=np.int64)).to(self.device)

    def run_stage(self, stage: str, x: Tensor, state: State) -> Tensor:
        with torch.inference_mode():
            return self._stage_fns[stage](x, state)

    # ------------------------------------------------------------------ helpers
    def _tiles(self, length: int, channels: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` row ranges covering ``length`` rows of ``channels`` per row."""
        rows = max(MIN_TILE_ROWS, self.tile_elements // max(channels, 1))
        for start in range(0, length, rows):
            yield start, min(length, start + rows)

    def _tail(self, state: State, key: str, rows: int, channels: int) -> Tensor:
        tail = state.get(key)
        if tail is None:
            return torch.zeros((rows, channels), dtype=self.dtype, device=self.device)
        return tail

    def _conv_stage(self, conv: CausalConv | TapSumConv, x: Tensor, state: State, key: str,
                    snake: SnakeBeta | None = None) -> Tensor:
        """Optional SnakeBeta, then a causal conv, tile by tile: ``x (C, L)`` view -> ``(Cout, L)`` view."""
        h = x.t()  # (L, Cin)
        length, cin = h.shape
        pad = conv.pad
        tail = self._tail(state, key, pad, cin)
        tiles = list(self._tiles(length, cin))
        out = None
        for a, b in tiles:
            xp = torch.empty((pad + b - a, cin), dtype=self.dtype, device=self.device)  # (pad + r, Cin)
            xp[:pad] = tail
            if snake is None:
                xp[pad:] = h[a:b]
            else:
                snake(h[a:b], out=xp[pad:])
            y = conv(xp)  # (r, Cout)
            if len(tiles) == 1:
                out = y
            else:
                if out is None:
                    out = torch.empty((length, y.shape[1]), dtype=y.dtype, device=y.device)  # (L, Cout)
                out[a:b] = y
            tail = xp[b - a:]
        state[key] = tail.clone()
        return out.t()

    # ------------------------------------------------------------------ stages
    def rvq_decode(self, codes: Tensor, state: State) -> Tensor:
        """``(Q, T)`` -> ``(codebook_dim, T)``: per group, the sum of looked-up rows (``embedding_bag``), projected."""
        out = None
        for quantizers, books, offsets, proj in self.rvq_groups:
            idx = codes[quantizers].t() + offsets  # (T, n) rows into the stacked codebooks
            summed = torch.nn.functional.embedding_bag(idx, books, mode="sum")  # (T, half) float32
            out = summed @ proj if out is None else out.addmm_(summed, proj)  # (T, codebook_dim)
        return out.to(self.dtype).t()

    def pre_transformer(self, x: Tensor, state: State) -> Tensor:
        """``(latent, T)`` -> ``(latent, T)``."""
        return self.transformer(x.t().contiguous(), state).t()

    def upsample(self, i: int, x: Tensor, state: State) -> Tensor:
        """``(D, L) -> (D, L*ratio)``: ConvTranspose, then ``x + gamma * pw2(gelu(pw1(LN(dwconv(x)))))``."""
        blk = self.upsamples[i]
        h = x.t()  # (L, D)
        length, d = h.shape
        up = torch.empty((length * blk.tconv.stride, d), dtype=self.dtype, device=self.device)  # (L*ratio, D)
        blk.tconv(h, blk.tconv.new_tail(self.dtype, self.device), up)
        key = f"upsample_{i}.dwconv"
        xp = torch.cat([self._tail(state, key, blk.dwconv.pad, d), up])  # (pad + L*ratio, D)
        state[key] = xp[xp.shape[0] - blk.dwconv.pad:].clone()
        g = layer_norm(blk.dwconv(xp), blk.norm_weight, blk.norm_bias).to(self.dtype)  # (L*ratio, D)
        g = torch.nn.functional.gelu(blk.pwconv1(g))  # (L*ratio, 4D)
        return (up + blk.pwconv2(g)).t()

    def block_tconv(self, i: int, x: Tensor, state: State) -> Tensor:
        """SnakeBeta then causal ConvTranspose (k = 2*rate, stride = rate): ``(C, L) -> (C/2, L*rate)``."""
        tconv = self.blocks[i].tconv
        h = x.t()  # (L, Cin)
        length, cin = h.shape
        key = f"block_{i}.tconv"
        tail = state.get(key)
        if tail is None:
            tail = tconv.new_tail(self.dtype, self.device)
        self.outputs.reserve(self._largest_block_output(i, length), avoid=x)
        out = self.outputs.get((length * tconv.stride, tconv.out_channels), avoid=x)  # (L*rate, Cout)
        for a, b in self._tiles(length, tconv.columns):
            tail = tconv(self.blocks[i].snake(h[a:b]), tail, out[a * tconv.stride: b * tconv.stride])
        state[key] = tail.clone()
        return out.t()

    def _largest_block_output(self, i: int, length: int) -> int:
        """Elements of the largest output of blocks ``i, i+1, ...`` for ``length`` rows into block ``i``:
        ``max_j L * prod(rate_i..rate_j) * Cout_j`` (the tconv's and the residual units' are the same size)."""
        largest = 0
        for block in self.blocks[i:]:
            length *= block.tconv.stride
            largest = max(largest, length * block.tconv.out_channels)
        return largest

    def block_resunits(self, i: int, x: Tensor, state: State) -> Tensor:
        """Three residual units (dilations 1, 3, 9) tile by tile: ``(C, L) -> (C, L)``."""
        units = self.blocks[i].units
        h = x.t()  # (L, C)
        length, c = h.shape
        keys = [f"block_{i}.res{u}" for u in range(len(units))]
        tails = [self._tail(state, key, unit.conv1.pad, c) for key, unit in zip(keys, units, strict=True)]
        out = self.outputs.get((length, c), avoid=x)  # (L, C)
        for a, b in self._tiles(length, c):
            y = h[a:b]
            for u, unit in enumerate(units):
                y, tails[u] = unit(y, tails[u], out[a:b] if u == len(units) - 1 else None)
        for key, tail in zip(keys, tails, strict=True):
            state[key] = tail.clone()
        return out.t()

    def final(self, x: Tensor, state: State) -> Tensor:
        """SnakeBeta, causal conv k7 to one channel, clamp to [-1, 1]: ``(C, L) -> (L,)``."""
        y = self._conv_stage(self.final_conv, x, state, "final", snake=self.final_snake)  # (1, L)
        return y[0].clamp(-1.0, 1.0)
