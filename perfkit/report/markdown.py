"""Markdown building blocks: tables with aligned columns, headings, bullet lists.

Cells are strings already formatted (:mod:`perfkit.report.units`) and escaped
(:func:`perfkit.report.escape.md`) by the caller; this module only lays them out, padding each
column to its widest cell so the raw markdown reads like the hand-written seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A markdown table: ``headers``, ``rows`` of cells, and per column ``"l"`` or ``"r"`` alignment."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.headers):
                raise ValueError(f"row {row!r} has {len(row)} cells, the table {len(self.headers)} columns")

    def render(self) -> str:
        align = self.align or ("l",) + ("r",) * (len(self.headers) - 1)
        cells = [list(self.headers), *[list(r) for r in self.rows]]
        widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(self.headers))]

        def line(row: Sequence[str]) -> str:
            parts = [c.rjust(w) if a == "r" else c.ljust(w)
                     for c, w, a in zip(row, widths, align, strict=True)]
            return "| " + " | ".join(parts) + " |"

        rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                              for w, a in zip(widths, align, strict=True)) + "|"
        return "\n".join([line(self.headers), rule, *(line(r) for r in self.rows)])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] = ()) -> str:
    """Render a table in one call."""
    return Table(tuple(headers), tuple(tuple(r) for r in rows), tuple(align)).render()


def bold(text: str) -> str:
    """``**text**``; empty text and text that is already bold stay as they are (no ``****x****``)."""
    if not text or (len(text) > 4 and text.startswith("**") and text.endswith("**")):
        return text
    return f"**{text}**"


def bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


class Document:
    """Blocks of markdown separated by blank lines; :meth:`text` ends with exactly one newline."""

    def __init__(self) -> None:
        self._blocks: list[str] = []

    def add(self, *blocks: str) -> None:
        self._blocks.extend(b.rstrip("\n") for b in blocks if b)

    def heading(self, level: int, text: str) -> None:
        self.add("#" * level + " " + text)

    def text(self) -> str:
        return "\n\n".join(self._blocks) + "\n"
