"""hyperfine wrapper: command lines, its JSON and markdown exports, and its results as perfkit records.

Parsing is tested on real hyperfine 1.15.0 exports recorded under ``tests/fixtures/tools`` (see its
README); one real hyperfine run happens when hyperfine is installed.
"""

from __future__ import annotations

import copy
import json
import shlex
import sys
from pathlib import Path

import pytest

from perfkit.errors import InputError, ToolError, ToolMissing
from perfkit.store.files import dumps_run, parse_run
from perfkit.store.records import CASE_FAILED, CASE_OK, RUN_COMPLETE, Case, Run
from perfkit.tools import hyperfine, locate
from perfkit.tools.hyperfine import (
    SERIES,
    Benchmark,
    HyperfineOptions,
    build_command,
    case_records,
    command_details,
    load_json,
    parse_json,
    parse_markdown,
    run_hyperfine,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tools"
FIXTURE_BENCHES = (Benchmark.from_argv("short", ["sleep", "0.01"]),
                   Benchmark.from_argv("long", ["sleep", "0.02"]))


def fixture_json() -> dict:
    return json.loads((FIXTURES / "hyperfine.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- benchmarks and command lines
def test_parse_name_equals_command_splits_at_the_first_equals() -> None:
    b = Benchmark.parse("cold=perfkit vocode --backend numpy:dtype=float64 --out 'a b.wav'")
    assert b.name == "cold"
    assert b.command == "perfkit vocode --backend numpy:dtype=float64 --out 'a b.wav'"  # untouched
    assert b.argv is None


@pytest.mark.parametrize("spec", ["no-equals-sign", "=command only", "name=", "name=   ", "bad name=ls"])
def test_parse_rejects_what_is_not_name_equals_command(spec: str) -> None:
    with pytest.raises(InputError):
        Benchmark.parse(spec)


def test_from_argv_quotes_for_shell_word_splitting() -> None:
    argv = [sys.executable, "-m", "perfkit.cli", "synth", "--text", "It's a \"test\"; rm -rf / $(x)", "--out",
            "/tmp/dir with space/o.wav"]
    b = Benchmark.from_argv("numpy:dtype=float32", argv)
    assert shlex.split(b.command) == argv  # hyperfine --shell=none splits it back to exactly this argv
    assert b.argv == tuple(argv)


def test_build_command_is_an_argument_list_with_commands_after_double_dash() -> None:
    benches = [Benchmark.parse("a=echo -n hi | wc -c"), Benchmark.parse("b=-dash-first")]
    cmd = build_command("/usr/bin/hyperfine", benches, HyperfineOptions(warmup=2, runs=7),
                        "/r/h.json", "/r/h.md")
    assert cmd == ["/usr/bin/hyperfine", "--style", "basic", "--warmup", "2", "--runs", "7",
                   "--export-json", "/r/h.json", "--export-markdown", "/r/h.md",
                   "--command-name", "a", "--command-name", "b", "--", "echo -n hi | wc -c", "-dash-first"]


def test_build_command_shell_none_and_automatic_runs() -> None:
    cmd = build_command("hyperfine", FIXTURE_BENCHES, HyperfineOptions(warmup=0, runs=None, shell="none"),
                        "j", "m")
    assert "--runs" not in cmd and "--shell=none" in cmd
    assert cmd[-2:] == ["sleep 0.01", "sleep 0.02"]


def test_build_command_refuses_duplicate_names_and_nothing() -> None:
    with pytest.raises(InputError, match="repeated: a"):
        build_command("h", [Benchmark.parse("a=x"), Benchmark.parse("a=y")], HyperfineOptions(), "j", "m")
    with pytest.raises(InputError, match="nothing to benchmark"):
        build_command("h", [], HyperfineOptions(), "j", "m")


@pytest.mark.parametrize(("kwargs", "match"), [({"runs": 1}, "at least 2"), ({"warmup": -1}, "at least 0")])
def test_options_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        HyperfineOptions(**kwargs)


def test_missing_hyperfine_says_apt_get(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate.shutil, "which", lambda *a, **k: None)
    with pytest.raises(ToolMissing) as info:
        hyperfine.find_hyperfine()
    assert "hyperfine is not installed" in str(info.value) and "apt-get install hyperfine" in str(info.value)


def test_failing_hyperfine_reports_its_error_line(tmp_path: Path) -> None:
    fake = tmp_path / "hyperfine"
    fake.write_text(f"#!/bin/sh\ncat '{FIXTURES / 'hyperfine_failure.stderr'}' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ToolError, match="non-zero exit code: 3"):
        run_hyperfine([str(fake), "--", "x"])


# ----------------------------------------------------------------------------- --export-json
def test_parse_json_fixture() -> None:
    results = load_json(FIXTURES / "hyperfine.json")
    assert [r.command for r in results] == ["short", "long"]
    for r in results:
        assert len(r.times_s) == 3 and r.exit_codes == (0, 0, 0) and r.failed_runs == 0
        assert r.mean_s == pytest.approx(sum(r.times_s) / 3)
        assert r.min_s == min(r.times_s) and r.max_s == max(r.times_s)
        assert r.times_ns == tuple(round(t * 1e9) for t in r.times_s)
        assert all(isinstance(ns, int) for ns in r.times_ns)
    assert results[0].mean_s < results[1].mean_s  # sleep 0.01 vs sleep 0.02


def test_parse_json_keeps_newer_fields() -> None:
    data = fixture_json()  # the recorded export, plus what hyperfine >= 1.19 and -L add
    data["results"][0]["memory_usage_byte"] = [1000, 2000, 3000]
    data["results"][0]["parameters"] = {"backend": "numpy"}
    r = parse_json(data)[0]
    assert r.memory_usage_byte == (1000, 2000, 3000) and r.parameters == {"backend": "numpy"}


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: d.pop("results"), "no \"results\" list"),
    (lambda d: d["results"][0].pop("command"), "no \"command\""),
    (lambda d: d["results"][0].update(times=[]), "non-empty list"),
    (lambda d: d["results"][0].update(times=["1.0"]), "non-empty list"),
    (lambda d: d["results"][0].update(mean="fast"), "'mean' is not a number"),
    (lambda d: d["results"][0].update(exit_codes=["0"]), "exit_codes"),
])
def test_malformed_json_is_an_input_error(mutate, match: str) -> None:
    data = copy.deepcopy(fixture_json())
    mutate(data)
    with pytest.raises(InputError, match=match):
        parse_json(data)


# ----------------------------------------------------------------------------- --export-markdown
def test_parse_markdown_fixture_matches_the_json() -> None:
    rows = parse_markdown((FIXTURES / "hyperfine.md").read_text(encoding="utf-8"))
    results = load_json(FIXTURES / "hyperfine.json")
    assert [r.command for r in rows] == ["short", "long"]
    for row, res in zip(rows, results, strict=True):
        assert row.mean_s == pytest.approx(res.mean_s, abs=0.05e-3)  # printed to 0.1 ms
        assert row.stddev_s == pytest.approx(res.stddev_s, abs=0.05e-3)
        assert row.min_s == pytest.approx(res.min_s, abs=0.05e-3)
        assert row.max_s == pytest.approx(res.max_s, abs=0.05e-3)
    assert (rows[0].relative, rows[0].relative_error) == (1.0, None)
    assert rows[1].relative == pytest.approx(results[1].mean_s / results[0].mean_s, abs=0.01)
    assert rows[1].relative_error == 0.29


def test_parse_markdown_single_run_and_units() -> None:
    rows = parse_markdown((FIXTURES / "hyperfine_ignored_failure.md").read_text(encoding="utf-8"))
    assert len(rows) == 1 and rows[0].command == "false" and rows[0].relative == 1.0
    text = "| Command | Mean [s] | Min [s] | Max [s] | Relative |\n|:---|---:|---:|---:|---:|\n" \
           "| `x` | 1.250 ± 0.010 | 1.240 | 1.260 | 1.00 |\n"
    row = parse_markdown(text)[0]
    assert (row.mean_s, row.stddev_s, row.min_s, row.max_s) == (1.25, 0.01, 1.24, 1.26)


@pytest.mark.parametrize("text", ["", "no table here", "| a | b |\n|---|---|\n| 1 | 2 |",
                                  "| Command | Mean [h] | Min [h] | Max [h] | Relative |\n"
                                  "|:-|-:|-:|-:|-:|\n"])
def test_malformed_markdown_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError):
        parse_markdown(text)


