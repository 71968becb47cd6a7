"""Leaderboards on sorted sets: boards built from SQL, kept current on every booking.

Read path: ZREVRANGE / ZSCORE / ZCOUNT on ``{lb:<board>}:<period>``; a board that is
missing is rebuilt from the database (one GROUP BY) before the read answers.
Write path: write-through (INSERT the booking, then one script runs ZINCRBY and EXPIRE
on every period key of the board that exists), event-driven (XADD a booking event, a
consumer group applies it once per booking), periodic rebuild (pipelined ZADD into a
temporary key, RENAME over the board, so no reader sees a half-built board). After a
change the new score is PUBLISHed on the board's update channel for live views.
Failure mode: Valkey is never the source of truth. A booking whose increment is lost
(Valkey down after COMMIT, or a rebuild that read the database just before it) is
counted again by the next rebuild; a board is never created by an increment alone,
except the live board of :meth:`Board.increment`, which counts what its producer booked.

Ranks use competition ranking: rank = 1 + the number of members with a strictly
higher score (ZCOUNT key (score +inf), so equal scores share a rank, as SQL's RANK().

One model: :class:`Period` names a board's time slice, :data:`BOARDS` says what each
board ranks and which SQL builds it, :class:`Board` is one board's sorted sets on
Valkey (fast writes and reads, for the live view and the bench), and
:class:`Leaderboards` keeps every board of one key scope in step with the database.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import valkey.exceptions

from flightcache.errors import ConnectionFailed, DataError, UsageError
from flightcache.keys import Keys
from flightcache.lua import script
from flightcache.sqlfiles import query
from flightcache.valkey_client import primaries

SCOPE = "leaderboard"  # every command's boards live under <prefix>leaderboard:
N_MAX = 10_000
SHOWN = 8  # members in the one traced ZADD of a rebuild; the others go untraced
EVENTS_GROUP = "boards"
Recorded = Callable[[int], None]
"""Called with a new booking's id inside its transaction, before the COMMIT."""


def board_keys(prefix: str) -> Keys:
    """The persistent leaderboard scope, ``<prefix>leaderboard:``."""
    return Keys(prefix).scope(SCOPE)


class BoardsMissed(ConnectionFailed):
    """The database took a write and Valkey did not: the boards are behind until a rebuild."""


# -- periods: all time, an hour, a day, a month, a year, or a rolling window ---------------
DAY = 86_400
TTL = {"hourly": 2 * DAY, "daily": 7 * DAY, "monthly": 60 * DAY, "yearly": 730 * DAY}
WINDOW_TTL = 300  # a window is derived: rebuilt from its parts when it has expired
WINDOWS = {"24h": ("hourly", 24), "3d": ("daily", 3), "7d": ("daily", 7)}
_FORMATS = {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}


@dataclass(frozen=True)
class Period:
    """``all``, ``hourly:2025-06-02T13``, ``daily:2025-06-02``, ``monthly:2025-06``,
    ``yearly:2025`` or a window ``window:24h`` / ``3d`` / ``7d`` (ending at ``end``).
    Its name ends the board's key; it counts departures from ``start`` (inclusive) to
    ``end`` (exclusive)."""

    name: str
    kind: str
    start: dt.datetime
    end: dt.datetime

    @property
    def ttl(self) -> int | None:
        return WINDOW_TTL if self.kind == "window" else TTL.get(self.kind)

    def parts(self) -> list[Period]:
        """The hourly or daily periods a window is the union of, oldest first."""
        unit, count = WINDOWS[self.name.split(":", 1)[1]]
        if unit == "hourly":
            last = self.end - dt.timedelta(hours=1)
            return [hourly(last - dt.timedelta(hours=i)) for i in reversed(range(count))]
        last_day = (self.end - dt.timedelta(seconds=1)).date()
        return [daily(last_day - dt.timedelta(days=i)) for i in reversed(range(count))]


def hourly(at: dt.datetime) -> Period:
    start = at.replace(minute=0, second=0, microsecond=0)
    return Period(f"hourly:{start:%Y-%m-%dT%H}", "hourly", start, start + dt.timedelta(hours=1))


def daily(day: dt.date) -> Period:
    start = dt.datetime.combine(day, dt.time())
    return Period(f"daily:{day:%Y-%m-%d}", "daily", start, start + dt.timedelta(days=1))


def monthly(day: dt.date) -> Period:
    start = dt.datetime(day.year, day.month, 1)
    end = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1)
    return Period(f"monthly:{start:%Y-%m}", "monthly", start, end)


def yearly(day: dt.date) -> Period:
    return Period(
        f"yearly:{day.year}", "yearly", dt.datetime(day.year, 1, 1), dt.datetime(day.year + 1, 1, 1)
    )


