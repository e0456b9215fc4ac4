"""Helpers of the report tests: the stored fixture results, golden files, and reading tables back."""

from __future__ import annotations

import os
import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "report"
GOLDEN = FIXTURES / "golden"
#: ``PERFKIT_UPDATE_GOLDEN=1 pytest tests/test_report_*.py`` rewrites the golden files (then review the diff).
UPDATE = os.environ.get("PERFKIT_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"golden file {path} missing: run with PERFKIT_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(encoding="utf-8"), f"output differs from {path.name}"


def section(markdown: str, heading: str) -> str:
    """The text under the first heading line that starts with ``heading``, up to the next heading."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start + 1:end])


def table_rows(text: str) -> list[list[str]]:
    """The cells of the first markdown table in ``text`` (header and rule excluded), unescaped pipes only."""
    rows = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not in_table:
                in_table = True
                continue
            if set("".join(cells)) <= set("-: "):
                continue
            rows.append(cells)
        elif in_table:
            break
    return rows
