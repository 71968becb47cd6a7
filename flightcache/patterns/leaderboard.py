"""Leaderboards on sorted sets: boards built from SQL, kept current on every booking.

Read path: ZREVRANGE / ZSCORE / ZCOUNT on ``{lb:<board>}:<period>``; a board that is
missing is rebuilt from the database (one GROUP BY) before the read answers.
Write path: write-through (INSERT the booking, then one script runs ZINCRBY and EXPIRE
on every period key of the board that exists), event-driven (XADD a booking event, a
consumer group applies it once per booking), periodic rebuild (pipelined ZADD into a
temporary key, RENAME over the board, so no reader sees a half-built board).
Failure mode: Valkey is never the source of truth. A booking whose increment is lost
(Valkey down after COMMIT, or a rebuild that read the database just before it) is
counted again by the next rebuild; a board is never created by an increment alone.

Ranks use competition ranking: rank = 1 + the number of members with a strictly
higher score (ZCOUNT key (score +inf), so equal scores share a rank, as SQL's RANK().
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import valkey.exceptions

from flightcache.errors import ConnectionFailed, DataError, UsageError
from flightcache.keys import Keys
from flightcache.patterns.leaderboard_periods import (
    ALL,
    WINDOW_TTL,
    WINDOWS,
    Period,
    daily,
    hourly,
    monthly,
    parse_period,
    yearly,
)
from flightcache.sqlfiles import query

N_MAX = 10_000
Recorded = Callable[[int], None]
"""Called with a new booking's id inside its transaction, before the COMMIT."""
SHOWN = 8  # members in the one traced ZADD of a rebuild; the others go untraced
EVENTS_GROUP = "boards"


class BoardsMissed(ConnectionFailed):
    """The database took a write and Valkey did not: the boards are behind until a rebuild."""


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    member: str
    score: str
    sql: str
    signed: bool = False  # may a score be negative?


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("airport-bookings", "airports by bookings", "airport IATA", "bookings",
              "lb_airport_bookings"),
        Board("airline-ontime", "airlines by on-time %", "airline IATA",
              "% of flights leaving at most 15 min late", "lb_airline_ontime"),
        Board("airport-delay", "airports by average delay", "airport IATA",
              "average departure delay, minutes", "lb_airport_delay", signed=True),
        Board("passenger-points", "passengers by loyalty points", "passenger_id",
              "points (1 per unit of price paid)", "lb_passenger_points"),
        Board("passenger-flights", "passengers with most flights", "passenger_id",
              "flights booked", "lb_passenger_flights"),
        Board("airport-passengers", "airports with most passengers", "airport IATA",
              "passengers departing or arriving", "lb_airport_passengers"),
        Board("routes-domestic", "domestic routes by flights", "route FROM:TO",
              "flights (both airports in one country)", "lb_routes_domestic"),
        Board("routes-international", "international routes by flights", "route FROM:TO",
              "flights (airports in two countries)", "lb_routes_international"),
    )
}  # fmt: skip

TIERS = [("Platinum", 50_000, None), ("Gold", 20_000, 49_999), ("Silver", 5_000, 19_999),
         ("Blue", 0, 4_999)]  # fmt: skip
"""Loyalty tiers of passenger-points: name, lowest and highest score (None: no cap)."""


def board(name: str) -> Board:
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


def check_score(b: Board, value: float, what: str) -> float:
    if value != value:  # NaN
        raise UsageError(f"{what} is not a number", hint="pass a number such as 100")
    if value < 0 and not b.signed:
        raise UsageError(
            f"{what} {value:g} is negative, and {b.name} scores ({b.score}) never are",
            hint="pass 0 or more",
        )
    return value


@dataclass
class Entry:
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


@dataclass
class Rebuilt:
    key: str
    members: int
    temporary: str


@dataclass
class Booked:
    booking_id: int
    flight_id: int
    member: str
    departure: dt.datetime
    scores: dict[str, float | None] = field(default_factory=dict)  # period -> new score


