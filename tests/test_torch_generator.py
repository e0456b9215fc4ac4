"""The torch generator (CPU) against the NumPy reference: identical codes (greedy and sampled), EOS, KV caches,
teacher forcing, bfloat16 logits, and text-to-speech end to end. The CUDA variants run the same tests when a
device is present (marked ``cuda``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generator_support import GREEDY_FRAMES, generate, prompt_for, synthetic_models  # noqa: E402

from perfkit import registry  # noqa: E402
from perfkit.model.generator_model import GeneratorModel  # noqa: E402
from perfkit.model.sampling import SamplingOptions  # noqa: E402
from perfkit.synthesis import run_frames  # noqa: E402

SPEC = "torch:dtype=float32"
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def models() -> dict[str, GeneratorModel]:
    return synthetic_models()


CUDA = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


@pytest.mark.parametrize("preset,spec", [
    ("tiny", SPEC), ("small", SPEC),
    pytest.param("tiny", "torch:device=cuda,dtype=float32", marks=[pytest.mark.cuda, CUDA]),
    pytest.param("tiny", "torch:device=cuda,dtype=float32,graphs=on", marks=[pytest.mark.cuda, CUDA]),
])
def test_greedy_codes_equal_the_reference(models, preset, spec):
    opts = SamplingOptions(greedy=True, fixed_frames=GREEDY_FRAMES[preset])
    expected, _ = generate(models[preset], "numpy:dtype=float64", opts)
    got, session = generate(models[preset], spec, opts)
    assert session.stop == "fixed_frames"
    assert got.shape == expected.shape == (16, GREEDY_FRAMES[preset])
    np.testing.assert_array_equal(got, expected)


def test_kv_caches_are_preallocated_once(models):
    """Every buffer the frame loop touches exists after ``allocate`` and is the same object at the end."""
    backend = registry.create(SPEC)
    runner = backend.load_generator(models["tiny"])
    session = runner.new_session(prompt_for(models["tiny"]), SamplingOptions(fixed_frames=9))
    state = session.state
    names = ("codes", "uniforms", "seen", "hidden", "stream", "logits0", "frame")
    before = {n: state[n] for n in names}
    caches = {n: (state[n].k, state[n].v) for n in ("talker_cache", "cp_cache")}
    assert state["talker_cache"].capacity == session.prompt.prefill_length + 9 - 1
    assert state["cp_cache"].capacity == models["tiny"].config.num_code_groups
    for _ in run_frames(backend, runner, session, runner.prefill(session)):
        pass
    assert all(state[n] is t for n, t in before.items())
    assert all((state[n].k, state[n].v) == kv for n, kv in caches.items())
    assert session.frame == 9 and state["codes"].shape == (models["tiny"].config.num_code_groups, 9)


@pytest.mark.parametrize("frames", [8])
def test_bfloat16_logits_stay_close(models, frames):
    """bfloat16 under teacher forcing: finite logits that track the float64 reference (SNR >= 20 dB)."""
    forced = generate(models["tiny"], "numpy:dtype=float64", SamplingOptions(greedy=True, fixed_frames=frames))[0]
    ref_log: list = []
    log: list = []
    generate(models["tiny"], "numpy:dtype=float64", SamplingOptions(seed=0), log=ref_log, forced=forced)
    generate(models["tiny"], "torch:dtype=bfloat16", SamplingOptions(seed=0), log=log, forced=forced)
    assert len(log) == len(ref_log) > 0
    for (frame, group, logits), (_, _, ref) in zip(log, ref_log, strict=True):
        got = np.asarray(logits.float().cpu() if hasattr(logits, "cpu") else logits, dtype=np.float64)
        assert np.all(np.isfinite(got)), (frame, group)
        snr = 10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2))
        assert snr >= 20.0, (frame, group, snr)


def test_host_text_embedding_is_held_in_the_compute_dtype(models):
    """bfloat16 holds the text table at half the float32 bytes; its rows are what converting the float32 rows
    gives, so the projected text embedding is unchanged."""
    model = models["tiny"]
    table = model.weights["model.text_embedding.weight"]
    bf16 = registry.create("torch:dtype=bfloat16").load_generator(model)
    assert bf16.text_embedding.dtype == torch.bfloat16 and bf16.text_embedding.device.type == "cpu"
    assert bf16.text_embedding.nbytes * 2 == table.nbytes
    ids = np.array([3, 0, 7, 3])
    expected = torch.from_numpy(table[ids]).to(torch.bfloat16)
    with torch.inference_mode():
        got = bf16.text_embedding.index_select(0, torch.from_numpy(ids))
        assert torch.equal(got, expected)
        f32 = registry.create(SPEC).load_generator(model)
        assert torch.equal(f32.text_embedding, torch.from_numpy(table))
        assert bf16.embed_text(ids).shape == f32.embed_text(ids).shape == (4, model.config.hidden_size)


def test_frame_loop_linear_layouts_on_cpu(models):
    """float32 on a CPU: every linear layer is oneDNN-packed, the per-frame ones for one row, the prefill-only
    ones for any; bfloat16: the same where oneDNN runs bfloat16 natively (AVX-512, AMX), else every linear
    keeps torch's ``(out, in)`` for ``F.linear``."""
    from perfkit.backends.torch.layers import onednn_packable

    runner = registry.create(SPEC).load_generator(models["tiny"])
    frame_linears = [runner.codec_head, *runner.lm_heads]
    for stack in (runner.talker, runner.predictor):
        frame_linears += [getattr(layer, n) for layer in stack.layers for n in ("qkv", "o", "gate_up", "down")]
    packed = "onednn" if onednn_packable(torch.float32, torch.device("cpu")) else "in_out"
    assert {lin.layout for lin in frame_linears} == {packed}
    assert runner.text_fc1.layout == packed  # prefill rows only: packed for any row count
    bf16 = registry.create("torch:dtype=bfloat16").load_generator(models["tiny"])
    bf16_layout = "onednn" if onednn_packable(torch.bfloat16, torch.device("cpu")) else "out_in"
    assert {lin.layout for lin in (bf16.codec_head, bf16.talker.layers[0].qkv, bf16.text_fc1)} == {bf16_layout}
    if bf16_layout == "out_in":
        assert bf16.codec_head.weight.shape == (models["tiny"].config.vocab_size,
                                                models["tiny"].config.hidden_size)


