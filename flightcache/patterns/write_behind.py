"""Write-behind: a booking lands in Valkey at once, the database catches up later.

Write path: one Lua script appends the booking to its shard's queue (a stream,
XADD) and adds the seats to the flight's counter (HINCRBY), atomically, so the
counter and the queue cannot diverge. Readers see the counter at once. Bookings
go to one of ``SHARDS`` streams by flight id; a shard's keys share a hash tag
({wb3}), so the script runs on a Valkey Cluster, and the shards spread the
queue over the cluster's nodes instead of piling every write onto one slot.

Drain path: a worker reads each shard with XREADGROUP (consumer group
``db-writer``), applies a batch in one database transaction that also records
every entry id (primary key), and only then XACKs. A redelivered entry finds
its id recorded and is skipped, so it counts once.

Failure modes: a worker killed between commit and XACK leaves its entries
pending; on restart it reads its own pending entries first (and XAUTOCLAIMs
those of consumers idle too long) and skips what it had applied. A database
that is down leaves the batch pending, not acked; the worker retries with
backoff (with ``--once`` a bounded number of times, so that it always ends).
A poison entry, one no database can take (malformed, a flight that does not
exist, a value the database refuses for good: its IntegrityError or DataError),
is never retried: it moves to the shard's dead-letter stream with the error,
acked in the same script, and the rest of its batch is applied. What is not
covered: Valkey itself losing acknowledged writes (run it with AOF, and
replicas), since until the worker drains them the queue is the only copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.children import child_env, python_command
from flightcache.db import Params, QueryResult
from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import ConfigError, DataError, FlightcacheError, RejectedValue
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
MAX_BATCH = 10_000
QUEUE_MAX = 94
"""Characters of a queue's name (the scoped key prefix): flightcache_wb_seats.queue is a
varchar(100), and the write-through comparison appends ``direct``."""
DEAD_MAXLEN = 10_000
"""Dead letters kept per shard (XADD MAXLEN ~): the newest, for a person to read."""
ONCE_RETRIES = 6
"""Failed database attempts in a row after which ``worker --once`` gives up (about 6 s of
backoff); without --once the worker retries until stopped."""

BOOK = script("write_behind_book")
"""XADD to the shard's queue and HINCRBY the flight's counter, in one script."""
DEAD_LETTER = script("write_behind_dead_letter")
"""XACK the entry in its queue and XADD it to the shard's dead letters, in one script."""


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


