"""Latency histograms: HdrHistogram (HdrHistogram_py), the one module that imports it.

An HDR histogram keeps every value to three significant digits (0.1 %) from 1 ns
to one hour in a fixed ~350 KiB of counters, however many values it records, and
two of them add up exactly: threads and processes each record into their own and
the results are merged.

HdrHistogram_py's ``record_value`` costs 1.5-2.2 µs in CPython (measured on the
workshop machine), most of the harness's 5 µs budget per operation. The bench's hot
loop therefore increments the histogram's own counter array itself, with the same
index arithmetic (:func:`index`, a shift and a ``bit_length``: ~0.2 µs), and
:func:`settle` then sets the total, minimum and maximum as the library's own
decoder does. The counts are the library's, bit for bit (a test checks it).

Percentiles are HdrHistogram's: the smallest recorded value that at least p % of
the values do not exceed, reported as the highest value equivalent to it at three
significant digits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flightcache.errors import FlightcacheError

try:
    from hdrh.histogram import HdrHistogram
except ImportError:  # left out by its marker where it has no wheel (pyproject.toml)
    raise FlightcacheError(
        "the benchmark needs hdrhistogram, which has no wheel for this platform",
        hint="pip install hdrhistogram (it builds with a C compiler), or run the benchmark"
        " on Linux x86_64, macOS arm64 or Windows",
    ) from None

LOWEST_NS = 1
HIGHEST_NS = 3_600 * 1_000_000_000  # one hour: a value above it is clamped, and counted
DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)

Histogram = Any  # hdrh is untyped


def new() -> Histogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS)


def record(h: Histogram, ns: int) -> None:
    """Record one value the library's way (outside the hot loop)."""
    h.record_value(min(max(ns, 0), HIGHEST_NS))


_SHAPE = new()
MASK: int = _SHAPE.sub_bucket_mask
UNIT: int = _SHAPE.unit_magnitude
HALF_MAGNITUDE: int = _SHAPE.sub_bucket_half_count_magnitude
HALF: int = _SHAPE.sub_bucket_half_count
SHIFT = UNIT + HALF_MAGNITUDE + 1
del _SHAPE


def index(ns: int) -> int:
    """The counter a value of 0..HIGHEST_NS falls in: HdrHistogram's ``_counts_index_for``
    in one expression. The hot loops inline it."""
    bucket = (ns | MASK).bit_length() - SHIFT
    return ((bucket + 1) << HALF_MAGNITUDE) + (ns >> (bucket + UNIT)) - HALF


def settle(h: Histogram, added: int) -> None:
    """After ``added`` values went straight into ``h.counts``: total, min and max."""
    if not added:
        return
    raw = bytes(h.counts)  # 8-byte little-endian counters: zero bytes mark empty ones
    low = (len(raw) - len(raw.lstrip(b"\0"))) // 8
    high = (len(raw.rstrip(b"\0")) - 1) // 8
    h.set_internal_tacking_values(low, high, h.get_total_count() + added)


def merge(histograms: Iterable[Histogram]) -> Histogram:
    total = new()
    for h in histograms:
        if h.get_total_count():
            total.add(h)
    return total


def encode(h: Histogram) -> str:
    """The histogram as HdrHistogram's compressed base64 text (what other HDR tools read)."""
    return str(h.encode().decode("ascii"))


def decode(text: str) -> Histogram:
    h = new()
    if text:
        h.decode_and_add(text)
    return h


@dataclass
class Summary:
    """The figures of one histogram, in nanoseconds."""

    n: int
    p50: int
    p90: int
    p99: int
    p999: int
    max: int
    min: int
    mean: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p99.9": self.p999,
            "max": self.max,
            "min": self.min,
            "mean": round(self.mean, 1),
        }