@pytest.mark.parametrize("dtype,rows_hint,layout", [
    ("float32", 1, "onednn"), ("float32", None, "onednn"), ("bfloat16", 1, "onednn"), ("bfloat16", None, "onednn"),
    ("bfloat16", 1, "out_in"), ("bfloat16", None, "out_in"),
])
@pytest.mark.parametrize("rows", [1, 7])
@pytest.mark.parametrize("bias", [False, True])
def test_every_linear_layout_gives_the_product(dtype, rows_hint, layout, rows, bias):
    """Each layout computes ``x (g W)^T + g b`` for any row count (float32: 1e-5; bfloat16: its rounding)."""
    from perfkit.backends.torch.layers import Linear, onednn_packable

    torch_dtype = getattr(torch, dtype)
    if layout == "onednn" and not onednn_packable(torch_dtype, torch.device("cpu")):
        pytest.skip(f"oneDNN cannot pack {dtype} here")
    rng = np.random.default_rng(3)
    w = {"lin.weight": rng.standard_normal((96, 64)), "lin.scale": rng.uniform(0.5, 2.0, 96)}
    if bias:
        w["lin.bias"] = rng.standard_normal(96)
    x = rng.standard_normal((rows, 64))
    expected = x @ (w["lin.weight"] * w["lin.scale"][:, None]).T
    if bias:
        expected += w["lin.bias"] * w["lin.scale"]
    lin = Linear.from_matrix(w["lin.weight"], w.get("lin.bias"), torch_dtype, torch.device("cpu"),
                             scale=w["lin.scale"], rows=rows_hint, layout=layout)
    assert lin.layout == layout
    with torch.inference_mode():
        got = lin(torch.from_numpy(x).to(torch_dtype)).double().numpy()
    assert got.shape == (rows, 96)
    tol = 1e-5 if dtype == "float32" else 0.05
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