def check_batch(batch: int) -> None:
    if batch < 1:
        raise ConfigError(
            f"--batch {batch} would read nothing: a batch holds one entry or more",
            hint="pass --batch 500, say (larger batches mean fewer transactions)",
        )
    if batch > MAX_BATCH:
        raise ConfigError(
            f"--batch {batch:,} is more than one transaction should hold (at most {MAX_BATCH:,})",
            hint="pass --batch 500, say (larger batches mean fewer transactions)",
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
    def book(self, flight_id: int, seats: int) -> Booking:
        """Accept one booking: validated, then queued and counted in one script."""
        check_flight_id(flight_id)
        check_seats(seats)
        self.require_flights([flight_id])
        keys = self._keys_of(flight_id)
        entry_id, booked = BOOK(self.valkey, keys, [flight_id, seats])
        self._accepted(flight_id, seats)
        return Booking(flight_id, seats, str(entry_id), int(booked), keys[0])

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


@dataclass
class DeadLetter:
    shard: int
    id: str  # in the dead-letter stream
    entry: str  # the entry's id in its queue
    error: str
    fields: dict[str, str]  # the entry's own fields (flight, seats, ...)


def dead_count(client: Any, keys: Keys) -> int:
    """Dead letters kept, over all shards (XLEN of each dead-letter stream)."""
    return sum(int(client.xlen(keys.write_behind_dead_letters(shard))) for shard in range(SHARDS))


def dead_letters(client: Any, keys: Keys, count: int = 20) -> list[DeadLetter]:
    """The newest ``count`` dead letters of each shard, oldest first."""
    out: list[DeadLetter] = []
    for shard in range(SHARDS):
        for dead_id, raw in reversed(
            client.xrevrange(keys.write_behind_dead_letters(shard), count=count)
        ):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            entry, error = fields.pop("entry", ""), fields.pop("error", "")
            fields.pop("consumer", None)
            out.append(DeadLetter(shard, _text(dead_id), entry, error, fields))
    return sorted(out, key=lambda d: _id_key(d.id))


# -- the worker --------------------------------------------------------------------
@dataclass
class QueueEntry:
    id: str
    flight_id: int | None  # None: malformed (its error says why)
    seats: int
    error: str = ""  # why no database can take it: it goes to the dead letters
    fields: dict[str, str] = field(default_factory=dict)  # as read from the stream


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_entries(raw: Sequence[Any]) -> list[QueueEntry]:
    """XREADGROUP/XAUTOCLAIM entries ``[(id, {field: value}), ...]`` as QueueEntry objects.

    An entry of the wrong shape (a field missing, not a whole number, a flight id no
    INT holds, fewer than one seat) carries its error; it is not retried. An entry
    deleted while pending (``None`` fields) is recorded with no effect."""
    out: list[QueueEntry] = []
    for entry_id, fields in raw:
        if fields is None:  # deleted from the stream while pending: recorded, no effect
            out.append(QueueEntry(_text(entry_id), None, 0))
            continue
        text = {_text(k): _text(v) for k, v in fields.items()}
        try:
            flight, seats = int(text["flight"]), int(text["seats"])
        except (KeyError, ValueError):
            shown = ", ".join(f"{k}={v[:30]!r}" for k, v in list(text.items())[:4]) or "none"
            error = f"malformed entry: needs whole-number fields flight and seats; has {shown}"
            out.append(QueueEntry(_text(entry_id), None, 0, error, text))
            continue
        error = ""
        if not 1 <= flight <= MAX_FLIGHT_ID:
            error = f"malformed entry: flight {flight} is not a flight id (1 to {MAX_FLIGHT_ID})"
        elif seats < 1:
            error = f"malformed entry: {seats} seats (a booking takes one or more)"
        out.append(QueueEntry(_text(entry_id), None if error else flight, seats, error, text))
    return out


def apply_batch(db: Sql, queue: str, shard: int, entries: Sequence[QueueEntry]) -> tuple[int, int]:
    """Apply entries in one transaction; returns (applied now, skipped as applied before).

    Each entry id is inserted into flightcache_wb_applied in the same transaction as
    its seats, so an entry delivered twice finds its id and counts once. Two workers
    racing on one entry: on PostgreSQL the second insert waits for the first commit
    and then skips the id (ON CONFLICT DO NOTHING); on MySQL it violates the primary
    key, its transaction rolls back, and its retry finds the id recorded.
    """
    if not entries:
        return 0, 0
    q = sqlfiles.queries(db.dialect)
    key = {"queue": queue, "shard": shard}
    ids = [e.id for e in entries]
    with db.transaction():
        if db.dialect == "postgresql":
            new = {
                str(r[0])
                for r in db.fetch(q["write_behind_applied_claim"], {**key, "ids": ids}).rows
            }
            fresh = [e for e in entries if e.id in new]
        else:
            found = db.fetch(q["write_behind_applied_among"], {**key, "ids": ids})
            done = {str(r[0]) for r in found.rows}
            fresh = [e for e in entries if e.id not in done]
            db.execute_many(
                q["write_behind_applied_insert"], [{**key, "entry_id": e.id} for e in fresh]
            )
        if fresh:
            seats: dict[int, int] = defaultdict(int)
            for e in fresh:
                if e.flight_id is not None:
                    seats[e.flight_id] += e.seats
            db.execute_many(
                q["write_behind_seats_add"],
                [
                    {"queue": queue, "flight_id": f, "seats": n}
                    for f, n in sorted(seats.items())  # one lock order for every worker
                ],
            )
    return len(fresh), len(entries) - len(fresh)


@dataclass
class WorkerReport:
    consumer: str
    applied: int = 0  # entries whose seats reached the database in this run
    skipped: int = 0  # delivered again but applied before: not counted twice
    recovered: int = 0  # read back from this consumer's pending list at start
    claimed: int = 0  # taken over from other consumers idle too long
    malformed: int = 0  # entries with no usable flight/seats (dead-lettered)
    dead_lettered: int = 0  # poison entries moved to the dead letters in this run
    swept: int = 0  # consumers of dead workers removed from the group (idle, none pending)
    batches: int = 0
    retries: int = 0  # failed database attempts
    seconds: float = 0.0
    stopped_pending: int = 0  # entries left pending because the database stayed down
    last_error: str = ""

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 1)}


