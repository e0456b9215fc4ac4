"""The machine and software a run was measured on, and the pre-flight warnings about it.

:func:`capture_environment` reads what it can and records ``None`` for what it cannot (a missing
``/sys`` file, no git, no GPU): capture never fails a run. :func:`preflight_warnings` is a pure
function of an :class:`Environment` (and the requested thread count), so it is tested on made-up
machines. :func:`source_hash` fingerprints a module's source so that a baseline measured on other
backend code is recognised as stale.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

#: Packages whose versions every run records (``None`` when not installed).
PACKAGES: tuple[str, ...] = (
    "perfkit", "numpy", "scipy", "numba", "llvmlite", "torch", "pandas", "psutil", "threadpoolctl",
)

#: Environment variables that change speed or correctness of the measured code.
ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY",
    "NUMBA_DISABLE_JIT", "NUMBA_OPT", "NUMBA_BOUNDSCHECK", "NUMBA_DEBUG", "NUMBA_DEBUGINFO",
    "NUMBA_THREADING_LAYER", "CUDA_LAUNCH_BLOCKING", "CUDA_VISIBLE_DEVICES", "PYTORCH_NO_CUDA_MEMORY_CACHING",
    "TORCH_COMPILE_DEBUG", "PYTHONDEVMODE", "PYTHONMALLOC", "PYTHONOPTIMIZE",
)

#: Debug switches that make timings meaningless, with what each does.
DEBUG_FLAGS: dict[str, str] = {
    "NUMBA_DISABLE_JIT": "numba kernels run as plain Python",
    "NUMBA_BOUNDSCHECK": "numba bounds checking slows every array access",
    "NUMBA_DEBUG": "numba debug output",
    "NUMBA_DEBUGINFO": "numba debug info",
    "CUDA_LAUNCH_BLOCKING": "every CUDA kernel launch blocks the host",
    "PYTORCH_NO_CUDA_MEMORY_CACHING": "every CUDA allocation goes to the driver",
    "TORCH_COMPILE_DEBUG": "torch.compile writes debug artefacts",
    "PYTHONDEVMODE": "Python development mode adds runtime checks",
}

HIGH_LOAD_PER_CPU = 0.5
LOW_MEMORY_FRACTION = 0.10


@dataclass(frozen=True)
class Environment:
    """What a run was measured on; fields are ``None`` where they could not be read."""

    captured_utc: str = ""
    hostname: str | None = None
    platform: str | None = None
    cpu_model: str | None = None
    cpu_features: tuple[str, ...] | None = None
    cpu_count_logical: int | None = None
    cpu_count_physical: int | None = None
    cpu_affinity: int | None = None
    cpu_governor: str | None = None
    cpu_freq_mhz: float | None = None
    load_avg: tuple[float, ...] | None = None
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    python_version: str | None = None
    python_implementation: str | None = None
    python_debug_build: bool = False
    python_dev_mode: bool = False
    packages: Mapping[str, str | None] = field(default_factory=dict)
    threadpools: tuple[Mapping[str, Any], ...] = ()
    env_vars: Mapping[str, str] = field(default_factory=dict)
    gpus: tuple[Mapping[str, Any], ...] = ()
    git_commit: str | None = None
    git_dirty: bool | None = None
    source_hashes: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def usable_cpus(self) -> int | None:
        """CPUs this process may run on (affinity), else logical CPUs."""
        return self.cpu_affinity or self.cpu_count_logical

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["load_avg"] = list(self.load_avg) if self.load_avg is not None else None
        d["cpu_features"] = list(self.cpu_features) if self.cpu_features is not None else None
        d["threadpools"] = [dict(t) for t in self.threadpools]
        d["gpus"] = [dict(g) for g in self.gpus]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Environment:
        """Tolerant: unknown keys are ignored, missing ones take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        for key, value in kw.items():
            kinds = _FIELD_TYPES.get(key)
            if kinds and value is not None and (not isinstance(value, kinds)
                                                or (isinstance(value, bool) and bool not in kinds)):
                raise ValueError(f"environment field {key!r} has type {type(value).__name__}")
        if kw.get("load_avg") is not None:
            kw["load_avg"] = tuple(float(v) for v in kw["load_avg"])
        if kw.get("cpu_features") is not None:
            kw["cpu_features"] = tuple(str(v) for v in kw["cpu_features"])
        for key in ("threadpools", "gpus"):
            if key in kw:
                kw[key] = tuple(dict(v) for v in kw[key])
        for key in ("packages", "env_vars", "source_hashes"):
            if key in kw:
                kw[key] = dict(kw[key])
        return cls(**kw)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "captured_utc": (str,), "hostname": (str,), "platform": (str,), "cpu_model": (str,),
    "cpu_features": (list, tuple),
    "cpu_count_logical": (int,), "cpu_count_physical": (int,), "cpu_affinity": (int,), "cpu_governor": (str,),
    "cpu_freq_mhz": (int, float), "load_avg": (list, tuple), "memory_total_bytes": (int,),
    "memory_available_bytes": (int,), "python_version": (str,), "python_implementation": (str,),
    "python_debug_build": (bool,), "python_dev_mode": (bool,), "packages": (dict,),
    "threadpools": (list, tuple),
    "env_vars": (dict,), "gpus": (list, tuple), "git_commit": (str,), "git_dirty": (bool,),
    "source_hashes": (dict,),
}