# ----------------------------------------------------------------------------- as perfkit records
def test_case_records_store_every_run_as_a_sample() -> None:
    results = load_json(FIXTURES / "hyperfine.json")
    case = Case("tiny", (("command", "vocode"), ("frames", 50), ("seed", 0)))
    recs = case_records(results, FIXTURE_BENCHES, case, {"short": ("numpy", (("dtype", "float32"),))})
    assert [r.variant for r in recs] == ["short", "long"]
    assert recs[0].backend == "numpy" and recs[0].options == (("dtype", "float32"),)
    assert recs[1].backend == "command" and recs[1].options == ()
    for rec, res in zip(recs, results, strict=True):
        assert rec.status == CASE_OK and rec.case == case
        (series,) = rec.series
        assert series.name == SERIES and not series.synced and series.loops == 1
        assert series.stage(SERIES).wall_ns == res.times_ns
    assert recs[0].series[0].visits == (0, 1, 2) and recs[1].series[0].visits == (3, 4, 5)


def test_case_records_round_trip_through_a_result_file() -> None:
    results = load_json(FIXTURES / "hyperfine.json")
    recs = case_records(results, FIXTURE_BENCHES, Case("custom"))
    run = Run("r1", "hyperfine", RUN_COMPLETE, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00",
              settings={"hyperfine": {"commands": command_details(results, FIXTURE_BENCHES)}}, cases=recs)
    back = parse_run(dumps_run(run))
    assert back.cases == recs
    assert back.settings["hyperfine"]["commands"]["long"]["argv"] == ["sleep", "0.02"]


