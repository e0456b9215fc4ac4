"""Checkpoints written by the official code load in perfkit and compute what the official code computes.

The independent writer is the installed ``qwen-tts`` package itself: its ``Qwen3TTSTokenizerV2Decoder``
and ``Qwen3TTSForConditionalGeneration`` (talker + code predictor) are built at small geometries — a
preset's and one that matches no preset — given seeded random weights (their own initialisation gives
all-zero codebooks and silence), and saved under their official tensor names (the decoder's behind
``decoder.`` with ``safetensors``, the talker's with ``save_pretrained``). perfkit loads those
directories and must reproduce the official outputs: the waveform for the same codes file, and the
greedy codes and raw logits of a whole utterance.

Only the official source files are executed (``core/tokenizer_12hz`` and ``core/models``), as modules
of a private package, so the package ``__init__`` and its extras (torchaudio, librosa …) are not
needed; where librosa is missing, a stand-in serves the import of the speaker encoder's mel filter,
which none of these tests reaches. Every test skips, with the reason, when torch, transformers or
qwen-tts is not installed (as in CI).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.util
import json
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perfkit import registry
from perfkit.interface import decode_to_host
from perfkit.measure.parity import compare
from perfkit.model.generator_config import CodePredictorConfig, GeneratorConfig, generator_preset
from perfkit.model.generator_model import GeneratorModel
from perfkit.model.prompt import build_prompt
from perfkit.model.sampling import SamplingOptions
from perfkit.model.vocoder_config import VocoderConfig, vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.synthesis import run_frames

PRIVATE = "_perfkit_test_official_qwen_tts"
#: What the official modelling files import from transformers, imported before librosa may be stood in for.
TRANSFORMERS_MODULES = (
    "transformers.activations", "transformers.cache_utils", "transformers.generation",
    "transformers.integrations", "transformers.masking_utils", "transformers.modeling_flash_attention_utils",
    "transformers.modeling_layers", "transformers.modeling_outputs", "transformers.modeling_rope_utils",
    "transformers.modeling_utils", "transformers.processing_utils", "transformers.utils.hub",
)
FRAMES = 8  # greedy frames compared with the official generation


# --------------------------------------------------------------------------- importing the official files
def _missing_requirement() -> str:
    """Why the official code cannot run here, or ``""``."""
    for name, dist in (("torch", "torch"), ("transformers", "transformers"), ("qwen_tts", "qwen-tts")):
        if importlib.util.find_spec(name) is None:
            return (f"{dist} is not installed (pip install --no-deps qwen-tts==0.1.1 && "
                    "pip install transformers==4.57.3 accelerate)")
    return ""


def _package(name: str, path: Path | None = None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=path is not None)
    if path is not None:
        module.__path__ = [str(path)]
    sys.modules[name] = module
    return module


def _exec(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _stand_in_librosa() -> list[str]:
    """A ``librosa.filters.mel`` that raises, only where librosa is absent; the names to remove afterwards."""
    if importlib.util.find_spec("librosa") is not None:
        return []
    librosa, filters = _package("librosa", Path()), _package("librosa.filters")

    def mel(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("librosa stand-in: the speaker encoder is not part of these tests")

    filters.mel = mel
    librosa.filters = filters
    return ["librosa", "librosa.filters"]


@cache
def _load_official() -> dict[str, types.ModuleType]:
    """The four official modules, executed from the installed ``qwen_tts`` directory (once per process)."""
    for name in TRANSFORMERS_MODULES:
        importlib.import_module(name)
    spec = importlib.util.find_spec("qwen_tts")  # locates the package without running its __init__
    root = Path(next(iter(spec.submodule_search_locations)))
    _package(PRIVATE, root)
    _package(f"{PRIVATE}.core", root / "core")
    _package(f"{PRIVATE}.inference", root / "inference")
    _package(f"{PRIVATE}.inference.qwen3_tts_tokenizer").Qwen3TTSTokenizer = object  # unused by the talker
    stood_in = _stand_in_librosa()
    try:
        modules = {}
        for sub, files in (("tokenizer_12hz", ("configuration_qwen3_tts_tokenizer_v2",
                                               "modeling_qwen3_tts_tokenizer_v2")),
                           ("models", ("configuration_qwen3_tts", "modeling_qwen3_tts"))):
            _package(f"{PRIVATE}.core.{sub}", root / "core" / sub)
            for name in files:
                modules[name] = _exec(f"{PRIVATE}.core.{sub}.{name}", root / "core" / sub / f"{name}.py")
    finally:
        for name in stood_in:
            sys.modules.pop(name, None)
    return modules


@pytest.fixture(scope="module")
def official() -> dict[str, types.ModuleType]:
    reason = _missing_requirement()
    if reason:
        pytest.skip(f"official qwen-tts code not available: {reason}")
    try:
        return _load_official()
    except Exception as exc:  # noqa: BLE001 - an incompatible install is a skip with its reason
        pytest.skip(f"official qwen-tts code does not import here: {type(exc).__name__}: {exc}")


def _randomise(module: Any, seed: int, gains: dict[str, float]) -> None:
    """Seeded weights with healthy scales, in place: norms ``1 + N(0, 0.1)``, biases ``N(0, 0.02)``,
    matrices ``N(0, gain / fan_in)`` (``gain`` 1 unless a name fragment in ``gains`` says otherwise)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            x = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            gain = next((g for frag, g in gains.items() if frag in name), 1.0)
            if name.endswith(("norm.weight", "layernorm.weight")):
                p.copy_(1.0 + 0.1 * x)
            elif name.endswith("bias"):
                p.copy_(0.02 * x)
            elif p.ndim == 1:  # SnakeBeta alpha / beta (log scales), LayerScale, ConvNeXt gamma
                p.copy_(0.1 * x if name.endswith(("alpha", "beta")) else 0.1 + 0.02 * x)
            else:
                p.copy_(x * (gain / (p[0].numel() if p.ndim > 1 else 1)) ** 0.5)


