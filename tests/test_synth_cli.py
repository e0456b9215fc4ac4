"""``perfkit synth``: presets and model directories, codes the vocoder reads, streaming, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from perfkit.model.tts_model import SPEECH_TOKENIZER_DIR, TTSModel


def test_synth_writes_audio_and_codes(cli, tmp_path):
    code, out, err = cli("synth", "--preset", "tiny", "--text", "Hello there.", "--out", tmp_path / "a.wav",
                         "--codes-out", tmp_path / "a.npy", "--seed", "3")
    assert code == 0, err
    codes = np.load(tmp_path / "a.npy")
    assert codes.dtype == np.int64 and codes.shape == (16, len("Hello there.") + 1)
    assert codes.min() >= 0 and codes.max() < 64
    wav, rate = soundfile.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 24_000 and wav.shape == (codes.shape[1] * 1920,)
    assert float(np.sqrt(np.mean(wav**2))) > 0.01
    assert "13 frames (stopped by EOS)" in out and "prefill" in out and "RTF" in out


def test_codes_file_decodes_with_vocode_to_the_same_audio(cli, tmp_path):
    assert cli("synth", "--preset", "tiny", "--text", "Same codes.", "--greedy", "--out", tmp_path / "s.npy",
               "--codes-out", tmp_path / "c.npy")[0] == 0
    code, _, err = cli("vocode", "--preset", "tiny", "--codes", tmp_path / "c.npy",
                       "--out", tmp_path / "v.npy")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.load(tmp_path / "s.npy"))


def test_stream_reports_first_chunk_latency_and_matches_offline(cli, tmp_path):
    args = ("--preset", "tiny", "--text", "Streamed.", "--seed", "5")
    code, out, err = cli("synth", *args, "--stream", "--chunk-frames", "3", "--out", tmp_path / "s.npy")
    assert code == 0, err
    assert "first-chunk latency" in out and "4 chunks of 3 frames" in out
    assert cli("synth", *args, "--out", tmp_path / "o.npy")[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), np.load(tmp_path / "o.npy"), rtol=0, atol=1e-5)


def test_fixed_frames_and_sampling_options(cli, tmp_path):
    code, out, err = cli("synth", "--preset", "tiny", "--text", "Hi", "--frames", "20", "--temperature",
                         "1.2", "--top-k", "10", "--top-p", "0.9", "--repetition-penalty", "1.1",
                         "--out", tmp_path / "f.wav", "--codes-out", tmp_path / "f.npy")
    assert code == 0, err
    assert np.load(tmp_path / "f.npy").shape == (16, 20)
    assert "stopped by the fixed frame count" in out and "sample(T=1.2,k=10,p=0.9),rp=1.1" in out
    code, out, _ = cli("synth", "--preset", "tiny", "--text", "A longer sentence.", "--max-frames", "4",
                       "--out", tmp_path / "m.wav")
    assert code == 0 and "4 frames (stopped by the frame limit)" in out


def test_model_directory_with_and_without_speech_tokenizer(cli, tmp_path):
    TTSModel.synthetic("tiny", seed=1).save(tmp_path / "m")
    args = ("--text", "From disk.", "--greedy", "--frames", "6")
    assert cli("synth", "--model", tmp_path / "m", *args, "--out", tmp_path / "d.npy")[0] == 0
    assert cli("synth", "--preset", "tiny", "--weights-seed", "1", *args, "--out", tmp_path / "p.npy")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.load(tmp_path / "p.npy"))
    import shutil

    shutil.rmtree(tmp_path / "m" / SPEECH_TOKENIZER_DIR)  # the vocoder then comes from the matching preset
    code, out, err = cli("synth", "--model", tmp_path / "m", "--weights-seed", "1", *args,
                         "--out", tmp_path / "e.npy")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), np.load(tmp_path / "p.npy"))


@pytest.mark.parametrize(
    "args,match",
    [
        (("--preset", "tiny", "--text", ""), "text is empty"),
        (("--preset", "tiny", "--text", "   "), "text is empty"),
        (("--preset", "tiny", "--text", "x" * 5000), "text is too long: 5000 tokens"),
        (("--preset", "tiny", "--text", "x\udcff"), "not valid UTF-8"),
        (("--preset", "medium", "--text", "x"), "unknown generator preset 'medium'"),
        (("--text", "x"), "give exactly one of --preset"),
        (("--preset", "tiny", "--text", "x", "--frames", "9999"), "9999 frames do not fit the context"),
        (("--preset", "tiny", "--text", "x", "--top-p", "0"), "top-p must be in"),
        (("--preset", "tiny", "--text", "x", "--temperature", "-1"), "temperature must be a positive number"),
        (("--preset", "tiny", "--text", "x", "--stream", "--chunk-frames", "0"),
         "--chunk-frames must be positive"),
        (("--preset", "tiny", "--text", "x", "--codes-out", "codes.txt"), "use a .npy file name"),
        (("--model", "/nonexistent/dir", "--text", "x"), "model directory not found"),
    ],
)
def test_clear_errors(cli, tmp_path, args, match):
    code, out, err = cli("synth", *args, "--out", tmp_path / "x.wav")
    assert code == 2
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()


def test_malformed_checkpoint_is_one_line(cli, tmp_path):
    TTSModel.synthetic("tiny").generator.save(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 16)
    code, _, err = cli("synth", "--model", tmp_path, "--text", "x", "--out", tmp_path / "x.wav")
    assert code == 2 and "not a readable safetensors file" in err and err.count("\n") == 1
