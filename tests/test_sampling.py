"""The sampling rule: options, host-drawn uniforms, each step of the rule, and the inverse-CDF pick."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfkit.errors import InputError
from perfkit.model.generator_config import generator_preset
from perfkit.model.sampling import (
    SamplingOptions,
    group0_allowed,
    pick,
    process_logits,
    sample,
    sampling_uniforms,
)


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"temperature": 0.0}, "temperature must be a positive number"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -1}, "top-k must be a non-negative integer"),
        ({"top_p": 0.0}, r"top-p must be in \(0, 1\]"),
        ({"top_p": 1.5}, "top-p"),
        ({"repetition_penalty": 0.0}, "repetition penalty must be a positive number"),
        ({"seed": -3}, "seed must be a non-negative integer"),
        ({"max_frames": 0}, "max frames must be a positive integer"),
        ({"fixed_frames": -1}, "fixed frames must be a positive integer"),
        ({"fixed_frames": 10, "max_frames": 5}, "below the fixed frame count"),
    ],
)
def test_options_are_validated(kwargs, match):
    with pytest.raises(InputError, match=match):
        SamplingOptions(**kwargs)


def test_official_defaults_and_labels():
    opts = SamplingOptions()
    assert (opts.greedy, opts.temperature, opts.top_k) == (False, 0.9, 50)
    assert (opts.top_p, opts.repetition_penalty) == (1.0, 1.05)
    assert opts.min_frames == 2 and not opts.ignore_eos
    assert SamplingOptions(fixed_frames=8).ignore_eos
    assert SamplingOptions(greedy=True, repetition_penalty=1.0).mode == "greedy"


def test_uniforms_are_seeded_and_prefix_stable():
    a = sampling_uniforms(7, 50, 16)
    assert a.shape == (50, 16) and a.dtype == np.float64
    assert np.all((a >= 0) & (a < 1))
    assert np.array_equal(sampling_uniforms(7, 50, 16), a)
    assert np.array_equal(sampling_uniforms(7, 20, 16), a[:20])  # a frame's draws do not depend on the budget
    assert not np.array_equal(sampling_uniforms(8, 50, 16), a)


def test_repetition_penalty_divides_positive_and_multiplies_negative_once():
    z = np.array([2.0, -2.0, 1.0, 0.5])
    opts = SamplingOptions(greedy=True, repetition_penalty=2.0)
    out = process_logits(z, opts, history=np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(out, [1.0, -4.0, 1.0, 0.5])  # each distinct id penalised once


def test_masks_and_greedy_first_index_on_ties():
    z = np.array([1.0, 3.0, 3.0, 5.0])
    allowed = np.array([True, True, True, False])
    greedy = SamplingOptions(greedy=True)
    assert sample(z, 0.99, greedy, allowed=allowed) == 1
    assert sample(z, 0.99, greedy) == 3


def test_top_k_keeps_ties_at_the_threshold():
    z = np.array([0.0, 2.0, 1.0, 2.0, 1.0])
    out = process_logits(z, SamplingOptions(temperature=1.0, top_k=3, top_p=1.0, repetition_penalty=1.0))
    np.testing.assert_array_equal(np.isfinite(out), [False, True, True, True, True])
    out = process_logits(z, SamplingOptions(temperature=1.0, top_k=2, top_p=1.0, repetition_penalty=1.0))
    np.testing.assert_array_equal(np.isfinite(out), [False, True, False, True, False])


@pytest.mark.parametrize("top_p,kept", [(0.6, [True, True, False]), (0.5, [True, False, False]),
                                        (0.81, [True, True, True])])
def test_top_p_keeps_ids_whose_preceding_mass_is_below_p(top_p, kept):
    z = np.log(np.array([0.5, 0.3, 0.2]))
    out = process_logits(z, SamplingOptions(temperature=1.0, top_k=0, top_p=top_p, repetition_penalty=1.0))
    np.testing.assert_array_equal(np.isfinite(out), kept)


def test_temperature_scales_logits():
    z = np.array([1.0, 2.0, -3.0])
    out = process_logits(z, SamplingOptions(temperature=0.5, top_k=0, top_p=1.0, repetition_penalty=1.0))
    np.testing.assert_allclose(out, z / 0.5)


def test_inverse_cdf_pick_in_id_order():
    z = np.log(np.array([0.2, 1e-300, 0.5, 0.3]))
    z[1] = -np.inf
    us = (0.0, 0.1999, 0.2001, 0.6999, 0.7001, 0.999999)
    assert [pick(z, u, greedy=False) for u in us] == [0, 0, 2, 2, 3, 3]


def test_stratified_uniforms_reproduce_the_distribution():
    rng = np.random.default_rng(0)
    z = rng.normal(size=12) * 2
    opts = SamplingOptions(temperature=0.7, top_k=8, top_p=0.9, repetition_penalty=1.0)
    final = process_logits(z, opts)
    n = 20_000
    picks = np.array([pick(final, (i + 0.5) / n, greedy=False) for i in range(n)])
    freq = np.bincount(picks, minlength=z.size) / n
    np.testing.assert_allclose(freq, softmax(final), atol=2.0 / n)


def hf_top_p_keep(z: np.ndarray, top_p: float) -> np.ndarray:
    """transformers' TopPLogitsWarper, written apart: ascending sort, drop cumulative mass <= 1 - p."""
    order = np.argsort(z, kind="stable")
    cum = np.cumsum(softmax(z)[order])
    remove_sorted = cum <= 1 - top_p
    remove_sorted[-1] = False  # min_tokens_to_keep = 1
    keep = np.ones(z.size, dtype=bool)
    keep[order[remove_sorted]] = False
    return keep


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-20, 20), min_size=2, max_size=40),
    u=st.floats(0.0, 1.0, exclude_max=True),
    top_k=st.integers(0, 45),
    top_p=st.floats(0.05, 1.0),
    temperature=st.floats(0.1, 3.0),
    masked=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_pick_is_always_in_the_support(logits, u, top_k, top_p, temperature, masked):
    z = np.array(logits)
    allowed = np.array(masked[: z.size])
    allowed[int(np.argmin(z))] = True  # at least one id allowed
    opts = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=1.0)
    final = process_logits(z, opts, allowed=allowed)
    i = sample(z, u, opts, allowed=allowed)
    assert allowed[i] and np.isfinite(final[i])
    best = int(np.argmax(np.where(allowed, z, -np.inf)))
    assert sample(z, u, SamplingOptions(greedy=True), allowed=allowed) == best


