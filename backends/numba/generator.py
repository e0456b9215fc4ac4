"""The Numba generator: the talker and code predictor of ``backends/numpy/generator.py`` as compiled calls.

Same stages, prompt, sampling rule and KV-cache semantics as the NumPy reference; each decoder
stack runs as one ``njit`` call (:func:`.decoder.decoder_stack`), sampling as another
(:func:`.sampling.sample_logits`). Weights are converted once: per-layer tensors stacked, q/k/v and
gate/up concatenated, the code predictor's embeddings and heads stacked ``(G-1, C, .)``; the text
embedding stays float32 (its rows are cast on lookup, as the reference does).

Per session (:meth:`NumbaGenerator.allocate`): the talker KV cache ``(L, kv, P + F - 1, d)``, the code
predictor's ``(Lc, kv, G, d)`` (rewritten every frame), the codes ``(G, F)``; per runner, scratch
from a :class:`~.workspace.Workspace`, sized by the first (longest) call and reused afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping

import numba
import numpy as np

from perfkit.generator_interface import GeneratorRunner, GeneratorSession
from perfkit.model.generator_config import GeneratorConfig
from perfkit.model.prompt import Prompt
from perfkit.model.sampling import group0_allowed

from . import activations as act
from .blas_threads import ensure_single_threaded_blas
from .decoder import DecoderWeights, decoder_stack
from .embeddings import add_codec_rows, embed_frame, gather_rows
from .linear import linear
from .sampling import sample_logits
from .workspace import Workspace


class NumbaGenerator(GeneratorRunner):
    """Runs the generator stages on ``dtype`` arrays with numba kernels."""

    def __init__(self, config: GeneratorConfig, weights: Mapping[str, np.ndarray], dtype: np.dtype,
                 threads: int | None = None) -> None:
        super().__init__(config)
        self.dtype = dt = np.dtype(dtype)
        self.threads = threads
        self.ws = Workspace(dt)
        w = {k: np.asarray(v) for k, v in weights.items()}
        cp = config.code_predictor_config

        def arr(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[name], dtype=dt)

        self.text_embedding = np.ascontiguousarray(w["model.text_embedding.weight"], dtype=np.float32)
        self.fc1 = (arr("text_projection.linear_fc1.weight"), arr("text_projection.linear_fc1.bias"))
        self.fc2 = (arr("text_projection.linear_fc2.weight"), arr("text_projection.linear_fc2.bias"))
        self.codec_embedding = arr("model.codec_embedding.weight")  # (V, H)
        self.codec_head = arr("codec_head.weight")  # (V, H)
        self.talker = DecoderWeights.from_weights(
            w, "model", config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.head_dim, config.rms_norm_eps, config.rope_theta, config.attention_bias, dt)
        self.predictor = DecoderWeights.from_weights(
            w, "code_predictor.model", cp.num_hidden_layers, cp.num_attention_heads, cp.num_key_value_heads,
            cp.head_dim, cp.rms_norm_eps, cp.rope_theta, cp.attention_bias, dt)
        groups = range(config.num_code_groups - 1)
        self.cp_embeddings = np.ascontiguousarray(
            np.stack([w[f"code_predictor.model.codec_embedding.{g}.weight"] for g in groups]), dtype=dt)
        self.lm_heads = np.ascontiguousarray(
            np.stack([w[f"code_predictor.lm_head.{g}.weight"] for g in groups]), dtype=dt)  # (G-1, C, Hc)
        proj = "code_predictor.small_to_mtp_projection"
        self.projection = (arr(f"{proj}.weight"), arr(f"{proj}.bias")) if config.has_projection else None
        v = config.vocab_size
        self._z = np.empty(v, dtype=np.float64)
        self._zs = np.empty(v, dtype=np.float64)
        self._seen = np.zeros(v, dtype=np.bool_)

    # ------------------------------------------------------------------ building blocks
    def _set_threads(self) -> None:
        """numba's thread count (per calling thread) and single-threaded BLAS (see :mod:`.blas_threads`)."""
        if self.threads is not None:
            numba.set_num_threads(self.threads)
        ensure_single_threaded_blas()

    def embed_text(self, ids: np.ndarray, name: str) -> np.ndarray:
        """``(N,)`` text ids -> ``(N, H)``: ``fc2(silu(fc1(text_embedding[ids])))`` into buffer ``name``."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n = ids.shape[0]
        dt_width = self.text_embedding.shape[1]
        x = self.ws.get("text.rows", (n, dt_width))
        gather_rows(self.text_embedding, ids, x)
        h1 = self.ws.get("text.h1", (n, dt_width))
        linear(x, self.fc1[0], self.fc1[1], h1)
        act.silu_inplace(h1)
        out = self.ws.get(name, (n, self.config.hidden_size))
        linear(h1, self.fc2[0], self.fc2[1], out)
        return out

    def run_stack(self, stack: DecoderWeights, name: str, x: np.ndarray, cache: tuple[np.ndarray, np.ndarray],
                  pos0: int) -> np.ndarray:
        """``x (T, D)`` (modified: the residual stream) at positions ``pos0 …`` -> ``RMSNorm`` output."""
        t, d = x.shape
        if pos0 + t > cache[0].shape[2]:
            raise RuntimeError(f"KV cache of {cache[0].shape[2]} positions is full")
        ws = self.ws
        hd = stack.head_dim
        nq, nkv = stack.heads * hd, stack.kv_heads * hd
        out = ws.get(f"{name}.out", (t, d))
        decoder_stack(x, pos0, stack.ln1, stack.qkv, stack.qkv_b, stack.q_norm, stack.k_norm, stack.o,
                      stack.o_b, stack.ln2, stack.gate_up, stack.down, stack.norm, stack.inv_freq,
                      stack.heads, stack.kv_heads, stack.eps, cache[0], cache[1],
                      ws.get(f"{name}.a", (t, d)), ws.get(f"{name}.qkv", (t, nq + 2 * nkv)),
                      ws.get(f"{name}.att", (t, nq)), ws.get(f"{name}.gu", (t, 2 * stack.intermediate)),
                      ws.get(f"{name}.m", (t, stack.intermediate)), ws.get(f"{name}.cos", (t, hd // 2)),
                      ws.get(f"{name}.sin", (t, hd // 2)),
                      ws.get(f"{name}.scores", (stack.heads, t, pos0 + t)), out, numba.get_num_threads())
        return out

    def _talker_logits(self, hidden_row: np.ndarray) -> np.ndarray:
        logits = self.ws.get("talker.logits", (1, self.config.vocab_size))
        linear(hidden_row, self.codec_head, None, logits)
        return logits[0]

    def _project(self, x: np.ndarray) -> np.ndarray:
        """``small_to_mtp_projection`` ``(T, H) -> (T, Hc)``; ``x`` itself when the widths agree."""
        if self.projection is None:
            return x
        out = self.ws.get("cp.x", (x.shape[0], self.projection[0].shape[0]))
        linear(x, self.projection[0], self.projection[1], out)
        return out

    def _sample(self, session: GeneratorSession, group: int, logits: np.ndarray, history: np.ndarray,
                limit: int, extra: int) -> int:
        if session.logits_log is not None:
            session.logits_log.append((session.frame, group, logits.copy()))  # buffers are reused
        o = session.options
        u = float(session.uniforms[session.frame, group])
        code = sample_logits(logits, u, o.greedy, float(o.temperature), int(o.top_k), float(o.top_p),
                             float(o.repetition_penalty), history, limit, extra,
                             self._z, self._zs, self._seen)
        forced = session.forced(group)
        return int(code) if forced is None else forced

    # ------------------------------------------------------------------ the runner interface
    def allocate(self, session: GeneratorSession) -> None:
        cfg, s = self.config, session.state
        s["talker_cache"] = self.talker.new_cache(session.prompt.prefill_length + session.max_frames - 1)
        s["cp_cache"] = self.predictor.new_cache(cfg.num_code_groups)
        s["codes"] = np.zeros((cfg.num_code_groups, session.max_frames), dtype=np.int64)
        s["hidden"] = np.zeros((1, cfg.hidden_size), dtype=self.dtype)
        s["length"] = 0

    def prefill(self, session: GeneratorSession) -> np.ndarray:
        self._set_threads()
        prompt, s = session.prompt, session.state
        s["stream"] = self.embed_text(prompt.stream_text_ids, "stream").copy()  # (N, H), per session
        s["pad"] = self.embed_text(np.array([prompt.pad_text_id]), "pad")[0].copy()  # (H,)
        x = self._prefill_embeddings(prompt)
        hidden = self.run_stack(self.talker, "talker", x, s["talker_cache"], 0)
        s["length"] = x.shape[0]
        s["hidden"][0] = hidden[-1]
        return self._talker_logits(s["hidden"])

    def _prefill_embeddings(self, prompt: Prompt) -> np.ndarray:
        """``(P, H)``: ``E_t(prefill_text_ids) + E_c(prefill_codec_ids)`` (no codec term where it is -1)."""
        x = self.embed_text(prompt.prefill_text_ids, "talker.x")
        codec_ids = np.ascontiguousarray(prompt.prefill_codec_ids, dtype=np.int64)
        add_codec_rows(self.codec_embedding, codec_ids, x)
        return x

    def talker_step(self, session: GeneratorSession) -> np.ndarray:
        self._set_threads()
        f, s = session.frame, session.state
        text = s["stream"][f - 1] if f - 1 < s["stream"].shape[0] else s["pad"]
        x = self.ws.get("talker.x", (1, self.config.hidden_size))
        embed_frame(s["codes"], f - 1, self.codec_embedding, self.cp_embeddings, text, x)
        hidden = self.run_stack(self.talker, "talker", x, s["talker_cache"], s["length"])
        s["length"] += 1
        s["hidden"][0] = hidden[-1]
        return self._talker_logits(s["hidden"])

    def sample_group0(self, session: GeneratorSession, logits: np.ndarray) -> np.ndarray:
        f, codes = session.frame, session.state["codes"]
        allowed = group0_allowed(self.config, f, session.options)
        eos = self.config.codec_eos_token_id
        # group0_allowed is "the audio codes, plus EOS when allowed"; passed to the kernel as (limit, extra)
        limit, extra = self.config.num_codes, (eos if allowed[eos] else -1)
        code = self._sample(session, 0, logits, codes[0, :f], limit, extra)
        codes[0, f] = code
        return np.asarray(code, dtype=np.int64)

    def code_predictor(self, session: GeneratorSession) -> np.ndarray:
        self._set_threads()
        f, s = session.frame, session.state
        codes, cache, cfg = s["codes"], s["cp_cache"], self.config
        h_width = cfg.hidden_size
        no_history = codes[0, :0]
        x = self.ws.get("cp.in2", (2, h_width))  # positions 0, 1: talker hidden state, group-0 embedding
        x[0] = s["hidden"][0]
        x[1] = self.codec_embedding[codes[0, f]]
        pos = 0
        for g in range(1, cfg.num_code_groups):
            if g > 1:
                x = self.ws.get("cp.in1", (1, h_width))
                x[0] = self.cp_embeddings[g - 2, codes[g - 1, f]]
            h = self.run_stack(self.predictor, "cp", self._project(x), cache, pos)  # x is scratch: may change
            pos += x.shape[0]
            logits = self.ws.get("cp.logits", (1, cfg.num_codes))
            linear(h[-1:], self.lm_heads[g - 1], None, logits)
            codes[g, f] = self._sample(session, g, logits[0], no_history, cfg.num_codes, -1)
        return codes[1:, f].copy()

    def codes(self, session: GeneratorSession, start: int, stop: int) -> np.ndarray:
        return session.state["codes"][:, start:stop].copy()
