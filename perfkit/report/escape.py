"""Making strings from backends and result files safe to print: markdown, HTML, plot labels, file names.

Anything that comes from a result file or a backend (variant labels, stage names, case names,
failure messages, environment strings) may contain characters that change the meaning of the
document it is pasted into. Every renderer passes such strings through one of these functions:

- :func:`md` for markdown text and table cells: backslash-escapes the markdown metacharacters
  (``\\ ` * _ [ ] | ~``), turns ``& < >`` into HTML entities (so no raw HTML gets through), a
  leading ``#`` / ``+`` / ``-`` / ``>`` / ``=`` into its escaped form, and newlines into spaces;
- :func:`html` for HTML text and attribute values (``html.escape`` with quotes);
- :func:`plot_text` for matplotlib labels (``$`` would start mathtext);
- :func:`rich_text` for the terminal (rich markup: ``[red]`` or ``[/bold]`` inside a name would be taken
  as a style, or fail the whole print with a ``MarkupError``);
- :func:`safe_filename` for file names built from names (``[A-Za-z0-9_.-]`` only, no leading dot,
  bounded length, a short hash when characters had to be replaced so distinct names stay distinct).
"""

from __future__ import annotations

import hashlib
import html as _html
import re

from rich.markup import escape as _rich_escape

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MD_LEADING = re.compile(r"^(\s*)([#+\-=>])")
_WHITESPACE = re.compile(r"[\r\n\t\f\v]+")
_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_CELL_CHARS = 400
MAX_FILENAME_CHARS = 80


def _one_line(text: object, limit: int) -> str:
    s = _WHITESPACE.sub(" ", str(text))
    s = "".join(ch for ch in s if ch.isprintable())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def md(text: object, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` as literal markdown (one line, at most ``limit`` characters)."""
    s = _one_line(text, limit)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return _MD_LEADING.sub(r"\1\\\2", s)


def html(text: object, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` as literal HTML text or attribute value (one line)."""
    return _html.escape(_one_line(text, limit), quote=True)


def plot_text(text: object, limit: int = 60) -> str:
    """``text`` for a matplotlib label: one line, ``$`` escaped so mathtext never starts."""
    return _one_line(text, limit).replace("$", r"\$")


def rich_text(text: object, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` as literal rich console text (one line, markup escaped, control characters dropped)."""
    return _rich_escape(_one_line(text, limit))


def safe_filename(text: object, fallback: str = "item") -> str:
    """A file-name component made from ``text``: ``[A-Za-z0-9_.-]`` only, no leading dot or dash,
    at most :data:`MAX_FILENAME_CHARS` characters; when anything had to change, an 8-hex hash of the
    original is appended so two different names never map to one file."""
    raw = str(text)
    cleaned = _UNSAFE_FILE.sub("_", raw).lstrip(".-_").rstrip(".")
    if cleaned == raw and 0 < len(cleaned) <= MAX_FILENAME_CHARS:
        return cleaned
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = cleaned[: MAX_FILENAME_CHARS - 9].rstrip(".") or fallback
    return f"{stem}-{digest}"