# ----------------------------------------------------------------------------- readers
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo")
    if text:
        for line in text.splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


#: The instruction-set extensions that decide which kernels the libraries can use (``/proc/cpuinfo`` names):
#: AVX2/FMA for float32, AVX-512 for wider float32, AVX512-BF16 and AMX for native bfloat16 GEMMs.
CPU_FEATURES: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_features(flags: str | None = None) -> tuple[str, ...] | None:
    """Which of :data:`CPU_FEATURES` the CPU has, in that order; ``None`` when the flags cannot be read.

    ``flags``: the text of a ``flags`` line of ``/proc/cpuinfo`` (read from this machine when ``None``).
    """
    if flags is None:
        text = _read("/proc/cpuinfo")
        if not text:
            return None
        line = next((ln for ln in text.splitlines() if ln.lower().startswith("flags")), None)
        if line is None:
            return None
        flags = line.split(":", 1)[1]
    have = set(flags.split())
    return tuple(f for f in CPU_FEATURES if f in have)


def cpu_governor() -> str | None:
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def threadpools() -> tuple[dict[str, Any], ...]:
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded in this process."""
    try:
        from threadpoolctl import threadpool_info

        keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
                "architecture")
        return tuple({k: i.get(k) for k in keep if k in i} for i in threadpool_info())
    except Exception:  # noqa: BLE001 - threadpoolctl inspects native libraries; never fail a run on it
        return ()


def gpus(probe_torch: bool = False) -> tuple[dict[str, Any], ...]:
    """GPU name, driver and memory from ``nvidia-smi`` when present; with ``probe_torch``, from
    ``torch.cuda`` as well (importing torch costs seconds, so only when a CUDA variant is measured)."""
    found: list[dict[str, Any]] = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            for line in out.strip().splitlines():
                name, driver, mem = (p.strip() for p in line.split(",")[:3])
                found.append({"name": name, "driver": driver, "memory_total_bytes": int(float(mem) * 2**20)})
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    if probe_torch and not found:
        try:
            import torch

            if torch.cuda.is_available():
                for i in range(torch.cuda.device_count()):
                    props = torch.cuda.get_device_properties(i)
                    found.append({"name": props.name, "driver": None, "cuda": torch.version.cuda,
                                  "memory_total_bytes": int(props.total_memory)})
        except Exception:  # noqa: BLE001 - a broken CUDA install must not fail environment capture
            pass
    return tuple(found)


def git_state(path: str | os.PathLike[str] | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git work tree holding ``path`` (default: perfkit's source), read-only.

    ``GIT_OPTIONAL_LOCKS=0`` keeps ``git status`` from refreshing the index, so a run never takes a
    lock in a repository someone is committing to.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None:
        return None, None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        commit = subprocess.run([git, "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, env=env)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run([git, "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30, env=env)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return commit.stdout.strip(), dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def source_hash(module: str) -> str | None:
    """SHA-256 (first 16 hex digits) of a module's source: every ``*.py`` under a package, or the one
    file of a plain module, hashed as ``relative path, NUL, bytes`` in sorted order. Found without
    importing the module; ``None`` when it cannot be found."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        root = origin.parent
        files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    else:
        root, files = origin.parent, [origin]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode() + b"\0")
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def load_average() -> tuple[float, ...] | None:
    """The 1-, 5- and 15-minute load averages (2 decimals), ``None`` where the OS has none."""
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return None


