"""Runs stopped at random points (SIGINT / SIGTERM at a seeded random progress event, SIGKILL of the
engine itself): every measurement announced as completed is on disk, and a killed run leaves no partial
result file and no worker behind (issue 10, item 2)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from perfkit.store import load_run, result_files

_CHILD = textwrap.dedent("""
    import sys
    from perfkit.measure.protocol import Protocol
    from perfkit.run import BackendRef, CaseRequest, Observer, WorkerSettings, make_plan, run_plan
    from perfkit.run.fake_backend import TARGET

    class Announce(Observer):
        def _say(self, *words):
            print(*words, flush=True)

        def case_started(self, case, variants):
            self._say("event case", case.name)

        def variant_setup(self, case, variant):
            self._say("event setup", case.name, variant)

        def samples_added(self, case, variant, n, visit):
            self._say("samples", case.name, variant, n)

        def variant_done(self, case, variant, status, failure):
            self._say("event done", case.name, variant, status)

        def memory_started(self, case, variant):
            self._say("event memory", case.name, variant)

    protocol = Protocol(warmup_rounds=0, min_samples=6, max_samples=6, round_samples=2, budget_s=1e6,
                        memory_passes=1)
    plan = make_plan("stages", [], CaseRequest("tiny", frames=(1, 2)), protocol=protocol, memory=True,
                     settings=WorkerSettings(timeout_s=120),
                     extra=[BackendRef("fake:tag=a,stage_us=300", TARGET),
                            BackendRef("fake:tag=b,stage_us=300", TARGET)])
    out = run_plan(plan, sys.argv[1], observer=Announce())
    print("saved", out.run.status, flush=True)
""")


def start(results: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(results)], stdout=subprocess.PIPE, text=True)


def gone(pids: list[int], within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.1)
    return False


# seeds whose stop points (lines 2, 11, 20, 21 of about 26) spread over the first and the second case
@pytest.mark.parametrize(("seed", "sig"), [(2, signal.SIGINT), (7, signal.SIGTERM), (5, signal.SIGINT),
                                           (27, signal.SIGTERM)], ids=["line2", "line11", "line20", "line21"])
def test_stopped_at_a_random_point_keeps_every_announced_measurement(tmp_path, seed, sig):
    stop_at = random.Random(seed).randrange(1, 22)  # progress lines before the run's end (about 26)
    proc = start(tmp_path)
    announced: dict[tuple[str, str], int] = {}
    done: set[tuple[str, str]] = set()
    seen = 0
    try:
        for line in proc.stdout:
            words = line.split()
            if words[0] == "samples":
                key = (words[1], words[2])
                announced[key] = announced.get(key, 0) + int(words[3])
            if words[:2] == ["event", "done"] and words[4] == "ok":
                done.add((words[2], words[3]))
            seen += 1
            if seen == stop_at:
                proc.send_signal(sig)
                break
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "saved interrupted" in rest, rest
    [path] = result_files(tmp_path)
    run = load_run(path)
    assert run.status == "interrupted"
    stored = {(c.case.name, c.variant.split("tag=")[1][0]): c for c in run.cases}
    for (case, variant), n in announced.items():
        rec = stored[(case, variant.split("tag=")[1][0])]
        assert all(s.n >= n for s in rec.series), (case, variant, n)  # nothing announced is lost
    for case, variant in done:
        rec = stored[(case, variant.split("tag=")[1][0])]
        assert all(s.n == 6 for s in rec.series)
        assert rec.status in ("ok", "interrupted")  # interrupted only when its memory pass was cut


def test_killed_engine_leaves_no_result_file_and_no_worker(tmp_path):
    proc = start(tmp_path)
    workers: list[int] = []
    try:
        for line in proc.stdout:
            workers += [c.pid for c in psutil.Process(proc.pid).children()]
            if line.startswith("samples"):
                proc.send_signal(signal.SIGKILL)  # perfkit itself crashes mid-run
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert workers and proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob("*.json")) == []  # no partial result file
    assert gone(workers)  # the workers die with their engine (PR_SET_PDEATHSIG)
