"""Leaderboards on sorted sets: what each board ranks, one board's keys, the reads.

Read path: ZREVRANGE (ZRANGE for the lowest) for the top N, ZSCORE / ZREVRANK / ZCOUNT
for a member's standing, a slice around a member, on ``{lb:<board>}:<period>``. Ranks
are competition ranks: 1 + the members with a strictly higher score (ZCOUNT key
(score +inf), so equal scores share a rank, as SQL's RANK()).
Write path: the ``leaderboard_apply`` script (``leaderboard_sync`` and the simulator)
ZINCRBYs a member on every period key that exists, EXPIREs the keys that have a TTL;
the simulator then PUBLISHes each new score on :class:`Board`'s channel for live views.
Failure mode: Valkey is never the source of truth: a missing board, or an increment
lost, is put right from the database by ``leaderboard_sync`` (rebuild, write-through,
event stream). Periods are ``leaderboard_periods``; the pinned connection behind
:class:`Board`'s fast reads is ``leaderboard_connection``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flightcache.errors import UsageError
from flightcache.keys import Keys
from flightcache.patterns.leaderboard_connection import PinnedConnection
from flightcache.patterns.leaderboard_periods import ALL, Period

SCOPE = "leaderboard"  # every command's boards live under <prefix>leaderboard:
N_MAX = 10_000


def board_keys(prefix: str) -> Keys:
    """The persistent leaderboard scope, ``<prefix>leaderboard:``."""
    return Keys(prefix).scope(SCOPE)


# -- the registry: what each board ranks, and the named query that builds it --------------
@dataclass(frozen=True)
class BoardDefinition:
    name: str
    title: str
    member: str
    score: str
    sql: str  # the named query in sql/<dialect>/queries.sql
    signed: bool = False  # may a score be negative?


BOARDS: dict[str, BoardDefinition] = {
    b.name: b
    for b in (
        BoardDefinition("airport-bookings", "airports by bookings", "airport IATA",
                        "bookings", "leaderboard_airport_bookings"),
        BoardDefinition("airline-ontime", "airlines by on-time %", "airline IATA",
                        "% of flights leaving at most 15 min late", "leaderboard_airline_ontime"),
        BoardDefinition("airport-delay", "airports by average delay", "airport IATA",
                        "average departure delay, minutes", "leaderboard_airport_delay",
                        signed=True),
        BoardDefinition("passenger-points", "passengers by loyalty points", "passenger_id",
                        "points (1 per unit of price paid)", "leaderboard_passenger_points"),
        BoardDefinition("passenger-flights", "passengers with most flights", "passenger_id",
                        "flights booked", "leaderboard_passenger_flights"),
        BoardDefinition("airport-passengers", "airports with most passengers", "airport IATA",
                        "passengers departing or arriving", "leaderboard_airport_passengers"),
        BoardDefinition("routes-domestic", "domestic routes by flights", "route FROM:TO",
                        "flights (both airports in one country)", "leaderboard_routes_domestic"),
        BoardDefinition("routes-international", "international routes by flights", "route FROM:TO",
                        "flights (airports in two countries)", "leaderboard_routes_international"),
    )
}  # fmt: skip


def definition(name: str) -> BoardDefinition:
    try:
        return BOARDS[name]
    except KeyError:
        raise UsageError(
            f"unknown board {name!r}",
            hint="boards: " + ", ".join(BOARDS) + " (flightcache leaderboard boards)",
        ) from None


def check_n(n: int, what: str = "N") -> int:
    if n < 1 or n > N_MAX:
        raise UsageError(
            f"{what} must be between 1 and {N_MAX:,}, not {n:,}",
            hint="ask for fewer members, e.g. --n 10",
        )
    return n


def check_score(board: BoardDefinition, value: float, what: str) -> float:
    if value != value:  # NaN
        raise UsageError(f"{what} is not a number", hint="pass a number such as 100")
    if value < 0 and not board.signed:
        raise UsageError(
            f"{what} {value:g} is negative, and {board.name} scores ({board.score}) never are",
            hint="pass 0 or more",
        )
    return value


@dataclass
class RankedMember:
    rank: int  # competition rank: 1 + members with a strictly higher score
    member: str
    score: float


@dataclass
class Standing:
    member: str
    score: float
    rank: int
    position: int  # ZREVRANK + 1: the place in Valkey's order, ties broken by member
    count: int
    percentile: float  # % of the board scoring strictly lower


# -- one board on Valkey: ZINCRBY and the reads of the live view, the simulator and the bench
class Board:
    """One board's sorted sets (a key per period) and its update channel.

    Reads and bulk increments go over one connection that the board keeps out of the
    pool (:class:`~flightcache.patterns.leaderboard_connection.PinnedConnection`); a
    MOVED or a dropped connection falls back to the ordinary client call. A Board is
    for one thread at a time (its pinned connection is not shared); close() returns it.
    """

    def __init__(self, client: Any, keys: Keys, name: str) -> None:
        self.client = client
        self.keys = keys
        self.name = name
        self.channel = keys.board_updates(name)
        self.connection = PinnedConnection(client, self.key())

    def key(self, period: Period = ALL) -> str:
        return self.keys.board(self.name, period.name)

    def add_scores(self, period: Period, pairs: Iterable[tuple[str, float]]) -> list[float]:
        """ZINCRBY each (member, amount), pipelined by hand on the pinned connection (one
        write, the key's part packed once); returns the new scores."""
        replies = self.connection.zincrby_many(self.key(period), list(pairs))
        return [float(s) for s in replies]

    # region: board-top
    def top(self, period: Period = ALL, n: int = 10) -> list[tuple[str, float]]:
        """ZREVRANGE 0 n-1 WITHSCORES: the n highest members, highest first."""
        key = self.key(period)
        flat = self.connection.command(
            "ZREVRANGE", key, 0, n - 1, "WITHSCORES", packed_as=(period.name, n)
        )
        return [(str(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    # endregion: board-top

    def rank(self, member: str, period: Period = ALL) -> int | None:
        """ZREVRANK: 0 for the leader, None when the member is not on the board."""
        reply = self.connection.command("ZREVRANK", self.key(period), member)
        return None if reply is None else int(reply)

    def exists(self, period: Period = ALL) -> bool:
        return bool(self.client.exists(self.key(period)))

    def pipeline(self) -> Any:
        """A pipeline to the node that holds this board's keys and update channel; on
        one node, the client's own. A cluster client refuses PUBLISH in its pipelines,
        a node's does not."""
        return self.connection.node().pipeline(transaction=False)

    def close(self) -> None:
        self.connection.close()


# -- the reads of every board of one key scope ------------------------------------------------
class LeaderboardReads:
    """Every board of one key scope, read on ``valkey``.
    :class:`~flightcache.patterns.leaderboard_sync.Leaderboards` adds the update paths."""

    def __init__(self, valkey: Any, keys: Keys, tracer: Any = None) -> None:
        self.valkey, self.keys, self.tracer = valkey, keys, tracer

    def key(self, name: str, period: Period) -> str:
        return self.keys.board(definition(name).name, period.name)

    # region: top
    def top(self, name: str, period: Period, n: int, *, lowest: bool = False) -> list[RankedMember]:
        key = self.key(name, period)
        check_n(n)
        if lowest:
            rows = self.valkey.zrange(key, 0, n - 1, withscores=True)
            return self._ranked(key, rows)
        rows = self.valkey.zrevrange(key, 0, n - 1, withscores=True)
        return ranked_from_top(rows, 0)

    # endregion: top

    # region: rank
    def standing(self, name: str, period: Period, member: str) -> Standing | None:
        key = self.key(name, period)
        pipe = self._pipeline()
        pipe.zscore(key, member)
        pipe.zrevrank(key, member)
        pipe.zcard(key)
        score, position, count = pipe.execute()
        if score is None:
            return None
        pipe = self._pipeline()
        pipe.zcount(key, f"({score}", "+inf")
        pipe.zcount(key, "-inf", f"({score}")
        higher, lower = pipe.execute()
        return Standing(member, float(score), higher + 1, position + 1, count,
                        round(100 * lower / count, 1))  # fmt: skip

    # endregion: rank

    def around(
        self, name: str, period: Period, member: str, span: int
    ) -> list[RankedMember] | None:
        """``span`` members either side of ``member`` (003's nearby users)."""
        check_n(span, "span")
        key = self.key(name, period)
        position = self.valkey.zrevrank(key, member)
        if position is None:
            return None
        start = max(0, position - span)
        rows = self.valkey.zrevrange(key, start, position + span, withscores=True)
        if not rows:
            return []
        first_rank = 1 + int(self.valkey.zcount(key, f"({rows[0][1]}", "+inf"))
        return ranked_from_top(rows, start, first_rank)

    def between(
        self, name: str, period: Period, low: float, high: float, n: int
    ) -> list[RankedMember]:
        """Members scoring ``low`` to ``high`` inclusive, best first (at most ``n``)."""
        board = definition(name)
        check_score(board, low, "--min")
        check_score(board, high, "--max")
        if low > high:
            raise UsageError(f"--min {low:g} is above --max {high:g}", hint="swap them")
        key = self.key(name, period)
        rows = self.valkey.zrevrangebyscore(key, high, low, start=0, num=check_n(n),
                                            withscores=True)  # fmt: skip
        return self._ranked(key, rows)

    def count(self, name: str, period: Period, low: float | None = None,
              high: float | None = None) -> int:  # fmt: skip
        key = self.key(name, period)
        if low is None and high is None:
            return int(self.valkey.zcard(key))
        lo = "-inf" if low is None else low
        hi = "+inf" if high is None else high
        return int(self.valkey.zcount(key, lo, hi))

    def _ranked(self, key: str, rows: Sequence[tuple[str, float]]) -> list[RankedMember]:
        """Members in any order, each ranked by ZCOUNT (one round trip per distinct score)."""
        scores = sorted({s for _, s in rows})
        pipe = self._pipeline()
        for s in scores:
            pipe.zcount(key, f"({s}", "+inf")
        higher = dict(zip(scores, pipe.execute(), strict=True)) if scores else {}
        return [RankedMember(int(higher[s]) + 1, m, float(s)) for m, s in rows]

    def _pipeline(self) -> Any:
        if self.tracer is not None:
            return self.tracer.pipeline(self.valkey)
        return self.valkey.pipeline(transaction=False)


# region: ties
def ranked_from_top(
    rows: Sequence[tuple[str, float]], start: int, first_rank: int | None = None
) -> list[RankedMember]:
    """Members in descending order, ``rows[0]`` at 0-based position ``start``: a member
    tied with the one before shares its rank, any other ranks at its position + 1."""
    out: list[RankedMember] = []
    for i, (member, score) in enumerate(rows):
        if i and score == rows[i - 1][1]:
            rank = out[-1].rank
        elif i == 0 and first_rank is not None:
            rank = first_rank
        else:
            rank = start + i + 1
        out.append(RankedMember(rank, member, float(score)))
    return out


# endregion: ties
