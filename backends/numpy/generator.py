"""The reference generator: the Qwen3-TTS talker and code predictor in NumPy, readable first.

Shapes (``T`` positions in a call, ``S`` cached positions, ``H`` talker width, ``Hc`` code predictor
width, ``V`` codec vocabulary, ``C`` codes per group, ``G`` code groups, ``h``/``kv`` query/KV heads,
``d`` head_dim):

- text: ids ``(N,)`` -> ``text_embedding`` ``(N, Dt)`` -> ``linear_fc2(silu(linear_fc1(x)))`` ``(N, H)``;
- decoder layer (talker and code predictor alike, official ``Qwen3TTS*DecoderLayer``)::

      a = RMSNorm(x)                                   (T, D)
      q = RMSNorm_d(a Wq^T).T -> RoPE    (h, T, d)     per-head q_norm over d, then rotary
      k = RMSNorm_d(a Wk^T).T -> RoPE    (kv, T, d)    per-head k_norm
      v = (a Wv^T).T                      (kv, T, d)
      o = softmax(q k^T / sqrt(d) + causal) v          GQA: query head j*h/kv + r reads KV head j
      x = x + o Wo^T;   x = x + down(silu(gate(RMSNorm(x))) * up(RMSNorm(x)))

- talker: layers, final RMSNorm -> hidden ``(T, H)``; ``codec_head`` -> logits ``(T, V)``;
- code predictor: ``small_to_mtp_projection`` ``(T, H) -> (T, Hc)`` (identity when ``Hc == H``),
  layers, final RMSNorm, ``lm_head[g-1]`` -> logits ``(C,)`` of group ``g``.

RoPE is the plain 1-D rotary over ``head_dim`` at absolute positions (the official talker's
multimodal RoPE reduces to it for text-only input, its three position rows being equal).

Batches (``native_batch``): the decoder stacks also take ``x (B, T, D)`` with a KV cache
``(layers, B, kv, capacity, d)``; every linear layer runs as one GEMM over the ``B * T`` rows, so a
weight read serves the whole batch (the talker step and the code predictor, ``T = 1``, are
memory-bandwidth bound). The items of a batch sit at the same positions (same prefill length, lockstep
frames); sampling stays per item on the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from perfkit.generator_interface import GeneratorBatch, GeneratorRunner, GeneratorSession
from perfkit.model.generator_config import GeneratorConfig
from perfkit.model.prompt import NO_CODEC, Prompt
from perfkit.model.sampling import group0_allowed, pick, process_logits

from .layers import rms_norm, rope, silu, softmax


@dataclass(frozen=True)
class Stack:
    """What differs between the talker's and the code predictor's decoder stacks."""

    prefix: str  # "model" or "code_predictor.model"
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    theta: float
    bias: bool


@dataclass
class KVCache:
    """Preallocated keys and values ``(layers, kv_heads, capacity, head_dim)`` — or, for a batch,
    ``(layers, B, kv_heads, capacity, head_dim)``; ``length`` positions are filled (in every item)."""

    k: np.ndarray
    v: np.ndarray
    length: int = 0

    @classmethod
    def allocate(cls, stack: Stack, capacity: int, dtype: np.dtype, batch: int | None = None) -> KVCache:
        shape = (stack.layers, *(() if batch is None else (batch,)), stack.kv_heads, capacity, stack.head_dim)
        return cls(np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype))

    @property
    def capacity(self) -> int:
        return int(self.k.shape[-2])

    def batched(self) -> tuple[np.ndarray, np.ndarray]:
        """Views of ``k, v`` as ``(layers, B, kv_heads, capacity, head_dim)`` (``B = 1`` for one utterance)."""
        if self.k.ndim == 5:
            return self.k, self.v
        return self.k[:, None], self.v[:, None]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, q_pos: np.ndarray, k_pos: np.ndarray
              ) -> np.ndarray:
    """Causal grouped-query attention. ``q (h, T, d)``, ``k, v (kv, S, d)`` -> ``(T, h*d)``; with a leading
    batch axis, ``q (B, h, T, d)``, ``k, v (B, kv, S, d)`` -> ``(B, T, h*d)``.

    Query ``i`` sees keys with ``k_pos <= q_pos[i]``; query head ``j*(h/kv) + r`` reads KV head ``j``.
    """
    if q.ndim == 3:
        return attention(q[None], k[None], v[None], q_pos, k_pos)[0]
    b, heads, t, d = q.shape
    kv = k.shape[1]
    qg = q.reshape(b, kv, heads // kv, t, d)
    scores = (qg @ k[:, :, None].transpose(0, 1, 2, 4, 3)) * (d**-0.5)  # (B, kv, h/kv, T, S)
    scores = np.where(k_pos[None, :] <= q_pos[:, None], scores, -np.inf)
    out = softmax(scores) @ v[:, :, None]  # (B, kv, h/kv, T, d)
    return out.reshape(b, heads, t, d).transpose(0, 2, 1, 3).reshape(b, t, heads * d)


class NumpyGenerator(GeneratorRunner):
    """Runs the generator stages on ``dtype`` arrays; weights converted once at load. Batches natively."""

    native_batch = True

    def __init__(self, config: GeneratorConfig, weights: Mapping[str, np.ndarray], dtype: np.dtype) -> None:
        super().__init__(config)
        self.dtype = np.dtype(dtype)
        # The text embedding (311 M values for the published models) stays float32; rows are cast on lookup.
        self.text_embedding = np.asarray(weights["model.text_embedding.weight"], dtype=np.float32)
        self.w = {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in weights.items()
                  if k != "model.text_embedding.weight"}
        cp = config.code_predictor_config
        self.talker_stack = Stack("model", config.num_hidden_layers, config.num_attention_heads,
                                  config.num_key_value_heads, config.head_dim, config.rms_norm_eps,
                                  config.rope_theta, config.attention_bias)
        self.cp_stack = Stack("code_predictor.model", cp.num_hidden_layers, cp.num_attention_heads,
                              cp.num_key_value_heads, cp.head_dim, cp.rms_norm_eps, cp.rope_theta,
                              cp.attention_bias)

    # ================================================================== model functions
    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        """``(…, In) -> (…, Out)`` as one GEMM over every leading row (a batch reads the weight once)."""
        w = self.w[f"{name}.weight"]
        y = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(*x.shape[:-1], w.shape[0])
        bias = self.w.get(f"{name}.bias")
        return y if bias is None else y + bias

    def embed_text(self, ids: np.ndarray) -> np.ndarray:
        """``E_t``: ``(N,)`` text ids -> ``(N, H)``: ``fc2(silu(fc1(text_embedding[ids])))``."""
        x = self.text_embedding[np.asarray(ids, dtype=np.int64)].astype(self.dtype)  # (N, Dt)
        return self._linear("text_projection.linear_fc2", silu(self._linear("text_projection.linear_fc1", x)))

    def embed_codec(self, ids: np.ndarray) -> np.ndarray:
        """``E_c``: ``(N,)`` codec ids -> ``(N, H)`` rows of the talker's ``codec_embedding``."""
        return self.w["model.codec_embedding.weight"][np.asarray(ids, dtype=np.int64)]

    def embed_frame(self, frame_codes: np.ndarray) -> np.ndarray:
        """``(G,)`` codes of one frame -> ``(H,)``: group 0's ``codec_embedding`` row plus, for ``g >= 1``,
        row ``codes[g]`` of the code predictor's ``codec_embedding[g-1]``."""
        x = self.w["model.codec_embedding.weight"][int(frame_codes[0])].copy()
        for g in range(1, self.config.num_code_groups):
            x += self.w[f"code_predictor.model.codec_embedding.{g - 1}.weight"][int(frame_codes[g])]
        return x

    def prefill_embeddings(self, prompt: Prompt) -> np.ndarray:
        """``(P, H)``: ``E_t(prefill_text_ids) + E_c(prefill_codec_ids)`` (no codec term where it is -1)."""
        x = self.embed_text(prompt.prefill_text_ids)
        has_codec = prompt.prefill_codec_ids != NO_CODEC
        x[has_codec] += self.embed_codec(prompt.prefill_codec_ids[has_codec])
        return x

    def _layer(self, stack: Stack, n: int, x: np.ndarray, positions: np.ndarray, cache: KVCache | None
               ) -> np.ndarray:
        """One decoder layer on ``x (B, T, D)`` at ``positions (T,)`` (the same for every item); with a cache,
        keys/values are written at ``cache.length …`` and attention reads every filled position."""
        p = f"{stack.prefix}.layers.{n}"
        b, t, d = x.shape[0], x.shape[1], stack.head_dim
        a = rms_norm(x, self.w[f"{p}.input_layernorm.weight"], stack.eps)
        q = rms_norm(self._linear(f"{p}.self_attn.q_proj", a).reshape(b, t, stack.heads, d),
                     self.w[f"{p}.self_attn.q_norm.weight"], stack.eps).transpose(0, 2, 1, 3)  # (B, h, T, d)
        k = rms_norm(self._linear(f"{p}.self_attn.k_proj", a).reshape(b, t, stack.kv_heads, d),
                     self.w[f"{p}.self_attn.k_norm.weight"], stack.eps).transpose(0, 2, 1, 3)  # (B, kv, T, d)
        v = self._linear(f"{p}.self_attn.v_proj", a).reshape(b, t, stack.kv_heads, d).transpose(0, 2, 1, 3)
        q, k = rope(q, positions, stack.theta), rope(k, positions, stack.theta)
        if cache is None:
            keys, values, k_pos = k, v, positions
        else:
            end = cache.length + t
            ck, cv = cache.batched()  # (layers, B, kv, capacity, d)
            ck[n, :, :, cache.length:end] = k
            cv[n, :, :, cache.length:end] = v
            keys, values, k_pos = ck[n, :, :, :end], cv[n, :, :, :end], np.arange(end)
        x = x + self._linear(f"{p}.self_attn.o_proj", attention(q, keys, values, positions, k_pos))
        m = rms_norm(x, self.w[f"{p}.post_attention_layernorm.weight"], stack.eps)
        m = self._linear(f"{p}.mlp.down_proj", silu(self._linear(f"{p}.mlp.gate_proj", m))
                         * self._linear(f"{p}.mlp.up_proj", m))
        return x + m

    def run_stack(self, stack: Stack, x: np.ndarray, cache: KVCache | None = None) -> np.ndarray:
        """Every layer then the final RMSNorm: ``(T, D) -> (T, D)``, or ``(B, T, D) -> (B, T, D)`` with a
        batched cache (or none).

        With a cache the ``T`` positions follow the ``cache.length`` already there (and are added to it);
        without, they are positions ``0 … T-1`` attending to each other only (full recomputation).
        """
        single = x.ndim == 2
        x = x[None] if single else x
        start = 0 if cache is None else cache.length
        positions = np.arange(start, start + x.shape[1])
        if cache is not None and positions[-1] >= cache.capacity:
            raise RuntimeError(f"KV cache of {cache.capacity} positions is full")
        for n in range(stack.layers):
            x = self._layer(stack, n, x, positions, cache)
        if cache is not None:
            cache.length += x.shape[1]
        out = rms_norm(x, self.w[f"{stack.prefix}.norm.weight"], stack.eps)
        return out[0] if single else out

    def talker_logits(self, hidden: np.ndarray) -> np.ndarray:
        """``codec_head``: ``(…, H) -> (…, V)``."""
        return hidden @ self.w["codec_head.weight"].T

    def project(self, x: np.ndarray) -> np.ndarray:
        """``small_to_mtp_projection``: ``(T, H) -> (T, Hc)``; the identity when the widths are equal."""
        return self._linear("code_predictor.small_to_mtp_projection", x) if self.config.has_projection else x

    def predictor_logits(self, group: int, hidden: np.ndarray) -> np.ndarray:
        """``lm_head[group-1]``: ``(…, Hc) -> (…, C)`` for code group ``group >= 1``."""
        return hidden @ self.w[f"code_predictor.lm_head.{group - 1}.weight"].T

    def predictor_input(self, group: int, code: int) -> np.ndarray:
        """``(H,)`` input of code-predictor position ``group`` (2 … G-1): ``codec_embedding[group-2]``."""
        return self.w[f"code_predictor.model.codec_embedding.{group - 2}.weight"][int(code)]

    # ================================================================== full recomputation (tests, parity)
    def teacher_forced(self, prompt: Prompt, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits for given codes ``(G, F)`` by full recomputation, no KV cache.

        Returns ``talker (F, V)`` — frame ``f``'s group-0 logits, from one talker pass over the
        prefill and the inputs of frames ``1 … F-1`` — and ``predictor (F, G-1, C)`` — the logits of
        groups ``1 … G-1``, from one code-predictor pass per frame over its ``G`` positions.
        """
        codes = np.asarray(codes, dtype=np.int64)
        g, frames = codes.shape
        steps = [self.embed_frame(codes[:, f - 1]) + self.embed_text([prompt.stream_text_id(f)])[0]
                 for f in range(1, frames)]
        x = np.concatenate([self.prefill_embeddings(prompt), *([np.stack(steps)] if steps else [])])
        hidden = self.run_stack(self.talker_stack, x)[prompt.prefill_length - 1:]  # (F, H)
        talker = self.talker_logits(hidden)
        predictor = np.empty((frames, g - 1, self.config.num_codes), dtype=self.dtype)
        for f in range(frames):
            rows = [hidden[f], self.embed_codec([codes[0, f]])[0]]
            rows += [self.predictor_input(j, codes[j - 1, f]) for j in range(2, g)]
            h = self.run_stack(self.cp_stack, self.project(np.stack(rows)))  # (G, Hc)
            for j in range(1, g):
                predictor[f, j - 1] = self.predictor_logits(j, h[j])
        return talker, predictor

    # ================================================================== the runner interface
    def allocate(self, session: GeneratorSession) -> None:
        cfg = self.config
        s = session.state
        positions = session.prompt.prefill_length + session.max_frames - 1
        s["talker_cache"] = KVCache.allocate(self.talker_stack, positions, self.dtype)
        s["cp_cache"] = KVCache.allocate(self.cp_stack, cfg.num_code_groups, self.dtype)
        s["codes"] = np.zeros((cfg.num_code_groups, session.max_frames), dtype=np.int64)
        s["hidden"] = np.zeros(cfg.hidden_size, dtype=self.dtype)

    def prefill(self, session: GeneratorSession) -> np.ndarray:
        prompt, s = session.prompt, session.state
        s["stream"] = self.embed_text(prompt.stream_text_ids)  # (N, H)
        s["pad"] = self.embed_text([prompt.pad_text_id])[0]  # (H,)
        hidden = self.run_stack(self.talker_stack, self.prefill_embeddings(prompt), s["talker_cache"])
        s["hidden"] = hidden[-1]
        return self.talker_logits(hidden[-1])

    def talker_step(self, session: GeneratorSession) -> np.ndarray:
        f, s = session.frame, session.state
        text = s["stream"][f - 1] if f - 1 < s["stream"].shape[0] else s["pad"]
        x = (self.embed_frame(s["codes"][:, f - 1]) + text)[None]  # (1, H)
        hidden = self.run_stack(self.talker_stack, x, s["talker_cache"])
        s["hidden"] = hidden[-1]
        return self.talker_logits(hidden[-1])

    def _sample(self, session: GeneratorSession, group: int, logits: np.ndarray, **rule: np.ndarray) -> int:
        if session.logits_log is not None:
            session.logits_log.append((session.frame, group, logits))
        z = process_logits(logits, session.options, **rule)
        code = pick(z, float(session.uniforms[session.frame, group]), session.options.greedy)
        forced = session.forced(group)
        return code if forced is None else forced

    def sample_group0(self, session: GeneratorSession, logits: np.ndarray) -> np.ndarray:
        f, codes = session.frame, session.state["codes"]
        code = self._sample(session, 0, logits, history=codes[0, :f],
                            allowed=group0_allowed(self.config, f, session.options))
        codes[0, f] = code
        return np.asarray(code, dtype=np.int64)

    def code_predictor(self, session: GeneratorSession) -> np.ndarray:
        f, s = session.frame, session.state
        codes, cache = s["codes"], s["cp_cache"]
        cache.length = 0
        x = np.stack([s["hidden"], self.embed_codec([codes[0, f]])[0]])  # (2, H): positions 0, 1
        for g in range(1, self.config.num_code_groups):
            if g > 1:
                x = self.predictor_input(g, codes[g - 1, f])[None]  # (1, H): position g
            h = self.run_stack(self.cp_stack, self.project(x), cache)[-1]  # (Hc,)
            codes[g, f] = self._sample(session, g, self.predictor_logits(g, h))
        return codes[1:, f].copy()

    def codes(self, session: GeneratorSession, start: int, stop: int) -> np.ndarray:
        return session.state["codes"][:, start:stop].copy()

    # ================================================================== native batches
    def allocate_batch(self, batch: GeneratorBatch) -> None:
        """``batch.state``: KV caches ``(layers, B, kv, positions, d)``, codes ``(B, G, frames)``, hidden ``(B, H)``."""
        cfg, b, s = self.config, batch.size, batch.state
        positions = batch.sessions[0].prompt.prefill_length + batch.max_frames - 1
        s["talker_cache"] = KVCache.allocate(self.talker_stack, positions, self.dtype, batch=b)
        s["cp_cache"] = KVCache.allocate(self.cp_stack, cfg.num_code_groups, self.dtype, batch=b)
        s["codes"] = np.zeros((b, cfg.num_code_groups, batch.max_frames), dtype=np.int64)
        s["hidden"] = np.zeros((b, cfg.hidden_size), dtype=self.dtype)

    def prefill_batch(self, batch: GeneratorBatch) -> np.ndarray:
        """``(B, P, H)`` prompt embeddings through the talker in one pass -> logits ``(B, V)``."""
        s = batch.state
        prompts = [session.prompt for session in batch.sessions]
        s["stream"] = [self.embed_text(p.stream_text_ids) for p in prompts]  # B x (N_i, H)
        s["pad"] = [self.embed_text([p.pad_text_id])[0] for p in prompts]  # B x (H,)
        x = np.stack([self.prefill_embeddings(p) for p in prompts])  # (B, P, H)
        hidden = self.run_stack(self.talker_stack, x, s["talker_cache"])[:, -1]  # (B, H)
        s["hidden"] = hidden
        return self.talker_logits(hidden)

    def talker_step_batch(self, batch: GeneratorBatch) -> np.ndarray:
        """One talker position for every item: inputs ``(B, 1, H)`` -> logits ``(B, V)``."""
        f, s = batch.frame, batch.state
        rows = [self.embed_frame(s["codes"][i, :, f - 1])
                + (stream[f - 1] if f - 1 < stream.shape[0] else pad)
                for i, (stream, pad) in enumerate(zip(s["stream"], s["pad"], strict=True))]
        hidden = self.run_stack(self.talker_stack, np.stack(rows)[:, None], s["talker_cache"])[:, -1]  # (B, H)
        s["hidden"] = hidden
        return self.talker_logits(hidden)

    def sample_group0_batch(self, batch: GeneratorBatch, logits: np.ndarray) -> np.ndarray:
        """Each item's rule on its row of ``logits (B, V)`` with its own history and uniforms -> ``(B,)``."""
        f, codes = batch.frame, batch.state["codes"]
        for i, session in enumerate(batch.sessions):
            codes[i, 0, f] = self._sample(session, 0, logits[i], history=codes[i, 0, :f],
                                          allowed=group0_allowed(self.config, f, session.options))
        return codes[:, 0, f].copy()

    def code_predictor_batch(self, batch: GeneratorBatch) -> np.ndarray:
        """Groups ``1 … G-1`` of every item, one predictor pass ``(B, T, Hc)`` per group -> ``(B, G-1)``."""
        f, s = batch.frame, batch.state
        codes, cache = s["codes"], s["cp_cache"]
        cache.length = 0
        x = np.stack([s["hidden"], self.embed_codec(codes[:, 0, f])], axis=1)  # (B, 2, H): positions 0, 1
        for g in range(1, self.config.num_code_groups):
            if g > 1:
                table = self.w[f"code_predictor.model.codec_embedding.{g - 2}.weight"]
                x = table[codes[:, g - 1, f]][:, None]  # (B, 1, H): position g
            h = self.run_stack(self.cp_stack, self.project(x), cache)[:, -1]  # (B, Hc)
            logits = self.predictor_logits(g, h)  # (B, C)
            for i, session in enumerate(batch.sessions):
                codes[i, g, f] = self._sample(session, g, logits[i])
        return codes[:, 1:, f].copy()

    def codes_batch(self, batch: GeneratorBatch, start: int, stop: int) -> np.ndarray:
        """``(B, G, stop - start)``."""
        return batch.state["codes"][:, :, start:stop].copy()