# --------------------------------------------------------------------------- the vocoder
#: ``decoder_config`` geometries: the tiny preset, and one no preset has (other rates, 6 quantizers, MQA).
DECODER_GEOMETRIES = {
    "tiny": vocoder_preset("tiny"),
    "odd": VocoderConfig(codebook_size=48, semantic_codebook_size=48, codebook_dim=24, num_quantizers=6,
                         latent_dim=40, hidden_size=24, intermediate_size=48, head_dim=8, num_attention_heads=3,
                         num_key_value_heads=1, num_hidden_layers=2, sliding_window=5, rope_theta=5000.0,
                         upsample_rates=(3, 2, 5), upsampling_ratios=(3,), decoder_dim=48),
}


def _official_decoder(official: dict[str, types.ModuleType], cfg: VocoderConfig, seed: int) -> Any:
    """An official ``Qwen3TTSTokenizerV2Decoder`` of geometry ``cfg`` with seeded random weights."""
    import torch

    names = {f.name for f in dataclasses.fields(VocoderConfig)} - {"semantic_codebook_size", "sample_rate",
                                                                    "num_semantic_quantizers"}
    config = official["configuration_qwen3_tts_tokenizer_v2"].Qwen3TTSTokenizerV2DecoderConfig(
        **{k: v for k, v in cfg.to_dict().items() if k in names})
    decoder = official["modeling_qwen3_tts_tokenizer_v2"].Qwen3TTSTokenizerV2Decoder(config).eval()
    _randomise(decoder, seed, {f"decoder.{cfg.num_blocks + 2}.conv": 5e-4,  # the final conv: little clipping
                               "rvq_rest.output_proj": 1.0 / cfg.num_acoustic_quantizers})
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # codebook buffers: rows embedding_sum / usage ~ N(0, 1)
        for name, buf in decoder.named_buffers():
            if name.endswith("cluster_usage"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
        for name, buf in decoder.named_buffers():
            if name.endswith("embedding_sum"):
                usage = dict(decoder.named_buffers())[name.replace("embedding_sum", "cluster_usage")]
                buf.copy_(torch.randn(buf.shape, generator=gen) * usage[:, None])
    return decoder


def _write_decoder_dir(directory: Path, decoder: Any) -> Path:
    """The official tokenizer layout: ``decoder.*`` tensors (encoder ones beside them), ``decoder_config``."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    tensors = {f"decoder.{k}": v.contiguous() for k, v in decoder.state_dict().items()}
    tensors["encoder.encoder.layers.0.conv.weight"] = torch.zeros(4, 2, 3)
    save_file(tensors, str(directory / "model.safetensors"))
    config = {"model_type": "qwen3_tts_tokenizer_12hz", "encoder_config": {"hidden_size": 4},
              "decoder_config": decoder.config.to_dict()}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize("geometry", list(DECODER_GEOMETRIES))
def test_official_decoder_checkpoint_decodes_to_the_official_waveform(official, tmp_path, geometry):
    """perfkit on the official decoder's checkpoint and a codes file: the official waveform, >= 60 dB."""
    import torch

    cfg = DECODER_GEOMETRIES[geometry]
    decoder = _official_decoder(official, cfg, seed=5)
    model = VocoderModel.load(_write_decoder_dir(tmp_path / "tok", decoder))
    assert model.config == cfg
    frames = 3 * cfg.sliding_window  # well past the attention window
    codes = np.random.default_rng(7).integers(0, cfg.codebook_size, size=(cfg.num_quantizers, frames))
    np.save(tmp_path / "codes.npy", codes)
    with torch.no_grad():
        expected = decoder(torch.from_numpy(codes)[None]).numpy().reshape(-1)
    assert expected.shape == (frames * cfg.total_upsample,)
    rms = float(np.sqrt(np.mean(expected**2)))
    assert 0.01 < rms < 0.7 and np.mean(np.abs(expected) >= 1.0) < 0.05  # not silence, not all clipped
    for dtype, min_snr in (("float32", 60.0), ("float64", 60.0)):
        backend = registry.create(f"numpy:dtype={dtype}")
        wav = decode_to_host(backend, backend.load_vocoder(model), np.load(tmp_path / "codes.npy"))
        result = compare(wav, expected)
        assert not result.failure, (dtype, result)
        assert result.snr_db >= min_snr and result.max_abs_diff < 1e-3, (dtype, result)


# --------------------------------------------------------------------------- the talker + code predictor
#: Generator geometries: the tiny preset, and one no preset has (4 code groups, head_dim != hidden/heads,
#: an MHA code predictor with its own rope_theta, the projection between the widths).
GENERATOR_GEOMETRIES = {
    "tiny": generator_preset("tiny"),
    "odd": dataclasses.replace(
        generator_preset("tiny"), num_code_groups=4, hidden_size=32, num_attention_heads=2,
        num_key_value_heads=1, head_dim=24, rope_theta=20000.0, mrope_section=None,
        code_predictor_config=CodePredictorConfig(
            vocab_size=64, hidden_size=40, intermediate_size=80, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=4, head_dim=10, num_code_groups=4, max_position_embeddings=64,
            rope_theta=5000.0)),
}


def _official_tts(official: dict[str, types.ModuleType], cfg: GeneratorConfig, seed: int) -> Any:
    """An official ``Qwen3TTSForConditionalGeneration`` (no speaker encoder) of geometry ``cfg``, random weights."""
    talker = {**cfg.talker_dict(), "spk_id": {}, "spk_is_dialect": {}, "codec_language_id": {}}
    top = {k: v for k, v in cfg.to_dict().items() if k != "model_type"}
    config = official["configuration_qwen3_tts"].Qwen3TTSConfig(
        **{**top, "talker_config": talker, "tts_model_type": "custom_voice"})
    config._attn_implementation = "eager"
    config.talker_config._attn_implementation = "eager"
    config.talker_config.code_predictor_config._attn_implementation = "eager"
    model = official["modeling_qwen3_tts"].Qwen3TTSForConditionalGeneration(config).eval()
    _randomise(model, seed, {"codec_head": 9.0, "lm_head": 9.0, "o_proj": 0.5, "down_proj": 0.5})
    return model


@dataclasses.dataclass(frozen=True)
class OfficialRun:
    """An official model, its ``save_pretrained`` directory, one greedy utterance and its raw logits."""

    model: Any
    directory: Path
    config: GeneratorConfig
    role_ids: list[int]
    text_ids: list[int]
    codes: np.ndarray  # (G, frames)
    talker_logits: list[np.ndarray]  # frame f's group-0 logits (V,)
    predictor_logits: list[list[np.ndarray]]  # [g-1][f]: group g's logits (C,)


def _official_greedy(model: Any, cfg: GeneratorConfig, input_ids: list[int]) -> tuple[np.ndarray, list, list]:
    """The official ``generate`` (greedy, no penalty), with the raw logits captured from its heads."""
    import torch

    talker_logits: list[np.ndarray] = []
    predictor_logits: list[list[np.ndarray]] = [[] for _ in range(cfg.num_code_groups - 1)]

    def keep(into: list) -> Any:
        return lambda module, args, out: into.append(out[0, -1].detach().double().numpy())

    talker = model.talker
    hooks = [talker.codec_head.register_forward_hook(keep(talker_logits))]
    hooks += [head.register_forward_hook(keep(predictor_logits[g]))
              for g, head in enumerate(talker.code_predictor.lm_head)]
    try:
        with torch.no_grad():
            codes, _ = model.generate(input_ids=[torch.tensor([input_ids])], languages=["auto"], speakers=[None],
                                      do_sample=False, subtalker_dosample=False, repetition_penalty=1.0,
                                      max_new_tokens=FRAMES + 1)  # the last token's groups are never made
    finally:
        for hook in hooks:
            hook.remove()
    return codes[0].numpy().T.astype(np.int64), talker_logits, predictor_logits


@pytest.fixture(scope="module", params=list(GENERATOR_GEOMETRIES))
def official_run(request, official, tmp_path_factory) -> OfficialRun:
    cfg = GENERATOR_GEOMETRIES[request.param]
    model = _official_tts(official, cfg, seed=3)
    directory = tmp_path_factory.mktemp(f"official-{request.param}")
    model.save_pretrained(directory)  # the official writer: config.json + model.safetensors (talker.*)
    role = [cfg.im_start_token_id, *b"a\n"]  # three role ids, as the Qwen tokenizer gives
    text = list(b"Official parity.")
    end = [cfg.im_end_token_id, *b"\n", cfg.im_start_token_id, *b"a\n"]  # five closing ids
    codes, talker_logits, predictor_logits = _official_greedy(model, cfg, role + text + end)
    return OfficialRun(model, directory, cfg, role, text, codes, talker_logits, predictor_logits)


def _perfkit_greedy(model: GeneratorModel, run: OfficialRun, dtype: str) -> tuple[np.ndarray, list, str]:
    """perfkit's greedy utterance on the same prompt ids: codes ``(G, frames)``, the logits log, the stop."""
    backend = registry.create(f"numpy:dtype={dtype}")
    runner = backend.load_generator(model)
    log: list = []
    prompt = build_prompt(model.config, run.text_ids, run.role_ids)
    session = runner.new_session(prompt, SamplingOptions(greedy=True, repetition_penalty=1.0,
                                                         max_frames=FRAMES), logits_log=log)
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    return runner.codes(session, 0, session.frame), log, session.stop


def test_official_checkpoint_loads_under_its_names(official_run):
    """``save_pretrained``'s directory: perfkit reads the same geometry and exactly the official tensors."""
    from safetensors.numpy import load_file

    model = GeneratorModel.load(official_run.directory)
    assert model.config == official_run.config
    stored = load_file(str(official_run.directory / "model.safetensors"))
    assert {k[len("talker."):] for k in stored if k.startswith("talker.")} == set(model.weights)
    for name, w in model.weights.items():
        np.testing.assert_array_equal(w, stored[f"talker.{name}"], err_msg=name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_greedy_codes_equal_the_official_generation(official_run, dtype):
    """The official prompt, talker step and code predictor: the same greedy codes, frame for frame."""
    codes, _, _ = _perfkit_greedy(GeneratorModel.load(official_run.directory), official_run, dtype)
    assert official_run.codes.shape[1] >= 2
    assert codes.shape == official_run.codes.shape
    np.testing.assert_array_equal(codes, official_run.codes)
    assert len({codes[:, f].tobytes() for f in range(codes.shape[1])}) > 1  # the codes vary


def test_raw_logits_equal_the_official_heads(official_run):
    """Every logits row perfkit samples from equals the official head's output for that frame and group."""
    _, log, stop = _perfkit_greedy(GeneratorModel.load(official_run.directory), official_run, "float64")
    frames = official_run.codes.shape[1]
    assert len(log) == frames * official_run.config.num_code_groups + (stop == "eos")  # + the EOS frame's row
    for frame, group, logits in log:
        want = (official_run.talker_logits[frame] if group == 0
                else official_run.predictor_logits[group - 1][frame])
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(logits, want, rtol=0, atol=1e-4 * scale, err_msg=f"frame {frame} group {group}")


def test_perfkit_synth_on_an_official_model_directory(official, official_run, cli, tmp_path):
    """``perfkit synth --model DIR``: the talker as ``save_pretrained`` wrote it, the decoder in
    ``speech_tokenizer/`` as the official tokenizer stores it; the audio is the official decoder's for the
    codes perfkit saved."""
    import shutil

    import torch

    directory = tmp_path / "model"
    shutil.copytree(official_run.directory, directory)
    groups = official_run.config.num_code_groups
    decoder = _official_decoder(official, vocoder_preset("tiny").replace(num_quantizers=groups), seed=9)
    _write_decoder_dir(directory / "speech_tokenizer", decoder)
    code, out, err = cli("synth", "--model", directory, "--text", "From the official writer.", "--greedy",
                         "--frames", "6", "--out", tmp_path / "a.npy", "--codes-out", tmp_path / "c.npy")
    assert code == 0, err
    codes = np.load(tmp_path / "c.npy")
    assert codes.shape == (groups, 6) and "6 frames" in out
    with torch.no_grad():
        expected = decoder(torch.from_numpy(codes)[None]).numpy().reshape(-1)
    result = compare(np.load(tmp_path / "a.npy"), expected)
    assert not result.failure and result.snr_db >= 60, result