class DatabaseUnavailable(Exception):
    """Raised inside the worker when the deadline passes, or its retries run out, while
    the database is down."""


Retry = Callable[[FlightcacheError, float, int, int], None]
"""on_retry(error, seconds until the next try, attempt, entries pending)."""


@dataclass
class Worker:
    """Drains the shards into the database; see the module docstring."""

    valkey: Any
    keys: Keys
    connect_db: Callable[[], Sql]
    consumer: str = "worker-1"
    batch: int = 500
    claim_idle_ms: int = 60_000
    own_connection: bool = True  # close and reopen the connection after a failure
    pause_before_ack: float = 0.0  # a test hook: widen the window between commit and XACK
    on_progress: Callable[[WorkerReport], None] | None = None
    on_retry: Retry | None = None
    on_pause: Callable[[int], None] | None = None
    idle_sleep: float = 0.2
    max_backoff: float = 5.0
    max_retries: int | None = None  # failed attempts in a row before giving up; None: run()
    sleep: Callable[[float], None] = time.sleep
    report: WorkerReport = field(init=False)
    queue: str = field(init=False)
    _db: Sql | None = field(default=None, init=False)
    _deadline: float | None = field(default=None, init=False)
    _retries: int | None = field(default=None, init=False)
    known_flights: set[int] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        check_batch(self.batch)
        check_queue(self.keys)
        self.report = WorkerReport(self.consumer)
        self.queue = self.keys.prefix

    def ensure_groups(self) -> None:
        WriteBehind(self.valkey, None, self.keys).ensure_groups()

    # -- database, with reconnection -----------------------------------------------
    def database(self) -> Sql:
        if self._db is None:
            db = self.connect_db()
            try:
                ensure_tables(db)
            except FlightcacheError:
                if self.own_connection:
                    _close(db)
                raise
            self._db = db
        return self._db

    def _drop_connection(self) -> None:
        if self._db is not None and self.own_connection:
            _close(self._db)
            self._db = None

    def close(self) -> None:
        self._drop_connection()

    def _apply(self, shard: int, entries: list[QueueEntry]) -> list[QueueEntry]:
        """Apply until it works, backing off on transient errors; returns the poison
        entries (not applied, each with its error). DatabaseUnavailable when time or
        retries are up."""
        delay, attempt = 0.2, 0
        while True:
            try:
                applied, skipped, poison = self._try(shard, entries)
                break
            except FlightcacheError as exc:
                attempt += 1
                self.report.retries += 1
                self.report.last_error = exc.message
                self._drop_connection()
                out_of_time = (
                    self._deadline is not None and time.monotonic() + delay > self._deadline
                )
                if out_of_time or (self._retries is not None and attempt >= self._retries):
                    self.report.stopped_pending = len(entries)
                    raise DatabaseUnavailable(exc.message) from None
                if self.on_retry is not None:
                    self.on_retry(exc, delay, attempt, len(entries))
                self.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        self.report.applied += applied
        self.report.skipped += skipped
        self.report.malformed += sum(1 for e in entries if e.flight_id is None)
        self.report.batches += 1
        return poison

    def _try(self, shard: int, entries: list[QueueEntry]) -> tuple[int, int, list[QueueEntry]]:
        """One attempt: set aside what no database can take, apply the rest."""
        db = self.database()
        self._unknown_flights(db, entries)
        poison = [e for e in entries if e.error]
        applied, skipped, refused = self._isolate(db, shard, [e for e in entries if not e.error])
        return applied, skipped, poison + refused

    def _unknown_flights(self, db: Sql, entries: Sequence[QueueEntry]) -> None:
        """Mark entries whose flight does not exist (flightcache's tables have no foreign
        key to ``flight``, so the worker asks, once per flight id it has not seen)."""
        unknown = {e.flight_id for e in entries if e.flight_id is not None} - self.known_flights
        if not unknown:
            return
        result = db.fetch(
            sqlfiles.query(db.dialect, "write_behind_flights_among"), {"ids": sorted(unknown)}
        )
        self.known_flights.update(int(r[0]) for r in result.rows)
        for e in entries:
            if e.flight_id is not None and e.flight_id not in self.known_flights:
                e.error = f"flight {e.flight_id} does not exist"

    def _isolate(
        self, db: Sql, shard: int, entries: list[QueueEntry]
    ) -> tuple[int, int, list[QueueEntry]]:
        """apply_batch; when the database refuses the batch for good (RejectedValue),
        halve it until the refused entries stand alone. An entry is poison when it is
        refused alone twice: the second try covers a worker racing us on it (on MySQL
        our insert of its id then fails as a duplicate, and the retry finds it applied)."""
        if not entries:
            return 0, 0, []
        try:
            return (*apply_batch(db, self.queue, shard, entries), [])
        except RejectedValue as exc:
            if len(entries) > 1:
                mid = len(entries) // 2
                a1, s1, p1 = self._isolate(db, shard, entries[:mid])
                a2, s2, p2 = self._isolate(db, shard, entries[mid:])
                return a1 + a2, s1 + s2, p1 + p2
            error = exc.message
        try:
            return (*apply_batch(db, self.queue, shard, entries), [])
        except RejectedValue as exc:
            entries[0].error = exc.message or error
            return 0, 0, list(entries)

    def _dead_letter(self, shard: int, poison: Sequence[QueueEntry]) -> None:
        """Each poison entry: XACK it and XADD it to the dead letters, in one script."""
        queue, dead = (
            self.keys.write_behind_queue(shard),
            self.keys.write_behind_dead_letters(shard),
        )
        for e in poison:
            fields = {
                **e.fields,
                "entry": e.id,
                "error": e.error[:500],
                "consumer": self.consumer,
            }
            pairs = [x for kv in fields.items() for x in kv]
            moved = DEAD_LETTER(self.valkey, [queue, dead], [GROUP, e.id, DEAD_MAXLEN, *pairs])
            self.report.dead_lettered += int(moved)

    def _ack(self, shard: int, entries: list[QueueEntry]) -> None:
        """XACK, then trim what every consumer has acked (XTRIM MINID)."""
        stream = self.keys.write_behind_queue(shard)
        pipe = self.valkey.pipeline(transaction=False)
        pipe.xack(stream, GROUP, *[e.id for e in entries])
        # read last-delivered before the pending summary: an entry delivered in
        # between has a larger id than last-delivered and so is never trimmed
        pipe.xinfo_groups(stream)
        pipe.xpending(stream, GROUP)
        _, groups, summary = pipe.execute()
        group = next((g for g in groups if g.get("name") == GROUP), None)
        if group is None:
            return
        floor = _next_id(str(group["last-delivered-id"]))
        if int(summary.get("pending", 0)) and summary.get("min"):
            floor = min(floor, str(summary["min"]), key=_id_key)
        self.valkey.xtrim(stream, minid=floor, approximate=False)

    def _handle(self, shard: int, raw: Sequence[Any]) -> int:
        entries = parse_entries(raw)
        if not entries:
            return 0
        poison = self._apply(shard, entries)
        if poison:
            self._dead_letter(shard, poison)
        if self.pause_before_ack > 0:
            if self.on_pause is not None:
                self.on_pause(len(entries))
            self.sleep(self.pause_before_ack)
        self._ack(shard, entries)
        if self.on_progress is not None:
            self.on_progress(self.report)
        return len(entries)

    def _read(self, shard: int, start: str) -> list[Any]:
        reply = self.valkey.xreadgroup(
            GROUP, self.consumer, {self.keys.write_behind_queue(shard): start}, count=self.batch
        )
        if not reply:
            return []
        # RESP2: [[stream, entries]]; RESP3: {stream: [entries]}
        if isinstance(reply, dict):
            return list(next(iter(reply.values()))[0] if reply else [])
        return list(reply[0][1])

    # -- the phases ---------------------------------------------------------------------
    def recover(self) -> int:
        """Apply this consumer's own pending entries (a crashed run's), then claim others'."""
        total = 0
        for shard in range(SHARDS):
            after = "0"
            while True:
                raw = self._read(shard, after)
                if not raw:
                    break
                after = str(raw[-1][0])
                total += self._handle(shard, raw)
                self.report.recovered += len(raw)
            start = "0-0"
            while True:
                next_start, raw, _deleted = self.valkey.xautoclaim(
                    self.keys.write_behind_queue(shard),
                    GROUP,
                    self.consumer,
                    self.claim_idle_ms,
                    start_id=start,
                    count=self.batch,
                )
                if raw:
                    self.report.claimed += len(raw)
                    total += self._handle(shard, raw)
                if str(next_start) in ("0-0", "0"):
                    break
                start = str(next_start)
            self.report.swept += self._sweep(shard)
        return total

    def _sweep(self, shard: int) -> int:
        """XGROUP DELCONSUMER the consumers a killed worker left: idle longer than the
        claim time and nothing pending (their entries were claimed just now)."""
        stream = self.keys.write_behind_queue(shard)
        swept = 0
        for c in self.valkey.xinfo_consumers(stream, GROUP):
            name = _text(c.get("name", ""))
            idle, pending = int(c.get("idle", 0)), int(c.get("pending", 0))
            if name != self.consumer and not pending and idle >= self.claim_idle_ms:
                self.valkey.xgroup_delconsumer(stream, GROUP, name)
                swept += 1
        return swept

    def step(self) -> int:
        """Read and apply one batch from the first shard that has new entries."""
        for shard in range(SHARDS):
            raw = self._read(shard, ">")
            if raw:
                return self._handle(shard, raw)
        return 0

    def run(self, *, once: bool = False, max_seconds: float | None = None) -> WorkerReport:
        """Recover, then drain: with ``once`` until the queue is empty, else until time is up.

        With ``once`` the worker always ends: a database that stays down ends it after
        ``max_retries`` failed attempts in a row (ONCE_RETRIES unless set)."""
        started = time.monotonic()
        self._deadline = started + max_seconds if max_seconds else None
        self._retries = self.max_retries if self.max_retries or not once else ONCE_RETRIES
        try:
            self.ensure_groups()
            self.recover()
            while self._deadline is None or time.monotonic() < self._deadline:
                moved = 0
                for shard in range(SHARDS):
                    raw = self._read(shard, ">")
                    if raw:
                        moved += self._handle(shard, raw)
                if not moved:
                    if once:
                        break
                    self.sleep(self.idle_sleep)
        except DatabaseUnavailable:
            pass
        finally:
            self.report.seconds = time.monotonic() - started
        return self.report


