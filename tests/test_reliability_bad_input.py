"""Every kind of bad input, through the command line: one line on stderr naming the problem, a non-zero
exit, no traceback, no output file (issue 10, item 1). ``--debug`` shows the traceback."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from perfkit.model.vocoder_model import VocoderModel
from perfkit.store.schema import SCHEMA_VERSION

Make = Callable[[Path, VocoderModel], list[str]]


def codes_file(tmp: Path, array: np.ndarray) -> str:
    np.save(tmp / "codes.npy", array)
    return str(tmp / "codes.npy")


def model_dir(tmp: Path, model: VocoderModel, edit: Callable[[dict[str, np.ndarray]], None] | None = None,
              raw: bytes | None = None) -> str:
    """``model`` saved under ``tmp/m``, its tensors edited by ``edit`` or its weights file replaced."""
    d = model.save(tmp / "m")
    weights = d / "model.safetensors"
    if edit is not None:
        tensors = load_file(str(weights))
        edit(tensors)
        save_file(tensors, str(weights))
    if raw is not None:
        weights.write_bytes(raw(weights.read_bytes()) if callable(raw) else raw)
    return str(d)


def _nan(tensors: dict[str, np.ndarray]) -> None:
    name = next(k for k in tensors if k.endswith("bias"))
    tensors[name] = np.full_like(tensors[name], np.nan)


def _misshape(tensors: dict[str, np.ndarray]) -> None:
    name = next(k for k in tensors if k.endswith("weight") and tensors[k].ndim == 3)
    tensors[name] = np.zeros((*tensors[name].shape[:-1], tensors[name].shape[-1] + 2), tensors[name].dtype)


class _Payload:
    """Unpickling this would create ``marker``: proof that nothing from a model directory is executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def vocode(*args: str) -> Make:
    return lambda t, m: ["vocode", *args]


def with_codes(array: np.ndarray) -> Make:
    return lambda t, m: ["vocode", "--model", model_dir(t, m), "--codes", codes_file(t, array)]


def with_model(**damage) -> Make:
    return lambda t, m: ["vocode", "--model", model_dir(t, m, **damage), "--codes",
                         codes_file(t, np.zeros((m.config.num_quantizers, 2), np.int64))]


def synth(text: str, *more: str) -> Make:
    return lambda t, m: ["synth", "--preset", "tiny", "--text", text, *more]


def run(*args: str) -> Make:
    return lambda t, m: ["run", "--results", str(t / "results"), *args]


def results_file(content: str | bytes) -> Make:
    def make(t: Path, m: VocoderModel) -> list[str]:
        p = t / "r.json"
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["results", str(p)]

    return make


GOOD_HEADER = {"format": "perfkit.result", "schema_version": SCHEMA_VERSION}

BAD_INPUT = {
    "codes-out-of-range": (with_codes(np.full((16, 2), 64)), "out of range"),
    "codes-negative": (with_codes(np.full((16, 2), -1)), "out of range"),
    "wrong-codebook-count": (with_codes(np.zeros((8, 2), np.int64)), "8 codebooks"),
    "text-empty": (synth(""), "text is empty"),
    "text-not-utf8": (synth("x\udcff"), "not valid UTF-8"),
    "text-over-long": (synth("x" * 5000), "text is too long"),
    "tensor-non-finite": (with_model(edit=_nan), "NaN or Inf"),
    "tensor-mis-shaped": (with_model(edit=_misshape), "has shape"),
    "checkpoint-truncated": (with_model(raw=lambda b: b[:1000]), "model.safetensors"),
    "checkpoint-not-safetensors": (with_model(raw=b"PK\x03\x04 a zip file" * 8), "model.safetensors"),
    "unknown-backend": (vocode("--backend", "nosuch", "--preset", "tiny", "--frames", "2"), "unknown backend"),
    "unknown-preset": (run("--backend", "numpy", "--preset", "huge"), "unknown vocoder preset 'huge'"),
    "unknown-suite": (run("--backend", "numpy", "--suite", "nosuch"), "unknown suite 'nosuch'"),
    "unknown-option": (run("--backend", "numpy:colour=red"), "no option 'colour'"),
    "unknown-option-value": (vocode("--backend", "numpy:dtype=int8", "--preset", "tiny", "--frames", "2"),
                             "dtype='int8'"),
    "contradictory-options": (lambda t, m: ["vocode", "--preset", "tiny", "--model", model_dir(t, m),
                                            "--frames", "2"], "exactly one of"),
    "contradictory-sample-bounds": (run("--backend", "numpy", "--min-samples", "9", "--max-samples", "3"),
                                    "max_samples"),
    "no-worker-processes": (run("--backend", "numpy", "--workers", "0"), "workers=0"),
    "results-corrupt": (results_file('{"format": "perfkit.result", "schema_version": 2, "cases": [{'),
                        "not valid JSON"),
    "results-empty": (results_file(""), "empty file"),
    "results-binary": (results_file(b"\xff\xfe\x00\x01"), "not UTF-8"),
    "results-newer-schema": (results_file(json.dumps({**GOOD_HEADER, "schema_version": SCHEMA_VERSION + 1})),
                             "newer than this perfkit reads"),
    "results-foreign": (results_file(json.dumps({"benchmarks": [], "machine_info": {}})),
                        "not a perfkit result file"),
    "results-malformed": (results_file(json.dumps({**GOOD_HEADER, "run_id": 3})), "malformed result"),
}


@pytest.mark.parametrize(("make", "message"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_a_non_zero_exit(cli, tmp_path, tiny_vocoder, make, message):
    out_file = tmp_path / "out.wav"
    args = make(tmp_path, tiny_vocoder)
    if args[0] in ("vocode", "synth"):
        args += ["--out", str(out_file)]
    code, _, err = cli(*args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfkit: error:"), err
    assert message in lines[0] and "Traceback" not in err
    assert not out_file.exists()
    assert not list((tmp_path / "results").glob("*.json"))  # no result file from a refused run


def test_a_pickle_in_the_model_directory_is_never_executed(cli, tmp_path, tiny_vocoder):
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Payload(marker))
    args = with_model(raw=payload)(tmp_path, tiny_vocoder)
    code, _, err = cli(*args, "--out", str(tmp_path / "out.wav"))
    assert code == 2 and "model.safetensors" in err and err.count("\n") == 1
    assert not marker.exists()


def test_debug_shows_the_traceback(cli, tmp_path):
    with pytest.raises(Exception, match="unknown backend"):
        cli("--debug", "vocode", "--backend", "nosuch", "--preset", "tiny", "--frames", "2",
            "--out", str(tmp_path / "o.wav"))
