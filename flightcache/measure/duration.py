"""The one way flightcache writes a duration for a person to read."""

from __future__ import annotations

# (unit, nanoseconds in one), largest first; below a microsecond: whole nanoseconds
_UNITS = (("h", 3_600e9), ("min", 60e9), ("s", 1e9), ("ms", 1e6), ("µs", 1e3))


def human_ns(ns: float | None) -> str:
    """A duration to at most three significant digits, without trailing zeros:
    512 ns, 84.1 µs, 3.21 ms, 1.2 s, 4.5 min, 24 h; None (nothing measured) is "-"."""
    if ns is None:
        return "-"
    # a value that would round up to 1,000 of one unit is shown as 1 of the next
    unit, size = next(((u, n) for u, n in _UNITS if abs(ns) >= n * 0.9995), ("ns", 1.0))
    if unit == "ns":
        return f"{ns:.0f} ns"
    value = ns / size
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}"


def human_seconds(seconds: float | None) -> str:
    """:func:`human_ns` of a duration measured in seconds."""
    return human_ns(None if seconds is None else seconds * 1e9)
