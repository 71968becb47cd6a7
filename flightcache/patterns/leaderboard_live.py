"""A live leaderboard: bookings written through to a sorted set and pushed to viewers.

Write path: a booking is INSERTed and committed in the database first; then, in one
pipeline, ZINCRBY adds it to the daily and all-time ``airport-bookings`` boards (by
the flight's departure airport), EXPIRE keeps the daily board 7 days, and PUBLISH
sends one JSON event per board on ``board_updates``. Read path: a viewer SUBSCRIBEs
to that channel and, on events, re-reads the top N with ZREVRANGE WITHSCORES.
Failure mode: Valkey down after the commit leaves the booking in the database and
the board short by it; the simulator counts those failures instead of stopping (a
rebuild from the database repairs the board), and a viewer sees no events.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.errors import DataError, UsageError
from flightcache.keys import Keys
from flightcache.measure.zipf import zipf_cdf
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.undo import Undo
    from flightcache.valkey_client import Client

_FALLBACK: tuple[type[Exception], ...] = (
    valkey.exceptions.ConnectionError,
    valkey.exceptions.TimeoutError,
    valkey.exceptions.ResponseError,  # MOVED after a reshard
)

SCOPE = "leaderboard"
BOARD = "airport-bookings"
BOARDS = {BOARD: "bookings per departure airport (member: IATA code)"}
DAILY_TTL = 7 * 86_400
CANDIDATES = 50_000  # flights and passengers the simulator picks from
ZIPF_S = 1.0  # skew of bookings toward the airports with most departures

# limits past which a value is a typo rather than a wish
MAX_RATE = 100_000
MAX_BATCH = 10_000
MAX_SECONDS = 86_400
MAX_TOP = 100
MAX_CLIENTS = 64


def board_keys(prefix: str) -> Keys:
    """The persistent leaderboard scope, ``<prefix>leaderboard:``."""
    return Keys(prefix).scope(SCOPE)


# -- input checks ----------------------------------------------------------------------
def check_board(name: str) -> str:
    if name not in BOARDS:
        known = ", ".join(sorted(BOARDS))
        raise UsageError(f"unknown board {name!r}", hint=f"known boards: {known}")
    return name


def check_positive(option: str, value: float, limit: float, example: str) -> None:
    if value <= 0:
        raise UsageError(
            f"{option} {value:g} must be above zero", hint=f"pass {option} {example}, say"
        )
    if value > limit:
        raise UsageError(
            f"{option} {value:g} is more than this command accepts ({limit:,g})",
            hint=f"pass {option} {example}, say",
        )


def parse_day(text: str | None) -> dt.date:
    """``--date`` as a date; today (UTC) when absent."""
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--date {text!r} is not a date", hint="write it as YYYY-MM-DD, e.g. 2026-06-02"
        ) from None


def daily(day: dt.date) -> str:
    return f"daily:{day.isoformat()}"


def check_period(period: str) -> str:
    """``all`` or ``daily:YYYY-MM-DD``."""
    if period == "all":
        return period
    kind, _, day = period.partition(":")
    if kind == "daily":
        try:
            dt.date.fromisoformat(day)
            return period
        except ValueError:
            pass
    raise UsageError(
        f"unknown period {period!r}", hint="use `all` or `daily:YYYY-MM-DD` (e.g. daily:2026-06-02)"
    )


# -- the board -----------------------------------------------------------------------
class Board:
    """One sorted-set leaderboard: scores in, top N and ranks out.

    Reads go over one connection that the board keeps out of the pool, with the
    top-N command packed once per period: that skips valkey-py's pool and reply
    callbacks, which cost more than the round trip itself on a fast loopback. On a
    cluster it is a connection to the node that owns the board's slot; a MOVED or
    a dropped connection falls back to the ordinary client call. A Board is for one
    thread at a time (its pinned connection is not shared); close() returns it.
    """

    def __init__(self, client: Client, keys: Keys, name: str) -> None:
        self.client = client
        self.keys = keys
        self.name = name
        self._conn: Any = None
        self._owner: Any = None
        self._packed: dict[tuple[str, int], Any] = {}

    def key(self, period: str = "all") -> str:
        return self.keys.board(self.name, period)

    def add_scores(self, period: str, pairs: Iterable[tuple[str, float]]) -> list[float]:
        """ZINCRBY each (member, amount), pipelined; returns the new scores.

        The commands are packed into RESP by hand (the key's part once) and sent in
        one write on the board's pinned connection, then the replies are read back:
        valkey-py's pipeline builds a command object, packs and runs a callback per
        command, which costs more than Valkey's work. On a cluster the connection is
        to the node that owns the board's slot; a MOVED there, where nothing ran,
        sends the batch through the cluster client's pipeline instead."""
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

    def top(self, period: str = "all", n: int = 10) -> list[tuple[str, float]]:
        """ZREVRANGE 0 n-1 WITHSCORES: the n highest members, highest first."""
        key = self.key(period)
        try:
            conn = self._pinned(key)
            packed = self._packed.get((period, n))
            if packed is None:
                packed = conn.pack_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")
                self._packed[(period, n)] = packed
            flat = self._send(conn, packed)
        except _FALLBACK:
            self._unpin()
            client: Any = self.client
            flat = client.execute_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")
        return [(str(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def rank(self, member: str, period: str = "all") -> int | None:
        """ZREVRANK: 0 for the leader, None when the member is not on the board."""
        key = self.key(period)
        try:
            conn = self._pinned(key)
            reply = self._send(conn, conn.pack_command("ZREVRANK", key, member))
        except _FALLBACK:
            self._unpin()
            client: Any = self.client
            reply = client.execute_command("ZREVRANK", key, member)
        return None if reply is None else int(reply)

    def pipeline(self) -> Any:
        """A pipeline to the node that holds this board's keys and update channel (all
        share the hash tag ``{lb:<name>}``); on one node, the client's own pipeline.
        A cluster client refuses PUBLISH in its pipelines, a node's does not."""
        return self._node(self.key()).pipeline(transaction=False)

    def moved(self) -> None:
        """Forget the node: the slot moved; the next call asks the cluster again."""
        self._unpin()
        if hasattr(self.client, "nodes_manager"):
            self.client.nodes_manager.initialize()

    def exists(self, period: str = "all") -> bool:
        return bool(self.client.exists(self.key(period)))

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


# -- the simulator ---------------------------------------------------------------------
@dataclass
class SimReport:
    bookings: int = 0
    batches: int = 0
    valkey_failures: int = 0
    events: int = 0
    db_ns: int = 0
    valkey_ns: int = 0
    seconds: float = 0.0
    booking_ids: list[int] = field(default_factory=list, repr=False)
    per_airport: dict[str, int] = field(default_factory=dict)
    cleaned: int = 0
    cleanup_valkey_failed: bool = False

    @property
    def rate(self) -> float:
        return self.bookings / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "bookings": self.bookings,
            "batches": self.batches,
            "rate_per_s": round(self.rate, 1),
            "seconds": round(self.seconds, 3),
            "db_ms": round(self.db_ns / 1e6, 1),
            "valkey_ms": round(self.valkey_ns / 1e6, 1),
            "valkey_failures": self.valkey_failures,
            "events_published": self.events,
            "first_booking_id": min(self.booking_ids, default=None),
            "last_booking_id": max(self.booking_ids, default=None),
            "cleaned_up": self.cleaned,
            "cleanup_valkey_failed": self.cleanup_valkey_failed,
            "top_airports": dict(
                sorted(self.per_airport.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            ),
        }


@dataclass(frozen=True)
class NewBooking:
    flight_id: int
    passenger_id: int
    price: Decimal
    airport: str


class Simulator:
    """Books random passengers on random flights, write-through to the boards.

    Flights are drawn Zipf-skewed by their departure airport's rank in departures,
    so the board has hubs at the top, as real traffic does. Seats stay NULL (the
    unique index on (flight_id, seat) allows any number of NULLs).
    """

    def __init__(
        self,
        db: Database,
        client: Client,
        keys: Keys,
        day: dt.date,
        *,
        seed: int | None = None,
        undo: Undo | None = None,
    ) -> None:
        """``undo``: record each batch's ids before it commits, so that the bookings of
        a run killed before :meth:`cleanup` are deleted by the next command."""
        self.db = db
        self.undo = undo
        self._undo_entries: list[str] = []
        self.client = client
        self.board = Board(client, keys, BOARD)
        self.channel = keys.board_updates(BOARD)
        self.periods = (daily(day), "all")
        self.rng = random.Random(seed)
        self.report = SimReport()
        flights = db.fetch(query(db.dialect, "lb_candidate_flights"), {"limit": CANDIDATES}).rows
        passengers = db.fetch(
            query(db.dialect, "lb_candidate_passengers"), {"limit": CANDIDATES}
        ).rows
        if not flights or not passengers:
            raise DataError(
                "no flights or passengers to book: the database holds no FlughafenDB data",
                hint="load it with `flightcache data load --scale tiny`",
            )
        by_airport: dict[str, list[int]] = {}
        for flight_id, iata in flights:
            by_airport.setdefault(str(iata), []).append(int(flight_id))
        self.airports = sorted(by_airport, key=lambda a: (-len(by_airport[a]), a))
        self.flights = by_airport
        self.cdf = zipf_cdf(len(self.airports), ZIPF_S)
        self.passengers = [int(p) for (p,) in passengers]

    def draw(self) -> NewBooking:
        import bisect

        total = self.cdf[-1]
        rank = min(bisect.bisect_right(self.cdf, self.rng.random() * total), len(self.cdf) - 1)
        airport = self.airports[rank]
        return NewBooking(
            flight_id=self.rng.choice(self.flights[airport]),
            passenger_id=self.rng.choice(self.passengers),
            price=Decimal(self.rng.randint(4_900, 89_900)) / 100,
            airport=airport,
        )

    def insert(self, bookings: Sequence[NewBooking]) -> list[int]:
        """INSERT the bookings in one transaction; returns their booking_ids."""
        sql = query(self.db.dialect, "lb_booking_insert")
        last_id = query(self.db.dialect, "last_insert_id")
        ids: list[int] = []
        with self.db.transaction():
            for b in bookings:
                params = {
                    "flight_id": b.flight_id,
                    "passenger_id": b.passenger_id,
                    "price": b.price,
                }
                if self.db.dialect == "postgresql":  # INSERT ... RETURNING booking_id
                    ids.append(int(self.db.fetch(sql, params).rows[0][0]))
                else:
                    self.db.execute(sql, params)
                    ids.append(int(self.db.fetch(last_id).rows[0][0]))
            if self.undo is not None and ids:  # written down before the commit
                entry = self.undo.record("booking_remove_ids", {"booking_ids": ids})
                self._undo_entries.append(entry)
        return ids

    def publish(self, counts: dict[str, int]) -> int:
        """ZINCRBY both boards, EXPIRE the daily one, PUBLISH one event per change.

        One pipeline; every key and the channel share the hash tag ``{lb:<board>}``,
        so on a cluster the pipeline goes to one node. Returns the events published."""
        try:
            return self._publish(counts)
        except valkey.exceptions.AskError:  # the slot moved before anything ran
            self.board.moved()
            return self._publish(counts)

    def _publish(self, counts: dict[str, int]) -> int:
        pipe = self.board.pipeline()
        for period in self.periods:
            for airport, n in counts.items():
                pipe.zincrby(self.board.key(period), n, airport)
        pipe.expire(self.board.key(self.periods[0]), DAILY_TTL)
        replies = pipe.execute()
        scores = iter(replies)
        pipe = self.board.pipeline()
        events = 0
        for period in self.periods:
            for airport in counts:
                score = float(next(scores))
                if score <= 0:  # a cleanup took back every booking it had: off the board
                    pipe.zrem(self.board.key(period), airport)
                event = {"member": airport, "score": score, "period": period}
                pipe.publish(self.channel, json.dumps(event, separators=(",", ":")))
                events += 1
        pipe.execute()
        return events

    def batch(self, size: int) -> None:
        """One batch: DB commit first, then the boards (write-through)."""
        bookings = [self.draw() for _ in range(size)]
        t0 = time.perf_counter_ns()
        ids = self.insert(bookings)
        t1 = time.perf_counter_ns()
        self.report.db_ns += t1 - t0
        self.report.booking_ids.extend(ids)
        self.report.bookings += len(ids)
        self.report.batches += 1
        counts: dict[str, int] = {}
        for b in bookings:
            counts[b.airport] = counts.get(b.airport, 0) + 1
            self.report.per_airport[b.airport] = self.report.per_airport.get(b.airport, 0) + 1
        try:
            self.report.events += self.publish(counts)
        except valkey.exceptions.ValkeyError:
            self.report.valkey_failures += len(ids)
        self.report.valkey_ns += time.perf_counter_ns() - t1

    def run(
        self,
        rate: float,
        batch: int,
        seconds: float,
        on_progress: Callable[[SimReport], None] | None = None,
        *,
        progress_every: float = 1.0,
        stop: threading.Event | None = None,
    ) -> SimReport:
        """Batches of ``batch`` paced to about ``rate`` bookings/s for ``seconds``, or
        until ``stop`` is set (a batch under way is finished first)."""
        stop = stop or threading.Event()
        start = time.monotonic()
        deadline = start + seconds
        shown = start
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            due = start + self.report.bookings / rate  # when this batch may start
            if due > now:
                stop.wait(min(due, deadline) - now)
                continue
            self.batch(batch)
            self.report.seconds = time.monotonic() - start
            if on_progress is not None and time.monotonic() - shown >= progress_every:
                shown = time.monotonic()
                on_progress(self.report)
        self.report.seconds = time.monotonic() - start
        return self.report

    def cleanup(self) -> int:
        """DELETE the bookings this run inserted (by id) and take their increments back
        off the boards (ZINCRBY by minus the count; a member left at 0 is ZREMoved),
        publishing the changes. Returns the bookings deleted."""
        ids = self.report.booking_ids
        if not ids:
            return 0
        sql = query(self.db.dialect, "booking_remove")
        with self.db.transaction():
            for start in range(0, len(ids), 1_000):
                self.db.execute_many(sql, [{"booking_id": i} for i in ids[start : start + 1_000]])
        self.report.cleaned = len(ids)
        if self.undo is not None:
            for entry in self._undo_entries:
                self.undo.done(entry)
            self._undo_entries.clear()
        try:
            self.publish({a: -n for a, n in self.report.per_airport.items()})
        except valkey.exceptions.ValkeyError:  # the rows are gone; the boards keep them
            self.report.cleanup_valkey_failed = True
        return len(ids)


# -- the live view ---------------------------------------------------------------------
@dataclass
class Row:
    rank: int
    member: str
    score: float
    change: int | None  # places moved up (+) or down (-) since the last draw; None: new


@dataclass
class Snapshot:
    rows: list[Row]
    exists: bool
    events: int
    events_per_s: float
    last_update: float | None  # wall-clock time of the last event
    redraws: int


MOVE_SHOWN_S = 3.0  # an arrow stays this long after a move, so that it can be seen


class LiveBoard:
    """What a live view needs: events counted, the top N re-read, rank changes."""

    def __init__(self, board: Board, period: str, top: int) -> None:
        self.board = board
        self.period = period
        self.top = top
        self.previous: dict[str, int] = {}
        self.moves: dict[str, tuple[int | None, float]] = {}  # member: (change, when)
        self.events = 0
        self.redraws = 0
        self.last_update: float | None = None
        self.recent: list[float] = []  # monotonic times of the events of the last seconds

    def event(self, data: str) -> bool:
        """Count an event; True when it concerns the period on view."""
        try:
            payload = json.loads(data)
        except ValueError:
            return False
        if not isinstance(payload, dict) or payload.get("period") != self.period:
            return False
        self.events += 1
        self.last_update = time.time()
        self.recent.append(time.monotonic())
        return True

    def rate(self, window: float = 2.0) -> float:
        cut = time.monotonic() - window
        self.recent = [t for t in self.recent if t >= cut]
        return len(self.recent) / window

    def snapshot(self) -> Snapshot:
        """ZREVRANGE the top N and compare the ranks with the previous snapshot."""
        top = self.board.top(self.period, self.top)
        first = not self.previous and self.redraws == 0  # nothing to compare with yet
        now = time.monotonic()
        rows = []
        for i, (member, score) in enumerate(top):
            before = self.previous.get(member)
            change = 0 if first else (None if before is None else before - (i + 1))
            if change != 0:
                self.moves[member] = (change, now)
            shown, when = self.moves.get(member, (0, 0.0))
            rows.append(Row(i + 1, member, score, shown if now - when < MOVE_SHOWN_S else 0))
        if top:
            self.previous = {r.member: r.rank for r in rows}
        self.redraws += 1
        exists = bool(top) or self.board.exists(self.period)
        return Snapshot(rows, exists, self.events, self.rate(), self.last_update, self.redraws)
