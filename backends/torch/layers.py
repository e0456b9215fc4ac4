"""The vocoder's layers in torch, on *time-major* ``(L, C)`` tensors, each packed once at load.

Time-major rows make every convolution GEMM-shaped without copies:

- a causal Conv1d with ``k > 1`` is a channels-last 2-D convolution (oneDNN on the CPU, on a weight reordered
  once at load in float32; cuDNN on CUDA): the ``(L, C)`` buffer *is* an NHWC tensor ``(1, C, 1, L)``, so no
  layout reorder happens on the way in or out; with one output channel (the final conv) it is one GEMM
  ``(pad + L, Cin) -> (pad + L, k*Cout)`` and a shifted sum over the taps (:class:`TapSumConv`);
- a Conv1d with ``k = 1`` is a :class:`Linear` over the rows;
- a causal ConvTranspose1d with ``k = m * stride`` is one :class:`Linear` ``(L, Cin) -> (L, k*Cout)`` whose
  rows are already the output's ``(L, stride, Cout)`` blocks, then one shifted add (col2im);
- the per-channel parameters (SnakeBeta, norms) broadcast along the contiguous last axis.

Every layer that looks back in time reads a ``tail`` (the last inputs, or pending outputs, of the
previous chunk; zeros at the start of an utterance) and produces the next one, exactly as the
NumPy reference (:mod:`perfkit.backends.numpy.layers`) does, so chunked decoding equals offline.

Low-precision numerics: SnakeBeta's ``exp(alpha)`` and ``1/(exp(beta) + 1e-9)`` are precomputed in
float32 and applied in float32; norms and the depthwise-conv accumulation run in float32; GEMMs and
convolutions accumulate in float32 inside oneDNN / cuBLAS / cuDNN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from perfkit.measure.peak import onednn_gemm_available
from perfkit.model.snake import snake_factors

Tensor = torch.Tensor

LAYER_NORM_EPS = 1e-6


def to_tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A host array (any float dtype) as a contiguous ``dtype`` tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype).contiguous()


# --------------------------------------------------------------------------- SnakeBeta
SnakeKernel = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def snake_eager(x: Tensor, alpha_exp: Tensor, inv_beta: Tensor, out: Tensor) -> Tensor:
    """SnakeBeta in four eager passes, float32 in between, one rounding into ``out`` (``x``'s dtype)."""
    t = x * alpha_exp  # (L, C) float32 (type promotion by the float32 factors)
    t.sin_()
    t.square_()
    return torch.addcmul(x, t, inv_beta, out=out)


def snake_math(x: Tensor, alpha_exp: Tensor, inv_beta: Tensor, out: Tensor) -> Tensor:
    """The same SnakeBeta as one expression, for ``torch.compile`` to fuse into a single pass."""
    y = x.float()
    return out.copy_(y + inv_beta * torch.sin(alpha_exp * y).square())


@functools.cache
def snake_compiled() -> SnakeKernel:
    """:func:`snake_math` through ``torch.compile`` (dynamic shapes: one graph per dtype and layout)."""
    return torch.compile(snake_math, dynamic=True)


@dataclass(frozen=True)
class SnakeBeta:
    """``y = x + inv_beta * sin(alpha_exp * x)**2`` per channel, evaluated in float32.

    ``alpha_exp = exp(alpha)`` and ``inv_beta = 1 / (exp(beta) + 1e-9)`` are ``(C,)`` float32,
    computed in float64 at load: a low-precision ``exp``/reciprocal is what turns SnakeBeta into NaN.
    ``kernel`` is :func:`snake_eager` or the compiled :func:`snake_math`.
    """

    alpha_exp: Tensor
    inv_beta: Tensor
    kernel: SnakeKernel = snake_eager

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], prefix: str, device: torch.device, compiled: bool = False
             ) -> SnakeBeta:
        alpha_exp, inv_beta = snake_factors(w[f"{prefix}.alpha"], w[f"{prefix}.beta"])
        return cls(to_tensor(alpha_exp, torch.float32, device), to_tensor(inv_beta, torch.float32, device),
                   snake_compiled() if compiled else snake_eager)

    def __call__(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        """``x (L, C)`` -> ``(L, C)`` in ``x``'s dtype (into ``out`` when given); one rounding at the end."""
        return self.kernel(x, self.alpha_exp, self.inv_beta, torch.empty_like(x) if out is None else out)


# --------------------------------------------------------------------------- dense layers
LAYOUTS = ("onednn", "out_in", "in_out")


def onednn_packable(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :meth:`Linear.pack` can keep a weight in oneDNN's packed layout: on a CPU build with oneDNN,
    float32, and bfloat16 where oneDNN has vectorised bfloat16 kernels for the CPU (AVX-512, AVX512-BF16,
    AMX: :func:`perfkit.measure.peak.onednn_gemm_available`); CUDA has cuBLAS."""
    name = str(dtype).removeprefix("torch.")
    return device.type == "cpu" and onednn_gemm_available(name)


def linear_layout(dtype: torch.dtype, device: torch.device) -> str:
    """The weight layout :meth:`Linear.pack` picks (see :class:`Linear`)."""
    if onednn_packable(dtype, device):
        return "onednn"
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        return "out_in"
    return "in_out"


@dataclass(frozen=True)
class Linear:
    """``y = x @ W^T + b`` for ``W (out, in)`` (torch's), optional folded scale.

    Three layouts of the weight (:func:`linear_layout`):

    - ``onednn`` (float32 on a CPU; bfloat16 on a CPU with AVX-512, AVX512-BF16 or AMX, where oneDNN runs
      bfloat16 natively: :func:`onednn_packable`): oneDNN's blocked layout of ``W``, reordered once at load
      (for ``rows``-row inputs when the caller knows the count, else for any), applied by
      ``torch.ops.mkldnn._linear_pointwise`` (the kernel ``torch.compile`` emits for frozen CPU linears).
      For one row — the generator's per-frame layers, matrix-vector products bound by the weight bytes
      read — this streams the weight with every thread, where MKL's ``sgemm`` with one row runs on one
      (about 11 against 15 GB/s with two threads here; ``reports/optimizations/torch-onednn-gemv``). For
      many rows — the vocoder's transposed and 1x1 convolutions, its transformer and ConvNeXt layers —
      oneDNN's GEMM is faster than MKL's on this AMD CPU (the vocoder's shapes: 1.0–1.5x, the largest
      gain on the widest transposed convolutions; ``reports/optimizations/torch-onednn-gemm``). In bfloat16
      on an AMX CPU the packed one-row product streams 80 talker-shaped weights from memory at 21.8 against
      15.7 GB/s for ``F.linear`` (float32 packed: 25.3), and the 0.6B frame loop is 1.2x faster
      (``reports/optimizations/torch-onednn-bfloat16-amx``);
    - ``in_out`` (CUDA, and CPU builds without oneDNN): ``weight (in, out)``, strided; ``x @ weight``
      (``addmm`` with a bias) goes to cuBLAS / MKL;
    - ``out_in`` (bfloat16 / float16 on a CPU that oneDNN cannot pack them for, e.g. AVX2 only): ``W`` as
      it is, through ``F.linear``, whose reduced-precision kernels take the transposed operand (dot products
      along contiguous rows, float32 accumulation); ``x @ W`` on the ``(in, out)`` layout falls back to a
      scalar loop where the CPU lacks AVX-512-BF16 (a one-row bfloat16 product of the talker's shapes on the
      AMD EPYC: 0.4 against 12.6 GB/s).

    ``scale`` (per output) is folded at load: ``(x W^T + b) * g = x (g W)^T + g b``, computed in float64.
    """

    weight: Tensor  # (in, out) strided; (out, in) strided or in oneDNN's layout
    bias: Tensor | None  # (out,)
    layout: str = "in_out"

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], name: str, dtype: torch.dtype, device: torch.device,
             scale: np.ndarray | None = None, rows: int | None = None) -> Linear:
        """``w[name.weight] (out, in)``, ``w[name.bias]`` if present; ``rows``: the usual number of input
        rows, when the caller knows it (``1`` in the frame loop)."""
        return cls.from_matrix(w[f"{name}.weight"], w.get(f"{name}.bias"), dtype, device, scale, rows)

    @classmethod
    def from_matrix(cls, weight: np.ndarray, bias: np.ndarray | None, dtype: torch.dtype, device: torch.device,
                    scale: np.ndarray | None = None, rows: int | None = None, layout: str | None = None
                    ) -> Linear:
        """``weight (out, in)``, ``bias (out,)`` or ``None``, as :meth:`pack` takes them from a mapping;
        ``layout``: one of :data:`LAYOUTS` instead of :func:`linear_layout`'s choice (to compare them)."""
        if layout is None:
            layout = linear_layout(dtype, device)
        elif layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: one of {', '.join(LAYOUTS)}")
        elif layout == "onednn" and not onednn_packable(dtype, device):
            raise ValueError(f"oneDNN cannot pack a {dtype} weight on {device} here")
        weight = np.asarray(weight, dtype=np.float64)
        bias = None if bias is None else np.asarray(bias, dtype=np.float64)
        if scale is not None:
            g = np.asarray(scale, dtype=np.float64)
            weight = weight * g[:, None]
            bias = None if bias is None else bias * g
        b = None if bias is None else to_tensor(bias, dtype, device)
        if layout == "onednn":
            return cls(torch.ops.mkldnn._reorder_linear_weight(to_tensor(weight, dtype, device), rows), b, layout)
        return cls(to_tensor(weight if layout == "out_in" else weight.T, dtype, device), b, layout)

    def __call__(self, x: Tensor) -> Tensor:
        """``x (L, in)`` -> ``(L, out)``."""
        if self.layout == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        if self.layout == "out_in":
            return F.linear(x, self.weight, self.bias)
        if self.bias is None:
            return x @ self.weight
        return torch.addmm(self.bias, x, self.weight)

    def plus(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + x W^T + b``: ``x (L, in)``, ``residual (L, out)`` -> ``(L, out)``, the sum fused into
        the GEMM where the layout allows (oneDNN's post-op, ``addmm``'s ``beta * C``)."""
        if self.layout == "onednn":
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.weight, self.bias, "add")
        if self.layout == "out_in":
            return F.linear(x, self.weight, self.bias).add_(residual)
        y = torch.addmm(residual, x, self.weight)
        return y if self.bias is None else y.add_(self.bias)


# --------------------------------------------------------------------------- convolutions
def conv_packable(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :meth:`CausalConv.pack` keeps a weight in oneDNN's blocked layout: float32 on a CPU with
    oneDNN. In bfloat16 the reordered layout depends on the input length it was made for: on the AMX CPU
    (768 channels, dilation 3) a weight reordered for no length took 172 ms on 512 rows, one reordered for
    512 rows 1.6 ms there but 165 ms on 37 rows, against ``conv2d``'s 2.2 and 1.0 ms; streaming chunks and
    last tiles vary the length, so bfloat16 keeps the channels-last weight ``conv2d`` reorders each call."""
    return dtype == torch.float32 and onednn_packable(dtype, device)


@dataclass(frozen=True)
class CausalConv:
    """Causal Conv1d ``w (Cout, Cin, k)``, ``k > 1``, dilation ``d``, on time-major input with its tail prepended.

    ``y[t] = b + sum_j W_j @ xp[t + j*d]`` for ``xp = [tail; x]`` of ``(pad + L, Cin)``, ``pad = (k-1)*d``.
    ``weight (Cout, Cin, 1, k)``: where :func:`conv_packable`, in oneDNN's blocked layout, reordered once
    at load and applied by ``torch.ops.mkldnn._convolution_pointwise`` (the kernel ``torch.compile``
    emits for frozen CPU convolutions); ``conv2d`` on a strided weight reorders it on every call, which
    cost decoder_in (1536 x 1024 x 7, 44 MB) 46 against 35 ms on 512 rows and left the reordered
    copy's memory in the allocator (``reports/optimizations/torch-onednn-conv``). Elsewhere channels-last
    for ``conv2d`` (cuDNN on CUDA). ``k = 1`` is a :class:`PointwiseConv`; one output channel, a :class:`TapSumConv`.
    """

    weight: Tensor  # (Cout, Cin, 1, k): oneDNN's opaque blocked tensor, or strided channels-last
    bias: Tensor  # (Cout,)
    kernel: int
    dilation: int

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], prefix: str, dtype: torch.dtype, device: torch.device,
             dilation: int = 1) -> CausalConv:
        weight = np.asarray(w[f"{prefix}.conv.weight"])  # (Cout, Cin, k)
        k = weight.shape[2]
        if k == 1:
            raise ValueError(f"{prefix}: a k = 1 convolution is a PointwiseConv")
        bias = to_tensor(w[f"{prefix}.conv.bias"], dtype, device)
        w4 = to_tensor(weight[:, :, None, :], dtype, device)  # (Cout, Cin, 1, k)
        if conv_packable(dtype, device):
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(w4.to_mkldnn(), [0, 0], [1, 1], [1, dilation], 1, None)
            return cls(packed, bias, k, dilation)
        return cls(w4.contiguous(memory_format=torch.channels_last), bias, k, dilation)

    @property
    def pad(self) -> int:
        """Input rows of look-back: ``(k - 1) * dilation``."""
        return (self.kernel - 1) * self.dilation

    @property
    def packed(self) -> bool:
        """Whether the weight is in oneDNN's layout (then :meth:`__call__` runs ``_convolution_pointwise``)."""
        return self.weight.is_mkldnn

    def __call__(self, xp: Tensor) -> Tensor:
        """``xp (pad + L, Cin)`` contiguous -> ``y (L, Cout)`` contiguous."""
        x4 = xp.t()[None, :, None, :]  # (1, Cin, 1, pad + L): the same memory, NHWC
        if self.packed:
            y4 = torch.ops.mkldnn._convolution_pointwise(x4, self.weight, self.bias, [0, 0], [1, 1],
                                                         [1, self.dilation], 1, "none", [], "")
        else:
            y4 = F.conv2d(x4, self.weight, self.bias, dilation=(1, self.dilation))  # (1, Cout, 1, L) NHWC
        y = y4[0, :, 0, :].t()  # (L, Cout)
        return y if y.is_contiguous() else y.contiguous()


@dataclass(frozen=True)
class TapSumConv:
    """Causal Conv1d with few output channels, ``w (Cout, Cin, k)``, dilation ``d``: one GEMM, then a shifted sum.

    ``z = xp @ W`` for ``xp (pad + L, Cin)`` and ``W (Cin, k*Cout)``, ``W[c, j*Cout + o] = w[o, c, j]``:
    ``z (pad + L, k, Cout)`` holds every row's product with every tap, and
    ``y[t] = b + sum_j z[t + j*d, j]``, read as one strided view of ``z`` (no copy) and summed over ``j``.
    The same sum as :class:`CausalConv`, but a GEMM of ``k*Cout`` columns instead of a convolution
    primitive, which cannot vectorise over one output channel: the final conv (``Cout = 1``, 96 channels,
    2730-row tiles) took 54 against 394 us a tile alone, and the float32 final stage 10.5 against 17.7 ms;
    bfloat16's stage, where the channels-last ``conv2d`` was cheaper, stayed at 14 ms
    (``reports/optimizations/torch-final-conv-gemm``). Computed in float32 whatever ``xp``'s dtype (one
    rounding at the end, as the conv primitive does). ``z`` holds ``k*Cout`` values a row: for few outputs.
    """

    weight: Tensor  # (Cin, k*Cout) float32
    bias: Tensor  # (Cout,) float32
    kernel: int
    dilation: int

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], prefix: str, device: torch.device, dilation: int = 1
             ) -> TapSumConv:
        weight = np.asarray(w[f"{prefix}.conv.weight"], dtype=np.float64)  # (Cout, Cin, k)
        cout, cin, k = weight.shape
        if k == 1:
            raise ValueError(f"{prefix}: a k = 1 convolution is a PointwiseConv")
        packed = weight.transpose(1, 2, 0).reshape(cin, k * cout)  # (Cin, k*Cout), tap-major columns
        return cls(to_tensor(packed, torch.float32, device), to_tensor(w[f"{prefix}.conv.bias"], torch.float32,
                                                                       device), k, dilation)

    @property
    def pad(self) -> int:
        """Input rows of look-back: ``(k - 1) * dilation``."""
        return (self.kernel - 1) * self.dilation

    def __call__(self, xp: Tensor) -> Tensor:
        """``xp (pad + L, Cin)`` contiguous -> ``y (L, Cout)`` contiguous, in ``xp``'s dtype."""
        k, d = self.kernel, self.dilation
        cout = self.bias.shape[0]
        length = xp.shape[0] - self.pad
        z = xp.float() @ self.weight  # (pad + L, k*Cout) float32
        taps = z.as_strided((length, k, cout), (k * cout, d * k * cout + cout, 1))  # taps[t, j] = z[t + j*d, j]
        return (taps.sum(dim=1) + self.bias).to(xp.dtype)


