"""``perfkit vocode`` and ``perfkit backends``: outputs, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from perfkit.model.codes import synthetic_codes


def test_vocode_wav_from_preset(cli, tmp_path):
    out = tmp_path / "a.wav"
    code, stdout, _ = cli("vocode", "--preset", "tiny", "--frames", "3", "--seed", "1", "--out", out)
    assert code == 0
    data, rate = soundfile.read(out, dtype="float32")
    info = soundfile.info(out)
    assert rate == 24_000 and info.channels == 1 and info.subtype == "FLOAT"
    assert data.shape == (3 * 1920,)
    assert "5760 samples" in stdout


def test_vocode_npy_from_model_dir_and_codes(cli, tmp_path, tiny_vocoder):
    tiny_vocoder.save(tmp_path / "m")
    codes = synthetic_codes(tiny_vocoder.config, 4, seed=2)
    np.save(tmp_path / "c.npy", codes.astype(np.int32))
    code, _, _ = cli("vocode", "--model", tmp_path / "m", "--codes", tmp_path / "c.npy", "--out", tmp_path / "o.npy")
    assert code == 0
    wav = np.load(tmp_path / "o.npy")
    assert wav.dtype == np.float32 and wav.shape == (4 * 1920,)
    code, _, _ = cli("vocode", "--preset", "tiny", "--codes", tmp_path / "c.npy", "--out", tmp_path / "p.npy")
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), wav)  # same seed-0 weights


def _codes_file(tmp_path, array, name="c.npy"):
    np.save(tmp_path / name, array)
    return tmp_path / name


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, m: ["--model", m, "--codes", _codes_file(t, np.full((16, 2), 64))], "out of range [0, 64)"),
        (lambda t, m: ["--model", m, "--codes", _codes_file(t, np.full((16, 2), -1))], "out of range"),
        (lambda t, m: ["--model", m, "--codes", _codes_file(t, np.zeros((8, 2), np.int64))], "8 codebooks"),
        (lambda t, m: ["--model", m, "--codes", _codes_file(t, np.zeros((16, 2), np.float32))], "integers"),
        (lambda t, m: ["--model", m, "--codes", _codes_file(t, np.zeros(16, np.int64))], "shape"),
        (lambda t, m: ["--model", m, "--codes", t / "missing.npy"], "codes file not found"),
        (lambda t, m: ["--model", t / "nodir", "--codes", _codes_file(t, np.zeros((16, 2), np.int64))], "not found"),
        (lambda t, m: ["--preset", "huge", "--frames", "2"], "unknown vocoder preset 'huge'"),
        (lambda t, m: ["--preset", "tiny", "--model", m, "--frames", "2"], "exactly one of"),
        (lambda t, m: ["--preset", "tiny"], "give --codes"),
        (lambda t, m: ["--preset", "tiny", "--frames", "0"], "frames must be positive"),
        (lambda t, m: ["--backend", "nosuch", "--preset", "tiny", "--frames", "2"], "unknown backend 'nosuch'"),
        (lambda t, m: ["--backend", "numpy:dtype=int8", "--preset", "tiny", "--frames", "2"], "dtype='int8'"),
        (lambda t, m: ["--backend", "numpy:color=red", "--preset", "tiny", "--frames", "2"], "no option 'color'"),
    ],
)
def test_bad_input_is_one_line_error(cli, tmp_path, tiny_vocoder, make_args, message):
    model = tiny_vocoder.save(tmp_path / "m")
    code, _, err = cli("vocode", *make_args(tmp_path, model), "--out", tmp_path / "o.wav")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfkit: error:"), err
    assert message in lines[0]
    assert not (tmp_path / "o.wav").exists()


def test_malformed_checkpoint_is_one_line_error(cli, tmp_path, tiny_vocoder):
    d = tiny_vocoder.save(tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"\x00" * 20)
    np.save(tmp_path / "c.npy", np.zeros((16, 2), np.int64))
    code, _, err = cli("vocode", "--model", d, "--codes", tmp_path / "c.npy", "--out", tmp_path / "o.wav")
    assert code == 2
    assert err.count("\n") == 1 and "model.safetensors" in err and "Traceback" not in err


def test_bad_output_suffix_fails_before_work(cli, tmp_path):
    code, _, err = cli("vocode", "--preset", "tiny", "--frames", "2", "--out", tmp_path / "o.mp3")
    assert code == 2 and ".wav or .npy" in err


def test_console_script_and_debug_traceback(tmp_path):
    """The installed entry point: one line by default, the traceback with --debug."""
    args = ["vocode", "--preset", "nope", "--frames", "1", "--out", str(tmp_path / "x.wav")]
    plain = subprocess.run([sys.executable, "-m", "perfkit.cli", *args], capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-m", "perfkit.cli", "--debug", *args], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_backends_lists_variants_and_reasons(cli):
    code, out, _ = cli("backends")
    assert code == 0
    assert "numpy" in out and "dtype=float64" in out


def test_codes_out_and_save_model_make_the_inputs_of_model_and_codes(cli, tmp_path):
    """The README's third command needs a DIR and a codes file: ``--save-model`` and ``--codes-out`` write them,
    and decoding them again gives the same audio."""
    code, out, err = cli("vocode", "--preset", "tiny", "--frames", "5", "--seed", "2", "--out", tmp_path / "a.npy",
                         "--codes-out", tmp_path / "codes.npy", "--save-model", tmp_path / "DIR")
    assert code == 0, err
    codes = np.load(tmp_path / "codes.npy")
    assert codes.dtype == np.int64 and codes.shape == (16, 5)
    assert "codes 16 x 5 int64" in out and "model directory (synthetic(seed=2))" in out
    code, _, err = cli("vocode", "--backend", "numpy:dtype=float64", "--model", tmp_path / "DIR",
                       "--codes", tmp_path / "codes.npy", "--out", tmp_path / "b.npy")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), np.load(tmp_path / "a.npy"), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--codes-out", "codes.txt"], "codes output codes.txt: use a .npy file name"),
        (["--codes-out", "nodir/c.npy"], "directory nodir does not exist"),
        (["--save-model", "FILE"], "--save-model FILE: exists and is not a directory"),
    ],
)
def test_bad_extra_outputs_fail_before_work(cli, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    code, _, err = cli("vocode", "--preset", "tiny", "--frames", "2", "--out", "o.wav", *extra)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()