ALL = Period("all", "all", dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))


def parse_period(text: str, clock: dt.datetime | None = None) -> Period:
    """A period as typed: ``all``, ``daily:2025-06-02`` (or just ``2025-06-02``),
    ``monthly:2025-06``, ``yearly:2025``, ``hourly:2025-06-02T13``, ``24h``/``3d``/``7d``."""
    text = text.strip()
    if text == "all":
        return ALL
    bare = text.removeprefix("window:")
    if bare in WINDOWS:
        if clock is None:
            raise UsageError("a time window needs the dataset's clock")
        end = clock.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        unit, count = WINDOWS[bare]
        if unit == "daily":
            end = dt.datetime.combine(clock.date() + dt.timedelta(days=1), dt.time())
            return Period(f"window:{bare}", "window", end - dt.timedelta(days=count), end)
        return Period(f"window:{bare}", "window", end - dt.timedelta(hours=count), end)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text = "daily:" + text
    kind, _, value = text.partition(":")
    fmt = _FORMATS.get(kind)
    try:
        if fmt is None:
            raise ValueError(kind)
        at = dt.datetime.strptime(value, fmt)
    except ValueError:
        raise UsageError(
            f"period {text!r} does not parse",
            hint="use all, daily:2025-06-02, monthly:2025-06, yearly:2025,"
            " hourly:2025-06-02T13, 24h, 3d or 7d",
        ) from None
    if kind == "hourly":
        return hourly(at)
    return {"daily": daily, "monthly": monthly, "yearly": yearly}[kind](at.date())


def booking_periods(departure: dt.datetime) -> list[Period]:
    """The airport-bookings periods one booking counts in."""
    day = departure.date()
    return [hourly(departure), daily(day), monthly(day), yearly(day), ALL]


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
                        "bookings",
                        "leaderboard_airport_bookings"),
        BoardDefinition("airline-ontime", "airlines by on-time %", "airline IATA",
                        "% of flights leaving at most 15 min late",
                        "leaderboard_airline_ontime"),
        BoardDefinition("airport-delay", "airports by average delay", "airport IATA",
                        "average departure delay, minutes",
                        "leaderboard_airport_delay", signed=True),
        BoardDefinition("passenger-points", "passengers by loyalty points", "passenger_id",
                        "points (1 per unit of price paid)",
                        "leaderboard_passenger_points"),
        BoardDefinition("passenger-flights", "passengers with most flights", "passenger_id",
                        "flights booked",
                        "leaderboard_passenger_flights"),
        BoardDefinition("airport-passengers", "airports with most passengers", "airport IATA",
                        "passengers departing or arriving",
                        "leaderboard_airport_passengers"),
        BoardDefinition("routes-domestic", "domestic routes by flights", "route FROM:TO",
                        "flights (both airports in one country)",
                        "leaderboard_routes_domestic"),
        BoardDefinition("routes-international", "international routes by flights", "route FROM:TO",
                        "flights (airports in two countries)",
                        "leaderboard_routes_international"),
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


# -- one board on Valkey: the fast path of the live view, the simulator and the bench ------
_FALLBACK: tuple[type[Exception], ...] = (
    valkey.exceptions.ConnectionError,
    valkey.exceptions.TimeoutError,
    valkey.exceptions.ResponseError,  # MOVED after a reshard
)


