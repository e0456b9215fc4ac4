"""A fake backend for testing the engine: deterministic stage durations and injected faults.

Not registered under ``perfkit.backends`` (``perfkit backends`` never lists it); the engine loads it
by import path, ``BackendRef("fake:fault=segv,fault_at=3", target=TARGET)``. It runs the vocoder's
stage chain without computing anything: each fine stage waits ``stage_us`` microseconds (times
``slow_factor`` for ``slow_stage`` and its sub-stages), by ``sleep`` (default: spares the shared cores)
or ``spin`` (a busy-wait, exact to the microsecond), and returns its input.

Options (free-form strings, unlike a real backend's fixed choices):

- ``fault``: ``none`` | ``raise`` (RuntimeError) | ``exit`` (``os._exit(3)``) | ``segv`` (a real
  NULL-pointer read) | ``hang`` (sleeps forever) | ``oom`` (allocates 64 MiB blocks until
  ``MemoryError``; refused unless the address space is limited, so it can never eat the machine);
- ``fault_at``: ``load`` (in ``load_vocoder``) or ``N``: at the start of the N-th pass, counting the
  first call as pass 1 (default ``1``);
- ``stage_us`` (default ``200``), ``slow_stage`` (a stage name, default none), ``slow_factor``
  (default ``1``), ``wait``: ``sleep`` | ``spin``;
- ``clock``: ``real`` (default: the engine's ``perf_counter_ns`` timer sees the real waits) or
  ``virtual``: nothing waits; each stage advances a virtual clock by its duration, and the backend's
  :meth:`~perfkit.interface.Backend.event_timer` reads that clock, so the samples are exactly the
  configured durations whatever the machine's load — a backend whose true speed is known, for testing
  the engine and the verdict end to end;
- ``jitter`` (default ``0``): with ``clock=virtual``, each stage's duration is multiplied by
  ``exp(N(0, jitter))`` drawn from a generator seeded with ``seed`` (default ``0``): log-normal noise,
  deterministic;
- ``hold_mib`` (default ``0``): the runner allocates and keeps this many MiB at load (a backend's own
  copy of the weights); ``scratch_mib`` (default ``0``): each pass allocates, touches and frees this
  many MiB (activations) — memory whose size the memory pass must report; ``mapped_mib`` (default
  ``0``): the first pass maps a file of this many MiB and reads every page, kept mapped for the
  runner's life (a library's code paged in by the first call: file-backed, not allocated);
- ``tag``: any label, to tell two otherwise identical variants apart.
"""

from __future__ import annotations

import ctypes
import os
import resource
import tempfile
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from ..interface import Backend, State, VocoderRunner
from ..measure.timers import CpuTimer, Timer, TimerInfo
from ..model.stages import parent_stage
from ..model.vocoder_config import VocoderConfig
from ..model.vocoder_model import VocoderModel

TARGET = "perfkit.run.fake_backend:FakeBackend"
FAULTS = ("none", "raise", "exit", "segv", "hang", "oom")
DEFAULTS = {"fault": "none", "fault_at": "1", "stage_us": "200", "slow_stage": "", "slow_factor": "1",
            "wait": "sleep", "clock": "real", "jitter": "0", "seed": "0", "hold_mib": "0",
            "scratch_mib": "0", "mapped_mib": "0", "tag": ""}


def inject(fault: str, where: str) -> None:
    """Fail the way ``fault`` says (see the module docstring)."""
    if fault == "raise":
        raise RuntimeError(f"fake backend: injected failure {where}")
    if fault == "exit":
        os._exit(3)
    if fault == "segv":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "oom":
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            raise RuntimeError("fake backend: fault=oom needs a memory limit (address space is unlimited)")
        blocks = []
        while True:  # untouched pages: hits the address-space limit without using real memory
            blocks.append(np.empty(64 * 2**20, dtype=np.uint8))


class VirtualTimer(CpuTimer):
    """A :class:`~perfkit.measure.timers.CpuTimer` on the fake backend's virtual clock (1 ns resolution,
    no overhead): spans are exactly the durations the backend was told to take."""

    kind = "virtual"

    def __init__(self, backend: FakeBackend) -> None:
        super().__init__(backend.synchronize, clock=lambda: backend.now_ns)

    def info(self) -> TimerInfo:
        return TimerInfo(self.kind, 1.0, 0.0)


def _touched(mib: float) -> np.ndarray:
    """``mib`` MiB of bytes, every page written (resident)."""
    return np.ones(int(mib * 2**20), dtype=np.uint8)


