"""Histograms as numbers: bucket edges and counts, and the densest window.

Several series share one set of edges so that they can be drawn side by side.
A bucket holds the values ``edges[i] <= v < edges[i + 1]``; the last bucket also
holds its upper edge. :func:`densest_window` answers "how many values fall
within any one window of this width", which does not depend on where the
bucket edges happen to lie.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_NICE = (1, 2, 5)


def nice_width(span: int, max_buckets: int, minimum: int = 1) -> int:
    """The smallest width of the form 1, 2 or 5 times a power of ten, at least ``minimum``,
    that covers ``span`` in no more than ``max_buckets`` buckets."""
    if max_buckets < 1:
        raise ValueError("max_buckets must be at least 1")
    if minimum < 1:
        raise ValueError("minimum must be at least 1")
    need = max(minimum, math.ceil(span / max_buckets))
    power = 1
    while True:
        for factor in _NICE:
            width = factor * power
            if width >= need:
                return width
        power *= 10


@dataclass(frozen=True)
class Buckets:
    """Shared edges (``len(counts[s]) + 1`` of them) and each series' counts."""

    edges: list[int]
    counts: dict[str, list[int]]

    @property
    def width(self) -> int:
        return self.edges[1] - self.edges[0] if len(self.edges) > 1 else 0

    def peak(self, series: str) -> int:
        """The largest count of one bucket of ``series``."""
        return max(self.counts[series], default=0)


def bucket_counts(series: Mapping[str, Sequence[int]], width: int) -> Buckets:
    """Count each series into buckets of ``width`` aligned to multiples of ``width``."""
    if width < 1:
        raise ValueError("width must be at least 1")
    values = [v for vs in series.values() for v in vs]
    if not values:
        return Buckets([0, width], {name: [0] for name in series})
    low = min(values) // width * width
    high = max(values) // width * width + width
    edges = list(range(low, high + 1, width))
    counts: dict[str, list[int]] = {}
    for name, vs in series.items():
        row = [0] * (len(edges) - 1)
        for v in vs:
            row[min((v - low) // width, len(row) - 1)] += 1
        counts[name] = row
    return Buckets(edges, counts)


def densest_window(values: Sequence[int], window: int) -> tuple[int, int]:
    """The most values within any ``[start, start + window)``, and that start."""
    if window < 1:
        raise ValueError("window must be at least 1")
    ordered = sorted(values)
    best, best_start = 0, ordered[0] if ordered else 0
    for i, start in enumerate(ordered):
        n = bisect.bisect_left(ordered, start + window, lo=i) - i
        if n > best:
            best, best_start = n, start
    return best, best_start