class Board:
    """One board's sorted sets (a key per period) and its update channel.

    Reads go over one connection that the board keeps out of the pool, with the
    top-N command packed once per period: that skips valkey-py's pool and reply
    callbacks, which cost more than the round trip itself on a fast loopback. On a
    cluster it is a connection to the node that owns the board's slot; a MOVED or
    a dropped connection falls back to the ordinary client call. A Board is for one
    thread at a time (its pinned connection is not shared); close() returns it.
    """

    def __init__(self, client: Any, keys: Keys, name: str) -> None:
        self.client = client
        self.keys = keys
        self.name = name
        self.channel = keys.board_updates(name)
        self._conn: Any = None
        self._owner: Any = None
        self._packed: dict[tuple[str, int], Any] = {}

    def key(self, period: Period = ALL) -> str:
        return self.keys.board(self.name, period.name)

    # region: increment
    def increment(self, counts: Mapping[str, int], periods: Sequence[Period]) -> int:
        """ZINCRBY each member by its count on every period's key, EXPIRE the keys that
        have a TTL, ZREM a member brought down to 0, PUBLISH each new score. Two
        pipelines on the board's node (every key and the channel share the hash tag
        ``{lb:<board>}``). Returns the events published. Unlike
        :meth:`Leaderboards.apply`, it creates a missing board: a live board counts
        what its producer booked, not what the database holds."""
        try:
            return self._increment(counts, periods)
        except valkey.exceptions.AskError:  # the slot moved before anything ran
            self.moved()
            return self._increment(counts, periods)

    def _increment(self, counts: Mapping[str, int], periods: Sequence[Period]) -> int:
        pipe = self.pipeline()
        for period in periods:
            for member, n in counts.items():
                pipe.zincrby(self.key(period), n, member)
        for period in periods:
            if period.ttl:
                pipe.expire(self.key(period), period.ttl)
        replies = iter(pipe.execute())  # the new scores first, then EXPIRE's replies
        pipe = self.pipeline()
        events = 0
        for period in periods:
            for member in counts:
                score = float(next(replies))
                if score <= 0:  # every booking it had was taken back: off the board
                    pipe.zrem(self.key(period), member)
                event = {"member": member, "score": score, "period": period.name}
                pipe.publish(self.channel, json.dumps(event, separators=(",", ":")))
                events += 1
        pipe.execute()
        return events

    # endregion: increment

    def add_scores(self, period: Period, pairs: Iterable[tuple[str, float]]) -> list[float]:
        """ZINCRBY each (member, amount), pipelined; returns the new scores.

        The commands are packed into RESP by hand (the key's part once) and sent in
        one write on the board's pinned connection, then the replies are read back:
        valkey-py's pipeline builds a command object, packs and runs a callback per
        command, which costs more than Valkey's work. A MOVED there, where nothing
        ran, sends the batch through the client's pipeline instead."""
        key = self.key(period)
        pairs = list(pairs)
        head = _bulk("ZINCRBY", key, prefix=b"*4\r\n")
        payload = b"".join(head + _bulk(_number(amount), member) for member, amount in pairs)
        try:
            conn = self._pinned(key)
            conn.send_packed_command([payload], check_health=False)
            replies = [conn.read_response() for _ in pairs]
        except valkey.exceptions.AskError:  # MOVED or ASK: the slot is elsewhere now
            self.moved()
            pipe = self.client.pipeline(transaction=False)
            for member, amount in pairs:
                pipe.zincrby(key, amount, member)
            replies = pipe.execute()
        except BaseException:  # replies left unread: the connection cannot be reused
            self._unpin()
            raise
        return [float(s) for s in replies]

    # region: board-top
    def top(self, period: Period = ALL, n: int = 10) -> list[tuple[str, float]]:
        """ZREVRANGE 0 n-1 WITHSCORES: the n highest members, highest first."""
        key = self.key(period)
        try:
            conn = self._pinned(key)
            packed = self._packed.get((period.name, n))
            if packed is None:
                packed = conn.pack_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")
                self._packed[(period.name, n)] = packed
            flat = self._send(conn, packed)
        except _FALLBACK:
            self._unpin()
            flat = self.client.execute_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")
        return [(str(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    # endregion: board-top

    def rank(self, member: str, period: Period = ALL) -> int | None:
        """ZREVRANK: 0 for the leader, None when the member is not on the board."""
        key = self.key(period)
        try:
            conn = self._pinned(key)
            reply = self._send(conn, conn.pack_command("ZREVRANK", key, member))
        except _FALLBACK:
            self._unpin()
            reply = self.client.execute_command("ZREVRANK", key, member)
        return None if reply is None else int(reply)

    def exists(self, period: Period = ALL) -> bool:
        return bool(self.client.exists(self.key(period)))

    def pipeline(self) -> Any:
        """A pipeline to the node that holds this board's keys and update channel; on
        one node, the client's own. A cluster client refuses PUBLISH in its pipelines,
        a node's does not."""
        return self._node(self.key()).pipeline(transaction=False)

    def moved(self) -> None:
        """Forget the node: the slot moved; the next call asks the cluster again."""
        self._unpin()
        if hasattr(self.client, "nodes_manager"):
            self.client.nodes_manager.initialize()

    def close(self) -> None:
        self._unpin()

    def _node(self, key: str) -> Any:
        """The client of the node that holds ``key``: the client itself on one node."""
        if self._owner is None:
            owner: Any = self.client
            if hasattr(owner, "get_node_from_key"):  # a cluster: the slot's node
                owner = owner.get_valkey_connection(owner.get_node_from_key(key))
            self._owner = owner
        return self._owner

    def _pinned(self, key: str) -> Any:
        if self._conn is None:
            self._conn = self._node(key).connection_pool.get_connection("ZREVRANGE")
        return self._conn

    @staticmethod
    def _send(conn: Any, packed: Any) -> Any:
        conn.send_packed_command(packed, check_health=False)
        reply = conn.read_response()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _unpin(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._owner.connection_pool.release(self._conn)
            self._conn = None
            self._packed.clear()
        self._owner = None


def _number(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else repr(float(amount))


def _bulk(*parts: str, prefix: bytes = b"") -> bytes:
    """RESP bulk strings of ``parts``, after ``prefix``."""
    out = [prefix]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# -- every board of one scope, kept in step with the database -----------------------------
class Leaderboards:
    """Every board of one key scope, rebuilt from ``db``, read and written on ``valkey``."""

    def __init__(self, db: Any, valkey: Any, keys: Keys, tracer: Any = None) -> None:
        self.db, self.valkey, self.keys, self.tracer = db, valkey, keys, tracer
        self._clock: dt.datetime | None = None

    # -- names ----------------------------------------------------------------------
    def clock(self) -> dt.datetime:
        """The dataset's now: its latest departure (windows end there)."""
        if self._clock is None:
            rows = self.db.fetch(query(self.db.dialect, "leaderboard_clock")).rows
            if not rows or rows[0][0] is None:
                raise DataError("the flight table is empty", hint="run flightcache data load")
            self._clock = _datetime(rows[0][0])
        return self._clock

    def period(self, text: str) -> Period:
        bare = text.strip().removeprefix("window:")
        return parse_period(text, self.clock() if bare in WINDOWS else None)

    def key(self, name: str, period: Period) -> str:
        return self.keys.board(definition(name).name, period.name)

    # -- the database side ------------------------------------------------------------
    def from_db(self, name: str, period: Period) -> list[tuple[str, float]]:
        """The whole board as the database computes it, best first."""
        params = {"start": period.start, "end": period.end}
        rows = self.db.fetch(query(self.db.dialect, definition(name).sql), params).rows
        return [(str(m), float(s)) for m, s in rows]

    def sql_top(self, period: Period, n: int) -> list[tuple[str, float]]:
        """airport-bookings' top N by GROUP BY (the SQL side of the comparison)."""
        params = {"start": period.start, "end": period.end, "limit": check_n(n)}
        rows = self.db.fetch(
            query(self.db.dialect, "leaderboard_airport_bookings_top"), params
        ).rows
        return [(str(m), float(s)) for m, s in rows]

    def sql_rank(self, name: str, period: Period, score: float) -> int:
        """The competition rank of ``score`` computed by the database, the same rule."""
        sql = (
            "SELECT 1 + COUNT(*) AS board_rank FROM ("
            + query(self.db.dialect, definition(name).sql)
            + ") s WHERE s.score > %(score)s"
        )
        params = {"start": period.start, "end": period.end, "score": score}
        return int(self.db.fetch(sql, params).rows[0][0])

    # -- update paths -------------------------------------------------------------------
    # region: rebuild
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

    # endregion: rebuild

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
            query(self.db.dialect, "passenger_by_id"), {"passenger_id": passenger_id}
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

    # region: apply
    def apply_event(
        self, member: str, departure: dt.datetime, delta: int, event: str
    ) -> dict[str, float | None] | None:
        """:meth:`apply`, once per ``event`` id: None when it was applied before."""
        periods = booking_periods(departure)
        keys = [self.keys.board_applied("airport-bookings")]
        keys += [self.key("airport-bookings", p) for p in periods]
        ttls = [p.ttl or 0 for p in periods]
        replies = script("leaderboard_apply")(self.valkey, keys, [member, delta, event, *ttls])
        if replies is None:
            return None
        scores: dict[str, float | None] = {}
        for p, reply in zip(periods, list(replies) + [None] * len(periods), strict=False):
            scores[p.name] = None if reply is None else float(reply)
            if reply is not None:
                self._publish("airport-bookings", member, float(reply), p)
        return scores

    # endregion: apply

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

    # -- helpers ------------------------------------------------------------------------------
    def _ranked(self, key: str, rows: Sequence[tuple[str, float]]) -> list[RankedMember]:
        """Members in any order, each ranked by ZCOUNT (one round trip per distinct score)."""
        scores = sorted({s for _, s in rows})
        pipe = self._pipeline()
        for s in scores:
            pipe.zcount(key, f"({s}", "+inf")
        higher = dict(zip(scores, pipe.execute(), strict=True)) if scores else {}
        return [RankedMember(int(higher[s]) + 1, m, float(s)) for m, s in rows]

    def _flight(self, flight_id: int) -> tuple[dt.datetime, str]:
        rows = self.db.fetch(
            query(self.db.dialect, "leaderboard_booking_flight"), {"flight_id": flight_id}
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


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))
