"""``perfkit profile`` and ``perfkit hyperfine`` end to end: missing tools, refused permission, bad input,
where the results go, and one real run of each (skipped with the reason when the tool is missing or may
not trace)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from perfkit.cli import build_parser
from perfkit.commands.hyperfine import select, split_specs
from perfkit.errors import ToolMissing
from perfkit.store.files import load_runs, write_run
from perfkit.store.records import RUN_COMPLETE, Case, Run
from perfkit.tools import artefacts, hyperfine, locate, pyspy
from perfkit.tools.profile_target import StopSignal
from perfkit.tools.pyspy import flamegraph_samples, load_speedscope

FIXTURES = Path(__file__).parent / "fixtures" / "tools"
Cli = Callable[..., tuple[int, str, str]]


def no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate.shutil, "which", lambda *a, **k: None)


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ----------------------------------------------------------------------------- missing tools
def test_profile_without_pyspy_says_how_to_install(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    no_tools(monkeypatch)
    code, out, err = cli("profile", "numpy", "--results", tmp_path / "r")
    assert code != 0
    assert "py-spy is not installed" in err and "pip install py-spy" in err
    assert entries(tmp_path / "r") == []  # nothing half-written


def test_hyperfine_without_hyperfine_says_how_to_install(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    no_tools(monkeypatch)
    code, out, err = cli("hyperfine", "a=true", "--results", tmp_path / "r")
    assert code != 0
    assert "hyperfine is not installed" in err and "apt-get install hyperfine" in err
    assert entries(tmp_path / "r") == []


def test_profile_refused_ptrace_says_how_to_allow_it(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """A py-spy that answers like a real one refused by ptrace (its recorded message): the target is
    started, py-spy fails, the command says how to allow tracing, and no result is left behind."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "py-spy"
    fake.write_text(f"#!/bin/sh\ncat '{FIXTURES / 'pyspy_permission_denied.stderr'}' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert pyspy.find_pyspy() == str(fake)
    code, out, err = cli("profile", "numpy", "--frames", "2", "--duration", "1", "--warmup", "0",
                         "--results", tmp_path / "r")
    assert code != 0
    assert "denied permission to attach" in err
    assert "kernel.yama.ptrace_scope" in err and "--cap-add SYS_PTRACE" in err
    assert entries(tmp_path / "r") == []  # the staging directory is gone too


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("args", "message"), [
    ((), "nothing to time"),
    (("a=true", "--vocode", "numpy"), "not both"),
    (("--vocode", "numpy", "--shell", "bash"), "--shell applies to NAME=COMMAND"),
    (("just-a-command",), "is not NAME=COMMAND"),
    (("a=true", "a=false"), "repeated: a"),
    (("a=true", "--runs", "1"), "--runs must be at least 2"),
])
def test_hyperfine_input_errors(cli: Cli, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = cli("hyperfine", *args, "--results", tmp_path / "r")
    assert code == 2 and message in err
    assert not [n for n in entries(tmp_path / "r") if not n.startswith(".")]


@pytest.mark.parametrize(("args", "message"), [
    (("numpy", "--rate", "0"), "at least 1 Hz"),
    (("numpy", "--native", "--nonblocking"), "exclude each other"),
    (("numpy", "--suite", "nosuite"), "unknown suite"),
    (("nosuchbackend",), "nosuchbackend"),
])
def test_profile_input_errors(cli: Cli, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = cli("profile", *args, "--results", tmp_path / "r")
    assert code == 2 and message in err


def test_profile_unknown_series_is_bad_input(cli: Cli, tmp_path: Path) -> None:
    try:
        pyspy.find_pyspy()
    except ToolMissing as exc:
        pytest.skip(f"py-spy not installed: {exc}")
    code, out, err = cli("profile", "numpy", "--frames", "2", "--warmup", "0", "--series", "nope",
                         "--results", tmp_path / "r")
    assert code == 2
    assert "no series 'nope'; it has e2e, stages, coarse" in err and "Traceback" not in err
    assert entries(tmp_path / "r") == []


def test_split_specs_keeps_variant_options_together() -> None:
    assert split_specs(["numpy,torch:dtype=bfloat16,device=cpu", "numba", "numpy"]) == [
        "numpy", "torch:dtype=bfloat16,device=cpu", "numba"]


def test_vocode_shorthand_builds_argument_lists(tmp_path: Path) -> None:
    args = build_parser().parse_args(["hyperfine", "--vocode", "numpy,numpy:dtype=float64",
                                      "--preset", "tiny", "--frames", "7", "--seed", "3"])
    sel = select(args, tmp_path)
    assert [b.name for b in sel.benchmarks] == ["numpy:dtype=float32", "numpy:dtype=float64"]
    assert sel.case == Case("tiny", (("command", "vocode"), ("frames", 7), ("seed", 3)))
    assert sel.variants["numpy:dtype=float64"] == ("numpy", (("dtype", "float64"),))
    argv = list(sel.benchmarks[1].argv or ())
    assert argv[:4] == [sys.executable, "-m", "perfkit.cli", "vocode"]
    assert argv[4:12] == ["--backend", "numpy:dtype=float64", "--preset", "tiny", "--frames", "7",
                          "--seed", "3"]
    assert argv[-2] == "--out" and Path(argv[-1]).parent == tmp_path
    assert shlex.split(sel.benchmarks[1].command) == argv


def test_synth_shorthand_passes_the_text_as_one_argument(tmp_path: Path) -> None:
    text = "Hello; it's $HOME & `x`"
    args = build_parser().parse_args(["hyperfine", "--synth", "numpy", "--text", text])
    (bench,) = select(args, tmp_path).benchmarks
    argv = list(bench.argv or ())
    assert argv[3] == "synth" and argv[argv.index("--text") + 1] == text
    assert shlex.split(bench.command) == argv


# ----------------------------------------------------------------------------- storage beside the run
def test_artefacts_are_published_with_the_run_and_found_again(tmp_path: Path) -> None:
    results = tmp_path / "results"
    staging = artefacts.staging_dir(results, "r1", "profile")
    (staging / "flamegraph.svg").write_text("<svg/>")
    assert staging.name.startswith(".")  # hidden while written
    run = Run("r1", "profile", RUN_COMPLETE, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00",
              settings={"artefacts": artefacts.artefacts_setting("profile",
                                                                 {"flamegraph": "flamegraph.svg"})})
    run, path, directory = artefacts.publish(run, staging, results, "profile")
    assert path == results / "r1.json" and directory == results / "r1.profile"
    assert not staging.exists()
    loaded = load_runs(results)
    assert [r.run_id for r in loaded.runs] == ["r1"] and not loaded.skipped  # the directory is not a run
    paths = artefacts.artefact_paths(loaded.runs[0], results)
    assert paths == {"flamegraph": results / "r1.profile" / "flamegraph.svg"}
    assert paths["flamegraph"].read_text() == "<svg/>"


def test_publish_follows_a_renamed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    taken = Run("r1", "profile", RUN_COMPLETE, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00")
    write_run(taken, results)
    staging = artefacts.staging_dir(results, "r1", "x")
    run, path, directory = artefacts.publish(taken, staging, results, "x")
    assert run.run_id == path.stem != "r1" and directory == results / f"{path.stem}.x"


def test_stop_signal_polls_without_blocking() -> None:
    r, w = os.pipe()
    sig = StopSignal(r)
    os.write(w, b'{"suite": "stages"}\nnoise\n')
    assert sig.readline() == b'{"suite": "stages"}\n'
    assert sig.poll() is False  # another line is not "stop", and nothing more is waiting
    os.write(w, b"stop\n")
    assert sig.poll() is True
    r2, w2 = os.pipe()
    sig2 = StopSignal(r2)
    os.close(w2)
    assert sig2.poll() is True  # end of input: the parent is gone
    for fd in (r, w, r2):
        os.close(fd)


# ----------------------------------------------------------------------------- real runs
def test_real_hyperfine_command_stores_a_run(cli: Cli, tmp_path: Path) -> None:
    try:
        hyperfine.find_hyperfine()
    except ToolMissing as exc:
        pytest.skip(f"hyperfine not installed: {exc}")
    results = tmp_path / "r"
    code, out, err = cli("hyperfine", "fast=sleep 0.01", "slow=sleep 0.02", "--runs", "2", "--warmup", "0",
                         "--results", results)
    assert code == 0, err
    loaded = load_runs(results)
    (run,) = loaded.runs
    assert run.suite == "hyperfine" and run.protocol["tool"] == "hyperfine"
    assert (run.protocol["warmup"], run.protocol["runs"], run.protocol["shell"]) == (0, 2, None)
    assert [c.variant for c in run.cases] == ["fast", "slow"]
    assert all(c.series[0].n == 2 for c in run.cases)
    assert min(run.cases[1].series[0].stages[0].wall_ns) >= 15_000_000  # sleep 0.02, less sh's start-up
    assert run.settings["hyperfine"]["commands"]["slow"]["command"] == "sleep 0.02"
    paths = artefacts.artefact_paths(run, results)
    assert set(paths) == {"json", "markdown"} and all(p.is_file() for p in paths.values())
    assert [n for n in entries(results) if n.startswith(".")] == []
    assert f"result: {loaded.paths[0]}" in out


def test_real_profile_records_only_the_measured_region(cli: Cli, tmp_path: Path) -> None:
    try:
        pyspy.find_pyspy()
    except ToolMissing as exc:
        pytest.skip(f"py-spy not installed: {exc}")
    results = tmp_path / "r"
    code, out, err = cli("profile", "numpy", "--preset", "tiny", "--frames", "4", "--duration", "1",
                         "--rate", "50", "--warmup", "1", "--results", results)
    if code != 0 and "permission" in err:
        pytest.skip(f"py-spy may not trace here: {err.strip()}")
    assert code == 0, err
    (run,) = load_runs(results).runs
    assert run.suite == "profile"
    assert (run.protocol["tool"], run.protocol["rate_hz"], run.protocol["duration_s"]) == ("py-spy", 50, 1)
    info = run.settings["profile"]
    assert info["suite"] == "stages" and info["series"] == "e2e" and info["passes_recorded"] > 0
    (case,) = run.cases
    assert case.variant == "numpy:dtype=float32" and case.case.name == "tiny/frames=4/seed=0"
    assert case.series == () and case.load_ns > 0 and case.first_call_ns > 0  # no timings in a profile run
    paths = artefacts.artefact_paths(run, results)
    assert flamegraph_samples(paths["flamegraph"].read_text()) > 0
    prof = load_speedscope(paths["speedscope"])
    assert prof.samples == info["recordings"]["speedscope"]["samples"] > 0
    stacks = [[prof.frames[i] for i in stack] for stack in prof.stacks if stack]
    # Every sample is in the target's loop after it reported ready: inside a pass of the measured region,
    # or in the loop's own bookkeeping between passes (polling for "stop", reading the timer) — never in
    # imports, load, first call or warm-up.
    for stack in stacks:
        names = {name for name, _, _ in stack}
        assert "serve" in names
        assert not names & {"StagesSuite.load", "StagesSuite.prepare", "_find_and_load", "make_backend"}
        if "VocoderStagesWorkload.run" not in names:
            assert Path(stack[-1][1]).name in ("profile_target.py", "timers.py"), stack
    assert any("VocoderStagesWorkload.run" in {name for name, _, _ in stack} for stack in stacks)
