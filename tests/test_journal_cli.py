"""``perfkit journal`` as a user runs it: files or directories of stored results, markdown and plots out,
deterministic output, and the exit status CI uses."""

from __future__ import annotations

from pathlib import Path

from report_support import FIXTURES, check_golden

BASE, HEAD, SAME = (str(FIXTURES / n) for n in ("base", "head", "same"))


def test_journal_to_file_with_plots(cli, tmp_path: Path) -> None:
    out = tmp_path / "journal" / "entry.md"
    code, stdout, stderr = cli("journal", "--base", BASE, "--head", HEAD, "--out", out)
    assert code == 0  # no --fail-on-regression: regressions are reported, not fatal
    assert f"journal: {out}" in stdout
    text = out.read_text()
    check_golden("journal-cli.md", text)
    plots = sorted(p.name for p in (out.parent / "entry_plots").iterdir())
    assert "history.png" in plots and "history.svg" in plots
    for line in text.splitlines():
        if line.startswith("!["):
            assert (out.parent / line.split("](", 1)[1].rstrip(")")).is_file()
    assert "regression: stages numpy:dtype=float32 tiny/frames=25/seed=0: Upsample 1 1.50x slower" in stderr
    assert "parity failure (timings invalid): stages torch" in stderr


def test_regenerating_gives_identical_markdown(cli, tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "j.md", tmp_path / "b" / "j.md"
    assert cli("journal", "--base", BASE, "--head", HEAD, "--out", a)[0] == 0
    assert cli("journal", "--base", BASE, "--head", HEAD, "--out", b)[0] == 0
    assert a.read_bytes() == b.read_bytes()
    code, stdout, _ = cli("journal", "--base", BASE, "--head", HEAD, "--no-plots")
    assert code == 0 and stdout == a.read_text().split("\n## Plots\n")[0]  # the same, minus the plot links


def test_fail_on_regression(cli) -> None:
    code, _, stderr = cli("journal", "--base", BASE, "--head", HEAD, "--no-plots", "--fail-on-regression")
    assert code == 1 and "failing: 1 significant regression(s), 1 parity failure(s)" in stderr
    code, stdout, _ = cli("journal", "--base", BASE, "--head", SAME, "--no-plots", "--fail-on-regression")
    assert code == 0 and "| **slower** |" not in stdout


def test_history_and_labels(cli) -> None:
    code, stdout, _ = cli("journal", "--history", BASE, HEAD, SAME, "--label", "baseline", "--label", "opt 1",
                          "--label", "opt 2", "--no-plots", "--title", "Vocoder optimization log")
    assert code == 0
    assert stdout.startswith("# Vocoder optimization log\n")
    assert "## Entry 1: opt 1" in stdout and "## Entry 2: opt 2" in stdout and "## History" in stdout


def test_run_ids_resolve_in_the_results_directory(cli) -> None:
    code, stdout, _ = cli("journal", "--results", BASE, "--base", "20260101T000000Z-stages",
                          "--head", str(FIXTURES / "head" / "20260102T000000Z-stages-head.json"), "--no-plots")
    assert code == 0 and "Parity (after): not measured" in stdout


def test_bad_arguments_give_one_line_errors(cli, tmp_path: Path) -> None:
    for args, message in [
        (("--base", BASE), "give --base RESULT… and --head RESULT…"),
        (("--history", BASE), "--history needs at least two RESULTs"),
        (("--base", BASE, "--head", "no-such-run"), "neither a file, a directory, nor a run id"),
        (("--base", BASE, "--head", HEAD, "--label", "one"), "--label given 1 time(s) for 2 entries"),
    ]:
        code, _, stderr = cli("journal", *args, "--results", str(tmp_path))
        assert code == 2 and message in stderr and "Traceback" not in stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    code, _, stderr = cli("journal", "--base", str(garbage), "--head", HEAD)
    assert code == 2 and "garbage.json" in stderr
