"""The RTF tables of a batch sweep: per-batch wall, per-utterance wall, aggregate audio / xRT / frames/s,
and the batching mode the worker recorded with the case."""

from __future__ import annotations

import dataclasses

import pytest
from report_support import table_rows
from synthetic_runs import rtf_run

from perfkit.report.rtf_tables import batch_of, rtf_batch_table, rtf_table
from perfkit.report.validity import Validity
from perfkit.store.records import Case, CaseRecord, Run, SeriesRecord, StageRecord

FRAME_RATE = 12.5
#: The batch-4 pass takes this many times a batch-1 pass (less than 4: the weights are read once per step).
BATCH4_COST = 2.5


def with_batch(case: CaseRecord, batch: int, mode: str, cost: float) -> CaseRecord:
    """``case`` at batch size ``batch``: its samples scaled by ``cost``, ``batch_mode`` recorded."""
    scaled = tuple(
        dataclasses.replace(s, stages=tuple(StageRecord(st.name, tuple(round(v * cost) for v in st.wall_ns))
                                            for st in s.stages))
        for s in case.series
    )
    return dataclasses.replace(case, case=Case(case.case.preset, (*case.case.params, ("batch", batch))),
                               series=scaled, metadata={"batch": batch, "batch_mode": mode})


def sweep_run(mode: str = "native", threads: int | None = None) -> Run:
    base = rtf_run("20260102T000000Z-rtf-batch", "cccc3333", threads=threads)
    batched = tuple(with_batch(c, 4, mode, BATCH4_COST) for c in base.cases)
    return dataclasses.replace(base, cases=base.cases + batched)


def wall_ms(case: CaseRecord) -> float:
    series: SeriesRecord = case.series[0]
    totals = sorted(sum(s.wall_ns[i] for s in series.stages) for i in range(len(series.stages[0].wall_ns)))
    n = len(totals)
    return (totals[n // 2] if n % 2 else (totals[n // 2 - 1] + totals[n // 2]) / 2) / 1e6


@pytest.mark.parametrize("mode", ["native", "looped"])
def test_rtf_table_shows_batch_and_aggregate_rates(mode: str) -> None:
    run = sweep_run(mode)
    cases = sorted(run.cases, key=lambda c: (int(c.case.param("frames")), batch_of(c)))
    rows = table_rows(rtf_table(cases, Validity([run])))
    assert [(r[0], r[3], r[4]) for r in rows] == [
        (t, b, m) for t in ("short", "medium", "long") for b, m in (("1", "-"), ("4", mode))]
    for case, r in zip(cases, rows, strict=True):
        b, frames = batch_of(case), int(case.case.param("frames"))
        wall_s = float(r[5]) / 1e3
        assert wall_s * 1e3 == pytest.approx(wall_ms(case), rel=2e-3)
        assert float(r[7]) / 1e3 == pytest.approx(wall_s / b, rel=2e-3)  # wall / utterance
        assert float(r[8]) == pytest.approx(b * frames / FRAME_RATE, rel=1e-3)  # audio of every item
        assert float(r[9]) == pytest.approx(wall_s / float(r[8]), rel=2e-3)  # RTF, aggregate
        assert float(r[10]) == pytest.approx(float(r[8]) / wall_s, rel=2e-3)  # xRT, aggregate
        assert float(r[11]) == pytest.approx(b * frames / wall_s, rel=2e-3)  # frames/s, aggregate
    # batch 4 at 2.5 times the wall: 1.6 times the aggregate xRT of batch 1
    short1, short4 = rows[0], rows[1]
    assert float(short4[10]) / float(short1[10]) == pytest.approx(4 / BATCH4_COST, rel=5e-3)


def test_batch_sweep_table_columns_per_batch_size() -> None:
    run = sweep_run("native", threads=2)
    table = rtf_batch_table([run], Validity([run]))
    header = table.splitlines()[0]
    assert "B=1: ms / utterance (xRT)" in header and "B=4: ms / utterance (xRT)" in header
    rows = table_rows(table)
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("numpy:dtype=float32", "2", t, "native") for t in ("long", "medium", "short")]
    by_text = {r[2]: r for r in rows}
    one, four = (float(by_text["short"][i].split()[0]) for i in (5, 6))
    assert four == pytest.approx(one * BATCH4_COST / 4, rel=5e-3)


def test_batch_sweep_table_needs_two_batch_sizes() -> None:
    run = rtf_run("20260102T000000Z-rtf", "cccc3333")
    assert rtf_batch_table([run], Validity([run])) == ""


def test_case_metadata_round_trips_and_is_omitted_when_empty() -> None:
    run = sweep_run("looped")
    plain, batched = run.cases[0], run.cases[-1]
    assert "metadata" not in plain.to_dict()
    assert batched.to_dict()["metadata"] == {"batch": 4, "batch_mode": "looped"}
    assert CaseRecord.from_dict(batched.to_dict()) == batched
    assert CaseRecord.from_dict(plain.to_dict()).metadata == {}