@dataclass(frozen=True)
class PointwiseConv:
    """Conv1d with ``k = 1``, ``w (Cout, Cin, 1)``: ``y[t] = W x[t] + b``, a :class:`Linear` over time-major rows."""

    linear: Linear

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], prefix: str, dtype: torch.dtype, device: torch.device
             ) -> PointwiseConv:
        weight = np.asarray(w[f"{prefix}.conv.weight"])  # (Cout, Cin, 1)
        if weight.shape[2] != 1:
            raise ValueError(f"{prefix}: kernel {weight.shape[2]} is not a pointwise convolution")
        return cls(Linear.from_matrix(weight[:, :, 0], w[f"{prefix}.conv.bias"], dtype, device))

    def __call__(self, x: Tensor) -> Tensor:
        """``x (L, Cin)`` -> ``(L, Cout)``."""
        return self.linear(x)

    def plus(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + conv(x)``, ``(L, Cout)``, the sum fused into the GEMM (:meth:`Linear.plus`)."""
        return self.linear.plus(x, residual)


@dataclass(frozen=True)
class CausalConvTranspose:
    """Causal ConvTranspose1d ``w (Cin, Cout, k)``, stride ``s``, right-trimmed by ``k - s`` (official).

    Taps are zero-padded to ``k' = m * s`` and packed as one :class:`Linear` ``Cin -> m*s*Cout`` so that
    ``cols = linear(x)`` is ``(L, m, s, Cout)``: ``cols[t, q]`` is input frame ``t``'s contribution to
    output block ``t + q`` (``s`` samples). Output block ``t`` = ``sum_q cols[t - q, q]`` (col2im), where
    frames before this chunk come from the tail ``(m - 1, s, Cout)`` of pending contributions.
    The bias sits on block ``q = 0`` only (the linear's bias over the columns), so it is added once and
    never to the tail.
    """

    linear: Linear
    stride: int
    blocks: int
    out_channels: int

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], prefix: str, stride: int, dtype: torch.dtype,
             device: torch.device) -> CausalConvTranspose:
        weight = np.asarray(w[f"{prefix}.conv.weight"], dtype=np.float64)  # (Cin, Cout, k)
        cin, cout, k = weight.shape
        m = -(-k // stride)
        padded = np.zeros((cin, cout, m * stride))
        padded[:, :, :k] = weight
        packed = padded.transpose(2, 1, 0).reshape(m * stride * cout, cin)  # (k'*Cout, Cin), tap-major rows
        bias_cols = np.zeros(m * stride * cout)
        bias_cols[: stride * cout] = np.tile(np.asarray(w[f"{prefix}.conv.bias"], dtype=np.float64), stride)
        return cls(Linear.from_matrix(packed, bias_cols, dtype, device), stride, m, cout)

    @property
    def columns(self) -> int:
        """Columns of ``cols`` per input row: ``m * s * Cout``."""
        return self.blocks * self.stride * self.out_channels

    def new_tail(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Pending contributions at the start of an utterance: zeros ``(m - 1, s, Cout)``."""
        return torch.zeros(self.blocks - 1, self.stride, self.out_channels, dtype=dtype, device=device)

    def __call__(self, x: Tensor, tail: Tensor, out: Tensor) -> Tensor:
        """``x (L, Cin)``, ``tail (m-1, s, Cout)``; writes ``out (L*s, Cout)``, returns the new tail."""
        length, s, cout, m = x.shape[0], self.stride, self.out_channels, self.blocks
        cols = self.linear(x).view(length, m, s, cout)  # (L, m, s, Cout)
        y = out.view(length, s, cout)  # (L, s, Cout)
        if m == 1:  # k == s: no overlap, the columns are the output
            y.copy_(cols[:, 0])
            return tail
        if m == 2:
            torch.add(cols[1:, 0], cols[:-1, 1], out=y[1:])
            torch.add(cols[0, 0], tail[0], out=y[0])
            return cols[length - 1:, 1]  # (1, s, Cout), no bias
        ext = torch.zeros(length + m - 1, s, cout, dtype=cols.dtype, device=cols.device)  # (L + m-1, s, Cout)
        ext[: m - 1] += tail
        for q in range(m):
            ext[q: q + length] += cols[:, q]
        y.copy_(ext[:length])
        return ext[length:]


@dataclass(frozen=True)
class DepthwiseCausalConv:
    """Depthwise causal conv ``w (C, 1, k)``: ``y[t, c] = b[c] + sum_j w[c, j] * xp[t + j, c]``, in float32."""

    weight: Tensor  # (k, C) float32
    bias: Tensor  # (C,) float32

    @classmethod
    def pack(cls, w: Mapping[str, np.ndarray], prefix: str, device: torch.device) -> DepthwiseCausalConv:
        weight = np.asarray(w[f"{prefix}.conv.weight"])[:, 0, :].T  # (k, C)
        return cls(to_tensor(weight, torch.float32, device), to_tensor(w[f"{prefix}.conv.bias"], torch.float32,
                                                                      device))

    @property
    def pad(self) -> int:
        return self.weight.shape[0] - 1

    def __call__(self, xp: Tensor) -> Tensor:
        """``xp (k-1 + L, C)`` -> ``y (L, C)`` float32 (accumulated in float32 whatever ``xp``'s dtype)."""
        k = self.weight.shape[0]
        length = xp.shape[0] - (k - 1)
        y = torch.addcmul(self.bias, xp[:length], self.weight[0])  # (L, C) float32
        for j in range(1, k):
            y.addcmul_(xp[j: j + length], self.weight[j])
        return y


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """``weight * x / sqrt(mean(x**2, -1) + eps)`` in float32; ``x (T, C)`` float32, ``weight (C,)`` float32."""
    return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + eps) * weight


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = LAYER_NORM_EPS) -> Tensor:
    """LayerNorm over the last axis in float32; ``x (L, C)`` float32."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
