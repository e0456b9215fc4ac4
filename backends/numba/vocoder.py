"""The Numba vocoder: the reference's fine stages (``backends/numpy/vocoder.py``) as compiled kernels.

Same algorithm and state semantics as the NumPy reference, on ``(channels, time)`` arrays of the
compute dtype; GEMM-shaped work goes to BLAS (:mod:`.blas`), everything memory-bound is a fused
parallel kernel. Weights are converted and laid out once at load:

- convolutions ``(Cout, Cin, k)`` -> taps ``(k, Cout, Cin)``, one contiguous GEMM operand per tap;
- transposed convolutions ``(Cin, Cout, k)`` -> ``(Cout*k, Cin)``, so ``cols = W @ x`` is one GEMM;
- q/k/v and gate/up projections stacked into one GEMM each; the ConvNeXt ``gamma`` folded into
  ``pwconv2``; SnakeBeta's ``exp(alpha)`` and ``1/(exp(beta) + 1e-9)`` precomputed per channel;
- codebooks normalised (``embedding_sum / clamp(cluster_usage, 1e-5)``) in float64, then rounded.

Buffers come from a :class:`~.workspace.Workspace`: stage outputs alternate between two buffers
(an output stays valid until two more stages have run), the block tconvs run in time tiles and
the residual units in place after the first, so the scratch of a decode is two of its largest
activations plus tile-sized buffers; after the first decode of a given length nothing is
allocated. The streaming state holds per-utterance arrays (convolution tails, KV caches)
allocated at the utterance's first chunk and updated in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numba
import numpy as np

from perfkit.interface import State, VocoderRunner
from perfkit.model.vocoder_config import VocoderConfig

from . import activations as act
from . import attention as attn
from . import conv, norms
from . import elementwise as ew
from . import snake_conv as sc
from .blas_threads import ensure_single_threaded_blas
from .codebooks import gather_codebooks
from .linear import linear, linear_t
from .workspace import Workspace

CODEBOOK_EPS = 1e-5
LAYER_NORM_EPS = 1e-6
RESIDUAL_DILATIONS = (1, 3, 9)
#: Bytes of one ``(C, tile)`` activation tile of the residual units (sized to stay in L2).
TILE_BYTES = 1 << 19
#: Fewest columns of a residual-unit tile, whatever the channels: each tile is ``k + 1`` GEMMs of ``tile``
#: columns, and the wide blocks' budget alone (128 columns at 768 channels) leaves BLAS too little to do
#: per call (block 0's units 182 -> 168 ms, 1.09x; the rest unchanged:
#: ``reports/optimizations/numba-min-tile-columns``).
MIN_TILE_COLUMNS = 640
#: Bytes of a block tconv's ``cols (Cout*k, tile)`` per tile (1820 input columns in block 3, 96 x 6 rows).
TCONV_COLS_BYTES = 1 << 22
#: Fewest input columns of a block-tconv tile: each tile reads the whole weight again (block 1's 768 x 3840,
#: 11.8 MB: 256 columns made its tconv 1.13x slower, 512 about 1.05x; blocks 2 and 3 unchanged).
MIN_TCONV_COLUMNS = 512


def _taps(w: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Conv1d ``(Cout, Cin, k)`` -> ``(k, Cout, Cin)``."""
    return np.ascontiguousarray(np.asarray(w).transpose(2, 0, 1), dtype=dtype)