# KEYS[1]: the set of applied event ids; KEYS[2..]: the period keys of the board (one
# hash tag, so one slot). ARGV[1]: member, ARGV[2]: increment, ARGV[3]: the event id
# ('' for write-through, which has no redelivery), ARGV[3 + i]: TTL of KEYS[1 + i] (0: none).
# An event id seen before is not applied again (a consumer that crashed before XACK gets
# its events redelivered): returns false. A period key that does not exist is left
# alone: an increment must not create a board of one member; the next read rebuilds the
# board from the database, this booking included.
APPLY = """
if ARGV[3] ~= '' then
  if redis.call('SADD', KEYS[1], ARGV[3]) == 0 then return false end
  redis.call('EXPIRE', KEYS[1], 604800)
end
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    local score = redis.call('ZINCRBY', key, ARGV[2], ARGV[1])
    if tonumber(score) <= 0 then redis.call('ZREM', key, ARGV[1]) end
    local ttl = tonumber(ARGV[2 + i])
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    out[i - 1] = score
  else
    out[i - 1] = false
  end
end
return out
"""


def booking_periods(departure: dt.datetime) -> list[Period]:
    """The airport-bookings periods one booking counts in."""
    day = departure.date()
    return [hourly(departure), daily(day), monthly(day), yearly(day), ALL]