def capture_environment(source_modules: Mapping[str, str] | None = None, probe_cuda: bool = False,
                        git_path: str | os.PathLike[str] | None = None) -> Environment:
    """Everything :class:`Environment` holds; ``source_modules`` maps a label (a backend or suite name)
    to the module whose source is hashed."""
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        freq = psutil.cpu_freq()
        freq_mhz = float(freq.current) if freq else None
    except (OSError, NotImplementedError, AttributeError):
        freq_mhz = None
    load = load_average()
    vm = psutil.virtual_memory()
    commit, dirty = git_state(git_path)
    return Environment(
        captured_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        cpu_model=cpu_model(),
        cpu_features=cpu_features(),
        cpu_count_logical=os.cpu_count(),
        cpu_count_physical=psutil.cpu_count(logical=False),
        cpu_affinity=affinity,
        cpu_governor=cpu_governor(),
        cpu_freq_mhz=freq_mhz,
        load_avg=load,
        memory_total_bytes=int(vm.total),
        memory_available_bytes=int(vm.available),
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        python_debug_build=hasattr(sys, "gettotalrefcount"),
        python_dev_mode=bool(sys.flags.dev_mode),
        packages=package_versions(),
        threadpools=threadpools(),
        env_vars={k: os.environ[k] for k in ENV_VARS if k in os.environ},
        gpus=gpus(probe_cuda),
        git_commit=commit,
        git_dirty=dirty,
        source_hashes={label: source_hash(mod) for label, mod in (source_modules or {}).items()},
    )


# ----------------------------------------------------------------------------- pre-flight
def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def preflight_warnings(env: Environment, threads: int | None = None) -> list[str]:
    """Why this machine may not give quiet numbers; empty when nothing is known to be wrong."""
    out: list[str] = []
    cpus = env.usable_cpus
    if env.load_avg and cpus and env.load_avg[0] > HIGH_LOAD_PER_CPU * cpus:
        out.append(f"high load: 1-minute load average {env.load_avg[0]:.2f} on {cpus} usable CPU(s); "
                   "other processes compete for the cores and timings will be noisy")
    for name, what in DEBUG_FLAGS.items():
        if _truthy(env.env_vars.get(name)):
            out.append(f"debug flag {name}={env.env_vars[name]} is set ({what}): "
                       "timings are not representative")
    if env.env_vars.get("NUMBA_OPT", "").strip() == "0":
        out.append("NUMBA_OPT=0 disables numba's optimisations: timings are not representative")
    if env.env_vars.get("PYTHONMALLOC", "").startswith("debug"):
        out.append(f"PYTHONMALLOC={env.env_vars['PYTHONMALLOC']} uses the debug allocator")
    if env.python_dev_mode and not _truthy(env.env_vars.get("PYTHONDEVMODE")):
        out.append("Python runs in development mode (-X dev): extra runtime checks slow it down")
    if env.python_debug_build:
        out.append("this is a debug build of Python: timings are not representative")
    if cpus:
        if threads is not None and threads > cpus:
            out.append(f"thread oversubscription: {threads} threads requested on {cpus} usable CPU(s)")
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            value = env.env_vars.get(name, "")
            if threads is None and value.isdigit() and int(value) > cpus:
                out.append(f"thread oversubscription: {name}={value} on {cpus} usable CPU(s)")
    openmp = sorted({str(t.get("prefix")) for t in env.threadpools if t.get("user_api") == "openmp"})
    if len(openmp) > 1:
        out.append(f"several OpenMP runtimes are loaded ({', '.join(openmp)}): their thread pools "
                   "oversubscribe the cores")
    if env.cpu_governor and env.cpu_governor not in ("performance",):
        out.append(f"CPU frequency governor is {env.cpu_governor!r}: frequency scaling adds noise "
                   "(the 'performance' governor is steadier)")
    if env.memory_total_bytes and env.memory_available_bytes is not None \
            and env.memory_available_bytes < LOW_MEMORY_FRACTION * env.memory_total_bytes:
        out.append(f"low memory: {env.memory_available_bytes / 2**30:.1f} GiB available of "
                   f"{env.memory_total_bytes / 2**30:.1f} GiB; swapping would distort timings")
    return out
