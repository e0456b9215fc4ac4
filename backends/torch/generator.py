"""The Qwen3-TTS generator (talker + code predictor) in torch, mirroring :mod:`perfkit.backends.numpy.generator`.

Per utterance, :meth:`TorchGenerator.allocate` creates every buffer the frame loop touches: the KV
caches (talker ``prefill_length + max_frames - 1`` positions, code predictor ``G``), the codes
``(G, max_frames)``, the uniforms ``(max_frames, G)``, the repetition-penalty mask ``seen (V,)``, the
text-stream rows and a one-element frame counter ``frame (1,)`` on the device. Each stage reads the
frame from that counter (one ``fill_`` per frame, no upload of data), writes codes with
``index_copy_`` and samples on the device (:mod:`.sampler`), so the only host synchronisation per
frame is the framework's EOS check on the group-0 code.

Two forms of the talker step: *dynamic* (attend to the first ``end`` cache rows, a host integer) and
*static* (attend to the whole cache under a mask computed on the device: fixed shapes). With
``graphs=True`` on CUDA the static per-frame work is captured once per utterance as three CUDA
graphs — talker step, group-0 sampling, code predictor — and replayed every frame; the
allocations those graphs make live in their private memory pool, so the loop allocates nothing.

A frame is matrix-vector products, bound by the weight bytes streamed. On a CPU every linear layer the
frame loop runs (both decoder stacks, ``codec_head``, the projection, the ``lm_head`` s) is packed for
one-row inputs (:class:`.layers.Linear`): oneDNN's layout in float32, and in bfloat16 where oneDNN runs it
natively (AVX-512, AMX); elsewhere torch's own ``(out, in)`` for ``F.linear`` in bfloat16.

Codec embeddings of all groups are one float32 table ``(V + (G-1)*C, H)`` with per-group row
offsets, so a frame's summed embedding is a single ``embedding_bag``. The text embedding stays on
the host in the compute dtype (311 M values for the published models: 1.2 GB in float32, 0.6 GB in
bfloat16); only the prompt's rows are uploaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from perfkit.generator_interface import GeneratorRunner, GeneratorSession
from perfkit.model.generator_config import GeneratorConfig
from perfkit.model.prompt import NO_CODEC

from .decoder_stack import DecoderStack, KVCache, StackGeometry
from .layers import Linear, Tensor, to_tensor
from .sampler import DeviceSampler


class TorchGenerator(GeneratorRunner):
    """The generator on one device in one compute dtype; weights converted once here.

    ``static``: use the fixed-shape talker step (default: ``graphs``); ``graphs``: capture the per-frame
    stages as CUDA graphs (CUDA only; sessions that log logits run the same static code uncaptured).
    """

    def __init__(self, config: GeneratorConfig, weights: Mapping[str, np.ndarray], dtype: torch.dtype,
                 device: torch.device, graphs: bool = False, static: bool | None = None) -> None:
        super().__init__(config)
        self.dtype, self.device = dtype, device
        self.graphs = graphs and device.type == "cuda"
        self.static = graphs if static is None else static
        with torch.inference_mode():
            self._pack(config, weights)

    # ------------------------------------------------------------------ load
    def _pack(self, cfg: GeneratorConfig, w: Mapping[str, np.ndarray]) -> None:
        dt, dev = self.dtype, self.device
        cp = cfg.code_predictor_config
        g = cfg.num_code_groups
        # host (Vt, Dt) in the compute dtype, which the rows are converted to anyway: bfloat16 holds half
        self.text_embedding = to_tensor(w["model.text_embedding.weight"], dt, torch.device("cpu"))
        self.text_fc1 = Linear.pack(w, "text_projection.linear_fc1", dt, dev)
        self.text_fc2 = Linear.pack(w, "text_projection.linear_fc2", dt, dev)
        tables = [w["model.codec_embedding.weight"]]
        tables += [w[f"code_predictor.model.codec_embedding.{j}.weight"] for j in range(g - 1)]
        self.codec_table = to_tensor(np.concatenate(tables, axis=0), torch.float32, dev)  # (V + (G-1)*C, H)
        offsets = np.cumsum([0] + [t.shape[0] for t in tables[:-1]])
        self.codec_offsets = torch.as_tensor(offsets, dtype=torch.int64).to(dev)  # (G,): group j's first row
        self.codec_head = Linear.pack(w, "codec_head", dt, dev, rows=1)  # H -> V
        self.talker = DecoderStack(w, StackGeometry(
            "model", cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
            cfg.rms_norm_eps, cfg.rope_theta, cfg.max_position_embeddings), dt, dev, rows=1)
        self.predictor = DecoderStack(w, StackGeometry(
            "code_predictor.model", cp.num_hidden_layers, cp.num_attention_heads, cp.num_key_value_heads,
            cp.head_dim, cp.rms_norm_eps, cp.rope_theta, g), dt, dev, rows=1)
        self.projection = (Linear.pack(w, "code_predictor.small_to_mtp_projection", dt, dev, rows=1)
                           if cfg.has_projection else None)
        self.lm_heads = [Linear.pack(w, f"code_predictor.lm_head.{j}", dt, dev, rows=1)
                         for j in range(g - 1)]  # Hc -> C each
        self.cp_positions = torch.arange(g, device=dev)  # (G,)

    # ------------------------------------------------------------------ model pieces
    def embed_text(self, ids: np.ndarray) -> Tensor:
        """``(N,)`` host text ids -> ``(N, H)`` float32: ``fc2(silu(fc1(text_embedding[ids])))``."""
        index = torch.from_numpy(np.asarray(ids, dtype=np.int64).reshape(-1))
        x = self.text_embedding.index_select(0, index).to(self.device)  # (N, Dt) in the compute dtype
        return self.text_fc2(F.silu(self.text_fc1(x))).float()

    def talker_logits(self, hidden: Tensor) -> Tensor:
        """``codec_head``: ``(1, H)`` float32 -> ``(V,)`` float32."""
        return self.codec_head(hidden.to(self.dtype)).float()[0]

    def project(self, x: Tensor) -> Tensor:
        """``small_to_mtp_projection`` ``(T, H) -> (T, Hc)`` float32; the identity when the widths are equal."""
        return x if self.projection is None else self.projection(x.to(self.dtype)).float()

    # ------------------------------------------------------------------ the runner interface
    def allocate(self, session: GeneratorSession) -> None:
        cfg, dev, f32 = self.config, self.device, torch.float32
        prompt = session.prompt
        capacity = prompt.prefill_length + session.max_frames - 1
        with torch.inference_mode():
            s = session.state
            s["talker_cache"] = KVCache.allocate(self.talker.geo, capacity, self.dtype, dev)
            s["cp_cache"] = KVCache.allocate(self.predictor.geo, cfg.num_code_groups, self.dtype, dev)
            s["codes"] = torch.zeros((cfg.num_code_groups, session.max_frames), dtype=torch.int64, device=dev)
            s["uniforms"] = torch.from_numpy(np.ascontiguousarray(session.uniforms, dtype=np.float64)).to(dev)
            s["forced"] = (None if session.forced_codes is None
                           else torch.from_numpy(np.asarray(session.forced_codes, dtype=np.int64)).to(dev))
            s["seen"] = torch.zeros(cfg.vocab_size, dtype=torch.bool, device=dev)  # group-0 history, as a set
            s["hidden"] = torch.zeros((1, cfg.hidden_size), dtype=f32, device=dev)
            s["stream"] = torch.zeros((prompt.stream_text_ids.shape[0] + 1, cfg.hidden_size), dtype=f32,
                                      device=dev)  # text stream rows, then the pad row
            s["logits0"] = torch.zeros(cfg.vocab_size, dtype=f32, device=dev)
            s["key_rows"] = torch.arange(capacity, device=dev)  # (capacity,) for the static mask
            s["frame"] = torch.zeros(1, dtype=torch.int64, device=dev)
            s["frame_host"] = -1
            s["sampler"] = DeviceSampler(cfg, session.options, dev)
            s["graphs"] = None
            if self.graphs and session.logits_log is None:
                self._capture(session)

    def prefill(self, session: GeneratorSession) -> Tensor:
        prompt, s = session.prompt, session.state
        p = prompt.prefill_length
        with torch.inference_mode():
            x = self.embed_text(prompt.prefill_text_ids)  # (P, H)
            has_codec = np.flatnonzero(prompt.prefill_codec_ids != NO_CODEC)
            if has_codec.size:
                rows = torch.as_tensor(prompt.prefill_codec_ids[has_codec]).to(self.device)
                x.index_add_(0, torch.as_tensor(has_codec).to(self.device), F.embedding(rows, self.codec_table))
            positions = torch.arange(p, device=self.device)
            hidden = self.talker(x, s["talker_cache"], positions, end=p)  # (P, H)
            s["hidden"].copy_(hidden[-1:])
            n = prompt.stream_text_ids.shape[0]
            s["stream"][:n] = self.embed_text(prompt.stream_text_ids)
            s["stream"][n:] = self.embed_text([prompt.pad_text_id])
            return self.talker_logits(hidden[-1:])

    def talker_step(self, session: GeneratorSession) -> Tensor:
        with torch.inference_mode():
            self._set_frame(session)
            graphs = session.state["graphs"]
            if graphs is not None:
                graphs["talker"][0].replay()
                return graphs["talker"][1]
            return self._talker_step(session, dynamic_end=None if self.static else
                                     session.prompt.prefill_length + session.frame)

    def sample_group0(self, session: GeneratorSession, logits: Tensor) -> Tensor:
        s = session.state
        with torch.inference_mode():
            self._set_frame(session)
            if session.logits_log is not None:
                session.logits_log.append((session.frame, 0, logits.clone()))
            graphs = s["graphs"]
            if graphs is not None:
                if logits is not s["logits0"]:
                    s["logits0"].copy_(logits)  # frame 0: the prefill's logits
                graphs["group0"][0].replay()
                return graphs["group0"][1]
            return self._sample_group0(session, logits)

    def code_predictor(self, session: GeneratorSession) -> Tensor:
        with torch.inference_mode():
            self._set_frame(session)
            graphs = session.state["graphs"]
            if graphs is not None:
                graphs["predictor"][0].replay()
                return graphs["predictor"][1]
            return self._code_predictor(session)

    def codes(self, session: GeneratorSession, start: int, stop: int) -> Tensor:
        return session.state["codes"][:, start:stop].clone()

    # ------------------------------------------------------------------ per-frame device work
    def _set_frame(self, session: GeneratorSession) -> None:
        """Copy the host frame number into the device counter once per frame (a fill, not a transfer)."""
        s = session.state
        if s["frame_host"] != session.frame:
            s["frame"].fill_(session.frame)
            s["frame_host"] = session.frame

    def _talker_step(self, session: GeneratorSession, dynamic_end: int | None) -> Tensor:
        """Frame ``f >= 1``: input = summed codec embeddings of frame ``f-1`` + text stream row; one position."""
        s, g = session.state, self.config.num_code_groups
        frame = s["frame"]  # (1,)
        prev = s["codes"].index_select(1, frame - 1).view(1, g) + self.codec_offsets  # (1, G) table rows
        x = F.embedding_bag(prev, self.codec_table, mode="sum")  # (1, H)
        last_text = s["stream"].shape[0] - 1
        x = x + s["stream"].index_select(0, torch.clamp(frame - 1, max=last_text))  # (1, H)
        pos = frame + (session.prompt.prefill_length - 1)  # (1,)
        if dynamic_end is None:
            hidden = self.talker(x, s["talker_cache"], pos, valid=s["key_rows"] <= pos)
        else:
            hidden = self.talker(x, s["talker_cache"], pos, end=dynamic_end)
        s["hidden"].copy_(hidden)
        if dynamic_end is not None:
            return self.talker_logits(hidden)
        return s["logits0"].copy_(self.talker_logits(hidden))  # a fixed buffer: the graph's output

    def _sample_group0(self, session: GeneratorSession, logits: Tensor) -> Tensor:
        s = session.state
        sampler, frame = s["sampler"], s["frame"]
        z = sampler.process(logits, seen=s["seen"], allowed=sampler.group0_allowed(frame))
        code = sampler.pick(z, s["uniforms"][:, 0].index_select(0, frame))  # (1,)
        if s["forced"] is not None:
            code = s["forced"][0].index_select(0, frame)
        s["codes"][0].index_copy_(0, frame, code)
        s["seen"].index_fill_(0, code, True)
        return code.view(())

    def _code_predictor(self, session: GeneratorSession) -> Tensor:
        """Groups ``1 … G-1`` of the frame: the predictor's cache rows ``0 … G-1`` are rewritten every frame."""
        s, g = session.state, self.config.num_code_groups
        sampler, frame, codes, cache = s["sampler"], s["frame"], s["codes"], s["cp_cache"]
        code0 = codes[0].index_select(0, frame)  # (1,)
        x = torch.cat([s["hidden"], F.embedding(code0, self.codec_table)])  # (2, H): positions 0, 1
        for j in range(1, g):
            if j > 1:
                row = codes[j - 1].index_select(0, frame) + self.codec_offsets[j - 1]
                x = F.embedding(row, self.codec_table)  # (1, H): position j
            positions = self.cp_positions[j + 1 - x.shape[0]: j + 1]
            h = self.predictor(self.project(x), cache, positions, end=j + 1)[-1:]  # (1, Hc)
            logits = self.lm_heads[j - 1](h.to(self.dtype)).float()[0]  # (C,)
            if session.logits_log is not None:
                session.logits_log.append((session.frame, j, logits))
            code = sampler.pick(sampler.process(logits), s["uniforms"][:, j].index_select(0, frame))
            if s["forced"] is not None:
                code = s["forced"][j].index_select(0, frame)
            codes[j].index_copy_(0, frame, code)
        return codes[1:].index_select(1, frame).view(g - 1)

    # ------------------------------------------------------------------ CUDA graphs
    def _capture(self, session: GeneratorSession) -> None:
        """Warm up on a side stream, capture the three per-frame graphs, undo the warm-up's writes.

        The warm-up runs frame 1: its KV and codes writes land where prefill and the real frames write
        before anything reads them; ``codes`` and ``seen`` are cleared afterwards.
        """
        s = session.state
        s["frame"].fill_(1)
        steps: dict[str, Callable[[], Any]] = {
            "talker": lambda: self._talker_step(session, dynamic_end=None),
            "group0": lambda: self._sample_group0(session, s["logits0"]),
            "predictor": lambda: self._code_predictor(session),
        }
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(2):
                for step in steps.values():
                    step()
        current.wait_stream(side)
        pool = torch.cuda.graph_pool_handle()
        graphs = {}
        for name, step in steps.items():
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                out = step()
            graphs[name] = (graph, out)
        s["codes"].zero_()
        s["seen"].zero_()
        s["frame_host"] = -1
        s["graphs"] = graphs