def test_nonzero_exit_codes_mark_the_case_failed_and_keep_the_samples() -> None:
    results = load_json(FIXTURES / "hyperfine_ignored_failure.json")
    (rec,) = case_records(results, [Benchmark.parse("false=false")], Case("custom"))
    assert rec.status == CASE_FAILED and "2 of 2 runs exited non-zero" in rec.failures[0].message
    assert rec.series[0].n == 2


def test_times_of_zero_are_refused_with_the_remedy() -> None:
    data = fixture_json()  # the recorded export with one time as hyperfine reports a too-short command
    data["results"][1]["times"][0] = 0.0
    with pytest.raises(ToolError, match="--shell none"):
        case_records(parse_json(data), FIXTURE_BENCHES, Case("custom"))


def test_case_records_check_the_pairing() -> None:
    results = load_json(FIXTURES / "hyperfine.json")
    with pytest.raises(InputError, match="2 results for 1 commands"):
        case_records(results, FIXTURE_BENCHES[:1], Case("custom"))
    with pytest.raises(InputError, match="does not match"):
        case_records(results, FIXTURE_BENCHES[::-1], Case("custom"))


# ----------------------------------------------------------------------------- one real run
def test_real_hyperfine_run(tmp_path: Path) -> None:
    try:
        exe = hyperfine.find_hyperfine()
    except ToolMissing as exc:
        pytest.skip(f"hyperfine not installed: {exc}")
    benches = [Benchmark.from_argv("true", ["true"]), Benchmark.from_argv("sleep", ["sleep", "0.02"])]
    cmd = build_command(exe, benches, HyperfineOptions(warmup=1, runs=3, shell="none"),
                        tmp_path / "h.json", tmp_path / "h.md")
    run_hyperfine(cmd, timeout_s=60)
    results = load_json(tmp_path / "h.json")
    rows = parse_markdown((tmp_path / "h.md").read_text(encoding="utf-8"))
    assert [r.command for r in results] == [r.command for r in rows] == ["true", "sleep"]
    assert all(len(r.times_s) == 3 and r.exit_codes == (0, 0, 0) for r in results)
    assert min(results[1].times_s) >= 0.02  # it really slept
    recs = case_records(results, benches, Case("custom"))
    assert [r.series[0].n for r in recs] == [3, 3]


def test_real_hyperfine_failure_is_a_tool_error(tmp_path: Path) -> None:
    try:
        exe = hyperfine.find_hyperfine()
    except ToolMissing as exc:
        pytest.skip(f"hyperfine not installed: {exc}")
    cmd = build_command(exe, [Benchmark.from_argv("fails", ["sh", "-c", "exit 3"])],
                        HyperfineOptions(warmup=0, runs=2, shell="none"),
                        tmp_path / "h.json", tmp_path / "h.md")
    with pytest.raises(ToolError, match="exit code: 3"):
        run_hyperfine(cmd, timeout_s=60)
