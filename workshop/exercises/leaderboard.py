"""Exercise leaderboard: scores, ranks and the top N on a Valkey sorted set.

A sorted set keeps its members ordered by score. ZINCRBY adds to a score, ZSCORE
reads one, ZCOUNT counts the members in a score range, ZREVRANK gives a member's
position counting from the highest score, and ZRANGE ... REV the members from the
top. A position is not yet a rank: positions count from 0 and the ranks people read
from 1, and among equal scores a position orders members by name, while a rank is
shared (Module 3, "Ranks and ties").

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
    """``member``'s competition rank: 1 + the number of members with a strictly
    higher score. The leader is 1; two members with the same score share a rank, and
    the next rank is skipped (1, 2, 2, 4), as SQL's RANK() does. None when ``member``
    is not on the board.

    Which command tells how many members score more than a given score? ZREVRANK
    alone does not: among equal scores it is a position, ordered by name.
    """
    raise NotImplementedError("write rank() between # START and # END")


def top(valkey: Any, key: str, n: int) -> list[tuple[str, float]]:
    """The ``n`` highest-scored members as (member, score) pairs, highest first;
    nothing when ``n`` is 0 or less.

    ZRANGE ... REV WITHSCORES (valkey.zrevrange) takes a start and a stop index, both
    inclusive; a negative index counts from the end, so mind what n = 0 turns into.
    """
    raise NotImplementedError("write top() between # START and # END")


# END leaderboard
