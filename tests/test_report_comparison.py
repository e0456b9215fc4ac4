"""The comparison report (``perfkit compare``'s markdown) and the plots, from stored fixture results."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import FIXTURES, check_golden, section, table_rows
from synthetic_runs import NUMPY, TORCH

from perfkit.report import plots
from perfkit.report.comparison import render_comparison
from perfkit.report.sources import load_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def report(tmp_path: Path | None = None):
    return render_comparison(load_results([str(FIXTURES / "head")]), variants=[NUMPY, TORCH],
                             command=["perfkit", "compare", "numpy", "torch"],
                             plots_dir=tmp_path / "plots" if tmp_path else None)


def test_comparison_golden(tmp_path: Path) -> None:
    rendered = report(tmp_path)
    check_golden("comparison.md", rendered.markdown)
    names = sorted(p.name for p in rendered.plots)
    assert names == sorted(f"{stem}.{ext}" for stem in ("stages", "speedup", "memory", "rtf", "first_chunk")
                           for ext in ("png", "svg"))
    for p in rendered.plots:
        data = p.read_bytes()
        assert len(data) > 1000
        if p.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
        else:
            assert b"<svg" in data and b"<dc:date>" not in data


def test_invalid_variant_is_marked_in_every_table() -> None:
    md = report().markdown
    summary = {r[0]: r for r in table_rows(section(md, "## Summary"))}
    assert summary[TORCH][1] == "INVALID" and summary[TORCH][6] == "INVALID"
    assert summary[NUMPY][1] == "PASS" and summary[NUMPY][6] == "baseline"
    side = table_rows(section(md, "### tiny/frames=25/seed=0"))
    assert all("INVALID" in r[-1] for r in side)  # the torch-vs-numpy column
    torch_table = table_rows(section(md, f"#### {TORCH}"))
    assert torch_table and all(r[-1] == "INVALID" for r in torch_table)
    memory = {r[0]: r for r in table_rows(section(md, "## Memory"))}
    assert memory[TORCH][-1] == "INVALID" and memory[NUMPY][-1] == "PASS"
    parity = {r[0]: r for r in table_rows(section(md, "## Parity"))}
    assert parity[TORCH][-1].startswith("**FAIL**") and parity[NUMPY][-1] == "PASS"


def test_rtf_and_streaming_tables() -> None:
    md = report().markdown
    rtf = section(md, "## Real-time factor")
    assert "RTF = wall time / audio duration (lower is better" in rtf and "xRT" in rtf
    rows = table_rows(section(md, f"### {NUMPY}"))
    assert [r[0] for r in rows] == ["short", "medium", "long"]
    for r in rows:
        assert (r[3], r[4]) == ("1", "-")  # batch 1: no batching to report
        wall_s, per_utt_s = float(r[5]) / 1e3, float(r[7]) / 1e3
        audio_s, rtf_value, xrt = float(r[8]), float(r[9]), float(r[10])
        assert per_utt_s == wall_s
        assert rtf_value == pytest.approx(wall_s / audio_s, rel=2e-3)
        assert xrt == pytest.approx(audio_s / wall_s, rel=2e-3)
    stream = table_rows(section(md, "## Streaming"))
    assert [r[1] for r in stream] == ["1", "4", "12"]
    first = [float(r[3]) for r in stream]
    assert first == sorted(first)  # bigger chunks take longer to arrive


def test_plot_functions_write_png_and_svg_deterministically(tmp_path: Path) -> None:
    bands = {"numpy": [plots.Band(1.0, 0.5, 0.4, 0.6), plots.Band(4.0, 0.45, 0.4, 0.5)],
             "evil $x^2$ <b>": [plots.Band(1.0, 0.7, 0.6, 0.8), plots.Band(4.0, 0.6, 0.55, 0.7)]}
    a = plots.rtf_vs_length(bands, tmp_path / "a", invalid=["evil $x^2$ <b>"])
    b = plots.rtf_vs_length(bands, tmp_path / "b", invalid=["evil $x^2$ <b>"])
    assert [p.name for p in a] == ["rtf.png", "rtf.svg"]
    assert a[1].read_bytes() == b[1].read_bytes()
    written = [
        *plots.first_chunk_latency(bands, tmp_path),
        *plots.history_line(["a", "b"], {"case": [plots.Band(0, 2.0, 1.9, 2.1), plots.Band(1, 1.5, 1.4, 1.6)]},
                            tmp_path),
        *plots.memory_bars(["vocoder, 25 frames"], {"numpy": {"vocoder, 25 frames": (50.0, 2.0, 10.0)}}, tmp_path),
        *plots.speedup_heatmap(["torch"], ["RVQ decode", "Final"], {("torch", "Final"): 2.0}, "numpy", tmp_path),
        *plots.stage_bars(["A", "B"], {"numpy": {"A": 1.0, "B": 2.0}}, tmp_path, "../../escape attempt"),
    ]
    assert all(p.parent == tmp_path and p.stat().st_size > 1000 for p in written)


def test_a_report_without_plots_does_not_import_matplotlib() -> None:
    """``--no-plots`` (no ``plots_dir``) renders the whole report without importing matplotlib; the first
    plot imports it. A fresh interpreter, since this one has plotted already."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from perfkit.report.comparison import render_comparison\n"
        "from perfkit.report.sources import load_results\n"
        f"md = render_comparison(load_results([{str(FIXTURES / 'head')!r}])).markdown\n"
        "assert '## Vocoder per stage' in md and '## Memory' in md, md[:300]\n"
        "print('matplotlib' in sys.modules)\n"
        "from perfkit.report import plots\n"
        "plots._figure()\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_memory_configurations_sort_by_frames_as_numbers_and_plot_short_labels() -> None:
    from perfkit.report.memory_tables import configuration_key, short_configuration

    results = load_results([str(FIXTURES / "head")])
    items = [(r, c) for r in results.timing_runs() for c in r.cases if c.memory is not None]
    rtf = sorted((rc for rc in items if rc[0].suite == "rtf"), key=lambda rc: configuration_key(*rc))
    assert [short_configuration(*rc) for rc in rtf] == [
        "rtf: short text, 65 frames", "rtf: medium text, 265 frames", "rtf: long text, 575 frames"]
    stages = next(rc for rc in items if rc[0].suite == "stages")
    assert short_configuration(*stages) == "stages: 25 frames"
    memory_rows = [r[1] for r in table_rows(section(report().markdown, "## Memory"))]
    assert memory_rows[:3] == [f"rtf: tiny/text={t}/words={w}/frames={f}/seed=0"
                               for t, w, f in (("short", 13, 65), ("medium", 53, 265), ("long", 115, 575))]


def test_profile_runs_are_not_timing_runs() -> None:
    from synthetic_runs import profile_run

    from perfkit.report.sources import ResultSet

    results = ResultSet.of([*load_results([str(FIXTURES / "head")]).runs, profile_run("p", "bbbb2222")])
    assert "profile" not in {r.suite for r in results.timing_runs()}
    assert "parity" not in {r.suite for r in results.timing_runs()}
