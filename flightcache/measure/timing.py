"""Honest timings: warm-up first, then contenders interleaved in one run, percentiles.

``compare`` runs the contenders interleaved, so that a slow patch of the machine
(another process, a GC, a checkpoint) lands on all of them alike instead of on
whichever ran last. The order is one in which every contender runs right after
every contender, itself included, equally often (:func:`schedule`): a call pays
for what ran just before it (a database query leaves the next call 10-40 µs
slower on a busy two-core machine), and a plain rotation of three contenders
puts B after A in two of B's three turns but C after A in only one. Each sample
is one call timed with ``perf_counter_ns``; the figures are percentiles of those
samples, never a mean alone.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_ns: Sequence[int], pct: float) -> int:
    """The pct-th percentile by the nearest-rank method (pct in 0..100)."""
    if not sorted_ns:
        raise ValueError("no samples")
    rank = max(1, math.ceil(pct / 100 * len(sorted_ns)))
    return int(sorted_ns[min(rank, len(sorted_ns)) - 1])


@dataclass
class Stats:
    """Summary of one contender's samples, in nanoseconds."""

    label: str
    n: int
    p50: int
    p95: int
    p99: int
    min: int
    max: int
    mean: float
    speedup: float | None = None  # baseline p50 / this p50
    samples: list[int] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, label: str, samples: Sequence[int]) -> Stats:
        ordered = sorted(samples)
        return cls(
            label=label,
            n=len(ordered),
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            min=ordered[0],
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
            samples=list(samples),
        )

    def as_dict(self, *, with_samples: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_samples:
            data.pop("samples")
        return data


def time_call(fn: Callable[[], Any]) -> int:
    """One call, timed until it returns: what it returned is freed after the clock
    stops, as a caller frees an answer once it has used it. (Freeing a result of many
    objects, rows decoded from JSON, costs a third of decoding them.)"""
    start = time.perf_counter_ns()
    answer = fn()
    elapsed = time.perf_counter_ns() - start
    del answer
    return elapsed


def schedule(n: int) -> list[int]:
    """One cycle of contender numbers ``0..n-1``, each ``n`` times, in which every
    ordered pair (i, j) stands side by side exactly once, counting the pair that
    joins the cycle's end to the next cycle's start: a de Bruijn sequence of order
    2 (for n = 3: 0 0 1 0 2 1 1 2 2)."""
    order: list[int] = []
    for i in range(n):
        order.append(i)
        for j in range(i + 1, n):
            order += [i, j]
    return order


def compare(
    contenders: Mapping[str, Callable[[], Any]],
    *,
    repeat: int,
    warmup: int = 3,
    baseline: str | None = None,
) -> list[Stats]:
    """Time each contender ``repeat`` times, interleaved in :func:`schedule`'s order,
    after ``warmup`` untimed rounds.

    ``speedup`` is the baseline's p50 over each contender's p50 (the first
    contender is the baseline unless one is named).
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    labels = list(contenders)
    for _ in range(warmup):
        for label in labels:
            contenders[label]()
    samples: dict[str, list[int]] = {label: [] for label in labels}
    order = [labels[i] for i in schedule(len(labels))]
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one sample would charge it to whoever ran
    try:
        for cycle in range(math.ceil(repeat / len(labels))):
            for label in order:
                samples[label].append(time_call(contenders[label]))
            if cycle % 16 == 15:
                gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    stats = [Stats.of(label, samples[label][:repeat]) for label in labels]
    base = next(s for s in stats if s.label == (baseline or labels[0]))
    for s in stats:
        s.speedup = base.p50 / s.p50 if s.p50 else None
    return stats
