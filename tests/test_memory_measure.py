"""perfkit.measure.memory: freed heap memory handed back to the OS before the run phase is sampled."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from perfkit.store.records import MemoryRecord

PROBE = textwrap.dedent("""
    from perfkit.measure.memory import release_freed_memory, rss_bytes
    blocks = [bytearray(b"x" * 65536) for _ in range(2048)]  # 128 MiB of heap blocks below the mmap threshold
    pin = bytearray(b"x" * 65536)  # keeps the heap's top in use, so free() alone cannot shrink it
    del blocks
    before = rss_bytes()
    released = release_freed_memory()
    print(before - rss_bytes(), released)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_release_freed_memory_returns_freed_heap_pages():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    dropped, released = out.split()
    assert released == "True"
    assert int(dropped) >= 96 * 2**20


def test_working_memory_uses_the_run_peak_and_falls_back_for_older_records():
    mib = 2**20
    new = MemoryRecord(baseline_rss_bytes=100 * mib, rss_after_load_bytes=600 * mib, peak_rss_bytes=1400 * mib,
                       ru_maxrss_bytes=1400 * mib, weight_bytes=500 * mib, load_peak_rss_bytes=1400 * mib,
                       run_peak_rss_bytes=700 * mib)
    assert new.inference_peak_bytes == 700 * mib
    assert new.working_bytes(None) == 100 * mib
    old = MemoryRecord(baseline_rss_bytes=100 * mib, rss_after_load_bytes=600 * mib, peak_rss_bytes=1400 * mib,
                       ru_maxrss_bytes=1400 * mib)
    assert old.inference_peak_bytes == 1400 * mib
    assert old.working_bytes(500 * mib) == 800 * mib
    assert MemoryRecord.from_dict(new.to_dict()) == new
    assert MemoryRecord.from_dict(old.to_dict()) == old
