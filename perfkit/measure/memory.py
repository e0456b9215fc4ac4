"""Memory of the current process: a sampling thread for peak RSS/USS, the OS peak, torch's CUDA peaks.

Measured in a pass of its own (a fresh worker), never while timing: the sampler's thread would
disturb the timings, and a timing worker's history would disturb the peak.

- ``rss``: resident set size (``psutil.Process().memory_info().rss``), polled every ``interval_s``,
  with its file-backed part at the peak (``memory_info().shared``: on Linux ``RssFile + RssShmem``, the
  pages of mapped files such as the libraries' code, which the first call of a kernel pages in);
- ``uss``: unique set size, memory only this process holds (``memory_full_info().uss``, reads
  ``/proc/<pid>/smaps``: polled every ``uss_every``-th poll, as it costs much more than RSS);
- ``ru_maxrss``: the kernel's own peak RSS of the process since it started
  (``getrusage(RUSAGE_SELF)``, kibibytes on Linux, bytes on macOS; converted to bytes). It sees peaks
  between two polls that the sampler can miss, but includes everything since the process started;
- on CUDA: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` after
  ``torch.cuda.reset_peak_memory_stats``.

Between the load and the run, :func:`release_freed_memory` collects garbage and asks glibc to hand
freed heap pages back to the OS (``malloc_trim``): without it, the input model's memory, freed once a
backend has copied the weights, stays resident in the allocator and reads as the backend's working
memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
import threading
from dataclasses import dataclass
from types import TracebackType

import psutil


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def _file_rss(info: object) -> int | None:
    """The file-backed part of a ``memory_info()`` (psutil's ``shared``), ``None`` where the platform has none."""
    shared = getattr(info, "shared", None)
    return None if shared is None else int(shared)


def file_rss_bytes() -> int | None:
    """The file-backed part of this process's RSS now (:func:`_file_rss`)."""
    return _file_rss(psutil.Process().memory_info())


def uss_bytes() -> int | None:
    """USS, or ``None`` where the platform or permissions do not allow reading it."""
    try:
        return int(psutil.Process().memory_full_info().uss)
    except (psutil.Error, AttributeError, OSError):
        return None


def ru_maxrss_bytes() -> int:
    """The OS's peak RSS of this process since it started, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def release_freed_memory() -> bool:
    """``gc.collect()``, then glibc's ``malloc_trim(0)``; ``False`` where there is no glibc to ask."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class SamplerPeaks:
    peak_rss_bytes: int
    peak_uss_bytes: int | None
    polls: int
    interval_s: float
    peak_file_rss_bytes: int | None = None  # the file-backed part of the RSS at its peak


class RssSampler:
    """Context manager: a daemon thread polling RSS (and USS every ``uss_every`` polls) for their peaks."""

    def __init__(self, interval_s: float = 0.002, uss_every: int = 10) -> None:
        self.interval_s = interval_s
        self.uss_every = max(1, uss_every)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = psutil.Process(os.getpid())
        self._peak_rss = 0
        self._peak_file_rss: int | None = None
        self._peak_uss: int | None = None
        self._polls = 0

    def _poll(self) -> None:
        info = self._proc.memory_info()
        if int(info.rss) > self._peak_rss:
            self._peak_rss = int(info.rss)
            self._peak_file_rss = _file_rss(info)
        if self._polls % self.uss_every == 0:
            try:
                uss = int(self._proc.memory_full_info().uss)
                self._peak_uss = uss if self._peak_uss is None else max(self._peak_uss, uss)
            except (psutil.Error, AttributeError, OSError):
                pass
        self._polls += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def __enter__(self) -> RssSampler:
        self._poll()
        self._thread = threading.Thread(target=self._loop, name="perfkit-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._poll()

    def peaks(self) -> SamplerPeaks:
        return SamplerPeaks(self._peak_rss, self._peak_uss, self._polls, self.interval_s, self._peak_file_rss)


def cuda_reset_peaks(device: str) -> bool:
    """Reset torch's CUDA peak counters for ``device``; ``False`` when torch/CUDA is not in use."""
    torch = sys.modules.get("torch")
    if torch is None or not device.startswith("cuda") or not torch.cuda.is_available():
        return False
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return True


def cuda_peaks(device: str) -> tuple[int, int] | None:
    """``(max_memory_allocated, max_memory_reserved)`` in bytes since the last reset, or ``None``."""
    torch = sys.modules.get("torch")
    if torch is None or not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device)), int(torch.cuda.max_memory_reserved(device))
