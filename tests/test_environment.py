"""Environment capture, source fingerprints and the pre-flight warnings (on made-up machines)."""

from __future__ import annotations

import dataclasses
import platform
import re

import pytest

from perfkit.measure.environment import (
    CPU_FEATURES,
    Environment,
    capture_environment,
    cpu_features,
    git_state,
    preflight_warnings,
    source_hash,
)

QUIET = Environment(cpu_count_logical=8, cpu_affinity=8, load_avg=(0.2, 0.2, 0.2), cpu_governor="performance",
                    memory_total_bytes=32 * 2**30, memory_available_bytes=20 * 2**30)


def test_capture_reads_this_machine():
    env = capture_environment({"backend:numpy": "perfkit.backends.numpy",
                               "suite:stages": "perfkit.suites.stages"})
    assert env.python_version == platform.python_version()
    assert env.cpu_count_logical and env.cpu_count_logical >= 1
    assert env.usable_cpus and env.usable_cpus <= env.cpu_count_logical
    assert env.memory_total_bytes > env.memory_available_bytes > 0
    assert env.packages["numpy"] and env.packages["perfkit"]
    assert re.fullmatch(r"[0-9a-f]{16}", env.source_hashes["backend:numpy"])
    assert env.source_hashes["suite:stages"] != env.source_hashes["backend:numpy"]
    assert env.git_commit is None or re.fullmatch(r"[0-9a-f]{40}", env.git_commit)
    assert any(t.get("internal_api") for t in env.threadpools)  # numpy's BLAS is loaded here
    assert Environment.from_dict(env.to_dict()) == env


def test_from_dict_is_tolerant_but_type_checked():
    env = Environment.from_dict({"cpu_model": "x", "added_in_a_later_version": 1})
    assert env.cpu_model == "x" and env.load_avg is None
    with pytest.raises(ValueError, match="cpu_count_logical"):
        Environment.from_dict({"cpu_count_logical": "eight"})
    with pytest.raises(ValueError):
        Environment.from_dict({"git_dirty": 1})


def test_source_hash_changes_with_the_source(tmp_path, monkeypatch):
    pkg = tmp_path / "hashme_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "inner.py").write_text("Y = 2\n")
    (tmp_path / "hashme_mod.py").write_text("Z = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = source_hash("hashme_pkg")
    assert first == source_hash("hashme_pkg")
    (pkg / "inner.py").write_text("Y = 20\n")  # a file other than __init__ counts too
    assert source_hash("hashme_pkg") != first
    assert re.fullmatch(r"[0-9a-f]{16}", source_hash("hashme_mod"))
    assert source_hash("no_such_module_anywhere") is None


def test_git_state_outside_a_repository(tmp_path):
    assert git_state(tmp_path) == (None, None)


def test_quiet_machine_has_no_warnings():
    assert preflight_warnings(QUIET) == []
    assert preflight_warnings(QUIET, threads=8) == []


def one(env: Environment, threads: int | None = None) -> str:
    warnings = preflight_warnings(env, threads)
    assert len(warnings) == 1, warnings
    return warnings[0]


def test_high_load():
    assert "high load" in one(dataclasses.replace(QUIET, load_avg=(6.5, 3.0, 1.0)))


@pytest.mark.parametrize("name", ["NUMBA_DISABLE_JIT", "CUDA_LAUNCH_BLOCKING",
                                  "PYTORCH_NO_CUDA_MEMORY_CACHING",
                                  "NUMBA_BOUNDSCHECK"])
def test_debug_flags(name):
    assert name in one(dataclasses.replace(QUIET, env_vars={name: "1"}))
    assert preflight_warnings(dataclasses.replace(QUIET, env_vars={name: "0"})) == []


def test_other_debug_settings():
    assert "NUMBA_OPT=0" in one(dataclasses.replace(QUIET, env_vars={"NUMBA_OPT": "0"}))
    assert "debug allocator" in one(dataclasses.replace(QUIET, env_vars={"PYTHONMALLOC": "debug"}))
    assert "development mode" in one(dataclasses.replace(QUIET, python_dev_mode=True))
    assert "debug build" in one(dataclasses.replace(QUIET, python_debug_build=True))


def test_thread_oversubscription():
    assert "16 threads requested on 8" in one(QUIET, threads=16)
    assert "OMP_NUM_THREADS=32" in one(dataclasses.replace(QUIET, env_vars={"OMP_NUM_THREADS": "32"}))
    pools = ({"user_api": "openmp", "prefix": "libgomp"}, {"user_api": "openmp", "prefix": "libiomp"})
    assert "several OpenMP runtimes" in one(dataclasses.replace(QUIET, threadpools=pools))


def test_governor_and_memory():
    assert "powersave" in one(dataclasses.replace(QUIET, cpu_governor="powersave"))
    assert "low memory" in one(dataclasses.replace(QUIET, memory_available_bytes=1 * 2**30))


def test_unknown_fields_never_warn():
    assert preflight_warnings(Environment()) == []


def test_cpu_features_are_read_from_the_flags_line():
    flags = "fpu vme sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 amx_int8"
    assert cpu_features(flags) == ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    assert cpu_features("fpu sse2 avx avx2 fma") == ("avx2", "fma")
    env = capture_environment()
    assert env.cpu_features is None or set(env.cpu_features) <= set(CPU_FEATURES)
    assert Environment.from_dict(env.to_dict()) == env
