"""The peer backend ``qwen-tts``: unavailable without the package (always tested), the way it imports the
official files (with a stand-in package, always tested), and parity with the reference (only where the
official package and transformers are importable; skipped with the reason otherwise)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import numpy as np
import pytest
from perfkit.backends.qwen_tts import official

from perfkit import registry
from perfkit.errors import BackendUnavailable, CheckpointError
from perfkit.interface import VocoderStream, decode_to_host
from perfkit.measure.parity import compare
from perfkit.model.vocoder_model import VocoderModel

OFFICIAL_NAMES = (f"{official.OFFICIAL_PACKAGE}.{official.MODELING_MODULE}",
                  f"{official.OFFICIAL_PACKAGE}.{official.CONFIG_MODULE}")


@pytest.fixture
def fresh_import(monkeypatch):
    """Forget what was imported or cached about the official code, for this test only."""
    saved = {k: v for k, v in sys.modules.items() if k.startswith(official.PRIVATE_PACKAGE)}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    for name in OFFICIAL_NAMES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    official._load_once.cache_clear()
    yield monkeypatch
    official._load_once.cache_clear()
    for name in [k for k in sys.modules if k.startswith(official.PRIVATE_PACKAGE)]:
        del sys.modules[name]
    sys.modules.update(saved)


def _find_spec_without(*missing: str):
    def find(name: str):
        return None if name in missing else importlib.util.find_spec(name)

    return find


# --------------------------------------------------------------------------- unavailable (always)
def test_unavailable_without_the_package(fresh_import):
    fresh_import.setattr(official, "_find_spec", _find_spec_without("qwen_tts"))
    assert official.unavailable_reason() == official.NOT_INSTALLED
    assert "pip install --no-deps qwen-tts==0.1.1 && pip install transformers==4.57.3" in official.NOT_INSTALLED
    infos = registry.describe_variants("qwen-tts")
    assert len(infos) == 4 and not any(i.available for i in infos)
    assert {i.reason for i in infos} == {official.NOT_INSTALLED}
    with pytest.raises(BackendUnavailable, match="qwen-tts package is not installed"):
        registry.create("qwen-tts")
    # the class itself loads without torch, transformers or qwen_tts: it is listed, not broken
    entry = {e.name: e for e in registry.entries()}["qwen-tts"]
    assert entry.loadable, entry.reason


def _stand_in_package(root) -> None:
    """A fake ``qwen_tts`` whose ``__init__`` fails like the real one without its extras."""
    pkg = root / "qwen_tts"
    (pkg / "core" / "tokenizer_12hz").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('No module named torchaudio')\n")
    (pkg / "core" / "__init__.py").write_text("raise ImportError('No module named librosa')\n")
    (pkg / "core" / "tokenizer_12hz" / f"{official.CONFIG_MODULE}.py").write_text(textwrap.dedent("""
        class Qwen3TTSTokenizerV2DecoderConfig:
            def __init__(self, **kwargs):
                self.__dict__.update(kwargs)
    """))
    (pkg / "core" / "tokenizer_12hz" / f"{official.MODELING_MODULE}.py").write_text(textwrap.dedent("""
        from .configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2DecoderConfig

        class Qwen3TTSTokenizerV2Decoder:
            config_class = Qwen3TTSTokenizerV2DecoderConfig
    """))


def test_official_files_load_without_the_package_init(fresh_import, tmp_path):
    _stand_in_package(tmp_path)
    fresh_import.syspath_prepend(str(tmp_path))
    fresh_import.delitem(sys.modules, "qwen_tts", raising=False)
    fresh_import.setattr(official, "_find_spec", lambda name: object() if name in official.REQUIRED
                         else importlib.util.find_spec(name))
    found = official.load_official()
    assert found.decoder_cls.config_class is found.config_cls  # the relative import resolved
    assert found.decoder_cls.__module__ == f"{official.PRIVATE_PACKAGE}.{official.MODELING_MODULE}"
    assert found.source == str(tmp_path / "qwen_tts" / "core" / "tokenizer_12hz")
    assert "qwen_tts" not in sys.modules  # the package __init__ (heavy extras) never ran
    assert official.load_official() is found  # cached


def test_missing_transformers_is_named(fresh_import, tmp_path):
    _stand_in_package(tmp_path)
    fresh_import.syspath_prepend(str(tmp_path))
    fresh_import.setattr(official, "_find_spec", _find_spec_without("transformers"))
    reason = official.unavailable_reason()
    assert "needs transformers" in reason and official.INSTALL_HINT in reason


def test_incompatible_official_code_is_a_reason_not_a_crash(fresh_import, tmp_path):
    _stand_in_package(tmp_path)
    modeling = tmp_path / "qwen_tts" / "core" / "tokenizer_12hz" / f"{official.MODELING_MODULE}.py"
    modeling.write_text("from transformers import NoSuchThing\n")
    fresh_import.syspath_prepend(str(tmp_path))
    fresh_import.setattr(official, "_find_spec", lambda name: object() if name in official.REQUIRED
                         else importlib.util.find_spec(name))
    reason = official.unavailable_reason()
    assert reason.startswith("cannot import the official decoder") and official.INSTALL_HINT in reason
    assert not any(k.startswith(official.PRIVATE_PACKAGE) for k in sys.modules)


# --------------------------------------------------------------------------- parity (needs qwen-tts)
@pytest.fixture(scope="module")
def peer():
    reason = official.unavailable_reason()
    if reason:
        pytest.skip(f"official decoder not importable: {reason}")
    return registry.create("qwen-tts")


def test_parity_with_the_float64_reference(peer, tiny_vocoder, tiny_codes, reference_backend):
    runner = peer.load_vocoder(tiny_vocoder)
    ref_runner = reference_backend.load_vocoder(tiny_vocoder)
    ref = dict(ref_runner.trace(ref_runner.upload_codes(tiny_codes)))
    for stage, x in runner.trace(runner.upload_codes(tiny_codes)):
        got, want = peer.to_host(x), reference_backend.to_host(ref[stage])
        assert got.shape == want.shape, stage
        assert compare(got, want).snr_db > 90, stage
    wav = decode_to_host(peer, runner, tiny_codes)
    result = compare(wav, reference_backend.to_host(ref["final"]))
    assert wav.shape == (tiny_codes.shape[1] * 1920,) and wav.dtype == np.float32
    assert not result.failure and result.snr_db > 100 and result.max_abs_diff < 1e-4


def test_bfloat16_runs(tiny_vocoder, tiny_codes, reference_backend):
    if official.unavailable_reason():
        pytest.skip(official.unavailable_reason())
    backend = registry.create("qwen-tts:dtype=bfloat16")
    wav = decode_to_host(backend, backend.load_vocoder(tiny_vocoder), tiny_codes)
    ref = decode_to_host(reference_backend, reference_backend.load_vocoder(tiny_vocoder), tiny_codes)
    assert compare(wav, ref).snr_db > 20


def test_second_chunk_is_refused(peer, tiny_vocoder, tiny_codes):
    stream = VocoderStream(peer, peer.load_vocoder(tiny_vocoder))
    assert stream.push(tiny_codes[:, :3]).shape == (3 * 1920,)
    with pytest.raises(BackendUnavailable, match="cannot stream"):
        stream.push(tiny_codes[:, 3:6])


def test_weights_are_checked_strictly(peer, tiny_vocoder):
    weights = dict(tiny_vocoder.weights)
    dropped = dict(weights)
    dropped.pop("decoder.1.block.0.alpha")
    with pytest.raises(CheckpointError, match="decoder.1.block.0.alpha"):
        peer.load_vocoder(VocoderModel(tiny_vocoder.config, dropped))
    extra = {**weights, "decoder.99.weight": np.zeros(3, np.float32)}
    with pytest.raises(CheckpointError, match="decoder.99.weight"):
        peer.load_vocoder(VocoderModel(tiny_vocoder.config, extra))


def test_geometries_the_official_code_cannot_express(peer, tiny_vocoder):
    cfg = tiny_vocoder.config.replace(semantic_codebook_size=32)
    with pytest.raises(BackendUnavailable, match="semantic codebook"):
        peer.load_vocoder(VocoderModel.synthetic(cfg))
    cfg = tiny_vocoder.config.replace(num_semantic_quantizers=2)
    with pytest.raises(BackendUnavailable, match="one semantic quantizer"):
        peer.load_vocoder(VocoderModel.synthetic(cfg))
