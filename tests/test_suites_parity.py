"""The parity suite: real backends against the float64 reference in child processes, a fake backend that
computes nothing failing it, and its verdicts marking timings invalid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from perfkit.suites.parity import _agreement

from perfkit.errors import InputError
from perfkit.report.validity import Validity
from perfkit.run.fake_backend import TARGET
from perfkit.run.plan import BackendRef, make_plan
from perfkit.run.suite import CaseRequest, get_suite
from perfkit.store.files import load_run
from perfkit.store.parity_records import ParityRecord, parity_records


@pytest.fixture(scope="module")
def parity_outcome(tmp_path_factory: pytest.TempPathFactory):
    plan = make_plan("parity", ["numpy"], CaseRequest("tiny", frames=(6,), params={"gen_frames": "3"}),
                     extra=[BackendRef("fake:tag=broken", target=TARGET)])
    return get_suite("parity").execute(plan, tmp_path_factory.mktemp("results"))


def test_parity_run_stored_and_readable(parity_outcome) -> None:
    assert parity_outcome.path is not None
    run = load_run(parity_outcome.path)
    assert run == parity_outcome.run and run.suite == "parity"
    records = {r.variant: r for r in parity_records(run)}
    assert set(records) == {"numpy:dtype=float32", "fake:tag=broken"}


def test_numpy_float32_passes_every_stage(parity_outcome) -> None:
    record = next(r for r in parity_records(parity_outcome.run) if r.variant == "numpy:dtype=float32")
    assert record.passed and record.dtype == "float32"
    assert [s.stage for s in record.stages][:2] == ["rvq_decode", "pre_conv"]
    assert len(record.stages) == 15 and all(s.snr_db >= 60 and s.correlation >= 0.99999 for s in record.stages)
    assert record.waveform is not None and record.waveform.passed
    gen = record.generator
    assert gen is not None and gen.frames == 3 and gen.logits is not None and gen.logits.passed
    assert 0.0 <= gen.agreement <= 1.0


def test_fake_backend_fails_and_its_timings_are_invalid(parity_outcome) -> None:
    run = parity_outcome.run
    record = next(r for r in parity_records(run) if r.variant == "fake:tag=broken")
    assert not record.passed
    assert record.stages[0].failure == "shape"  # it returns its input: codes where hidden states belong
    assert "does not implement the generator" in record.generator_note
    case = next(c for c in run.cases if c.variant == "fake:tag=broken")
    assert case.status == "failed" and case.failures[0].phase == "parity"
    status = Validity([run]).status("fake:tag=broken", "tiny")
    assert status.invalid and "SHAPE" in status.reason
    assert Validity([run]).status("numpy:dtype=float32", "tiny").state == "pass"


def test_records_round_trip_with_non_finite_values(parity_outcome) -> None:
    for record in parity_records(parity_outcome.run):
        assert ParityRecord.from_dict(record.to_dict()) == record or np.isnan(record.waveform.snr_db)


def test_greedy_agreement_and_first_divergent_frame() -> None:
    ref = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert _agreement(ref.copy(), ref) == (1.0, None)
    test = ref.copy()
    test[1, 2] = 0
    assert _agreement(test, ref) == (7 / 8, 2)
    assert _agreement(ref[:, :2], ref) == (0.5, 2)  # missing frames count as different


def test_cases_and_bad_parameters() -> None:
    suite = get_suite("parity")
    cases = suite.cases(CaseRequest("tiny", frames=(4, 8)))
    assert [c.name for c in cases] == ["tiny/frames=4/seed=0/gen_frames=8", "tiny/frames=8/seed=0/gen_frames=8"]
    assert suite.cases(CaseRequest("qwen3-tts-12hz"))[0].param("gen_frames") == 0  # the big generator: opt-in
    with pytest.raises(InputError, match="no parameter"):
        suite.cases(CaseRequest("tiny", params={"bogus": "1"}))
    with pytest.raises(InputError):
        suite.cases(CaseRequest("tiny", params={"gen_frames": "-1"}))


def test_parity_suite_is_not_timed_by_the_engine(tmp_path: Path) -> None:
    suite = get_suite("parity")
    assert suite.timed is False
    with pytest.raises(InputError, match="not a timing suite"):
        suite.load(None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("corrupt", "failure"), [
    (lambda y: np.where(np.arange(y.size) == 3, np.nan, y), "nan"),
    (lambda y: np.where(np.arange(y.size) == 3, np.inf, y), "inf"),
    (lambda y: np.zeros_like(y), "silence"),
])
def test_nan_inf_and_silence_fail_whatever_the_tolerance(corrupt, failure: str) -> None:
    """The hard failures of the parity check: even a tolerance that accepts anything refuses them."""
    from perfkit.measure.parity import Tolerance, compare

    reference = np.sin(np.linspace(0.0, 20.0, 64))
    result = compare(corrupt(reference), reference)
    assert result.failure == failure
    assert not result.passes(Tolerance(min_snr_db=-np.inf, min_correlation=-1.0))
    assert compare(reference, reference).passes(Tolerance(min_snr_db=60.0, min_correlation=0.99999))