@settings(max_examples=200, deadline=None)
@given(logits=st.lists(st.floats(-10, 10), min_size=2, max_size=30), top_p=st.floats(0.05, 0.999))
def test_top_p_matches_the_transformers_formulation(logits, top_p):
    z = np.array(logits)
    if len(np.unique(z)) < z.size:  # exact ties may be ordered differently by the two sorts
        return
    probs = softmax(z)
    cum_desc = np.cumsum(np.sort(probs)[::-1])
    if np.any(np.abs(cum_desc - top_p) < 1e-9) or np.any(np.abs(cum_desc - (1 - top_p)) < 1e-9):
        return  # boundary within rounding
    ours = np.isfinite(process_logits(z, SamplingOptions(temperature=1.0, top_k=0, top_p=top_p,
                                                         repetition_penalty=1.0)))
    np.testing.assert_array_equal(ours, hf_top_p_keep(z, top_p))


def test_penalty_and_temperature_commute():
    rng = np.random.default_rng(1)
    z = rng.normal(size=30) * 3
    hist = np.array([1, 4, 4, 9])
    opts = SamplingOptions(temperature=0.7, top_k=0, top_p=1.0, repetition_penalty=1.3)
    ours = process_logits(z, opts, history=hist)
    # transformers order: penalty on raw logits, then temperature
    ref = z.copy()
    ids = np.unique(hist)
    ref[ids] = np.where(ref[ids] > 0, ref[ids] / 1.3, ref[ids] * 1.3)
    np.testing.assert_allclose(ours, ref / 0.7, rtol=1e-15)


def test_group0_allowed():
    cfg = generator_preset("tiny")
    eos = cfg.codec_eos_token_id
    early = group0_allowed(cfg, 1, SamplingOptions())
    assert early[: cfg.num_codes].all() and not early[cfg.num_codes:].any()
    late = group0_allowed(cfg, 2, SamplingOptions())
    assert late[eos] and late.sum() == cfg.num_codes + 1
    assert not group0_allowed(cfg, 100, SamplingOptions(fixed_frames=200))[eos]
    assert group0_allowed(cfg, 0, SamplingOptions(min_frames=0))[eos]
