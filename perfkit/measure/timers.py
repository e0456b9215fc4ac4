"""Timers: ``perf_counter_ns`` on the CPU, CUDA events on the GPU.

A timer measures one *pass* as consecutive named spans::

    timer.start()
    for stage in stages:
        x = runner.run_stage(stage, x, state)
        timer.lap(stage)            # synchronised boundary: the device has finished ``stage``
    spans = timer.read()            # {stage: ns}

    timer.start(); runner.decode(codes, state); timer.end("decode"); timer.read()

- :meth:`Timer.lap` ends a span with a device synchronisation (``backend.synchronize()``) — per-stage
  timing, so one stage's queued work is never charged to the next;
- :meth:`Timer.end` ends a span *without* a per-span synchronisation: the CPU timer synchronises once
  there (it must, to read a wall clock), the CUDA-event timer records an event and synchronises once, in
  :meth:`Timer.read`, where the measurement ends;
- a span name used twice in one pass accumulates (per-frame generator stages sum over frames).

``span_ns`` is the difference of consecutive stamps: ``perf_counter_ns`` integers, or
``start.elapsed_time(end)`` (milliseconds, float) * 1e6 rounded for CUDA events.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CUDA_EVENT_RESOLUTION_NS = 500.0
"""CUDA events resolve about 0.5 microseconds (CUDA runtime documentation, ``cudaEventElapsedTime``)."""


@dataclass(frozen=True)
class TimerInfo:
    """What a sample's clock was: its kind, resolution and per-stamp overhead (ns)."""

    kind: str
    resolution_ns: float
    overhead_ns: float


class Timer(abc.ABC):
    """Times consecutive spans of one pass; see the module docstring."""

    kind: str = ""

    def __init__(self, synchronize: Callable[[], None] = lambda: None) -> None:
        self._sync = synchronize
        self._names: list[str] = []

    @abc.abstractmethod
    def start(self) -> None:
        """Begin a pass (forgets the previous one)."""

    @abc.abstractmethod
    def lap(self, span: str) -> None:
        """End ``span`` after synchronising the device."""

    @abc.abstractmethod
    def end(self, span: str) -> None:
        """End ``span`` with no per-span synchronisation (the pass's one sync happens here or in read)."""

    @abc.abstractmethod
    def read(self) -> dict[str, int]:
        """Nanoseconds per span of the pass, in first-seen order; repeated names accumulate."""

    @abc.abstractmethod
    def info(self) -> TimerInfo:
        """Kind, resolution and overhead of this clock."""

    def _accumulate(self, durations: list[int]) -> dict[str, int]:
        if len(durations) != len(self._names):
            raise RuntimeError("timer read before start() or with unmatched spans")
        out: dict[str, int] = {}
        for name, ns in zip(self._names, durations, strict=True):
            out[name] = out.get(name, 0) + ns
        return out


class CpuTimer(Timer):
    """Stamps of ``clock`` (``time.perf_counter_ns``; a virtual clock in tests); :meth:`end` synchronises
    too (a wall clock needs the work done)."""

    kind = "perf_counter_ns"

    def __init__(self, synchronize: Callable[[], None] = lambda: None,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        super().__init__(synchronize)
        self._clock = clock
        self._stamps: list[int] = []

    def start(self) -> None:
        self._names = []
        self._stamps = [self._clock()]

    def lap(self, span: str) -> None:
        self._sync()
        self._stamps.append(self._clock())
        self._names.append(span)

    end = lap

    def read(self) -> dict[str, int]:
        s = self._stamps
        return self._accumulate([s[i + 1] - s[i] for i in range(len(s) - 1)])

    def info(self) -> TimerInfo:
        return cpu_timer_info()


def cpu_timer_info(trials: int = 2000) -> TimerInfo:
    """Effective resolution (smallest non-zero step between consecutive reads, never below the clock's
    advertised resolution) and overhead (median cost of one read) of ``perf_counter_ns``."""
    advertised = time.get_clock_info("perf_counter").resolution * 1e9
    stamps = [time.perf_counter_ns() for _ in range(trials)]
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    positive = [d for d in steps if d > 0]
    step = positive[0] if positive else 1
    return TimerInfo("perf_counter_ns", float(max(advertised, step)), float(steps[len(steps) // 2]))


class CudaEventTimer(Timer):
    """``torch.cuda.Event(enable_timing=True)`` stamps on the current stream; one sync in :meth:`read`."""

    kind = "cuda_event"

    def __init__(self, synchronize: Callable[[], None] = lambda: None, device: str = "cuda") -> None:
        super().__init__(synchronize)
        import torch

        self._torch = torch
        self._device = torch.device(device)
        self._events: list[Any] = []

    def _record(self) -> None:
        event = self._torch.cuda.Event(enable_timing=True)
        event.record(self._torch.cuda.current_stream(self._device))
        self._events.append(event)

    def start(self) -> None:
        self._names = []
        self._events = []
        self._record()

    def lap(self, span: str) -> None:
        self._record()
        self._sync()
        self._names.append(span)

    def end(self, span: str) -> None:
        self._record()
        self._names.append(span)

    def read(self) -> dict[str, int]:
        ev = self._events
        ev[-1].synchronize()  # the pass's single synchronisation
        return self._accumulate([round(ev[i].elapsed_time(ev[i + 1]) * 1e6) for i in range(len(ev) - 1)])

    def info(self) -> TimerInfo:
        return TimerInfo(self.kind, CUDA_EVENT_RESOLUTION_NS, 0.0)


def timer_for(backend: Any) -> Timer:
    """The timer the engine uses for ``backend``: its own :meth:`event_timer` if it offers one, CUDA
    events when its :meth:`compute_device` is ``cuda*``, ``perf_counter_ns`` otherwise."""
    custom = backend.event_timer()
    if custom is not None:
        return custom
    device = backend.compute_device()
    if device.startswith("cuda"):
        return CudaEventTimer(backend.synchronize, device)
    return CpuTimer(backend.synchronize)
