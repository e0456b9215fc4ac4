"""The reference vocoder: the Qwen3-TTS 12 Hz decoder's stages in NumPy, readable first.

Shapes (``T`` frames in the chunk, ``L`` the current time resolution): codes ``(Q, T)`` ->
``rvq_decode (codebook_dim, T)`` -> ``pre_conv (latent, T)`` -> ``pre_transformer (latent, T)`` ->
``upsample_i (latent, T * prod(ratios[:i+1]))`` -> ``decoder_in (decoder_dim, L)`` ->
``block_i.tconv (decoder_dim/2**(i+1), L*rate_i)`` -> ``block_i.resunits`` (same) -> ``final (L_out,)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from perfkit.interface import State, VocoderRunner
from perfkit.model.vocoder_config import VocoderConfig

from .blas import gemm
from .layers import (
    causal_conv_transpose,
    causal_depthwise_conv,
    conv_im2col,
    conv_padded,
    copy_rows,
    gelu,
    layer_norm,
    rms_norm,
    rope,
    silu,
    snake_beta,
    snake_params,
    softmax,
    tap_major,
)
from .row_threads import RowThreads, blas_threads
from .scratch import Scratch
from .tiles import TimeTiles

CODEBOOK_EPS = 1e-5
RESIDUAL_DILATIONS = (1, 3, 9)
MAX_SCRATCH_RESERVE = 1 << 24  # elements: the largest tile budget whose size scratch buffers start at


class NumpyVocoder(VocoderRunner):
    """Runs the fine stages on ``dtype`` arrays; weights converted once at load.

    GEMMs run on BLAS's threads; the elementwise work (SnakeBeta, the residual adds, im2col's copies,
    the transposed convolutions' overlap-add, the ConvNeXt blocks' GELU) is split over as many threads
    by rows (:class:`~.row_threads.RowThreads`), which leaves every value exactly as the serial code makes it.
    The decoder blocks and the final conv run in time tiles (:class:`~.tiles.TimeTiles`): a tile goes
    through the whole stage with the same tails that carry state between chunks, so tiling is
    streaming inside one call. A Conv1d with ``k > 1`` (its weight held tap-major) is one im2col GEMM
    when its ``cols`` fits a tile (the frame-rate convs, and block 0 in short stream chunks), else
    ``k`` GEMMs on shifted views that add into the output inside BLAS (an implicit GEMM through
    :func:`~.blas.gemm`: the long blocks, the final conv); a residual unit's 1x1 conv adds into its
    residual the same way. The temporaries a tile makes live in :class:`~.scratch.Scratch` buffers
    ("in", "out", "work", "unit0", "unit1") kept between calls and shared by every stage, so the
    scratch held is a few tiles; every stage output is a new array.

    The backend's worker starts with ``OPENBLAS_THREAD_TIMEOUT`` set
    (:attr:`~perfkit.backends.numpy.NumpyBackend.worker_environment`): BLAS's idle threads then stop
    spinning soon after a GEMM instead of holding the cores the row threads need.
    """

    def __init__(self, config: VocoderConfig, weights: Mapping[str, np.ndarray], dtype: np.dtype,
                 threads: int | None = None, tiles: TimeTiles | None = None) -> None:
        super().__init__(config)
        self.dtype = np.dtype(dtype)
        self.w = {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in weights.items()}
        for name in self._conv_weights(config):
            self.w[name] = tap_major(self.w[name])  # every tap a BLAS operand in place
        self.codebooks = self._normalised_codebooks()
        for name in [k for k in self.w if k.endswith((".embedding_sum", ".cluster_usage"))]:
            del self.w[name]  # replaced by the normalised codebooks: no second copy (32 MiB, published geometry)
        prefixes = [k.removesuffix(".alpha") for k in weights if k.endswith(".alpha")]
        self.snake = {p: snake_params(weights[f"{p}.alpha"], weights[f"{p}.beta"], self.dtype) for p in prefixes}
        self.rows = RowThreads(blas_threads() if threads is None else threads)
        self.tiles = TimeTiles() if tiles is None else tiles
        self.scratch = Scratch(self.dtype, reserve=self._scratch_reserve())
        self._stage_fns: dict[str, Callable[[np.ndarray, State], np.ndarray]] = {
            "rvq_decode": self.rvq_decode,
            "pre_conv": lambda x, s: self._conv("pre_conv", x, s, "pre_conv"),
            "pre_transformer": self.pre_transformer,
            "decoder_in": lambda x, s: self._conv("decoder.0", x, s, "decoder_in"),
            "final": self.final,
        }
        for i in range(len(config.upsampling_ratios)):
            self._stage_fns[f"upsample_{i}"] = lambda x, s, i=i: self.upsample(i, x, s)
        for i in range(config.num_blocks):
            self._stage_fns[f"block_{i}.tconv"] = lambda x, s, i=i: self.block_tconv(i, x, s)
            self._stage_fns[f"block_{i}.resunits"] = lambda x, s, i=i: self.block_resunits(i, x, s)

    def _scratch_reserve(self) -> int:
        """Elements every scratch buffer starts with: a tile plus the widest residual unit's look-back,
        ``C * (k - 1) * d`` with ``C`` block 0's output channels and ``(k - 1) * d`` the longest look-back
        of its dilated convs (its "in" buffer holds both). Zero for a budget over
        :data:`MAX_SCRATCH_RESERVE` (an untiled runner): its buffers follow the inputs."""
        if self.tiles.elements > MAX_SCRATCH_RESERVE:
            return 0
        look_back = max((self.w[f"decoder.1.block.{u + 2}.conv1.conv.weight"].shape[2] - 1) * d
                        for u, d in enumerate(RESIDUAL_DILATIONS))
        return self.tiles.elements + self.config.block_dims(0)[1] * look_back

    @staticmethod
    def _conv_weights(config: VocoderConfig) -> list[str]:
        """The Conv1d weights with ``k > 1`` (held :func:`~.layers.tap_major`): the frame-rate convs, the
        residual units' dilated convs, the final conv."""
        units = [f"decoder.{i + 1}.block.{u + 2}.conv1" for i in range(config.num_blocks)
                 for u in range(len(RESIDUAL_DILATIONS))]
        return [f"{p}.conv.weight" for p in ("pre_conv", "decoder.0", *units, f"decoder.{config.num_blocks + 2}")]

    def upload_codes(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.int64)

    def run_stage(self, stage: str, x: np.ndarray, state: State) -> np.ndarray:
        return self._stage_fns[stage](x, state)

    # ------------------------------------------------------------------ helpers
    def _tail(self, state: State, key: str, channels: int, length: int) -> np.ndarray:
        tail = state.get(key)
        return np.zeros((channels, length), dtype=self.dtype) if tail is None else tail

    def _conv(self, prefix: str, x: np.ndarray, state: State, key: str, dilation: int = 1) -> np.ndarray:
        """Causal conv ``prefix`` of ``x (Cin, T)`` with its carried tail: a new ``(Cout, T)`` array."""
        k = self.w[f"{prefix}.conv.weight"].shape[2]
        xp = np.concatenate([self._tail(state, key, x.shape[0], (k - 1) * dilation), x], axis=1)  # (Cin, pad + T)
        state[key] = xp[:, x.shape[1]:].copy()  # the last ``pad`` inputs, owned
        return self._conv_padded(prefix, xp, dilation)

    def _snake_conv(self, act: str, conv: str, x: np.ndarray, state: State, key: str, dilation: int = 1
                    ) -> np.ndarray:
        """``causal_conv(snake(x))``, the activation written straight after the carried tail in ``xp``.

        Uses the scratch "in" for ``xp`` and returns the scratch "out" ``(Cout, T)``.
        """
        (cout, cin, k), t = self.w[f"{conv}.conv.weight"].shape, x.shape[1]
        pad = (k - 1) * dilation
        xp = self.scratch.get("in", (cin, pad + t))
        xp[:, :pad] = self._tail(state, key, cin, pad)
        self._snake(act, x, out=xp[:, pad:])
        state[key] = xp[:, t:].copy()  # the last ``pad`` inputs, owned
        return self._conv_padded(conv, xp, dilation, out=self.scratch.get("out", (cout, t)))

    def _conv_padded(self, prefix: str, xp: np.ndarray, dilation: int, out: np.ndarray | None = None
                     ) -> np.ndarray:
        """Conv ``prefix`` on ``xp (Cin, pad + T)`` -> ``(Cout, T)`` (into ``out`` when given).

        im2col when its ``cols (k, Cin, T)`` fits the tile budget (in the scratch "work", its copy split
        over the row threads), else the implicit GEMM, whose taps accumulate in BLAS and need no
        temporary. Measured (``reports/optimizations/numpy-im2col-short``): im2col halves decoder_in;
        on the long blocks' tiles, chunked into the same budget, the copies cost what the deeper GEMM
        saves (residual units 0.93-1.00x, the final conv 0.46x).
        """
        w, b = self.w[f"{prefix}.conv.weight"], self.w[f"{prefix}.conv.bias"]
        (_, cin, k), t = w.shape, xp.shape[1] - (w.shape[2] - 1) * dilation
        if cin * k * t <= self.tiles.elements:
            return conv_im2col(xp, w, b, dilation, out=out, cols=self.scratch.get("work", (k, cin, t)),
                               gather=self._gather)
        return conv_padded(xp, w, b, dilation, out=out)

    def _gather(self, window: np.ndarray, cols: np.ndarray) -> None:
        """im2col's copy, split over the row threads by tap."""
        self.rows.run(copy_rows, window, out=cols)

    def _tconv(self, prefix: str, x: np.ndarray, stride: int, state: State, key: str,
               out: np.ndarray | None = None) -> np.ndarray:
        """Causal ConvTranspose of ``x (Cin, T)`` into ``out (Cout, T*stride)`` (a new array when None);
        its ``cols (Cout*k, T)`` in the scratch "out"."""
        w, b = self.w[f"{prefix}.conv.weight"], self.w[f"{prefix}.conv.bias"]
        _, cout, k = w.shape
        tail = self._tail(state, key, cout, k - stride)
        cols = self.scratch.get("out", (cout * k, x.shape[1]))
        y, state[key] = causal_conv_transpose(x, w, b, stride, tail, cols=cols, out=out, rows=self.rows.run)
        return y

    def _snake(self, prefix: str, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """SnakeBeta of layer ``prefix`` on ``x (C, T)``, into ``out`` (a new array when None)."""
        a, inv_b = self.snake[prefix]
        return self.rows.run(snake_beta, x, a, inv_b, out=np.empty_like(x) if out is None else out)

    # ------------------------------------------------------------------ rvq_decode
    def _normalised_codebooks(self) -> list[np.ndarray]:
        """Rows ``embedding_sum / clamp(cluster_usage, 1e-5)``: one ``(rows, codebook_dim/2)`` per quantizer."""
        cfg = self.config
        books = []
        for q in range(cfg.num_quantizers):
            sem = cfg.num_semantic_quantizers
            group, i = ("rvq_first", q) if q < sem else ("rvq_rest", q - sem)
            p = f"quantizer.{group}.vq.layers.{i}._codebook"
            usage = np.maximum(self.w[f"{p}.cluster_usage"], CODEBOOK_EPS)
            books.append(self.w[f"{p}.embedding_sum"] / usage[:, None])
        return books

    def rvq_decode(self, codes: np.ndarray, state: State) -> np.ndarray:
        """``(Q, T)`` -> ``(codebook_dim, T)``: per group, sum of looked-up rows, then its 1x1 output projection."""
        cfg = self.config
        sem = cfg.num_semantic_quantizers
        first = sum(self.codebooks[q][codes[q]] for q in range(sem))  # (T, half)
        rest = sum(self.codebooks[q][codes[q]] for q in range(sem, cfg.num_quantizers))
        out = self.w["quantizer.rvq_first.output_proj.weight"][:, :, 0] @ first.T  # (codebook_dim, T)
        out += self.w["quantizer.rvq_rest.output_proj.weight"][:, :, 0] @ rest.T
        return out

    # ------------------------------------------------------------------ pre_transformer
    def pre_transformer(self, x: np.ndarray, state: State) -> np.ndarray:
        """``(latent, T)`` -> ``(latent, T)``: input_proj, layers, RMSNorm, output_proj over time-major rows."""
        cfg = self.config
        pos0 = state.get("pre_transformer.pos", 0)
        positions = np.arange(pos0, pos0 + x.shape[1])
        h = x.T @ self.w["pre_transformer.input_proj.weight"].T + self.w["pre_transformer.input_proj.bias"]  # (T, H)
        for n in range(cfg.num_hidden_layers):
            h = self._transformer_layer(n, h, positions, state)
        h = rms_norm(h, self.w["pre_transformer.norm.weight"], cfg.rms_norm_eps)
        out = h @ self.w["pre_transformer.output_proj.weight"].T + self.w["pre_transformer.output_proj.bias"]
        state["pre_transformer.pos"] = pos0 + x.shape[1]
        return np.ascontiguousarray(out.T)  # (latent, T)

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        y = x @ self.w[f"{name}.weight"].T
        bias = self.w.get(f"{name}.bias")
        return y if bias is None else y + bias

    def _transformer_layer(self, n: int, h: np.ndarray, positions: np.ndarray, state: State) -> np.ndarray:
        cfg = self.config
        p = f"pre_transformer.layers.{n}"
        a = rms_norm(h, self.w[f"{p}.input_layernorm.weight"], cfg.rms_norm_eps)
        a = self._attention(n, a, positions, state)
        h = h + self.w[f"{p}.self_attn_layer_scale.scale"] * a
        m = rms_norm(h, self.w[f"{p}.post_attention_layernorm.weight"], cfg.rms_norm_eps)
        m = self._linear(f"{p}.mlp.down_proj", silu(self._linear(f"{p}.mlp.gate_proj", m))
                         * self._linear(f"{p}.mlp.up_proj", m))
        return h + self.w[f"{p}.mlp_layer_scale.scale"] * m

    def _attention(self, n: int, x: np.ndarray, positions: np.ndarray, state: State) -> np.ndarray:
        """Causal sliding-window GQA: query ``i`` sees keys at positions ``(i - window, i]``.

        The cache keeps the last ``window - 1`` post-RoPE keys and values of earlier chunks.
        """
        cfg = self.config
        p = f"pre_transformer.layers.{n}.self_attn"
        t, hd = x.shape[0], cfg.head_dim
        q = self._linear(f"{p}.q_proj", x).reshape(t, cfg.num_attention_heads, hd).transpose(1, 0, 2)
        k = self._linear(f"{p}.k_proj", x).reshape(t, cfg.num_key_value_heads, hd).transpose(1, 0, 2)
        v = self._linear(f"{p}.v_proj", x).reshape(t, cfg.num_key_value_heads, hd).transpose(1, 0, 2)
        q, k = rope(q, positions, cfg.rope_theta), rope(k, positions, cfg.rope_theta)
        key = f"pre_transformer.kv.{n}"
        if key in state:
            past_k, past_v = state[key]
            k, v = np.concatenate([past_k, k], axis=1), np.concatenate([past_v, v], axis=1)
        keep = cfg.sliding_window - 1
        state[key] = (k[:, max(0, k.shape[1] - keep):].copy(), v[:, max(0, v.shape[1] - keep):].copy())
        key_pos = np.arange(positions[-1] + 1 - k.shape[1], positions[-1] + 1)
        delta = positions[:, None] - key_pos[None, :]  # (T, S): how far back each key is
        allowed = (delta >= 0) & (delta < cfg.sliding_window)
        groups = cfg.num_attention_heads // cfg.num_key_value_heads
        k, v = np.repeat(k, groups, axis=0), np.repeat(v, groups, axis=0)  # (heads, S, hd)
        scores = (q @ k.transpose(0, 2, 1)) * (hd ** -0.5)  # (heads, T, S)
        scores = np.where(allowed[None], scores, -np.inf)
        out = softmax(scores) @ v  # (heads, T, hd)
        return self._linear(f"{p}.o_proj", out.transpose(1, 0, 2).reshape(t, -1))

    # ------------------------------------------------------------------ upsample, decoder
    def upsample(self, i: int, x: np.ndarray, state: State) -> np.ndarray:
        """Causal ConvTranspose (k = stride = ratio) then a ConvNeXt block; ``(D, L) -> (D, L*ratio)``."""
        ratio = self.config.upsampling_ratios[i]
        x = self._tconv(f"upsample.{i}.0", x, ratio, state, f"upsample_{i}.tconv")
        p = f"upsample.{i}.1"
        w, b = self.w[f"{p}.dwconv.conv.weight"], self.w[f"{p}.dwconv.conv.bias"]
        tail = self._tail(state, f"upsample_{i}.dwconv", w.shape[0], w.shape[2] - 1)
        h, state[f"upsample_{i}.dwconv"] = causal_depthwise_conv(x, w, b, tail)
        h = layer_norm(h.T, self.w[f"{p}.norm.weight"], self.w[f"{p}.norm.bias"])  # (L, D)
        h = self._linear(f"{p}.pwconv1", h)  # (L, 4D)
        self.rows.run(gelu, h, out=h)
        h = self._linear(f"{p}.pwconv2", h) * self.w[f"{p}.gamma"]
        return x + h.T

    def block_tconv(self, i: int, x: np.ndarray, state: State) -> np.ndarray:
        """SnakeBeta then causal ConvTranspose (k = 2*rate, stride = rate): ``(C, L) -> (C/2, L*rate)``.

        Tile by tile over the input ``(C, r)``, sized by the tile's ``cols (Cout*k, r)``, its largest
        temporary (``rate`` times the input tile), so that the narrow last blocks' ``cols`` stay in budget.
        """
        p, stride = f"decoder.{i + 1}.block", self.config.upsample_rates[i]
        cin, cout, k = self.w[f"{p}.1.conv.weight"].shape
        y = np.empty((cout, x.shape[1] * stride), dtype=self.dtype)  # (C/2, L*rate)
        for lo, hi in self.tiles.ranges(x.shape[1], max(cin, cout * k)):
            h = self._snake(f"{p}.0", x[:, lo:hi], out=self.scratch.get("in", (cin, hi - lo)))
            self._tconv(f"{p}.1", h, stride, state, f"block_{i}.tconv", out=y[:, lo * stride: hi * stride])
        return y

    def block_resunits(self, i: int, x: np.ndarray, state: State) -> np.ndarray:
        """Three residual units ``x + conv1x1(snake(conv7_dilated(snake(x))))``, dilations 1, 3, 9, tile by tile."""
        y = np.empty_like(x)  # (C, L)
        last = len(RESIDUAL_DILATIONS) - 1
        for lo, hi in self.tiles.ranges(x.shape[1], x.shape[0]):
            h = x[:, lo:hi]
            for u, dilation in enumerate(RESIDUAL_DILATIONS):
                out = y[:, lo:hi] if u == last else self.scratch.get(f"unit{u % 2}", h.shape)
                h = self._residual_unit(i, u, dilation, h, state, out)
        return y

    def _residual_unit(self, i: int, u: int, dilation: int, x: np.ndarray, state: State, out: np.ndarray
                       ) -> np.ndarray:
        """Unit ``u`` of block ``i`` on ``x (C, r)`` into ``out (C, r)`` (not ``x``); uses "in", "out", "work"."""
        p = f"decoder.{i + 1}.block.{u + 2}"
        h = self._snake_conv(f"{p}.act1", f"{p}.conv1", x, state, f"block_{i}.res{u}", dilation)
        h = self._snake(f"{p}.act2", h, out=self.scratch.get("in", h.shape))  # the conv is done with "in"
        w, b = self.w[f"{p}.conv2.conv.weight"], self.w[f"{p}.conv2.conv.bias"]
        self.rows.run(np.add, x, b[:, None], out=out)  # the residual and the bias, then the 1x1 conv adds into it
        return gemm(w[:, :, 0], h, out)

    def final(self, x: np.ndarray, state: State) -> np.ndarray:
        """SnakeBeta, causal conv k7 to one channel, clamp to [-1, 1]: ``(C, L) -> (L,)``, tile by tile."""
        n = self.config.num_blocks
        y = np.empty(x.shape[1], dtype=self.dtype)  # (L,)
        for lo, hi in self.tiles.ranges(x.shape[1], x.shape[0]):
            h = self._snake_conv(f"decoder.{n + 1}", f"decoder.{n + 2}", x[:, lo:hi], state, "final")
            np.clip(h[0], -1.0, 1.0, out=y[lo:hi])
        return y
