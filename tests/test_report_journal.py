"""Journals rendered from stored fixture results: golden markdown, determinism, verdicts, parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from report_support import FIXTURES, check_golden, section, table_rows
from synthetic_runs import NUMPY, TORCH, fixture_sets, parity_record, parity_run, stage_case, stages_run

from perfkit.report.journal import JournalEntry, Plot, render_journal
from perfkit.report.sources import ResultSet, load_results

PLOTS = (Plot("History", "journal_plots/history.png"),)


def entries(*names: str) -> list[JournalEntry]:
    return [JournalEntry(name, load_results([str(FIXTURES / name)])) for name in names]


def test_fixture_files_are_the_synthetic_runs() -> None:
    """The stored fixtures are exactly what ``python tests/synthetic_runs.py`` writes."""
    for name, runs in fixture_sets().items():
        assert load_results([str(FIXTURES / name)]).runs == ResultSet.of(runs).runs


def test_journal_golden() -> None:
    check_golden("journal.md", render_journal(entries("base", "head"), plots=PLOTS).markdown)


def test_history_journal_golden() -> None:
    j = render_journal(entries("base", "head", "same"), title="Three entries")
    check_golden("journal-history.md", j.markdown)
    assert "## History" in j.markdown
    assert "**Cumulative:" in j.markdown  # the second entry is compared with the first baseline too


def test_journal_is_deterministic() -> None:
    a = render_journal(entries("base", "head"), plots=PLOTS).markdown
    b = render_journal(entries("base", "head"), plots=PLOTS).markdown
    sets = fixture_sets()
    c = render_journal([JournalEntry("base", ResultSet.of(sets["base"])),
                        JournalEntry("head", ResultSet.of(reversed(sets["head"])))], plots=PLOTS).markdown
    assert a == b == c


def _verdicts(markdown: str, variant: str) -> list[tuple[str, str]]:
    """(stage label, verdict cell) of a variant's per-stage table, in order (the total row left out)."""
    rows = table_rows(section(markdown, f"### stages · {variant}"))
    return [(r[0], r[7]) for r in rows if not r[0].startswith("**Total")]


def test_slowed_stage_is_slower_and_the_others_unchanged() -> None:
    """A deliberate 1.4x slowdown of one stage (synthetic samples, no timing) is named slower; every
    other stage is no significant change, and only the slowed stage is reported as a regression."""
    base = ResultSet.of([stages_run("b", "aaaa", [stage_case(NUMPY, 11)]),
                         parity_run("pb", "aaaa", [parity_record(NUMPY)])])
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(NUMPY, 12, slow={"pre_transformer": 1.4})]),
                         parity_run("ph", "bbbb", [parity_record(NUMPY)])])
    j = render_journal([JournalEntry("base", base), JournalEntry("head", head)])
    verdicts = _verdicts(j.markdown, "numpy:dtype=float32")
    assert len(verdicts) == 19  # 6 stages, 4 blocks and their 2 sub-stages each, final
    assert [(k, v) for k, v in verdicts if v != "no significant change"] == [("Pre-transformer", "**slower**")]
    assert j.regressions == ("stages numpy:dtype=float32 tiny/frames=25/seed=0: Pre-transformer 1.40x slower",)
    assert not j.invalid


def test_a_significant_total_is_bold_once() -> None:
    """Every stage 1.4x slower: the end-to-end row's verdict cell reads ``**slower**``, not ``****slower****``."""
    base = ResultSet.of([stages_run("b", "aaaa", [stage_case(NUMPY, 11)])])
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(NUMPY, 12, scale=1.4)])])
    markdown = render_journal([JournalEntry("base", base), JournalEntry("head", head)]).markdown
    rows = table_rows(section(markdown, "### stages · numpy:dtype=float32"))
    total = next(r for r in rows if r[0].startswith("**Total"))
    assert total[7] == "**slower**"
    assert "****" not in markdown


def test_too_few_samples_say_why_nothing_is_significant() -> None:
    """4 samples a side, 1.4x slower: the total line says the counts cannot reach p < 0.01."""
    base = ResultSet.of([stages_run("b", "aaaa", [stage_case(NUMPY, 11, n=4)])])
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(NUMPY, 12, n=4, scale=1.4)])])
    markdown = render_journal([JournalEntry("base", base), JournalEntry("head", head)]).markdown
    assert "4 and 4 samples cannot reach p < 0.01, the smallest p is 0.029" in markdown
    many = render_journal(entries("base", "head")).markdown
    assert "cannot reach" not in many


def test_a_slowed_sub_stage_is_named_with_its_block() -> None:
    """Only ``block_2.tconv`` slowed: the table row and the regression line say which block's tconv."""
    base = ResultSet.of([stages_run("b", "aaaa", [stage_case(NUMPY, 11)])])
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(NUMPY, 12, slow={"block_2.tconv": 1.5})])])
    j = render_journal([JournalEntry("base", base), JournalEntry("head", head)])
    slower = [r for r in j.regressions if "Block 2 tconv" in r]
    assert slower == ["stages numpy:dtype=float32 tiny/frames=25/seed=0: Block 2 tconv 1.50x slower"]
    assert all(": tconv" not in r and ": resunits" not in r for r in j.regressions)


def test_fixture_journal_names_the_slowed_stage() -> None:
    j = render_journal(entries("base", "head"))
    verdicts = _verdicts(j.markdown, "numpy:dtype=float32")
    assert [(k, v) for k, v in verdicts if v != "no significant change"] == [("Upsample 1", "**slower**")]
    assert any("Upsample 1" in r for r in j.regressions)


