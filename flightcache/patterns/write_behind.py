"""Write-behind: a booking lands in Valkey at once, the database catches up later.

Write path: one Lua script (``lua/write_behind_book.lua``) appends the booking to
its shard's queue (a stream, XADD) and adds the seats to the flight's counter
(HINCRBY), atomically, so the counter and the queue cannot diverge. Bookings go to
one of ``SHARDS`` streams by flight id; a shard's keys share a hash tag ({wb3}), so
the script runs on a Valkey Cluster, and the shards spread the queue over the
cluster's nodes instead of piling every write onto one slot.

Read path: readers see the counter at once (HGET); the database has the seats only
once a worker has drained the queue into it
(:mod:`flightcache.patterns.write_behind_worker`: XREADGROUP, one transaction that
records every entry id, then XACK, so a redelivered entry counts once).

Failure modes: a worker killed between commit and XACK leaves its entries pending;
restarted, it reads them first and skips what it had applied. A database that is
down leaves the batch pending, not acked, and the worker retries. A poison entry,
one no database can take, moves to the shard's dead-letter stream with its error.
The writer refuses what it can judge itself first (seats, flight id, the queue's
name). What is not covered: Valkey itself losing acknowledged writes (run it with
AOF, and replicas), since until the worker drains them the queue is the only copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.db import Params, QueryResult
from flightcache.errors import ConfigError, DataError, FlightcacheError
from flightcache.keys import Keys
from flightcache.lua import script

SHARDS = 8
"""Streams per queue. Writers and workers must agree; a flight always maps to one shard."""
GROUP = "db-writer"
PIPELINE_CHUNK = 1_000
MAX_SEATS = 1_000
"""Seats one booking may take: more than any airliner holds."""
MAX_FLIGHT_ID = 2**31 - 1
"""flight.flight_id is an INT on both databases."""
QUEUE_MAX = 94
"""Characters of a queue's name (the scoped key prefix): flightcache_wb_seats.queue is a
varchar(100), and the write-through comparison appends ``direct``."""
BOOK = script("write_behind_book")
"""XADD to the shard's queue and HINCRBY the flight's counter, in one script."""


class Sql(Protocol):
    """What write-behind needs of a database: a Database or a TracedDatabase."""

    dialect: sqlfiles.Dialect

    def fetch(self, sql: str, params: Params = None) -> QueryResult: ...

    def execute(self, sql: str, params: Params = None) -> int: ...

    def execute_many(self, sql: str, params: Sequence[Params]) -> int: ...

    def transaction(self) -> AbstractContextManager[None]: ...


def shard_of(flight_id: int) -> int:
    return flight_id % SHARDS


def ensure_tables(db: Sql) -> None:
    """Create flightcache's two write-behind tables when missing."""
    for name in ("write_behind_create_applied", "write_behind_create_seats"):
        db.execute(sqlfiles.query(db.dialect, name))


def db_total(db: Sql, queue: str, flight_id: int | None = None) -> int:
    """Seats the database holds for a queue (one flight, or all)."""
    if flight_id is None:
        result = db.fetch(sqlfiles.query(db.dialect, "write_behind_total"), {"queue": queue})
    else:
        result = db.fetch(
            sqlfiles.query(db.dialect, "write_behind_flight_seats"),
            {"queue": queue, "flight_id": flight_id},
        )
    return int(result.rows[0][0])


def applied_count(db: Sql, queue: str) -> int:
    result = db.fetch(sqlfiles.query(db.dialect, "write_behind_applied_count"), {"queue": queue})
    return int(result.rows[0][0])


def forget(db: Sql, queue: str) -> None:
    """Delete a queue's rows from flightcache's write-behind tables (nothing else)."""
    ensure_tables(db)
    with db.transaction():
        db.execute(sqlfiles.query(db.dialect, "write_behind_forget_seats"), {"queue": queue})
        db.execute(sqlfiles.query(db.dialect, "write_behind_forget_applied"), {"queue": queue})


def check_seats(seats: int) -> None:
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
        raise ConfigError(
            f"cannot book {seats!r} seats: a booking takes one seat or more",
            hint="pass --seats 1 or a larger whole number",
        )
    if seats > MAX_SEATS:
        raise ConfigError(
            f"cannot book {seats:,} seats: a booking takes at most {MAX_SEATS:,}"
            " (no airliner holds more); nothing was booked",
            hint="pass a smaller --seats, or book several times (--times)",
        )


