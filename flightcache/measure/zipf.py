"""Zipf-skewed request streams: a few items take most of the requests.

Rank ``r`` (0-based) of ``n`` is drawn with probability proportional to
``1 / (r + 1) ** s``. A larger exponent ``s`` piles more of the requests onto
the first ranks; ``s = 0`` is uniform. Sampling looks a uniform draw up in the
precomputed cumulative weights (``bisect``), so a stream of ``count`` draws
costs O(n + count log n), and the same seed always gives the same stream.
"""

from __future__ import annotations

import bisect
import itertools
import random


def zipf_cdf(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights of ranks 0..n-1 (not normalised: the last is the total)."""
    if n < 1:
        raise ValueError("a Zipf stream needs at least one rank")
    if s < 0:
        raise ValueError("the Zipf exponent must not be negative")
    return list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(n)))


def zipf_ranks(n: int, s: float, count: int, seed: int) -> list[int]:
    """``count`` ranks in 0..n-1, Zipf-distributed with exponent ``s``, reproducible by seed."""
    if count < 0:
        raise ValueError("count must not be negative")
    cdf = zipf_cdf(n, s)
    total = cdf[-1]
    rng = random.Random(seed)
    last = n - 1
    return [min(bisect.bisect_right(cdf, rng.random() * total), last) for _ in range(count)]


def top_share(ranks: list[int], top: int) -> float:
    """The fraction of the stream that falls on the ``top`` hottest ranks."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r < top) / len(ranks)