def test_parity_failure_marks_timing_rows_invalid() -> None:
    j = render_journal(entries("base", "head"))
    rows = table_rows(section(j.markdown, "### stages · torch"))
    assert rows and all(r[7] == "INVALID (parity)" for r in rows)
    summary = {r[1]: r for r in table_rows(section(j.markdown, "## Summary"))}
    assert summary[TORCH][8] == "INVALID" and summary[TORCH][10] == "**FAIL**"
    assert summary[NUMPY][10] == "PASS"
    torch = section(j.markdown, "### stages · torch")
    assert "**FAIL**: block\\_2.tconv: NAN in the output. Timings of this variant are marked INVALID." in torch
    assert j.invalid == (
        "stages torch:device=cpu,dtype=float32 tiny/frames=25/seed=0: block_2.tconv: NAN in the output",
    )


def test_invalid_rows_never_count_as_regressions() -> None:
    base = ResultSet.of([stages_run("b", "aaaa", [stage_case(TORCH, 1)])])
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(TORCH, 2, slow={"final": 3.0})]),
                         parity_run("ph", "bbbb", [parity_record(TORCH, fail_stage="final", failure="silence")])])
    j = render_journal([JournalEntry("base", base), JournalEntry("head", head)])
    assert j.regressions == ()
    assert j.invalid and "final: SILENCE" in j.invalid[0]


def test_every_timing_table_has_a_parity_line() -> None:
    j = render_journal(entries("base", "head"))
    for variant in ("numpy", "torch"):
        assert "Parity (after) vs numpy:dtype=float64 (waveform)" in section(j.markdown, f"### stages · {variant}")
    unchecked = render_journal([JournalEntry("a", ResultSet.of([stages_run("b", "a", [stage_case(NUMPY, 1)])])),
                                JournalEntry("b", ResultSet.of([stages_run("h", "b", [stage_case(NUMPY, 2)])]))])
    assert "Parity (after): not measured for this variant" in unchecked.markdown


def test_names_from_results_are_escaped() -> None:
    evil = "numpy:tag=<img src=x onerror=alert(1)>|**x**"
    base = ResultSet.of([stages_run("b|<b>", "aaaa", [stage_case(evil, 1)])])
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(evil, 2)])])
    text = render_journal([JournalEntry("<i>base</i>", base), JournalEntry("head", head)]).markdown
    assert "<img" not in text and "<i>" not in text and "<b>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;\\|\\*\\*x\\*\\*" in text


def test_needs_two_entries() -> None:
    with pytest.raises(ValueError):
        render_journal(entries("base"))


def test_holm_threshold_controls_the_family_of_stage_comparisons():
    from perfkit.report.journal import holm_threshold

    assert holm_threshold([0.5, 0.001, 0.02], 0.05) == 0.02  # 0.001 <= .05/3, 0.02 <= .05/2, 0.5 > .05
    assert holm_threshold([0.001, 0.03, 0.04], 0.05) == 0.001  # 0.03 > .05/2 stops the step-down
    assert holm_threshold([0.009] * 50, 0.01) == -1.0  # p < alpha once, but not among 50 tests
    assert holm_threshold([], 0.01) == -1.0


def test_repeated_runs_of_the_same_code_are_pooled() -> None:
    """4 samples a side cannot reach p < 0.01; two runs of 4 on each side, pooled, reach it, and every
    median is taken over all eight samples."""
    def side(commit: str, scale: float, seeds: tuple[int, int]) -> ResultSet:
        return ResultSet.of([stages_run(f"{commit}{i}", commit, [stage_case(NUMPY, s, n=4, scale=scale)],
                                        started=f"2026-01-0{i + 1}T00:00:00+00:00")
                             for i, s in enumerate(seeds)])

    base, head = side("aaaa", 1.0, (11, 13)), side("bbbb", 1.4, (12, 14))
    markdown = render_journal([JournalEntry("base", base), JournalEntry("head", head)]).markdown
    assert "Repeated runs are pooled" in markdown and "base: 2 runs, head: 2 runs" in markdown
    assert "cannot reach" not in markdown
    total = next(r for r in table_rows(section(markdown, "### stages · numpy:dtype=float32"))
                 if r[0].startswith("**Total"))
    assert total[7] == "**slower**"
    pooled = [v for run in base.runs for v in run.cases[0].series_named("e2e").stage("decode").wall_ns]
    assert total[1] == f"**{np.median(pooled) / 1e6:.4g}**"


def test_a_run_of_other_code_replaces_the_earlier_one() -> None:
    """Two runs of one case whose source hashes differ are not pooled: the later one stands alone."""
    old = stage_case(NUMPY, 11, n=4, scale=3.0)
    runs = [stages_run("r0", "aaaa", [dataclasses.replace(old, source_hash="older")]),
            stages_run("r1", "aaaa", [stage_case(NUMPY, 13, n=4)], started="2026-01-02T00:00:00+00:00")]
    base = ResultSet.of(runs)
    head = ResultSet.of([stages_run("h", "bbbb", [stage_case(NUMPY, 12, n=4)])])
    markdown = render_journal([JournalEntry("base", base), JournalEntry("head", head)]).markdown
    assert "Repeated runs are pooled" not in markdown
    assert "4 and 4 samples cannot reach p < 0.01" in markdown
