"""``perfkit journal`` as a user runs it: files or directories of stored results, markdown and plots out,
deterministic output, and the exit status CI uses."""

from __future__ import annotations

from pathlib import Path

from report_support import FIXTURES, check_golden, section, table_rows

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


def test_profiles_are_linked_and_never_compared(cli, tmp_path: Path) -> None:
    """A ``perfkit profile`` run among the head's results: listed under Profiles with links (relative to
    the journal) to the flame graph and speedscope files beside it, and not taken for a timing case."""
    import shutil

    from synthetic_runs import profile_run

    from perfkit.store.files import write_run

    head = tmp_path / "results" / "head"
    shutil.copytree(HEAD, head)
    run = profile_run("20260102T000001Z-profile-head", "bbbb2222")
    files = head / f"{run.run_id}.profile"
    files.mkdir()
    (files / "flamegraph.svg").write_text("<svg/>")
    (files / "profile.speedscope.json").write_text("{}")
    write_run(run, head)
    out = tmp_path / "journal" / "entry.md"
    code, _, stderr = cli("journal", "--base", BASE, "--head", str(head), "--out", out, "--no-plots")
    assert code == 0, stderr
    text = out.read_text()
    (row,) = table_rows(section(text, "## Profiles"))
    assert row[1] == "numpy:dtype=float32" and row[4] == "100 Hz × 5 s, native frames" and row[5] == "499"
    assert row[6] == "causal\\_conv 80%, snake\\_beta 10%"
    links = [part.split("](", 1)[1].rstrip(")") for part in row[7].split(", ")]
    assert links == [f"../results/head/{run.run_id}.profile/flamegraph.svg",
                     f"../results/head/{run.run_id}.profile/profile.speedscope.json"]
    assert all((out.parent / link).is_file() for link in links)
    assert "profile ·" not in text  # no timing table, not "measured on one side only"
    without = tmp_path / "without.md"
    assert cli("journal", "--base", BASE, "--head", HEAD, "--out", without, "--no-plots")[0] == 0
    assert section(text, "## Summary") == section(without.read_text(), "## Summary")
    assert "## Profiles" not in without.read_text()


def test_a_copy_with_one_stage_scaled_names_only_that_stage(cli, tmp_path: Path) -> None:
    """The deliberate-slowdown check on stored files: the base's result files copied, ``upsample_0``'s
    samples scaled by 1.5 in every series; the journal names that stage slower (exit 1 with
    --fail-on-regression) and every other stage of every variant unchanged."""
    import json

    head = tmp_path / "head"
    head.mkdir()
    for src in Path(BASE).glob("*.json"):
        doc = json.loads(src.read_text())
        doc["run_id"] += "-slow"
        for case in doc["cases"]:
            for series in case["series"]:
                for stage in series["stages"]:
                    if stage["name"] == "upsample_0":
                        stage["wall_ns"] = [round(1.5 * x) for x in stage["wall_ns"]]
        (head / f"{doc['run_id']}.json").write_text(json.dumps(doc))
    code, stdout, stderr = cli("journal", "--base", BASE, "--head", str(head), "--no-plots", "--fail-on-regression")
    assert code == 1
    for variant in ("numpy:dtype=float32", "torch:device=cpu,dtype=float32"):
        rows = table_rows(section(stdout, f"### stages · {variant.replace('_', chr(92) + '_')}"))
        changed = [(r[0], r[7]) for r in rows if r[7].strip("*") != "no significant change"]
        assert changed == [("Upsample 0", "**slower**")], variant
        assert f"regression: stages {variant} tiny/frames=25/seed=0: Upsample 0 1.50x slower" in stderr
    assert "failing: 2 significant regression(s), 0 parity failure(s)" in stderr
