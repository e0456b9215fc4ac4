"""The project's own optimization journal (``reports/optimizations/``): every committed entry is exactly
what ``perfkit journal`` writes from the stored runs beside it (``before*.json``, ``after*.json``: one file
per suite and side), and the index lists every entry."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "reports" / "optimizations"
ENTRIES = sorted(p for p in ROOT.iterdir() if (p / "journal.md").is_file())


def unescape_md(text: str) -> str:
    """The plain text that ``perfkit.report.escape.md`` turned into ``text`` (backslash escapes, entities)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", text))


def title_and_labels(journal: str) -> tuple[str, list[str]]:
    """The ``# title`` line and the two labels of the entries table (rows ``| 0 | label | commit | ...``),
    as the plain strings that were passed to ``perfkit journal``."""
    title = unescape_md(journal.splitlines()[0].removeprefix("# "))
    labels = [unescape_md(m.group(1).strip())
              for m in re.finditer(r"^\|\s+[01] \| ((?:[^|\\]|\\.)+)\|", journal, re.MULTILINE)]
    return title, labels


def test_there_are_entries_and_the_index_links_each():
    index = (ROOT / "README.md").read_text()
    assert ENTRIES
    for entry in ENTRIES:
        assert f"]({entry.name}/journal.md)" in index, entry.name


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_regenerates_byte_identical(cli, tmp_path: Path, entry: Path) -> None:
    committed = (entry / "journal.md").read_text()
    title, labels = title_and_labels(committed)
    assert len(labels) == 2, labels
    out = tmp_path / "journal.md"
    args = ["journal", "--base", *sorted(entry.glob("before*.json")), "--head", *sorted(entry.glob("after*.json")),
            "--no-plots", "--title", title, "--out", out]
    for label in labels:
        args += ["--label", label]
    code, _, stderr = cli(*args)
    assert code == 0, stderr
    assert out.read_text() == committed
