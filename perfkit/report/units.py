"""Fixed formatting of the numbers reports print, so the same value always gives the same text.

Every formatter is a pure function of its argument (no locale, no current time). Durations are
stored in integer nanoseconds and printed in milliseconds with a number of decimals that depends on
the magnitude only (three significant digits, at least). ``None`` and NaN print as ``-``.
"""

from __future__ import annotations

import math

DASH = "-"


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _ms_format(ms_value: float) -> str:
    """The format of a millisecond value of this magnitude (three significant digits at least)."""
    a = abs(ms_value)
    if a >= 1000:
        return ".0f"
    if a >= 100:
        return ".1f"
    if a >= 10:
        return ".2f"
    if a >= 1:
        return ".3f"
    if a >= 0.01 or a == 0:
        return ".4f"
    return ".2e"


def ms(ns: float | None) -> str:
    """Nanoseconds as milliseconds: ``52639``, ``118.7``, ``12.35``, ``1.234``, ``0.0123``."""
    if _missing(ns):
        return DASH
    v = float(ns) / 1e6  # type: ignore[arg-type]
    return format(v, _ms_format(v))


def signed_ms(ns: float | None, like: float | None = None) -> str:
    """A difference in milliseconds with its sign (``+1.20``, ``-0.0310``), printed with the decimals of
    ``like`` (the value it is a difference of) when given: a small change reads ``+0.0001``, not ``1e-07``."""
    if _missing(ns):
        return DASH
    v = float(ns) / 1e6  # type: ignore[arg-type]
    fmt = _ms_format(float(like) / 1e6) if like is not None and not _missing(like) else _ms_format(v)
    text = format(v, fmt)
    if float(text) == 0:
        return format(0.0, fmt)
    return text if text.startswith("-") else "+" + text


def seconds(s: float | None, decimals: int = 2) -> str:
    if _missing(s):
        return DASH
    return f"{s:.{decimals}f}"


def pct(fraction: float | None, decimals: int = 1, signed: bool = False) -> str:
    """``0.123`` -> ``12.3%`` (``+12.3%`` with ``signed``)."""
    if _missing(fraction):
        return DASH
    v = 100.0 * float(fraction)  # type: ignore[arg-type]
    text = f"{v:+.{decimals}f}%" if signed else f"{v:.{decimals}f}%"
    return text.replace("+0.0%", "0.0%").replace("-0.0%", "0.0%")


def ratio(x: float | None, decimals: int = 2) -> str:
    """A speedup or ratio: ``4.31x``."""
    if _missing(x):
        return DASH
    if math.isinf(x):  # type: ignore[arg-type]
        return "inf"
    return f"{x:.{decimals}f}x"


def interval(low: float | None, high: float | None, decimals: int = 2) -> str:
    """A confidence interval of a speedup: ``[1.02, 1.09]``."""
    if _missing(low) or _missing(high):
        return DASH
    return f"[{low:.{decimals}f}, {high:.{decimals}f}]"


def number(x: float | None, decimals: int = 3) -> str:
    if _missing(x):
        return DASH
    if math.isinf(x):  # type: ignore[arg-type]
        return "inf" if x > 0 else "-inf"  # type: ignore[operator]
    return f"{x:.{decimals}f}"


def mib(n: int | float | None, decimals: int = 1) -> str:
    """Bytes as MiB: ``834.2``."""
    if _missing(n):
        return DASH
    return f"{float(n) / 2**20:.{decimals}f}"  # type: ignore[arg-type]


def snr_db(x: float | None) -> str:
    """``inf dB``, ``118.7 dB``."""
    if _missing(x):
        return DASH
    if math.isinf(x):  # type: ignore[arg-type]
        return "inf dB" if x > 0 else "-inf dB"  # type: ignore[operator]
    return f"{x:.1f} dB"


def correlation(x: float | None) -> str:
    return DASH if _missing(x) else f"{x:.6f}"


def small(x: float | None) -> str:
    """A small non-negative quantity (max abs diff, NMSE): ``0.000033`` or ``2.1e-09``."""
    if _missing(x):
        return DASH
    if math.isinf(x):  # type: ignore[arg-type]
        return "inf"
    if x == 0 or abs(x) >= 1e-4:  # type: ignore[operator]
        return f"{x:.6f}"
    return f"{x:.1e}"


def rtf(x: float | None) -> str:
    """A real-time factor (or its inverse): three decimals from 0.1 up (``0.660``, ``1.423``), three
    significant digits below (``0.00906``)."""
    if _missing(x):
        return DASH
    if math.isinf(x):  # type: ignore[arg-type]
        return "inf"
    return f"{x:.3f}" if abs(x) >= 0.1 else f"{x:.3g}"  # type: ignore[arg-type]