def summary(h: Histogram) -> Summary:
    n = int(h.get_total_count())
    if not n:
        return Summary(0, 0, 0, 0, 0, 0, 0, 0.0)
    at = h.get_percentile_to_value_dict(list(PERCENTILES))
    return Summary(
        n=n,
        p50=int(at[50.0]),
        p90=int(at[90.0]),
        p99=int(at[99.0]),
        p999=int(at[99.9]),
        max=int(h.get_max_value()),
        min=int(h.get_min_value()),
        mean=float(h.get_mean_value()),
    )


def bucket_counts(h: Histogram, edges: list[int]) -> list[int]:
    """How many values fall in each ``[edges[i], edges[i + 1])``; a value at or above the
    last edge counts in the last bucket (values are HDR's, at three significant digits)."""
    counts = [0] * (len(edges) - 1)
    if not counts or not h.get_total_count():
        return counts
    i = 0
    for item in h.get_recorded_iterator():
        value = int(item.value_iterated_to)
        while i < len(counts) - 1 and value >= edges[i + 1]:
            i += 1
        counts[i] += int(item.count_added_in_this_iter_step)
    return counts


def span(histograms: Iterable[Histogram]) -> tuple[int, int] | None:
    """The smallest and largest value any of them holds, or None when all are empty."""
    full = [h for h in histograms if h.get_total_count()]
    if not full:
        return None
    return (
        max(1, min(int(h.get_min_value()) for h in full)),
        max(1, max(int(h.get_max_value()) for h in full)),
    )


def decade_edges(low: int, high: int) -> list[int]:
    """Edges 1, 2, 5, 10, 20, 50 ... from the last at or below ``low`` to the first above
    ``high`` (``low`` at least 1)."""
    power = 10 ** (len(str(low)) - 1)
    edges: list[int] = []
    while True:
        for step in (1, 2, 5):
            edge = step * power
            if edge <= low:
                edges = [edge]
            elif edge > high:
                return [*edges, edge]
            else:
                edges.append(edge)
        power *= 10


MAX_ENCODED = 1_000_000
"""Characters of one encoded histogram read from a file: the bench's own are a few KiB
(only counters up to the largest value are written, LEB128 then zlib)."""


def decode_untrusted(text: str) -> Histogram:
    """:func:`decode` for text read from a file someone gave: ValueError, never a large
    allocation, unless it is a histogram of this module's shape (1 ns to one hour,
    three digits). The library would inflate any zlib bomb it is handed and size its
    counters from the file's own header."""
    import base64
    import binascii
    import struct
    import zlib

    if len(text) > MAX_ENCODED:
        raise ValueError(f"histogram over {MAX_ENCODED:,} characters")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("histogram is not base64") from None
    if len(raw) < 8 or struct.unpack(">I", raw[4:8])[0] != len(raw) - 8:
        raise ValueError("histogram has a bad length")
    shape = new()
    limit = 40 + shape.counts_len * 9  # the payload header, then at most 9 bytes a counter
    inflate = zlib.decompressobj()
    try:
        payload = inflate.decompress(raw[8:], limit)
    except zlib.error:
        raise ValueError("histogram is not zlib data") from None
    if inflate.unconsumed_tail or len(payload) < 40:
        raise ValueError("histogram inflates past the size a histogram can have")
    digits, lowest, highest = struct.unpack(">IQQ", payload[12:32])
    if (digits, lowest, highest) != (DIGITS, LOWEST_NS, HIGHEST_NS):
        raise ValueError(
            f"histogram of {lowest}..{highest} ns at {digits} digits, not flightcache's"
        )
    try:
        return decode(text)
    except Exception as exc:  # the library's cookie and length errors, and its asserts
        raise ValueError(f"histogram does not decode ({type(exc).__name__})") from None


def percentile_curve(h: Histogram, percentiles: Iterable[float]) -> list[tuple[float, int]]:
    """(percentile, latency in ns) at each of ``percentiles``; empty when ``h`` is."""
    if not h.get_total_count():
        return []
    return [(p, int(h.get_value_at_percentile(p))) for p in percentiles]
