"""Shared by the generator backend tests: the synthetic models, the prompt, and one generation run."""

from __future__ import annotations

import numpy as np

from perfkit import registry
from perfkit.generator_interface import GeneratorSession
from perfkit.model.generator_config import generator_preset
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.prompt import Prompt, encode_prompt
from perfkit.model.sampling import SamplingOptions
from perfkit.model.text import ByteTokenizer
from perfkit.synthesis import run_frames

TEXT = "Speech, one frame at a time."
#: Frames over which greedy codes must equal the float64 reference's (fixed frame count, EOS ignored).
GREEDY_FRAMES = {"tiny": 48, "small": 16}


def synthetic_models() -> dict[str, GeneratorModel]:
    """The ``tiny`` and ``small`` generators with seed-0 synthetic weights."""
    return {name: GeneratorModel.synthetic(generator_preset(name), seed=0) for name in ("tiny", "small")}


def prompt_for(model: GeneratorModel, text: str = TEXT) -> Prompt:
    return encode_prompt(model.config, ByteTokenizer(model.config), text)


def generate(model: GeneratorModel, spec: str, options: SamplingOptions, *, log: list | None = None,
             forced: np.ndarray | None = None) -> tuple[np.ndarray, GeneratorSession]:
    """Codes ``(G, frames)`` on the host and the finished session of one utterance of :data:`TEXT`."""
    backend = registry.create(spec)
    runner = backend.load_generator(model)
    session = runner.new_session(prompt_for(model), options, logits_log=log, forced_codes=forced)
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    return np.asarray(backend.to_host(runner.codes(session, 0, session.frame))), session