class Leaderboards:
    """Every board of one key scope, rebuilt from ``db``, read and written on ``valkey``."""

    def __init__(self, db: Any, valkey: Any, keys: Keys, tracer: Any = None) -> None:
        self.db, self.valkey, self.keys, self.tracer = db, valkey, keys, tracer
        self._clock: dt.datetime | None = None

    # -- names ----------------------------------------------------------------------
    def clock(self) -> dt.datetime:
        """The dataset's now: its latest departure (windows end there)."""
        if self._clock is None:
            rows = self.db.fetch(query(self.db.dialect, "lb_clock")).rows
            if not rows or rows[0][0] is None:
                raise DataError("the flight table is empty", hint="run flightcache data load")
            self._clock = _datetime(rows[0][0])
        return self._clock

    def period(self, text: str) -> Period:
        bare = text.strip().removeprefix("window:")
        return parse_period(text, self.clock() if bare in WINDOWS else None)

    def key(self, name: str, period: Period) -> str:
        return self.keys.board(board(name).name, period.name)

    # -- the database side ------------------------------------------------------------
    def from_db(self, name: str, period: Period) -> list[tuple[str, float]]:
        """The whole board as the database computes it, best first."""
        params = {"start": period.start, "end": period.end}
        rows = self.db.fetch(query(self.db.dialect, board(name).sql), params).rows
        return [(str(m), float(s)) for m, s in rows]

    def sql_top(self, period: Period, n: int) -> list[tuple[str, float]]:
        """airport-bookings' top N by GROUP BY (the SQL side of the comparison)."""
        params = {"start": period.start, "end": period.end, "limit": check_n(n)}
        rows = self.db.fetch(query(self.db.dialect, "lb_airport_bookings_top"), params).rows
        return [(str(m), float(s)) for m, s in rows]

    def sql_rank(self, name: str, period: Period, score: float) -> int:
        """The competition rank of ``score`` computed by the database, the same rule."""
        sql = (
            "SELECT 1 + COUNT(*) AS board_rank FROM ("
            + query(self.db.dialect, board(name).sql)
            + ") s WHERE s.score > %(score)s"
        )
        params = {"start": period.start, "end": period.end, "score": score}
        return int(self.db.fetch(sql, params).rows[0][0])

    # -- update paths -------------------------------------------------------------------
    def rebuild(self, name: str, period: Period) -> Rebuilt:
        """Periodic rebuild: SQL, pipelined ZADD into a temporary key, RENAME over the board."""
        if period.kind == "window":
            raise UsageError("a window is built from its parts", hint="read it with top")
        rows = self.from_db(name, period)
        key = self.key(name, period)
        temporary = self.keys.board(name, f"{period.name}:building:{uuid.uuid4().hex[:8]}")
        if not rows:
            self.valkey.delete(key)
            return Rebuilt(key, 0, temporary)
        pipe = self._pipeline()
        pipe.zadd(temporary, dict(rows[:SHOWN]))  # the first command is traced, the rest not
        with self.tracer.paused() if self.tracer is not None else nullcontext():
            rest = rows[SHOWN:]
            for start in range(0, len(rest), 500):
                pipe.zadd(temporary, dict(rest[start : start + 500]))
                if start and start % 10_000 == 0:
                    pipe.execute()  # keep one round trip at 20 commands
        pipe.expire(temporary, 600)  # a crashed rebuild leaves nothing for long
        pipe.execute()
        self.valkey.rename(temporary, key)  # atomic: readers see the old board or the new
        if period.ttl:
            self.valkey.expire(key, period.ttl)
        else:
            self.valkey.persist(key)
        self._publish(name, None, None, period, rebuilt=True)
        return Rebuilt(key, len(rows), temporary)

    def ensure(self, name: str, period: Period) -> str:
        """Where the board's answer comes from: it is in Valkey, or rebuilt first."""
        key = self.key(name, period)
        if period.kind == "window":
            if self.valkey.exists(key):
                return "valkey"
            self.window(name, period)
            return "window rebuilt (ZUNIONSTORE)"
        if self.valkey.exists(key):
            return "valkey"
        self.rebuild(name, period)
        return "database (board was missing, rebuilt)"

    def window(self, name: str, period: Period) -> tuple[str, list[str]]:
        """ZUNIONSTORE of the window's hourly or daily keys, each rebuilt when missing."""
        parts = period.parts()
        keys = [self.key(name, p) for p in parts]
        for part, key in zip(parts, keys, strict=True):
            if not self.valkey.exists(key):
                self.rebuild(name, part)
        dest = self.key(name, period)
        self.valkey.zunionstore(dest, keys)
        self.valkey.expire(dest, WINDOW_TTL)
        return dest, keys

    def book(
        self, flight_id: int, passenger_id: int, *, recorded: Recorded | None = None
    ) -> Booked:
        """Write-through: INSERT the booking, COMMIT, then count it on every board period."""
        booked = self.book_only(flight_id, passenger_id, recorded=recorded)
        try:
            booked.scores = self.apply(booked.member, booked.departure, 1)
        except valkey.exceptions.ValkeyError as exc:
            raise BoardsMissed(
                f"booking {booked.booking_id} is committed, but the boards missed it: {exc}",
                hint="the database is right; flightcache leaderboard rebuild airport-bookings"
                " brings the boards back in line",
            ) from None
        return booked

    def book_only(
        self, flight_id: int, passenger_id: int, *, recorded: Recorded | None = None
    ) -> Booked:
        """INSERT one booking (price 99.00, no seat) and COMMIT; no board is touched.
        ``recorded(booking_id)`` runs before the COMMIT (a demo records the undo there)."""
        departure, member = self._flight(flight_id)
        found = self.db.fetch(
            query(self.db.dialect, "lb_passenger"), {"passenger_id": passenger_id}
        ).rows
        if not found:
            raise DataError(
                f"passenger {passenger_id} does not exist",
                hint="pick a passenger_id from the passenger table",
            )
        with self.db.transaction():
            self.db.execute(
                query(self.db.dialect, "booking_add"),
                {"flight_id": flight_id, "passenger_id": passenger_id, "price": 99.0},
            )
            booking_id = int(self.db.fetch(query(self.db.dialect, "last_insert_id")).rows[0][0])
            if recorded is not None:
                recorded(booking_id)
        return Booked(booking_id, flight_id, member, departure)

    def cancel(self, booked: Booked) -> dict[str, float | None]:
        """Write-through of a cancellation: DELETE the booking, ZINCRBY -1."""
        self.db.execute(query(self.db.dialect, "booking_remove"), {"booking_id": booked.booking_id})
        return self.apply(booked.member, booked.departure, -1)

    def apply(self, member: str, departure: dt.datetime, delta: int) -> dict[str, float | None]:
        """ZINCRBY + EXPIRE on the airport-bookings periods that exist, in one script."""
        scores = self.apply_event(member, departure, delta, "")
        assert scores is not None  # only an event id can be a repeat
        return scores

    def apply_event(
        self, member: str, departure: dt.datetime, delta: int, event: str
    ) -> dict[str, float | None] | None:
        """:meth:`apply`, once per ``event`` id: None when it was applied before."""
        periods = booking_periods(departure)
        keys = [self.keys.board_applied("airport-bookings")]
        keys += [self.key("airport-bookings", p) for p in periods]
        ttls = [p.ttl or 0 for p in periods]
        replies = self.valkey.eval(APPLY, len(keys), *keys, member, delta, event, *ttls)
        if replies is None:
            return None
        scores: dict[str, float | None] = {}
        for p, reply in zip(periods, list(replies) + [None] * len(periods), strict=False):
            scores[p.name] = None if reply is None else float(reply)
            if reply is not None:
                self._publish("airport-bookings", member, float(reply), p)
        return scores

    def emit(self, booking_id: int, member: str, departure: dt.datetime, delta: int = 1) -> str:
        """Event-driven, producer side: XADD one booking event to the stream."""
        fields = {"booking_id": booking_id, "member": member,
                  "departure": departure.isoformat(), "delta": delta}  # fmt: skip
        return str(self.valkey.xadd(self.keys.board_events(), fields))

    def consume(self, consumer: str = "boards-1", batch: int = 100) -> int:
        """Event-driven, consumer side: XREADGROUP, apply each event once, XACK.

        Returns the events applied; a redelivered one (same booking and delta) is acked
        without being applied again."""
        stream = self.keys.board_events()
        try:
            self.valkey.xgroup_create(stream, EVENTS_GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: the group exists
            if "BUSYGROUP" not in str(exc):
                raise
        applied = 0
        for start in ("0", ">"):  # own pending entries first (a crashed run), then new ones
            while True:
                reply = self.valkey.xreadgroup(
                    EVENTS_GROUP, consumer, {stream: start}, count=check_n(batch, "batch")
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                for entry_id, data in entries:
                    if data:
                        when = dt.datetime.fromisoformat(data["departure"])
                        delta = int(data.get("delta", 1))
                        event = f"{data['booking_id']}:{delta:+d}"
                        if self.apply_event(data["member"], when, delta, event) is not None:
                            applied += 1
                    self.valkey.xack(stream, EVENTS_GROUP, entry_id)
        return applied

    def pending_events(self) -> int:
        """Events not applied yet: delivered but not acked, plus not yet delivered."""
        stream = self.keys.board_events()
        if not self.valkey.exists(stream):
            return 0
        groups = {g["name"]: g for g in self.valkey.xinfo_groups(stream)}
        group = groups.get(EVENTS_GROUP)
        if group is None:  # nothing consumed yet: everything waits
            return int(self.valkey.xlen(stream))
        lag = group.get("lag")
        if lag is None:  # the server cannot tell: count what follows the last delivered id
            lag = len(self.valkey.xrange(stream, min="(" + group["last-delivered-id"]))
        return int(group["pending"]) + int(lag)

    def cleanup(self, name: str, keep_days: int, today: dt.date) -> list[str]:
        """SCAN the board's daily keys and delete those older than ``keep_days``."""
        from flightcache.valkey_client import primaries

        pattern = self.keys.board(name, "daily:*").replace("{", "\\{").replace("}", "\\}")
        deleted = []
        for node in primaries(self.valkey):
            for key in node.scan_iter(match=pattern, count=100):
                day = dt.date.fromisoformat(key.rsplit(":", 1)[1])
                if (today - day).days >= keep_days:
                    self.valkey.delete(key)
                    deleted.append(key)
        return sorted(deleted)

    # -- reads ------------------------------------------------------------------------------
    def top(self, name: str, period: Period, n: int, *, lowest: bool = False) -> list[Entry]:
        key = self.key(name, period)
        check_n(n)
        if lowest:
            rows = self.valkey.zrange(key, 0, n - 1, withscores=True)
            return self._ranked(key, rows)
        rows = self.valkey.zrevrange(key, 0, n - 1, withscores=True)
        return _ranked_from_top(rows, 0)

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

    def around(self, name: str, period: Period, member: str, span: int) -> list[Entry] | None:
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
        return _ranked_from_top(rows, start, first_rank)

    def between(self, name: str, period: Period, low: float, high: float, n: int) -> list[Entry]:
        """Members scoring ``low`` to ``high`` inclusive, best first (at most ``n``)."""
        b = board(name)
        check_score(b, low, "--min")
        check_score(b, high, "--max")
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

    # -- helpers ------------------------------------------------------------------------------
    def _ranked(self, key: str, rows: Sequence[tuple[str, float]]) -> list[Entry]:
        """Entries in any order, each ranked by ZCOUNT (one round trip per distinct score)."""
        scores = sorted({s for _, s in rows})
        pipe = self._pipeline()
        for s in scores:
            pipe.zcount(key, f"({s}", "+inf")
        higher = dict(zip(scores, pipe.execute(), strict=True)) if scores else {}
        return [Entry(int(higher[s]) + 1, m, float(s)) for m, s in rows]

    def _flight(self, flight_id: int) -> tuple[dt.datetime, str]:
        rows = self.db.fetch(
            query(self.db.dialect, "lb_booking_flight"), {"flight_id": flight_id}
        ).rows
        if not rows:
            raise DataError(
                f"flight {flight_id} does not exist", hint="pick a flight_id from the flight table"
            )
        _, departure, iata = rows[0]
        if iata is None:
            raise DataError(
                f"flight {flight_id} leaves from an airport without an IATA code",
                hint="pick another flight",
            )
        return _datetime(departure), str(iata)

    def _pipeline(self) -> Any:
        if self.tracer is not None:
            return self.tracer.pipeline(self.valkey)
        return self.valkey.pipeline(transaction=False)

    def _publish(self, name: str, member: str | None, score: float | None, period: Period,
                 *, rebuilt: bool = False) -> None:  # fmt: skip
        event: dict[str, Any] = {"member": member, "score": score, "period": period.name}
        if rebuilt:
            event["rebuilt"] = True
        self.valkey.publish(self.keys.board_updates(name), json.dumps(event))


def _ranked_from_top(
    rows: Sequence[tuple[str, float]], start: int, first_rank: int | None = None
) -> list[Entry]:
    """Entries in descending order, ``rows[0]`` at 0-based position ``start``: a member
    tied with the one before shares its rank, any other ranks at its position + 1."""
    out: list[Entry] = []
    for i, (member, score) in enumerate(rows):
        if i and score == rows[i - 1][1]:
            rank = out[-1].rank
        elif i == 0 and first_rank is not None:
            rank = first_rank
        else:
            rank = start + i + 1
        out.append(Entry(rank, member, float(score)))
    return out


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


def agreement(
    sql_rows: Sequence[tuple[str, float]],
    zset_rows: Sequence[tuple[str, float]],
    full: dict[str, float],
) -> tuple[bool, str]:
    """Do the SQL and sorted-set top N agree? Same scores in order; above the cut score the
    same members; at the cut any member of the tied group (SQL breaks ties A to Z, ZREVRANGE
    Z to A). ``full`` is the whole board from the database."""
    if [s for _, s in sql_rows] != [s for _, s in zset_rows]:
        return False, "the scores differ"
    if not sql_rows:
        return True, "both empty"
    cut = sql_rows[-1][1]
    above_sql = {m for m, s in sql_rows if s > cut}
    above_zset = {m for m, s in zset_rows if s > cut}
    if above_sql != above_zset:
        return False, f"members above the cut differ: {sorted(above_sql ^ above_zset)}"
    wrong = [m for m, s in zset_rows if full.get(m) != s]
    if wrong:
        return False, f"Valkey scores differ from the database for {wrong}"
    tied = sorted(m for m, s in full.items() if s == cut)
    if len(tied) > sum(1 for _, s in sql_rows if s == cut):
        picked_sql = [m for m, s in sql_rows if s == cut]
        picked_zset = [m for m, s in zset_rows if s == cut]
        return True, (
            f"agree; {len(tied)} members tie at the cut score {cut:g}: SQL kept"
            f" {picked_sql}, Valkey {picked_zset} (both right: the tie is theirs to break)"
        )
    return True, "agree: same members, same scores, same order of scores"
