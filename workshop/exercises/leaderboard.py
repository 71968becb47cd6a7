"""Exercise leaderboard: scores, ranks and the top N on a Valkey sorted set.

A sorted set keeps its members ordered by score. ZINCRBY adds to a score, ZREVRANK
gives a member's position counting from the highest score, and ZRANGE ... REV the
members from the top. Positions count from 0; the ranks people read count from 1,
so the leader is number 1.

Complete the three functions between the START and END markers, then run:

    flightcache exercise check leaderboard

What the checker passes to your functions:
  valkey   a valkey-py client (decode_responses=True)
  key      the board's key (a sorted set), under a prefix of its own
"""

from __future__ import annotations

from typing import Any


# START leaderboard
def add_points(valkey: Any, key: str, member: str, points: float) -> float:
    """Add ``points`` to ``member``'s score (a new member starts at 0); return the new score.

    ZINCRBY key points member: valkey.zincrby(key, points, member)
    """
    raise NotImplementedError("write add_points() between # START and # END")


def rank(valkey: Any, key: str, member: str) -> int | None:
    """``member``'s rank, 1-based and highest score first: the leader is 1.
    None when ``member`` is not on the board.

    ZREVRANK key member: valkey.zrevrank(key, member) counts from 0, and answers None
    for a member that is not there.
    """
    raise NotImplementedError("write rank() between # START and # END")


def top(valkey: Any, key: str, n: int) -> list[tuple[str, float]]:
    """The ``n`` highest-scored members as (member, score) pairs, highest first.

    ZRANGE key 0 n-1 REV WITHSCORES: valkey.zrevrange(key, 0, n - 1, withscores=True).
    Both indexes are inclusive.
    """
    raise NotImplementedError("write top() between # START and # END")


# END leaderboard