def _tconv_matrix(w: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ConvTranspose1d ``(Cin, Cout, k)`` -> ``(Cout*k, Cin)``."""
    cin, cout, k = w.shape
    return np.ascontiguousarray(np.asarray(w).reshape(cin, cout * k).T, dtype=dtype)


class NumbaVocoder(VocoderRunner):
    """Runs the fine stages on ``dtype`` NumPy arrays with numba kernels."""

    def __init__(self, config: VocoderConfig, weights: Mapping[str, np.ndarray], dtype: np.dtype,
                 threads: int | None = None) -> None:
        super().__init__(config)
        self.dtype = np.dtype(dtype)
        self.threads = threads
        self.ws = Workspace(self.dtype)
        self.sin_k = act.sin_constants(self.dtype)
        self._prepare(weights)
        self._stage_fns: dict[str, Callable[[np.ndarray, State], np.ndarray]] = {
            "rvq_decode": self.rvq_decode,
            "pre_conv": lambda x, s: self._conv_stage("pre_conv", x, s),
            "pre_transformer": self.pre_transformer,
            "decoder_in": lambda x, s: self._conv_stage("decoder_in", x, s),
            "final": self.final,
        }
        for i in range(len(config.upsampling_ratios)):
            self._stage_fns[f"upsample_{i}"] = lambda x, s, i=i: self.upsample(i, x, s)
        for i in range(config.num_blocks):
            self._stage_fns[f"block_{i}.tconv"] = lambda x, s, i=i: self.block_tconv(i, x, s)
            self._stage_fns[f"block_{i}.resunits"] = lambda x, s, i=i: self.block_resunits(i, x, s)

    # ------------------------------------------------------------------ weights
    def _prepare(self, weights: Mapping[str, np.ndarray]) -> None:
        cfg, dt = self.config, self.dtype
        w = {k: np.asarray(v) for k, v in weights.items()}

        def arr(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[name], dtype=dt)

        # rvq: stacked normalised codebooks, one (codebook_dim, 2*half) output projection
        books, offsets, off = [], [], 0
        for q in range(cfg.num_quantizers):
            group, i = ("rvq_first", q) if q < cfg.num_semantic_quantizers else (
                "rvq_rest", q - cfg.num_semantic_quantizers)
            p = f"quantizer.{group}.vq.layers.{i}._codebook"
            usage = np.maximum(w[f"{p}.cluster_usage"].astype(np.float64), CODEBOOK_EPS)
            books.append(w[f"{p}.embedding_sum"].astype(np.float64) / usage[:, None])
            offsets.append(off)
            off += books[-1].shape[0]
        self.books = np.ascontiguousarray(np.concatenate(books), dtype=dt)
        self.book_offsets = np.asarray(offsets, dtype=np.int64)
        projections = [w[f"quantizer.{g}.output_proj.weight"][:, :, 0] for g in ("rvq_first", "rvq_rest")]
        self.rvq_proj = np.ascontiguousarray(np.concatenate(projections, axis=1), dtype=dt)  # (cd, 2*half)

        self.convs: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "pre_conv": (_taps(w["pre_conv.conv.weight"], dt), arr("pre_conv.conv.bias")),
            "decoder_in": (_taps(w["decoder.0.conv.weight"], dt), arr("decoder.0.conv.bias")),
        }

        # pre-transformer
        pt = "pre_transformer"
        self.pt_in = (arr(f"{pt}.input_proj.weight"), arr(f"{pt}.input_proj.bias"))
        self.pt_out = (arr(f"{pt}.output_proj.weight"), arr(f"{pt}.output_proj.bias"))
        self.pt_norm = arr(f"{pt}.norm.weight")
        self.layers = []
        for n in range(cfg.num_hidden_layers):
            p = f"{pt}.layers.{n}"
            a = f"{p}.self_attn"
            qkv = np.concatenate([w[f"{a}.{x}_proj.weight"] for x in "qkv"])
            qkv_b = (np.concatenate([w[f"{a}.{x}_proj.bias"] for x in "qkv"]) if cfg.attention_bias else None)
            self.layers.append({
                "ln1": arr(f"{p}.input_layernorm.weight"),
                "qkv": np.ascontiguousarray(qkv, dtype=dt),
                "qkv_b": None if qkv_b is None else np.ascontiguousarray(qkv_b, dtype=dt),
                "o": arr(f"{a}.o_proj.weight"),
                "o_b": arr(f"{a}.o_proj.bias") if cfg.attention_bias else None,
                "attn_scale": arr(f"{p}.self_attn_layer_scale.scale"),
                "ln2": arr(f"{p}.post_attention_layernorm.weight"),
                "gate_up": np.ascontiguousarray(
                    np.concatenate([w[f"{p}.mlp.gate_proj.weight"], w[f"{p}.mlp.up_proj.weight"]]), dtype=dt),
                "down": arr(f"{p}.mlp.down_proj.weight"),
                "mlp_scale": arr(f"{p}.mlp_layer_scale.scale"),
            })
        self.inv_freq = attn.rope_inv_freq(cfg.head_dim, cfg.rope_theta)

        # upsample: transposed conv + ConvNeXt
        self.ups = []
        for i in range(len(cfg.upsampling_ratios)):
            p = f"upsample.{i}.1"
            gamma = w[f"{p}.gamma"].astype(np.float64)
            self.ups.append({
                "tconv": _tconv_matrix(w[f"upsample.{i}.0.conv.weight"], dt),
                "tconv_b": arr(f"upsample.{i}.0.conv.bias"),
                "k": int(w[f"upsample.{i}.0.conv.weight"].shape[2]),
                "dw": np.ascontiguousarray(w[f"{p}.dwconv.conv.weight"][:, 0, :], dtype=dt),
                "dw_b": arr(f"{p}.dwconv.conv.bias"),
                "ln_w": arr(f"{p}.norm.weight"), "ln_b": arr(f"{p}.norm.bias"),
                "pw1": arr(f"{p}.pwconv1.weight"), "pw1_b": arr(f"{p}.pwconv1.bias"),
                "pw2g": np.ascontiguousarray(gamma[:, None] * w[f"{p}.pwconv2.weight"], dtype=dt),
                "b2g": np.ascontiguousarray(gamma * w[f"{p}.pwconv2.bias"], dtype=dt),
            })

        # decoder blocks
        def snake_p(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return act.snake_params(w[f"{prefix}.alpha"], w[f"{prefix}.beta"], dt)

        self.blocks = []
        for i in range(cfg.num_blocks):
            p = f"decoder.{i + 1}.block"
            units = []
            for u in range(3):
                q = f"{p}.{u + 2}"
                units.append({
                    "act1": snake_p(f"{q}.act1"), "act2": snake_p(f"{q}.act2"),
                    "w1": _taps(w[f"{q}.conv1.conv.weight"], dt), "b1": arr(f"{q}.conv1.conv.bias"),
                    "w2": np.ascontiguousarray(w[f"{q}.conv2.conv.weight"][:, :, 0], dtype=dt),
                    "b2": arr(f"{q}.conv2.conv.bias"),
                })
            self.blocks.append({
                "act": snake_p(f"{p}.0"),
                "tconv": _tconv_matrix(w[f"{p}.1.conv.weight"], dt), "tconv_b": arr(f"{p}.1.conv.bias"),
                "k": int(w[f"{p}.1.conv.weight"].shape[2]),
                "units": units,
            })
        n = cfg.num_blocks
        self.final_act = snake_p(f"decoder.{n + 1}")
        self.final_conv = (_taps(w[f"decoder.{n + 2}.conv.weight"], dt), arr(f"decoder.{n + 2}.conv.bias"))

    # ------------------------------------------------------------------ runner API
    def upload_codes(self, codes: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(codes, dtype=np.int64)

    def run_stage(self, stage: str, x: np.ndarray, state: State) -> np.ndarray:
        if self.threads is not None:  # numba's thread count is per calling thread
            numba.set_num_threads(self.threads)
        ensure_single_threaded_blas()  # numba's threads are the only pool (see .blas_threads)
        return self._stage_fns[stage](x, state)

    def warmup(self) -> None:
        """Compile (or load from the disk cache) every kernel now: one frame through every stage."""
        codes = np.zeros((self.config.num_quantizers, 1), dtype=np.int64)
        self.decode(self.upload_codes(codes))

    # ------------------------------------------------------------------ helpers
    def _input(self, x: np.ndarray) -> np.ndarray:
        """A stage input as a C-contiguous array of the compute dtype (no copy when it already is)."""
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _state_array(self, state: State, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The per-utterance array ``key`` (zeros at the utterance's first chunk)."""
        a = state.get(key)
        if a is None:
            a = state[key] = np.zeros(shape, dtype=self.dtype)
        return a

    def _tile(self, channels: int) -> int:
        """Residual-unit tile width: ``TILE_BYTES`` per ``(C, tile)`` tile, a multiple of 64, at least
        :data:`MIN_TILE_COLUMNS`."""
        return max(MIN_TILE_COLUMNS, (TILE_BYTES // (channels * self.dtype.itemsize)) // 64 * 64)

    def _tconv_tile(self, rows: int) -> int:
        """Input columns per block-tconv tile: ``TCONV_COLS_BYTES`` of ``cols (rows, tile)``, at least
        :data:`MIN_TCONV_COLUMNS`."""
        return max(MIN_TCONV_COLUMNS, TCONV_COLS_BYTES // (rows * self.dtype.itemsize))

    # ------------------------------------------------------------------ stages
    def rvq_decode(self, codes: np.ndarray, state: State) -> np.ndarray:
        """``(Q, T)`` -> ``(codebook_dim, T)``: codebook rows summed per group, one stacked projection."""
        cfg = self.config
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        t = codes.shape[1]
        half = cfg.codebook_half_dim
        gathered = self.ws.get("rvq.gathered", (t, 2 * half))  # (T, [first | rest])
        gather_codebooks(codes, self.books, self.book_offsets, cfg.num_semantic_quantizers, gathered)
        out = self.ws.output((cfg.codebook_dim, t), codes)
        linear_t(self.rvq_proj, gathered, None, out)
        return out

    def _conv_stage(self, name: str, x: np.ndarray, state: State) -> np.ndarray:
        x = self._input(x)
        w, b = self.convs[name]
        k, cout, cin = w.shape
        tail = self._state_array(state, name, (cin, k - 1))
        xp = self.ws.get("conv.xp", (cin, k - 1 + x.shape[1]))
        out = self.ws.output((cout, x.shape[1]), x)
        conv.causal_conv(x, w, b, tail, 1, xp, out, numba.get_num_threads())
        return out

    def pre_transformer(self, x: np.ndarray, state: State) -> np.ndarray:
        """``(latent, T)`` -> ``(latent, T)``; time-major ``(T, H)`` rows inside."""
        cfg = self.config
        x = self._input(x)
        t = x.shape[1]
        hidden, hd = cfg.hidden_size, cfg.head_dim
        nq, nkv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
        pos0 = int(state.get("pre_transformer.pos", 0))
        ws = self.ws
        h = ws.get("pt.h", (t, hidden))
        a = ws.get("pt.a", (t, hidden))
        qkv = ws.get("pt.qkv", (t, nq + 2 * nkv))
        att = ws.get("pt.att", (t, nq))
        gu = ws.get("pt.gate_up", (t, 2 * cfg.intermediate_size))
        mlp = ws.get("pt.mlp", (t, cfg.intermediate_size))
        cos = ws.get("pt.cos", (t, hd // 2))
        sin = ws.get("pt.sin", (t, hd // 2))
        attn.rope_table(pos0, self.inv_freq, cos, sin)
        linear(x, self.pt_in[0], self.pt_in[1], h, trans_x=True)  # (T, H) = x^T W^T + b
        window = cfg.sliding_window
        for n, lw in enumerate(self.layers):
            norms.rms_norm_rows(h, lw["ln1"], cfg.rms_norm_eps, a)
            linear(a, lw["qkv"], lw["qkv_b"], qkv)
            attn.rope_inplace(qkv, 0, cfg.num_attention_heads, cos, sin)
            attn.rope_inplace(qkv, nq, cfg.num_key_value_heads, cos, sin)
            cache_k = self._state_array(state, f"pt.k{n}", (cfg.num_key_value_heads, window - 1, hd))
            cache_v = self._state_array(state, f"pt.v{n}", (cfg.num_key_value_heads, window - 1, hd))
            past = int(state.get(f"pt.kv_len{n}", 0))
            total = past + t
            k_all = ws.get("pt.k_all", (cfg.num_key_value_heads, total, hd))
            v_all = ws.get("pt.v_all", (cfg.num_key_value_heads, total, hd))
            attn.kv_append(qkv, nq, nq + nkv, cache_k, cache_v, past, k_all, v_all)
            state[f"pt.kv_len{n}"] = attn.kv_keep(k_all, v_all, cache_k, cache_v)
            scores = ws.get("pt.scores", (cfg.num_attention_heads, t, total))
            attn.causal_attention(qkv, cfg.num_attention_heads, k_all, v_all, total, pos0, window, scores,
                                  att)
            linear(att, lw["o"], lw["o_b"], a)
            ew.residual_scale_add(h, lw["attn_scale"], a)
            norms.rms_norm_rows(h, lw["ln2"], cfg.rms_norm_eps, a)
            linear(a, lw["gate_up"], None, gu)
            act.silu_gate(gu, mlp)
            linear(mlp, lw["down"], None, a)
            ew.residual_scale_add(h, lw["mlp_scale"], a)
        norms.rms_norm_rows(h, self.pt_norm, cfg.rms_norm_eps, a)
        out = ws.output((cfg.latent_dim, t), x)
        linear_t(self.pt_out[0], a, self.pt_out[1], out)  # (latent, T) = W a^T + b
        state["pre_transformer.pos"] = pos0 + t
        return out

    def upsample(self, i: int, x: np.ndarray, state: State) -> np.ndarray:
        """Causal ConvTranspose (k = stride = ratio) then ConvNeXt: ``(D, L) -> (D, L*ratio)``."""
        x = self._input(x)
        u = self.ups[i]
        d, t = x.shape
        ratio = self.config.upsampling_ratios[i]
        k = u["k"]
        length = t * ratio
        ws = self.ws
        cols = ws.get("tconv.cols", (d, k, t))
        y = ws.get("up.y", (d, length))
        tail = self._state_array(state, f"upsample_{i}.tconv", (d, k - ratio))
        conv.conv_transpose(x, u["tconv"], u["tconv_b"], ratio, tail, cols, y, numba.get_num_threads())
        h = ws.get("up.h", (length, d))
        dw_tail = self._state_array(state, f"upsample_{i}.dwconv", (d, u["dw"].shape[1] - 1))
        conv.depthwise_conv_time_major(y, u["dw"], u["dw_b"], dw_tail, h)
        norms.layer_norm_rows(h, u["ln_w"], u["ln_b"], LAYER_NORM_EPS, h)
        g = ws.get("up.g", (length, u["pw1"].shape[0]))
        linear(h, u["pw1"], u["pw1_b"], g)
        act.gelu_inplace(g)
        out = ws.output((d, length), x)
        ew.add_bias_to(y, u["b2g"], out)  # out = y + gamma * b2
        linear_t(u["pw2g"], g, None, out, accumulate=True)  # out += (gamma W2) g^T
        return out

    def block_tconv(self, i: int, x: np.ndarray, state: State) -> np.ndarray:
        """SnakeBeta then causal ConvTranspose (k = 2*rate, stride = rate): ``(C, L) -> (C/2, L*rate)``.

        Tile by tile over the input (:meth:`_tconv_tile` columns), the tail carried as between chunks,
        so the SnakeBeta'd input and the GEMM's ``cols (C/2, k, tile)`` are tile-sized scratch.
        """
        x = self._input(x)
        blk = self.blocks[i]
        rate = self.config.upsample_rates[i]
        cin, t = x.shape
        k = blk["k"]
        cout = blk["tconv"].shape[0] // k
        tail = self._state_array(state, f"block_{i}.tconv", (cout, k - rate))
        out = self.ws.output((cout, t * rate), x)
        tile = self._tconv_tile(cout * k)
        threads = numba.get_num_threads()
        for lo in range(0, t, tile):
            hi = min(t, lo + tile)
            s = self.ws.get("snake", (cin, hi - lo))
            act.snake(x, lo, blk["act"][0], blk["act"][1], self.sin_k, s)
            cols = self.ws.get("tconv.cols", (cout, k, hi - lo))
            conv.conv_transpose(s, blk["tconv"], blk["tconv_b"], rate, tail, cols, out[:, lo * rate:hi * rate],
                                threads)
        return out

    def block_resunits(self, i: int, x: np.ndarray, state: State) -> np.ndarray:
        """Three residual units ``x + conv1x1(snake(conv7_dilated(snake(x))))``, dilations 1, 3, 9.

        The first reads ``x`` and writes the output; the second and third run in place on it.
        """
        x = self._input(x)
        c, length = x.shape
        out = self.ws.output((c, length), x)
        tile = self._tile(c)
        threads = numba.get_num_threads()
        acc = self.ws.get("res.acc", (threads, c, tile))
        for u, (unit, dilation) in enumerate(zip(self.blocks[i]["units"], RESIDUAL_DILATIONS, strict=True)):
            k = unit["w1"].shape[0]
            pad = (k - 1) * dilation
            tail = self._state_array(state, f"block_{i}.res{u}", (c, pad))
            h = self.ws.get("res.h", (threads, c, pad + tile))
            (a1, ib1), (a2, ib2) = unit["act1"], unit["act2"]
            sc.residual_unit(x if u == 0 else out, out, a1, ib1, unit["w1"], unit["b1"], dilation,
                             a2, ib2, unit["w2"], unit["b2"], self.sin_k, tail, h, acc)
        return out

    def final(self, x: np.ndarray, state: State) -> np.ndarray:
        """SnakeBeta, causal conv k7 to one channel, clamp to [-1, 1]: ``(C, L) -> (L,)``."""
        x = self._input(x)
        c, length = x.shape
        w, b = self.final_conv
        k = w.shape[0]
        tail = self._state_array(state, "final", (c, k - 1))
        tile = self._tile(c)
        h = self.ws.get("res.h", (numba.get_num_threads(), c, k - 1 + tile))
        y = self.ws.get("final.y", (1, length))
        sc.snake_conv(x, self.final_act[0], self.final_act[1], self.sin_k, w, b, 1, tail, h, y)
        out = self.ws.output((length,), x)
        ew.clip_row(y, out, -1.0, 1.0)
        return out
