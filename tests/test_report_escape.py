"""Output safety and fixed formatting: names from results are escaped, file names sanitised, numbers
always printed the same way."""

from __future__ import annotations

import math
import re

import pytest

from perfkit.report import units
from perfkit.report.escape import html, md, plot_text, rich_text, safe_filename
from perfkit.report.markdown import table


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("numpy:dtype=float32", "numpy:dtype=float32"),
        ("a|b", r"a\|b"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("[click](http://x)", r"\[click\](http://x)"),
        ("**bold** _it_ `code` ~x~", r"\*\*bold\*\* \_it\_ \`code\` \~x\~"),
        ("# heading", r"\# heading"),
        ("line\nbreak", "line break"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_md_escapes_markdown_and_html(raw: str, expected: str) -> None:
    assert md(raw) == expected


def test_md_output_cannot_break_a_table_row() -> None:
    evil = "x | y\n| --- |"
    text = table(["Variant", "Time"], [[md(evil), "1.0"]])
    lines = text.splitlines()
    assert len(lines) == 3  # header, rule, one row: the name added no row and no column
    assert len(re.findall(r"(?<!\\)\|", lines[2])) == 3  # only the row's own three separators


def test_html_and_plot_text() -> None:
    assert html('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert plot_text("cost $x^2$") == r"cost \$x^2\$"


@pytest.mark.parametrize("raw", ["../../etc/passwd", "torch:dtype=bfloat16", ".hidden", "a/b\\c", "", "é" * 300])
def test_safe_filename(raw: str) -> None:
    name = safe_filename(raw)
    assert name and not name.startswith((".", "-"))
    assert all(c.isalnum() and c.isascii() or c in "_.-" for c in name)
    assert len(name) <= 80


def test_safe_filename_keeps_distinct_names_distinct() -> None:
    assert safe_filename("torch:dtype=bfloat16") != safe_filename("torch/dtype=bfloat16")
    assert safe_filename("stages") == "stages"


def test_units_fixed_format() -> None:
    assert units.ms(52_639e6) == "52639"
    assert units.ms(118.74e6) == "118.7"
    assert units.ms(12.345e6) == "12.35"
    assert units.ms(1.2344e6) == "1.234"
    assert units.ms(0.05e6) == "0.0500"
    assert units.ms(None) == units.ms(math.nan) == "-"
    assert units.signed_ms(1e2, like=5e4) == "+0.0001"
    assert units.signed_ms(-2.5e6) == "-2.500"
    assert units.signed_ms(0.0) == "0.0000"
    assert units.pct(0.1234) == "12.3%"
    assert units.pct(-0.0001, signed=True) == "0.0%"
    assert units.ratio(4.3123) == "4.31x"
    assert units.interval(1.02, 1.091) == "[1.02, 1.09]"
    assert units.snr_db(math.inf) == "inf dB"
    assert units.snr_db(92.43) == "92.4 dB"
    assert units.correlation(1.0) == "1.000000"
    assert units.small(3.3e-5) == "3.3e-05"
    assert units.small(0.0) == "0.000000"
    assert units.mib(3 * 2**20) == "3.0"


@pytest.mark.parametrize("raw", ["[/bold]", "[red]x[/red]", "a\\", "[link=https://e.x]y[/link]", "l1\nl2 [b]"])
def test_rich_text_prints_literally(raw: str) -> None:
    from rich.console import Console

    console = Console(width=200, color_system=None, record=True)
    console.print(f"[red]{rich_text(raw)}[/red]")  # would raise MarkupError or apply styles unescaped
    assert console.export_text().strip() == raw.replace("\n", " ")
