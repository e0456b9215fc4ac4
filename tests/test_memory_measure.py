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


def test_file_backed_working_memory_is_the_file_backed_growth_and_none_when_not_recorded():
    mib = 2**20
    m = MemoryRecord(baseline_rss_bytes=100 * mib, rss_after_load_bytes=600 * mib, peak_rss_bytes=700 * mib,
                     ru_maxrss_bytes=700 * mib, weight_bytes=500 * mib, run_peak_rss_bytes=700 * mib,
                     baseline_file_rss_bytes=40 * mib, run_peak_file_rss_bytes=66 * mib)
    assert m.file_backed_working_bytes == 26 * mib and m.working_bytes(None) == 100 * mib
    assert MemoryRecord.from_dict(m.to_dict()) == m
    older = {k: v for k, v in m.to_dict().items() if "file_rss" not in k}  # a file written before the split
    assert MemoryRecord.from_dict(older).file_backed_working_bytes is None


def test_memory_tables_show_the_file_backed_column_only_when_a_case_recorded_it():
    """The compare report's memory table and the journal's delta table grow a file-backed column for
    records that have one; tables of older records (every stored journal's) keep their columns."""
    import dataclasses

    from report_support import table_rows
    from synthetic_runs import NUMPY, stage_case, stages_run

    from perfkit.report.memory_tables import memory_delta_table, memory_table
    from perfkit.report.validity import Validity

    mib = 2**20
    case = stage_case(NUMPY, seed=0, memory_peak=90 * mib)
    run = stages_run("r", "abc", [case])
    with_file = dataclasses.replace(case, memory=dataclasses.replace(
        case.memory, baseline_file_rss_bytes=40 * mib, run_peak_file_rss_bytes=52 * mib))
    validity = Validity([])
    assert "file-backed" not in memory_table([(run, case)], validity)
    assert "file-backed" not in memory_delta_table([(run, case, case)])
    table = memory_table([(run, case), (run, with_file)], validity)
    header = [c.strip() for c in table.splitlines()[0].split("|")[1:-1]]
    column = header.index("of which file-backed (MiB)")
    assert header[column - 1] == "Working (MiB)"
    assert [row[column] for row in table_rows(table)] == ["-", "12.0"]
    delta = memory_delta_table([(run, case, with_file)])
    assert [c.strip() for c in delta.splitlines()[0].split("|")[1:-1]][-2:] == [
        "File-backed before (MiB)", "File-backed after (MiB)"]
    assert table_rows(delta)[0][-2:] == ["-", "12.0"]
