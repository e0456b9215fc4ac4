"""The torch vocoder: variants and availability, per-stage parity with the float64 NumPy reference,
streaming and tiling equal to offline, low-precision health, no autograd state.

Parity thresholds (issue 5): float32 SNR >= 60 dB at every fine stage and on the waveform; bfloat16
SNR >= 20 dB and correlation >= 0.99, no NaN/Inf. SNR and correlation come from the local helper
:func:`parity` (float64), not from perfkit.measure.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from perfkit import registry
from perfkit.errors import BackendUnavailable
from perfkit.interface import VocoderStream, decode_to_host
from perfkit.model.codes import synthetic_codes
from perfkit.model.stages import vocoder_fine_stages
from perfkit.model.vocoder_model import VocoderModel

HAS_CUDA = torch.cuda.is_available()
THRESHOLDS = {"float32": (60.0, 0.99999), "bfloat16": (20.0, 0.99), "float16": (30.0, 0.999)}


def parity(test: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``(snr_db, correlation)`` of ``test`` against ``reference`` in float64; SNR = 10 log10(|r|² / |x - r|²)."""
    x = np.asarray(test, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    noise = float(np.sum((x - r) ** 2))
    snr = np.inf if noise == 0.0 else 10.0 * np.log10(float(np.sum(r * r)) / noise)
    xc, rc = x - x.mean(), r - r.mean()
    corr = float(np.dot(xc, rc) / np.sqrt(np.dot(xc, xc) * np.dot(rc, rc)))
    return float(snr), corr


@pytest.fixture(scope="module")
def reference_traces(reference_backend, tiny_vocoder, small_vocoder):
    """Every fine stage's float64 output for 12 frames of codes, per preset."""
    out = {}
    for name, model in (("tiny", tiny_vocoder), ("small", small_vocoder)):
        codes = synthetic_codes(model.config, 12, seed=5)
        runner = reference_backend.load_vocoder(model)
        out[name] = (model, codes, {s: np.array(x) for s, x in runner.trace(runner.upload_codes(codes))})
    return out


def trace_on_host(spec: str, model: VocoderModel, codes: np.ndarray) -> dict[str, np.ndarray]:
    backend = registry.create(spec)
    runner = backend.load_vocoder(model)
    outputs = {}
    for stage, x in runner.trace(runner.upload_codes(codes)):
        backend.synchronize()
        outputs[stage] = backend.to_host(x)
    return outputs


def assert_stage_parity(outputs: dict[str, np.ndarray], refs: dict[str, np.ndarray], dtype: str) -> None:
    min_snr, min_corr = THRESHOLDS[dtype]
    assert list(outputs) == list(refs)
    for stage, ref in refs.items():
        out = outputs[stage]
        assert out.shape == ref.shape, stage
        assert out.dtype in (np.float32, np.float64), stage
        assert np.all(np.isfinite(out)), f"{stage}: NaN/Inf"
        snr, corr = parity(out, ref)
        assert snr >= min_snr and corr >= min_corr, f"{dtype} {stage}: SNR {snr:.1f} dB, corr {corr:.6f}"


# --------------------------------------------------------------------------- variants
def test_every_variant_is_listed_with_a_reason():
    cls = registry.get_backend_class("torch")
    infos = registry.describe_variants("torch")
    combos = {(i.options["device"], i.options["dtype"], i.options["compile"], i.options["graphs"]) for i in infos}
    assert len(combos) == len(infos) == 2 * 3 * 2 * 2
    assert cls.option_choices["device"][0] == "cpu" and cls.option_choices["dtype"][0] == "float32"
    assert cls.option_choices["compile"][0] == "off"
    for info in infos:
        assert info.available or info.reason, info
        if info.options["device"] == "cpu" and info.options["dtype"] == "float16":
            assert not info.available and "float16" in info.reason
        if info.options["device"] == "cuda" and not HAS_CUDA:
            assert not info.available and "CUDA" in info.reason
        if info.options["device"] == "cpu" and info.options["graphs"] == "on" and info.options["dtype"] != "float16":
            assert not info.available and "CUDA graphs" in info.reason
    plain = {"device": "cpu", "dtype": "float32", "compile": "off", "graphs": "off"}
    assert any(i.available for i in infos if i.options == plain)


def test_cli_lists_torch_variants(cli):
    code, out, _ = cli("backends")
    assert code == 0
    assert "torch" in out and "bfloat16" in out


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA device")
def test_cuda_unavailable_without_a_device():
    with pytest.raises(BackendUnavailable, match="CUDA"):
        registry.create("torch:device=cuda")


def test_float16_refused_on_cpu():
    with pytest.raises(BackendUnavailable, match="float16"):
        registry.create("torch:dtype=float16")


def test_resolving_cpu_variants_leaves_torch_unimported():
    """A run's parent resolves its variants before any worker starts; for CPU variants it must not pay for
    importing torch (3.7 s of a 53 s tiny compare here), which each worker does anyway."""
    script = ("import sys; from perfkit.run.plan import resolve_variant; "
              "specs = [resolve_variant(s).spec for s in ('torch', 'torch:dtype=bfloat16')]; "
              "print(specs, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("['torch:compile=off,device=cpu,dtype=float32,graphs=off', "
                           "'torch:compile=off,device=cpu,dtype=bfloat16,graphs=off'] False")


def test_torch_not_installed_is_a_reason(monkeypatch):
    from perfkit.backends.torch import availability

    real = availability.importlib.util.find_spec
    monkeypatch.setattr(availability.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(BackendUnavailable, match="torch is not installed"):
        registry.create("torch")


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_stage_parity_cpu(reference_traces, preset, dtype):
    model, codes, refs = reference_traces[preset]
    assert_stage_parity(trace_on_host(f"torch:dtype={dtype}", model, codes), refs, dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_stage_parity_cuda(reference_traces, preset, dtype):
    model, codes, refs = reference_traces[preset]
    assert_stage_parity(trace_on_host(f"torch:device=cuda,dtype={dtype}", model, codes), refs, dtype)


def test_low_precision_snake_stays_finite(tiny_vocoder):
    """Extreme SnakeBeta parameters (exp(beta) ~ 1e-30, exp(alpha) ~ 1e4) give no NaN/Inf in bfloat16."""
    weights = dict(tiny_vocoder.weights)
    for name in weights:
        if name.endswith(".beta"):
            weights[name] = np.full_like(weights[name], -9.0)  # 1/(exp(beta)+1e-9) ~ 8e3
        elif name.endswith(".alpha"):
            weights[name] = np.full_like(weights[name], 9.0)
    model = VocoderModel(tiny_vocoder.config, weights)
    codes = synthetic_codes(model.config, 6, seed=2)
    ref_backend = registry.create("numpy:dtype=float64")
    ref = decode_to_host(ref_backend, ref_backend.load_vocoder(model), codes)
    backend = registry.create("torch:dtype=bfloat16")
    wav = decode_to_host(backend, backend.load_vocoder(model), codes)
    assert wav.dtype == np.float32 and np.all(np.isfinite(wav))
    assert wav.shape == ref.shape


# --------------------------------------------------------------------------- streaming, tiling
@pytest.mark.parametrize("dtype,atol", [("float32", 2e-5), ("bfloat16", None)])
def test_streaming_equals_offline(tiny_vocoder, tiny_codes, dtype, atol):
    backend = registry.create(f"torch:dtype={dtype}")
    runner = backend.load_vocoder(tiny_vocoder)
    offline = decode_to_host(backend, runner, tiny_codes)
    stream = VocoderStream(backend, runner)
    bounds = [0, 1, 3, 4, 11, 19, 24]  # uneven chunks, some longer than the attention window (8)
    chunks = [stream.push(tiny_codes[:, a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    for (a, b), chunk in zip(zip(bounds, bounds[1:], strict=False), chunks, strict=True):
        assert chunk.shape == ((b - a) * 1920,)
    streamed = np.concatenate(chunks)
    if atol is not None:
        np.testing.assert_allclose(streamed, offline, rtol=0, atol=atol)
    else:  # bfloat16: chunking changes GEMM blocking, so rounding differs a little
        assert parity(streamed, offline)[0] >= 30.0


def test_time_tiles_equal_one_tile(small_vocoder):
    """Tiling a stage is streaming inside one call: many small tiles give the single-tile result."""
    from perfkit.backends.torch.vocoder import TorchVocoder

    codes = synthetic_codes(small_vocoder.config, 5, seed=4)
    outs = []
    for tile in (1 << 40, 1):  # one tile per stage; MIN_TILE_ROWS-row tiles
        runner = TorchVocoder(small_vocoder.config, small_vocoder.weights, torch.float32, torch.device("cpu"),
                              tile_elements=tile)
        outs.append({s: x.numpy().copy() for s, x in runner.trace(runner.upload_codes(codes))})
    for stage in vocoder_fine_stages(small_vocoder.config):
        np.testing.assert_allclose(outs[1][stage], outs[0][stage], rtol=0, atol=2e-5, err_msg=stage)


def test_outputs_carry_no_autograd_state(tiny_vocoder, tiny_codes):
    backend = registry.create("torch")
    runner = backend.load_vocoder(tiny_vocoder)
    for stage, x in runner.trace(runner.upload_codes(tiny_codes[:, :3])):
        assert isinstance(x, torch.Tensor) and not x.requires_grad and x.grad_fn is None, stage
        assert torch.is_inference(x), stage
    wav = backend.to_host(x)
    assert wav.dtype == np.float32 and wav.shape == (3 * 1920,)


def test_bfloat16_to_host_is_float32(tiny_vocoder, tiny_codes):
    backend = registry.create("torch:dtype=bfloat16")
    runner = backend.load_vocoder(tiny_vocoder)
    out = backend.to_host(runner.decode(runner.upload_codes(tiny_codes[:, :2])))
    assert out.dtype == np.float32 and out.shape == (2 * 1920,)
    assert backend.thread_settings()["torch"] >= 1


def _gemm_linears(runner) -> list:
    """Every :class:`Linear` of a torch vocoder: transposed and 1x1 convs, transformer, ConvNeXt layers."""
    t = runner.transformer
    out = [t.input_proj, t.output_proj]
    out += [getattr(layer, n) for layer in t.layers for n in ("qkv", "o", "gate_up", "down")]
    for up in runner.upsamples:
        out += [up.tconv.linear, up.pwconv1, up.pwconv2]
    for block in runner.blocks:
        out += [block.tconv.linear, *[unit.conv2.linear for unit in block.units]]
    return out


def test_vocoder_gemms_are_onednn_packed_on_cpu(tiny_vocoder):
    """float32 on a CPU: every GEMM-shaped layer runs on oneDNN's packed weight (faster than MKL's sgemm
    on the vocoder's shapes here); bfloat16: the same where oneDNN runs bfloat16 natively (AVX-512, AMX),
    else torch's ``(out, in)`` for ``F.linear``."""
    from perfkit.backends.torch.layers import onednn_packable

    cpu = torch.device("cpu")
    packed = "onednn" if onednn_packable(torch.float32, cpu) else "in_out"
    f32 = _gemm_linears(registry.create("torch").load_vocoder(tiny_vocoder))
    assert len(f32) > 10 and {lin.layout for lin in f32} == {packed}
    bf16 = _gemm_linears(registry.create("torch:dtype=bfloat16").load_vocoder(tiny_vocoder))
    assert {lin.layout for lin in bf16} == {"onednn" if onednn_packable(torch.bfloat16, cpu) else "out_in"}


def _linear_in(layout: str, dtype: torch.dtype, weight: np.ndarray, bias: np.ndarray):
    """``weight (out, in)`` as a ``dtype`` :class:`Linear` of ``layout`` on the CPU (``in_out`` is CUDA's)."""
    from perfkit.backends.torch.layers import Linear, onednn_packable

    cpu = torch.device("cpu")
    if layout == "onednn" and not onednn_packable(dtype, cpu):
        pytest.skip(f"oneDNN cannot pack {dtype} here")
    lin = Linear.from_matrix(weight, bias, dtype, cpu, layout=layout)
    assert lin.layout == layout
    return lin


@pytest.mark.parametrize("native, expected", [(True, "onednn"), (False, "out_in")])
def test_bfloat16_layout_follows_onednn_support(monkeypatch, native, expected):
    """Whatever this CPU has: bfloat16 on oneDNN where it runs natively (AVX-512, AMX), ``F.linear`` on
    ``(out, in)`` where it does not (AVX2); float32 on oneDNN either way; CUDA always ``in_out``."""
    from perfkit.backends.torch import layers

    def available(dtype: str = "float32") -> bool:
        return dtype == "float32" or (dtype == "bfloat16" and native)

    monkeypatch.setattr(layers, "onednn_gemm_available", available)
    cpu = torch.device("cpu")
    assert layers.linear_layout(torch.bfloat16, cpu) == expected
    assert layers.linear_layout(torch.float16, cpu) == "out_in"
    assert layers.linear_layout(torch.float32, cpu) == "onednn"
    assert layers.linear_layout(torch.bfloat16, torch.device("cuda")) == "in_out"


def test_a_forced_layout_must_exist_and_be_packable_here():
    from perfkit.backends.torch.layers import Linear

    w, b, cpu = np.ones((4, 3)), np.zeros(4), torch.device("cpu")
    with pytest.raises(ValueError, match="unknown layout 'blocked'"):
        Linear.from_matrix(w, b, torch.float32, cpu, layout="blocked")
    with pytest.raises(ValueError, match="oneDNN cannot pack a torch.float16 weight"):
        Linear.from_matrix(w, b, torch.float16, cpu, layout="onednn")
    assert Linear.from_matrix(w, b, torch.float32, cpu, layout="in_out").weight.shape == (3, 4)


LAYOUT_DTYPES = [("in_out", torch.float32), ("onednn", torch.float32), ("onednn", torch.bfloat16),
                 ("out_in", torch.bfloat16)]


@pytest.mark.parametrize("layout, dtype", LAYOUT_DTYPES)
def test_linear_plus_adds_the_residual_in_every_layout(layout, dtype):
    """``plus(x, r) = r + x W^T + b`` (float32: 1e-5; bfloat16: its rounding), ``r`` left unchanged."""
    rng = np.random.default_rng(8)
    weight, bias = rng.standard_normal((48, 32)), rng.standard_normal(48)
    x, residual = rng.standard_normal((37, 32)), rng.standard_normal((37, 48))
    lin = _linear_in(layout, dtype, weight, bias)
    r = torch.from_numpy(residual).to(dtype)
    kept = r.clone()
    with torch.inference_mode():
        got = lin.plus(torch.from_numpy(x).to(dtype), r).double().numpy()
    expected = residual + x @ weight.T + bias
    tol = 1e-5 if dtype == torch.float32 else 0.05
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    assert torch.equal(r, kept)


@pytest.mark.parametrize("stride,k", [(2, 2), (3, 6), (4, 12)])  # m = k / stride: 1 (upsample), 2 (blocks), 3
def test_conv_transpose_in_chunks_is_the_causal_conv_transpose(stride, k):
    """The col2im ConvTranspose over two chunks (its tail carried) equals ``conv_transpose1d`` trimmed
    by ``k - stride`` on the right (the official causal form), in float32."""
    from perfkit.backends.torch.layers import CausalConvTranspose

    rng = np.random.default_rng(stride)
    cin, cout, length = 6, 5, 11
    w = {"t.conv.weight": rng.standard_normal((cin, cout, k)), "t.conv.bias": rng.standard_normal(cout)}
    x = rng.standard_normal((length, cin))
    conv = CausalConvTranspose.pack(w, "t", stride, torch.float32, torch.device("cpu"))
    out = torch.empty(length * stride, cout)
    tail = conv.new_tail(torch.float32, torch.device("cpu"))
    xt = torch.from_numpy(x).float()
    with torch.inference_mode():
        tail = conv(xt[:4], tail, out[: 4 * stride])
        conv(xt[4:], tail, out[4 * stride:])
        full = reference_conv_transpose(x, w["t.conv.weight"], w["t.conv.bias"], stride)
    np.testing.assert_allclose(out.numpy(), full[: length * stride], rtol=1e-5, atol=1e-5)


def reference_conv_transpose(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """torch's own ``conv_transpose1d`` in float64 on ``x (L, Cin)`` -> ``(L*stride + k - stride, Cout)``."""
    y = torch.nn.functional.conv_transpose1d(torch.from_numpy(x.T[None]), torch.from_numpy(weight),
                                             torch.from_numpy(bias), stride=stride)
    return y[0].numpy().T


def test_k7_convs_are_onednn_packed_in_float32_only(tiny_vocoder):
    """float32 on a CPU with oneDNN: every k > 1 conv on a weight reordered once at load; bfloat16 keeps the
    channels-last weight (a reordered one made oneDNN's dilated bfloat16 convolutions 80x slower). The final
    conv, with one output channel, is a GEMM and a tap sum in either dtype."""
    from perfkit.backends.torch.layers import TapSumConv, conv_packable

    cpu = torch.device("cpu")
    f32 = registry.create("torch").load_vocoder(tiny_vocoder)
    bf16 = registry.create("torch:dtype=bfloat16").load_vocoder(tiny_vocoder)
    convs = [f32.pre_conv, f32.decoder_in, *(u.conv1 for blk in f32.blocks for u in blk.units)]
    assert {c.packed for c in convs} == {conv_packable(torch.float32, cpu)}
    assert not conv_packable(torch.bfloat16, cpu)
    assert not any(u.conv1.packed for blk in bf16.blocks for u in blk.units)
    assert all(c.weight.is_mkldnn == c.packed for c in convs)
    assert isinstance(f32.final_conv, TapSumConv) and isinstance(bf16.final_conv, TapSumConv)


@pytest.mark.parametrize("dilation", [1, 3, 9])
@pytest.mark.parametrize("length", [1, 5, 40])
@pytest.mark.parametrize("packed", [True, False])
def test_causal_conv_is_torchs_dilated_conv1d(monkeypatch, packed, dilation, length):
    """Both weight forms of :class:`CausalConv` (oneDNN's packed, channels-last for ``conv2d``) equal
    ``conv1d`` in float64 on the padded input, at any length (the reorder was made for no input shape)."""
    from perfkit.backends.torch import layers

    cpu = torch.device("cpu")
    if packed and not layers.conv_packable(torch.float32, cpu):
        pytest.skip("no oneDNN in this torch build")
    monkeypatch.setattr(layers, "conv_packable", lambda dtype, device: packed)
    rng = np.random.default_rng(dilation * 100 + length)
    cin, cout, k = 8, 6, 7
    w = {"c.conv.weight": rng.standard_normal((cout, cin, k)), "c.conv.bias": rng.standard_normal(cout)}
    conv = layers.CausalConv.pack(w, "c", torch.float32, cpu, dilation)
    assert conv.packed == packed
    xp = rng.standard_normal((conv.pad + length, cin))  # (pad + L, Cin)
    with torch.inference_mode():
        got = conv(torch.from_numpy(xp).float())
    assert got.shape == (length, cout) and got.is_contiguous()
    expected = torch.nn.functional.conv1d(torch.from_numpy(xp.T[None]), torch.from_numpy(w["c.conv.weight"]),
                                          torch.from_numpy(w["c.conv.bias"]), dilation=dilation)[0].numpy().T
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cout", [1, 3])
@pytest.mark.parametrize("dilation", [1, 3])
@pytest.mark.parametrize("length", [1, 5, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tap_sum_conv_is_torchs_dilated_conv1d(cout, dilation, length, dtype):
    """:class:`TapSumConv` (one GEMM, then the taps' shifted sum) equals ``conv1d`` in float64 on the padded
    input, for one and several output channels, dilated or not, in the input's dtype."""
    from perfkit.backends.torch.layers import TapSumConv

    rng = np.random.default_rng(dilation * 100 + length + cout)
    cin, k = 8, 7
    w = {"c.conv.weight": rng.standard_normal((cout, cin, k)), "c.conv.bias": rng.standard_normal(cout)}
    conv = TapSumConv.pack(w, "c", torch.device("cpu"), dilation)
    assert conv.pad == (k - 1) * dilation
    xp = rng.standard_normal((conv.pad + length, cin))  # (pad + L, Cin)
    with torch.inference_mode():
        got = conv(torch.from_numpy(xp).to(dtype))
    assert got.shape == (length, cout) and got.is_contiguous() and got.dtype == dtype
    rounded = torch.from_numpy(xp).to(dtype).double()  # the input as the layer sees it
    expected = torch.nn.functional.conv1d(rounded.T[None], torch.from_numpy(w["c.conv.weight"]),
                                          torch.from_numpy(w["c.conv.bias"]), dilation=dilation)[0].numpy().T
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bfloat16: one rounding of the output
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=tol, atol=tol * np.abs(expected).max())


def test_convs_refuse_the_other_kernel_size():
    """A k = 1 convolution is a PointwiseConv and a k > 1 one a CausalConv; each says so for the other."""
    from perfkit.backends.torch.layers import CausalConv, PointwiseConv, TapSumConv

    rng = np.random.default_rng(0)
    cpu = torch.device("cpu")
    one = {"c.conv.weight": rng.standard_normal((4, 3, 1)), "c.conv.bias": rng.standard_normal(4)}
    seven = {"c.conv.weight": rng.standard_normal((4, 3, 7)), "c.conv.bias": rng.standard_normal(4)}
    with pytest.raises(ValueError, match="PointwiseConv"):
        CausalConv.pack(one, "c", torch.float32, cpu)
    with pytest.raises(ValueError, match="PointwiseConv"):
        TapSumConv.pack(one, "c", cpu)
    with pytest.raises(ValueError, match="kernel 7"):
        PointwiseConv.pack(seven, "c", torch.float32, cpu)
    got = PointwiseConv.pack(one, "c", torch.float32, cpu)(torch.ones(2, 3))  # (L, Cin) -> (L, Cout)
    expected = one["c.conv.weight"][:, :, 0].sum(axis=1) + one["c.conv.bias"]
    np.testing.assert_allclose(got.numpy(), np.tile(expected, (2, 1)), rtol=1e-5)


def test_stage_outputs_alternate_between_two_buffers_that_grow():
    """:class:`StageOutputs`: the buffer not holding the stage's input, views of the first elements when a
    request is smaller, a larger buffer when it is larger; a chain of stages ping-pongs between the two."""
    from perfkit.backends.torch.buffers import StageOutputs

    outputs = StageOutputs(torch.float32, torch.device("cpu"))
    fresh = torch.zeros(3, 4)
    a = outputs.get((6, 4), avoid=fresh)  # input in neither buffer: the first
    b = outputs.get((6, 4), avoid=a.t())  # input in the first (a transposed view of it): the second
    c = outputs.get((2, 4), avoid=b)  # back to the first, a view of its first 8 elements
    assert a.shape == (6, 4) and b.shape == (6, 4) and c.shape == (2, 4) and c.is_contiguous()
    assert c.data_ptr() == a.data_ptr() and b.data_ptr() != a.data_ptr()
    assert outputs.holds(a) and outputs.holds(b) and not outputs.holds(fresh)
    assert outputs.nbytes == 2 * 24 * 4
    d = outputs.get((10, 4), avoid=b)  # larger than the first buffer: it grows
    assert d.shape == (10, 4) and outputs.nbytes == (40 + 24) * 4
    assert not outputs.holds(a)  # the old first buffer is gone


def test_stage_outputs_reserve_grows_only_the_buffers_not_holding_the_input():
    """:meth:`StageOutputs.reserve`: both buffers to at least the size asked for, except the one holding the
    stage's input, which stays as it is (its contents intact); a later smaller request reuses the reserve."""
    from perfkit.backends.torch.buffers import StageOutputs

    outputs = StageOutputs(torch.float32, torch.device("cpu"))
    outputs.reserve(40, avoid=torch.zeros(1))
    assert outputs.nbytes == 2 * 40 * 4
    a = outputs.get((6, 4), avoid=torch.zeros(1))
    a.fill_(3.0)
    outputs.reserve(100, avoid=a)  # a's buffer keeps its 40 elements, the other grows to 100
    assert outputs.nbytes == (40 + 100) * 4 and outputs.holds(a) and bool((a == 3.0).all())
    b = outputs.get((25, 4), avoid=a)
    assert b.untyped_storage().nbytes() == 100 * 4  # a view of the reserve, not a new buffer
    outputs.reserve(10, avoid=b)  # smaller than both: nothing changes
    assert outputs.nbytes == (40 + 100) * 4 and outputs.holds(a) and outputs.holds(b)


def test_block_outputs_are_reserved_once_per_decode_for_the_largest_block(tiny_vocoder, tiny_codes):
    """From block 0's tconv on, both buffers hold the largest block output of the decode (the last block's:
    ``T * prod(upsampling) * prod(rates) * Cout_last`` elements) and no later stage replaces either."""
    backend = registry.create("torch")
    runner = backend.load_vocoder(tiny_vocoder)
    cfg = tiny_vocoder.config
    samples = tiny_codes.shape[1] * math.prod(cfg.upsampling_ratios) * math.prod(cfg.upsample_rates)
    largest = samples * runner.blocks[-1].tconv.out_channels
    x, state, storages = runner.upload_codes(tiny_codes), runner.new_state(), None
    for stage in runner.stages:
        x = runner.run_stage(stage, x, state)
        if stage == "block_0.tconv":
            storages = [f.untyped_storage().data_ptr() for f in runner.outputs._flat]
        if storages is not None:
            assert runner.outputs.nbytes == 2 * largest * 4, stage
            assert [f.untyped_storage().data_ptr() for f in runner.outputs._flat] == storages, stage
    assert storages is not None


def test_block_outputs_reuse_the_runners_buffers_and_host_copies_own_memory(tiny_vocoder, tiny_codes):
    """The blocks' tconv and residual-unit outputs come from the runner's two buffers, decoding the same
    length again grows neither, and ``to_host`` returns a copy that later stages cannot overwrite."""
    backend = registry.create("torch")
    runner = backend.load_vocoder(tiny_vocoder)
    first = decode_to_host(backend, runner, tiny_codes)
    held = runner.outputs.nbytes
    assert held > 0
    hosts, clones = {}, {}
    x, state = runner.upload_codes(tiny_codes), runner.new_state()
    for stage in runner.stages:
        x = runner.run_stage(stage, x, state)
        assert runner.outputs.holds(x) == (".tconv" in stage or ".resunits" in stage), stage
        hosts[stage], clones[stage] = backend.to_host(x), x.clone().numpy()
    assert runner.outputs.nbytes == held
    np.testing.assert_array_equal(hosts["final"], first)
    decode_to_host(backend, runner, synthetic_codes(tiny_vocoder.config, tiny_codes.shape[1], seed=7))
    for stage in runner.stages:  # the buffers now hold another utterance's activations
        np.testing.assert_array_equal(hosts[stage], clones[stage], err_msg=stage)