def _mapped(mib: float) -> np.ndarray | None:
    """A read-only mapping of a new ``mib`` MiB file, every page read (resident, file-backed); the file
    itself is removed at once (the mapping keeps it). ``None`` for 0."""
    n = int(mib * 2**20)
    if n <= 0:
        return None
    with tempfile.NamedTemporaryFile(prefix="perfkit-fake-") as f:
        f.write(b"\1" * n)
        f.flush()
        mapped = np.memmap(f.name, dtype=np.uint8, mode="r", shape=(n,))
    int(mapped[::4096].sum())  # one read per page
    return mapped


class FakeRunner(VocoderRunner):
    def __init__(self, config: VocoderConfig, backend: FakeBackend) -> None:
        super().__init__(config)
        self.backend = backend
        self.passes = 0
        self.held = _touched(backend.hold_mib)
        self.scratch: np.ndarray | None = None
        self.mapped: np.ndarray | None = None

    def upload_codes(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes)

    def run_stage(self, stage: str, x: Any, state: State) -> Any:
        b = self.backend
        if stage == self.stages[0]:
            self.passes += 1
            if b.fault != "none" and b.fault_at == str(self.passes):
                inject(b.fault, f"in pass {self.passes}")
            self.scratch = None
            self.scratch = _touched(b.scratch_mib)  # resident through the pass, freed at its end
            if self.passes == 1:
                self.mapped = _mapped(b.mapped_mib)
        us = b.stage_us * (b.slow_factor if b.slow_stage in (stage, parent_stage(stage)) else 1.0)
        b.wait(us * 1e3)
        if stage == self.stages[-1]:
            self.scratch = None
        return x


class FakeBackend(Backend):
    name = "fake"
    description = "test double: deterministic stage durations, injected faults"
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {k: (v,) for k, v in DEFAULTS.items()}
    worker_environment: ClassVar[Mapping[str, str]] = {"PERFKIT_FAKE_MARK": "this tree"}  # the tests look for it

    @classmethod
    def resolve_options(cls, options: Mapping[str, str]) -> dict[str, str]:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise InputError(f"fake backend has no option(s) {', '.join(sorted(unknown))}")
        resolved = {**DEFAULTS, **options}
        if resolved["fault"] not in FAULTS:
            raise InputError(f"fake backend: fault must be one of {', '.join(FAULTS)}")
        if resolved["wait"] not in ("sleep", "spin"):
            raise InputError("fake backend: wait must be sleep or spin")
        if resolved["clock"] not in ("real", "virtual"):
            raise InputError("fake backend: clock must be real or virtual")
        if not resolved["seed"].isdigit():
            raise InputError("fake backend: seed must be a non-negative integer")
        if resolved["fault_at"] != "load" and not resolved["fault_at"].isdigit():
            raise InputError("fake backend: fault_at must be 'load' or a pass number")
        for key in ("stage_us", "slow_factor", "jitter", "hold_mib", "scratch_mib", "mapped_mib"):
            try:
                float(resolved[key])
            except ValueError:
                raise InputError(f"fake backend: {key} must be a number, got {resolved[key]!r}") from None
        return resolved

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.fault = self.options["fault"]
        self.fault_at = self.options["fault_at"]
        self.stage_us = float(self.options["stage_us"])
        self.slow_stage = self.options["slow_stage"]
        self.slow_factor = float(self.options["slow_factor"])
        self._spin = self.options["wait"] == "spin"
        self.virtual = self.options["clock"] == "virtual"
        self.jitter = float(self.options["jitter"])
        self.hold_mib = float(self.options["hold_mib"])
        self.scratch_mib = float(self.options["scratch_mib"])
        self.mapped_mib = float(self.options["mapped_mib"])
        self._rng = np.random.default_rng(int(self.options["seed"]))
        self.now_ns = 0

    def wait(self, ns: float) -> None:
        if self.virtual:
            noise = float(np.exp(self._rng.normal(0.0, self.jitter))) if self.jitter > 0 else 1.0
            self.now_ns += max(1, round(ns * noise))
        elif self._spin:
            end = time.perf_counter_ns() + ns
            while time.perf_counter_ns() < end:
                pass
        else:
            time.sleep(ns / 1e9)

    def event_timer(self) -> Timer | None:
        """With ``clock=virtual``, a timer that reads the virtual clock; else the engine's choice."""
        return VirtualTimer(self) if self.virtual else None

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def load_vocoder(self, model: VocoderModel) -> VocoderRunner:
        if self.fault != "none" and self.fault_at == "load":
            inject(self.fault, "while loading")
        return FakeRunner(model.config, self)