def _close(db: Sql) -> None:
    close = getattr(db, "close", None)
    if callable(close):
        close()


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


# -- the demo -------------------------------------------------------------------------
def _spread(flights: Sequence[int], count: int, seed: int = 7) -> list[tuple[int, int]]:
    """``count`` bookings over ``flights``, 1-4 seats each, deterministic."""
    import random

    rng = random.Random(seed)
    return [(rng.choice(flights), rng.randint(1, 4)) for _ in range(count)]


def _depth_table(title: str, keys: Keys, depths: Sequence[ShardDepth], note: str) -> Table:
    rows: list[list[Any]] = [[f"{{wb{d.shard}}}", d.length, d.lag, d.pending] for d in depths]
    total = [sum(d.length for d in depths), sum(d.lag or 0 for d in depths)]
    rows.append(["total", *total, sum(d.pending for d in depths)])
    where = keys.write_behind_queue(0).replace("{wb0}", "{wbN}")
    columns = ["shard", "XLEN", "lag (undelivered)", "pending (not acked)"]
    return Table(title, columns, rows, f"streams {where}; {note}")


class _Clock:
    """Wall time minus the time the demo spent suspended at a yield (printing, --pause)."""

    def __init__(self) -> None:
        self.suspended = 0.0

    def now(self) -> float:
        return time.monotonic() - self.suspended

    def passing(self, *records: Record) -> Iterator[Record]:
        for record in records:
            start = time.monotonic()
            yield record
            self.suspended += time.monotonic() - start


