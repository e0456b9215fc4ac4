"""py-spy wrapper: command lines, failure messages, and reading the files py-spy writes.

Parsing is tested on real py-spy 0.4.3 output recorded under ``tests/fixtures/tools`` (see its README);
one real recording runs when py-spy is installed and allowed to trace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perfkit.errors import InputError, ToolError, ToolMissing
from perfkit.tools import locate, pyspy
from perfkit.tools.pyspy import (
    FORMATS,
    RecordOptions,
    failure,
    flamegraph_samples,
    load_speedscope,
    parse_speedscope,
    parse_summary,
    record,
    record_command,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tools"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- command lines
def test_record_command_attaches_by_pid_with_every_option() -> None:
    opts = RecordOptions(rate_hz=250, duration_s=3, native=True, subprocesses=True, idle=True)
    cmd = record_command("/usr/bin/py-spy", "/r/x/flamegraph.svg", "flamegraph", opts, pid=4321)
    assert cmd == ["/usr/bin/py-spy", "record", "--format", "flamegraph",
                   "--output", "/r/x/flamegraph.svg", "--rate", "250", "--duration", "3", "--native",
                   "--subprocesses", "--idle", "--pid", "4321"]


def test_record_command_starts_a_program_after_a_double_dash() -> None:
    program = [sys.executable, "-c", "print('a b; rm -rf /')", "--native"]
    cmd = record_command("py-spy", Path("out.json"), "speedscope", RecordOptions(), program=program)
    assert cmd[:7] == ["py-spy", "record", "--format", "speedscope", "--output", "out.json", "--rate"]
    assert "--duration" not in cmd and "--native" not in cmd[:cmd.index("--")]
    assert cmd[cmd.index("--") + 1:] == program  # each argument untouched, never a shell string


def test_record_command_nonblocking_flag() -> None:
    cmd = record_command("py-spy", "o.svg", "flamegraph", RecordOptions(nonblocking=True), pid=1)
    assert "--nonblocking" in cmd and "--native" not in cmd


@pytest.mark.parametrize("kwargs", [{}, {"pid": 1, "program": ["python"]}])
def test_record_command_needs_exactly_one_target(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        record_command("py-spy", "o.svg", "flamegraph", RecordOptions(), **kwargs)


def test_record_command_rejects_unknown_format() -> None:
    with pytest.raises(InputError, match="raw"):
        record_command("py-spy", "o", "raw", RecordOptions(), pid=1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rate_hz": 0}, "at least 1 Hz"),
    ({"duration_s": 0}, "whole seconds"),
    ({"native": True, "nonblocking": True}, "exclude each other"),
])
def test_record_options_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        RecordOptions(**kwargs)


def test_formats_are_the_two_stored_files() -> None:
    assert FORMATS == {"flamegraph": "flamegraph.svg", "speedscope": "profile.speedscope.json"}


# ----------------------------------------------------------------------------- py-spy's messages
def test_parse_summary_of_a_real_recording() -> None:
    assert parse_summary(fixture_text("pyspy_record.stdout")) == (66, 0)
    assert parse_summary("py-spy> Sampling process 50 times a second.") is None


def test_permission_denied_says_how_to_allow_ptrace() -> None:
    exc = failure(1, fixture_text("pyspy_permission_denied.stderr"), pid=77)
    assert isinstance(exc, ToolError)
    msg = str(exc)
    assert "denied permission to attach to process 77" in msg
    assert "kernel.yama.ptrace_scope" in msg and "--cap-add SYS_PTRACE" in msg and "root" in msg


def test_operation_not_permitted_counts_as_denied() -> None:
    assert "SYS_PTRACE" in str(failure(1, "Error: Operation not permitted (os error 1)"))


def test_vanished_target_is_not_reported_as_permission() -> None:
    msg = str(failure(1, fixture_text("pyspy_no_such_process.stderr"), pid=999999))
    assert "exited or is not a Python process" in msg
    assert "ptrace" not in msg


def test_other_failures_keep_the_tail_of_the_output() -> None:
    msg = str(failure(2, "line one\nsomething odd happened"))
    assert "exit status 2" in msg and "something odd happened" in msg


def test_missing_pyspy_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate.shutil, "which", lambda *a, **k: None)
    with pytest.raises(ToolMissing) as info:
        pyspy.find_pyspy()
    assert "py-spy is not installed" in str(info.value)
    assert "pip install py-spy" in str(info.value)


def test_record_reports_a_failing_pyspy(tmp_path: Path) -> None:
    fake = tmp_path / "py-spy"
    fake.write_text(f"#!/bin/sh\ncat '{FIXTURES / 'pyspy_permission_denied.stderr'}' >&2\nexit 1\n")
    fake.chmod(0o755)
    opts = RecordOptions(duration_s=1)
    cmd = record_command(str(fake), tmp_path / "x.svg", "flamegraph", opts, pid=12)
    with pytest.raises(ToolError, match="ptrace"):
        record(cmd, "flamegraph", tmp_path / "x.svg", opts, pid=12)


# ----------------------------------------------------------------------------- the files
def test_speedscope_fixture_parses_to_its_samples() -> None:
    prof = load_speedscope(FIXTURES / "pyspy.speedscope.json")
    assert prof.exporter == "py-spy@0.4.3"
    assert prof.samples == 66 == parse_summary(fixture_text("pyspy_record.stdout"))[0]
    assert prof.sampled_s == pytest.approx(66 / 50)  # every sample weighs 1 / rate
    assert len(prof.thread_names) == 1


def test_speedscope_top_functions() -> None:
    prof = load_speedscope(FIXTURES / "pyspy.speedscope.json")
    top = prof.top(3)
    assert top[0].name == "inner" and top[0].file.endswith("busy.py") and top[0].line is None
    with_stack = sum(w for s, w in zip(prof.stacks, prof.weights, strict=True) if s) / prof.sampled_s
    assert sum(f.self_fraction for f in prof.top(10_000)) == pytest.approx(with_stack)  # py-spy may record []
    by_total = {f.name: f for f in prof.top(10_000, by="total")}
    assert by_total["outer"].self_fraction == 0.0
    assert by_total["outer"].total_fraction == pytest.approx(top[0].total_fraction)  # outer only calls inner
    lines = prof.top(2, per="line")
    assert {f.line for f in lines} == {4, 5} and all(f.name == "inner" for f in lines)
    assert sum(f.self_fraction for f in lines) == pytest.approx(top[0].self_fraction)
    assert lines[0].label == "inner (busy.py:5)"


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("profiles"),
    lambda d: d["profiles"][0].update(type="evented"),
    lambda d: d["profiles"][0]["weights"].pop(),
    lambda d: d["profiles"][0]["samples"].append([10_000]),
])
def test_malformed_speedscope_is_an_input_error(mutate) -> None:
    data = json.loads(fixture_text("pyspy.speedscope.json"))
    mutate(data)
    with pytest.raises(InputError, match="not a py-spy speedscope profile"):
        parse_speedscope(data)


def test_flamegraph_fixture_declares_its_samples() -> None:
    svg = fixture_text("pyspy_flamegraph.svg")
    assert flamegraph_samples(svg) > 0
    with pytest.raises(InputError, match="not an SVG"):
        flamegraph_samples("{}")
    with pytest.raises(InputError, match="not a py-spy flame graph"):
        flamegraph_samples('<svg xmlns="http://www.w3.org/2000/svg"></svg>')


# ----------------------------------------------------------------------------- one real recording
def test_real_recording_of_a_child(tmp_path: Path) -> None:
    try:
        exe = pyspy.find_pyspy()
    except ToolMissing as exc:
        pytest.skip(f"py-spy not installed: {exc}")
    script = tmp_path / "spin.py"
    script.write_text("import time\n\ndef spin_here():\n    end = time.perf_counter() + 1.5\n"
                      "    while time.perf_counter() < end:\n        sum(range(500))\n\nspin_here()\n")
    out = tmp_path / "spin.speedscope.json"
    opts = RecordOptions(rate_hz=50)
    cmd = record_command(exe, out, "speedscope", opts, program=[sys.executable, str(script)])
    try:
        rec = record(cmd, "speedscope", out, opts, timeout_s=60)
    except ToolError as exc:
        if "permission" in str(exc).lower():
            pytest.skip(f"py-spy may not trace here: {exc}")
        raise
    prof = load_speedscope(rec.path)
    assert rec.samples == prof.samples > 0
    assert any(name == "spin_here" for name, _, _ in prof.frames)
    assert subprocess.run([exe, "--version"], capture_output=True, text=True).returncode == 0
