"""The one way flightcache writes a duration for a person to read."""

from __future__ import annotations

# (unit, nanoseconds in one), largest first; below a microsecond: whole nanoseconds
_UNITS = (("h", 3_600e9), ("min", 60e9), ("s", 1e9), ("ms", 1e6), ("µs", 1e3))


def human_ns(ns: float | None) -> str:
    """A duration to three significant digits: 512 ns, 84.1 µs, 3.21 ms, 1.20 s,
    4.50 min, 21.6 h; None (nothing measured) is "-"."""
    if ns is None:
        return "-"
    unit, size = next(((u, n) for u, n in _UNITS if abs(ns) >= n), ("ns", 1.0))
    if unit == "ns":
        return f"{ns:.0f} ns"
    value = ns / size
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:,.{digits}f} {unit}"


def human_seconds(seconds: float | None) -> str:
    """:func:`human_ns` of a duration measured in seconds."""
    return human_ns(None if seconds is None else seconds * 1e9)