def check_flight_id(flight_id: int) -> None:
    """A flight id the flight table's INT column can hold (whether it exists is asked
    of the database later)."""
    if (
        isinstance(flight_id, bool)
        or not isinstance(flight_id, int)
        or not (1 <= flight_id <= MAX_FLIGHT_ID)
    ):
        raise ConfigError(
            f"flight {flight_id!r} cannot exist: a flight_id is a whole number from 1 to"
            f" {MAX_FLIGHT_ID:,}; nothing was booked",
            hint="pick a flight_id from the flight table, e.g."
            " `flightcache sql -e 'SELECT flight_id FROM flight LIMIT 5'`",
        )


def check_queue(keys: Keys) -> None:
    """The queue's name is stored with every row in the database: bound its length."""
    if len(keys.prefix) > QUEUE_MAX:
        shown = keys.prefix[:40] + ("..." if len(keys.prefix) > 40 else "")
        raise ConfigError(
            f"the key prefix is too long for write-behind: {shown!r} is {len(keys.prefix):,}"
            f" characters with the demo's scope, and a queue's name takes at most {QUEUE_MAX}",
            hint="pass a shorter --key-prefix (or FLIGHTCACHE_KEY_PREFIX), e.g. fc:",
        )


@dataclass
class Booking:
    flight_id: int
    seats: int
    entry_id: str
    booked: int  # the flight's counter after this booking
    queue: str  # the stream key


@dataclass
class ShardDepth:
    shard: int
    stream: str
    length: int  # XLEN: entries still in the stream
    lag: int | None  # XINFO GROUPS: entries not yet delivered to the group
    pending: int  # delivered, not acked