def worker_command(batch: int, consumer: str, global_args: Sequence[str] = ()) -> list[str]:
    """The command line of a worker child process: --once, with a --json summary.

    ``python -P``: a ``flightcache/`` directory where the demo runs is never imported."""
    return python_command(
        [
            "-m",
            "flightcache",
            *global_args,
            "write-behind",
            "worker",
            "--once",
            "--batch",
            str(batch),
            "--consumer",
            consumer,
            "--json",
        ]
    )


PAUSE_ENV = "FLIGHTCACHE_WB_PAUSE_BEFORE_ACK"
"""Test hook: seconds the worker sleeps between its database commit and XACK."""


def kill_after_commit(
    command: Sequence[str], env: dict[str, str], db: Sql, queue: str, timeout: float = 60
) -> tuple[int, int, int]:
    """Start a worker process that pauses between commit and XACK (the test hook),
    wait until its first batch is committed, SIGKILL it.

    Returns (pid, exit status, entries it committed and never acked).
    """
    before = applied_count(db, queue)
    child = subprocess.Popen(
        list(command),
        env=child_env({**env, PAUSE_ENV: str(timeout)}),  # it dies with us
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while applied_count(db, queue) == before:
            if child.poll() is not None or time.monotonic() > deadline:
                said = (child.stderr.read() if child.stderr else "").strip()[-300:]
                raise FlightcacheError(
                    f"the child worker did not commit a batch in time: {said}",
                    hint="run `flightcache write-behind worker --once` to see why",
                )
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stderr:
            child.stderr.close()
    return child.pid, child.returncode, applied_count(db, queue) - before


POISON_SEATS = 10**20
"""More seats than a BIGINT column holds: the database refuses the entry for good."""


def inject_poison(client: Any, keys: Keys, flight_id: int, seats: int | str) -> str:
    """XADD a booking straight into its shard's stream, past the script and its checks,
    as a buggy or hostile writer could; returns the entry id."""
    stream = keys.write_behind_queue(shard_of(flight_id))
    return _text(client.xadd(stream, {"flight": flight_id, "seats": seats}))


def _poison(ctx: DemoContext, pattern: WriteBehind, flight: int, batch: int) -> Iterator[Record]:
    """The demo's poison step: two entries no database can take go to the dead letters."""
    missing = max(pattern.known_flights, default=0) + 1
    queue = pattern.queue
    with ctx.step(
        "Poison entries go to the dead letters",
        f"XADD straight into the streams, past the script: flight {missing} (does not exist)"
        f" and {POISON_SEATS:.0e} seats on flight {flight} (no BIGINT holds that); the worker"
        " sets each aside with its error, never retrying it: one script XACKs it and XADDs"
        " it to the shard's dead-letter stream",
    ) as step:
        before = db_total(ctx.db, queue)
        ids = [
            inject_poison(ctx.valkey, ctx.keys, missing, 1),
            inject_poison(ctx.valkey, ctx.keys, flight, str(POISON_SEATS)),
        ]
        worker = Worker(
            ctx.valkey, ctx.keys, lambda: ctx.db, consumer="demo-worker", batch=batch,
            own_connection=False,
        )  # fmt: skip
        with ctx.tracer.paused():
            report = worker.run(once=True)
            left = backlog(pattern.depth())
            dead = [d for d in dead_letters(ctx.valkey, ctx.keys) if d.entry in ids]
            after = db_total(ctx.db, queue)
        step.outcome = (
            f"{report.dead_lettered} entries dead-lettered and acked; backlog {left};"
            f" database total unchanged at {after:,} seats"
        )
        step.ok = report.dead_lettered == len(ids) == len(dead) and after == before and not left
        step.data = {"dead_lettered": report.dead_lettered, "backlog": left}
    yield step
    rows: list[list[Any]] = [
        [f"{{wb{d.shard}}}:dead", d.entry, d.fields.get("flight"), d.fields.get("seats"), d.error]
        for d in dead
    ]
    yield Table(
        "Dead letters",
        ["stream", "entry", "flight", "seats", "error"],
        rows,
        f"XRANGE {ctx.keys.write_behind_dead_letters(0).replace('{wb0}', '{wbN}')};"
        " the worker's summary counts them"
        " (`flightcache write-behind worker`, `write-behind dead-letters`)",
    )


def demo(ctx: DemoContext) -> Iterator[Record]:
    import json

    opts = ctx.options
    seats: int = opts.get("seats", 2)
    burst: int = opts.get("burst", 5_000)
    batch: int = opts.get("batch", 500)
    crash_writes: int = opts.get("crash_writes", 2_000)
    check_seats(seats)
    check_batch(batch)
    pattern = WriteBehind(ctx.valkey, ctx.db, ctx.keys)
    queue = pattern.queue
    clock = _Clock()

    with ctx.step(
        "Prepare the queue and flightcache's tables",
        f"{SHARDS} streams, one per hash tag {{wb0}}..{{wb{SHARDS - 1}}}, each with the consumer"
        f" group {GROUP}; flight ids cached so that a write needs no database",
    ) as step:
        known = pattern.preload_flights()
        flight: int = opts.get("flight") or min(pattern.known_flights, default=0)
        pattern.require_flights([flight])  # an unknown flight stops here, before any write
        ensure_tables(ctx.db)
        forget(ctx.db, queue)
        pattern.ensure_groups()
        pattern.load_script()
        step.outcome = f"{known:,} flight ids cached; tables flightcache_wb_seats, _applied ready"
    yield step
    if not opts.get("keep"):  # flightcache's own tables: the rows of this demo's queues
        for name in (queue, queue + "direct"):
            ctx.put_back("write_behind_forget_applied", {"queue": name})
            ctx.put_back("write_behind_forget_seats", {"queue": name})

    with ctx.step(
        f"Book {seats} seats on flight {flight}",
        "one Lua script: XADD to the shard's stream and HINCRBY the flight's counter,"
        " atomically; no database on the write path",
    ) as step:
        booking = pattern.book(flight, seats)
        step.outcome = (
            f"accepted as entry {booking.entry_id} of {booking.queue};"
            f" the counter says {booking.booked} seats"
        )
        step.data = asdict(booking)
    yield step

    with ctx.step(
        "Read it back at once", "readers ask Valkey; the database has not heard of it yet"
    ) as step:
        seen = pattern.booked(flight)
        in_db = db_total(ctx.db, queue, flight)
        step.hit = seen == booking.booked
        step.outcome = f"Valkey: {seen} seats; database: {in_db} (the worker has not run)"
    yield step

    yield ctx.compare(
        "one booking: write-through vs write-behind",
        {
            "write-through (DB transaction + HINCRBY)": lambda: pattern.book_write_through(
                flight, seats
            ),
            "write-behind (one script: XADD + HINCRBY)": lambda: pattern.book(flight, seats),
        },
        note="write-through waits for the database's commit; write-behind only for Valkey."
        " The database work still happens, later and in batches.",
    )

    flights = sorted(pattern.known_flights)[:500]
    with ctx.step(
        f"A burst of {burst:,} bookings",
        f"over {len(flights)} flights, pipelined {PIPELINE_CHUNK:,} scripts per round trip",
    ) as step:
        with ctx.tracer.paused():
            t0 = time.perf_counter()
            pattern.book_many(_spread(flights, burst))
            took = time.perf_counter() - t0
        last_accepted = clock.now()
        step.outcome = (
            f"{burst:,} accepted in {took * 1000:.0f} ms ({burst / took:,.0f} writes/s);"
            f" {pattern.accepted_writes:,} bookings accepted so far"
        )
    yield from clock.passing(
        step,
        _depth_table(
            "Queue depth after the burst",
            ctx.keys,
            pattern.depth(),
            "lag: entries the group has not read yet (XINFO GROUPS); pending: read, not acked",
        ),
    )

    worker = Worker(
        ctx.valkey,
        ctx.keys,
        lambda: ctx.db,
        consumer="demo-worker",
        batch=batch,
        own_connection=False,
    )
    with ctx.step(
        "The worker takes one batch",
        f"XREADGROUP COUNT {batch}, one transaction (ids recorded with their seats), then XACK",
    ) as step:
        first = worker.step()
        step.outcome = f"{first} entries applied and acked"
    yield from clock.passing(step)
    worker.report = WorkerReport(worker.consumer)  # the drain's own figures

    with ctx.step(
        "The worker drains the rest", f"--once: batches of {batch} until the queue is empty"
    ) as step:
        with ctx.tracer.paused():
            report = worker.run(once=True)
            total = db_total(ctx.db, queue)
            caught_up = clock.now()
        step.outcome = (
            f"{report.applied + first:,} entries applied in {report.batches + 1} batches,"
            f" {report.rate:,.0f} entries/s; database total {total:,} seats"
        )
        step.ok = total == pattern.accepted_seats
    yield step
    yield Table(
        "Caught up",
        ["accepted seats", "Valkey counters", "database total", "lag until caught up"],
        [
            [
                pattern.accepted_seats,
                pattern.valkey_total(pattern.flights_written),
                total,
                f"{caught_up - last_accepted:.2f} s",
            ]
        ],
        "lag: from the last accepted write until the database total equals the accepted"
        " seats (the time this demo spent printing is left out)",
    )

    yield from _poison(ctx, pattern, flight, batch)

    if crash_writes <= 0:
        return
    with ctx.step(
        f"Crash: {crash_writes:,} more bookings, a worker killed with SIGKILL mid-batch",
        "a child worker commits its first batch, then (test hook) waits before XACK: we kill it",
    ) as step:
        with ctx.tracer.paused():
            pattern.book_many(_spread(flights, crash_writes, seed=11))
        command = worker_command(min(batch, 200), "demo-crash")
        env = {**os.environ, **opts.get("child_env", {})}
        with ctx.tracer.paused():
            pid, code, committed = kill_after_commit(command, env, ctx.db, queue)
        step.outcome = (
            f"pid {pid} killed ({code}) after committing {committed} entries,"
            f" before XACK; database {db_total(ctx.db, queue):,} of"
            f" {pattern.accepted_seats:,} accepted seats"
        )
        step.data = {"command": " ".join(command[1:]), "committed_unacked": committed}
    yield step
    yield _depth_table(
        "Queue after the crash",
        ctx.keys,
        pattern.depth(),
        f"the killed worker's {committed} entries stay pending: applied but never acked",
    )

    with ctx.step(
        "Restart the worker", "it reads its own pending entries first (XREADGROUP ... 0)"
    ) as step:
        env = {**os.environ, **opts.get("child_env", {})}
        env.pop(PAUSE_ENV, None)
        done = subprocess.run(
            command, env=child_env(env), capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise FlightcacheError(
                f"the restarted worker failed: {done.stderr.strip()[-300:]}",
                hint="run `flightcache write-behind worker --once` to see why",
            )
        summary = json.loads(done.stdout)
        total = db_total(ctx.db, queue)
        step.outcome = (
            f"recovered {summary['recovered']} pending, skipped {summary['skipped']} applied"
            f" before, applied {summary['applied']:,}"
        )
        step.ok = total == pattern.accepted_seats
        step.data = summary
    yield step
    yield Table(
        "Nothing lost, nothing applied twice",
        [
            "accepted bookings",
            "entries applied",
            "accepted seats",
            "database total",
            "duplicates",
            "lost",
            "redelivered, skipped",
        ],
        [
            [
                pattern.accepted_writes,
                applied_count(ctx.db, queue),
                pattern.accepted_seats,
                total,
                max(0, total - pattern.accepted_seats),
                max(0, pattern.accepted_seats - total),
                summary["skipped"],
            ]
        ],
        "duplicates: seats in the database beyond the accepted ones; lost: the reverse",
    )
