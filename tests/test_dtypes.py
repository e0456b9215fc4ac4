"""Element sizes by dtype name, and the weight bytes a backend holds in its compute dtype."""

from __future__ import annotations

import numpy as np
import pytest

from perfkit import registry
from perfkit.model.dtypes import element_bytes, parameter_count, weight_bytes_in
from perfkit.model.vocoder_config import vocoder_preset
from perfkit.model.vocoder_model import VocoderModel
from perfkit.run.suite import CaseRequest, get_suite


def test_element_bytes_by_name() -> None:
    assert [element_bytes(d) for d in ("float64", "float32", "bfloat16", "float16")] == [8, 4, 2, 2]
    assert element_bytes("int8") is None


def test_weight_bytes_in_counts_parameters_at_the_dtype_size() -> None:
    w = {"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)}
    assert parameter_count(w.values()) == 17
    assert weight_bytes_in(w, "float32") == 68 == sum(x.nbytes for x in w.values())
    assert weight_bytes_in(w, "bfloat16") == 34 and weight_bytes_in(w, "float64") == 136
    assert weight_bytes_in(w, "int8") is None


def test_model_weight_bytes_in_its_float32_is_its_own_bytes() -> None:
    model = VocoderModel.synthetic(vocoder_preset("tiny"))
    assert model.weight_bytes_in("float32") == model.weight_bytes
    assert model.weight_bytes_in("bfloat16") * 2 == model.weight_bytes


@pytest.mark.parametrize("dtype, factor", [("float32", 1.0), ("float64", 2.0)])
def test_stages_workload_reports_the_weights_in_the_backend_dtype(dtype: str, factor: float) -> None:
    suite = get_suite("stages")
    case = suite.cases(CaseRequest("tiny", frames=(2,)))[0]
    prepared = suite.prepare(case)
    workload = suite.load(registry.create(f"numpy:dtype={dtype}"), prepared)
    assert workload.weight_bytes == factor * prepared[0].weight_bytes