class WriteBehind:
    """The write side: validate, then one script per booking."""

    def __init__(self, valkey_client: Any, db: Sql | None, keys: Keys) -> None:
        check_queue(keys)
        self.valkey = valkey_client
        self.db = db
        self.keys = keys
        self.queue = keys.prefix  # the rows of this queue in the database
        self.known_flights: set[int] = set()
        self.accepted_writes = 0
        self.accepted_seats = 0
        self.flights_written: set[int] = set()

    # -- validation -------------------------------------------------------------
    def preload_flights(self) -> int:
        """Cache every flight id, so that writes need no database round trip."""
        if self.db is None:
            raise FlightcacheError("no database to read flight ids from")
        result = self.db.fetch(sqlfiles.query(self.db.dialect, "write_behind_flight_ids"))
        self.known_flights.update(int(r[0]) for r in result.rows)
        return len(self.known_flights)

    def require_flights(self, flight_ids: Iterable[int]) -> None:
        """Raise DataError for a flight id the database does not have."""
        unknown = {int(f) for f in flight_ids} - self.known_flights
        if unknown and self.db is not None:
            result = self.db.fetch(
                sqlfiles.query(self.db.dialect, "write_behind_flights_among"),
                {"ids": sorted(unknown)},
            )
            found = {int(r[0]) for r in result.rows}
            self.known_flights |= found
            unknown -= found
        if unknown:
            first = min(unknown)
            more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
            raise DataError(
                f"flight {first} does not exist{more}; nothing was booked",
                hint="pick a flight_id from the flight table, e.g. "
                "`flightcache sql -e 'SELECT flight_id FROM flight LIMIT 5'`",
            )

    # -- groups and scripts -------------------------------------------------------
    def ensure_groups(self) -> None:
        """XGROUP CREATE ... 0 MKSTREAM on every shard; an existing group is kept.

        Starting at id 0 means bookings queued before the group existed are drained too.
        """
        for shard in range(SHARDS):
            try:
                self.valkey.xgroup_create(
                    self.keys.write_behind_queue(shard), GROUP, id="0", mkstream=True
                )
            except valkey.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def load_script(self) -> None:
        """SCRIPT LOAD the booking script on every primary, for :meth:`book_many`'s
        pipelines (and so that a timed :meth:`book` never pays for the first EVAL)."""
        BOOK.load(self.valkey)

    def _keys_of(self, flight_id: int) -> list[str]:
        """The script's KEYS: the shard's queue and the flight's counter (one hash tag)."""
        shard = shard_of(flight_id)
        return [
            self.keys.write_behind_queue(shard),
            self.keys.write_behind_bookings(shard, flight_id),
        ]

    # -- writes -------------------------------------------------------------------
    # region: book
    def book(self, flight_id: int, seats: int) -> Booking:
        """Accept one booking: validated, then queued and counted in one script."""
        check_flight_id(flight_id)
        check_seats(seats)
        self.require_flights([flight_id])
        keys = self._keys_of(flight_id)
        entry_id, booked = BOOK(self.valkey, keys, [flight_id, seats])
        self._accepted(flight_id, seats)
        return Booking(flight_id, seats, str(entry_id), int(booked), keys[0])

    # endregion: book

    def book_many(self, bookings: Sequence[tuple[int, int]]) -> int:
        """Accept many bookings, pipelined; all are validated before any is queued."""
        for flight_id, seats in bookings:
            check_flight_id(flight_id)
            check_seats(seats)
        self.require_flights({f for f, _ in bookings})
        self.load_script()
        for start in range(0, len(bookings), PIPELINE_CHUNK):
            chunk = bookings[start : start + PIPELINE_CHUNK]
            pipe = self.valkey.pipeline(transaction=False)
            for flight_id, seats in chunk:
                BOOK.queue(pipe, self._keys_of(flight_id), [flight_id, seats])
            replies = pipe.execute(raise_on_error=False)
            for (flight_id, seats), reply in zip(chunk, replies, strict=True):
                if isinstance(reply, valkey.exceptions.NoScriptError):
                    # the script was flushed since load_script (a restart, a failover):
                    # this booking did not run; EVALSHA again, EVAL on NOSCRIPT
                    BOOK(self.valkey, self._keys_of(flight_id), [flight_id, seats])
                elif isinstance(reply, Exception):
                    raise reply
                self._accepted(flight_id, seats)
        return len(bookings)

    def _accepted(self, flight_id: int, seats: int) -> None:
        self.accepted_writes += 1
        self.accepted_seats += seats
        self.flights_written.add(flight_id)

    def book_write_through(self, flight_id: int, seats: int) -> int:
        """For comparison: the database transaction first, then the Valkey counter."""
        assert self.db is not None
        with self.db.transaction():
            self.db.execute(
                sqlfiles.query(self.db.dialect, "write_behind_seats_add"),
                {"queue": self.queue + "direct", "flight_id": flight_id, "seats": seats},
            )
        return int(
            self.valkey.hincrby(self.keys.write_behind_direct_bookings(flight_id), "seats", seats)
        )

    # -- reads --------------------------------------------------------------------
    def booked(self, flight_id: int) -> int:
        """Seats booked on a flight as readers see them: the counter, at once."""
        value = self.valkey.hget(
            self.keys.write_behind_bookings(shard_of(flight_id), flight_id), "seats"
        )
        return int(value or 0)

    def valkey_total(self, flight_ids: Iterable[int]) -> int:
        pipe = self.valkey.pipeline(transaction=False)
        for f in flight_ids:
            pipe.hget(self.keys.write_behind_bookings(shard_of(f), f), "seats")
        return sum(int(v or 0) for v in pipe.execute())

    def depth(self) -> list[ShardDepth]:
        return queue_depth(self.valkey, self.keys)


def queue_depth(client: Any, keys: Keys) -> list[ShardDepth]:
    """XLEN and XINFO GROUPS of every shard."""
    out: list[ShardDepth] = []
    for shard in range(SHARDS):
        stream = keys.write_behind_queue(shard)
        pipe = client.pipeline(transaction=False)
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
        try:
            length, groups = pipe.execute()
        except valkey.exceptions.ResponseError:  # no such stream yet
            out.append(ShardDepth(shard, stream, 0, 0, 0))
            continue
        group = next((g for g in groups if g.get("name") == GROUP), None)
        lag = group.get("lag") if group else int(length)
        pending = int(group.get("pending", 0)) if group else 0
        out.append(
            ShardDepth(shard, stream, int(length), None if lag is None else int(lag), pending)
        )
    return out


def backlog(depths: Sequence[ShardDepth]) -> int:
    """Entries not yet in the database: undelivered plus pending."""
    return sum((d.lag if d.lag is not None else d.length) + d.pending for d in depths)
