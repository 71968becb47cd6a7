"""The write-behind worker: it drains the queue into the database, exactly once.

Drain path: the worker reads each shard with XREADGROUP (consumer group
``db-writer``), applies a batch in one database transaction that also records
every entry id (primary key), and only then XACKs. A redelivered entry finds its
id recorded and is skipped, so it counts once.

Failure modes: a worker killed between commit and XACK leaves its entries
pending; on restart it reads its own pending entries first (and XAUTOCLAIMs
those of consumers idle too long) and skips what it had applied. A database
that is down leaves the batch pending, not acked; the worker retries with
backoff (with ``once`` a bounded number of times, so that it always ends).
A poison entry, one no database can take (malformed, a flight that does not
exist, a value the database refuses for good: its IntegrityError or DataError),
is never retried: it moves to the shard's dead-letter stream with the error,
acked in the same script (``lua/write_behind_dead_letter.lua``), and the rest of
its batch is applied.

The writer's side, the queue's keys and its status are in
:mod:`flightcache.patterns.write_behind`; a batch's entries, read, applied and
acked, in :mod:`~flightcache.patterns.write_behind_batch`; the dead letters in
:mod:`~flightcache.patterns.write_behind_dead_letters`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from flightcache.errors import FlightcacheError
from flightcache.keys import Keys
from flightcache.patterns.write_behind import (
    GROUP,
    SHARDS,
    Sql,
    WriteBehind,
    check_queue,
    ensure_tables,
)
from flightcache.patterns.write_behind_batch import (
    QueueEntry,
    ack_and_trim,
    apply_isolating_poison,
    as_text,
    check_batch,
    mark_unknown_flights,
    parse_entries,
    read_entries,
)
from flightcache.patterns.write_behind_dead_letters import dead_letter

ONCE_RETRIES = 6
"""Failed database attempts in a row after which ``worker --once`` gives up (about 6 s of
backoff); without --once the worker retries until stopped."""


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
        mark_unknown_flights(db, entries, self.known_flights)
        poison = [e for e in entries if e.error]
        valid = [e for e in entries if not e.error]
        applied, skipped, refused = apply_isolating_poison(db, self.queue, shard, valid)
        return applied, skipped, poison + refused

    def _dead_letter(self, shard: int, poison: Sequence[QueueEntry]) -> None:
        """Each poison entry: XACK it and XADD it to the dead letters, in one script."""
        for e in poison:
            moved = dead_letter(self.valkey, self.keys, shard, self.consumer, e)
            self.report.dead_lettered += int(moved)

    # region: handle
    def _handle(self, shard: int, raw: Sequence[Any]) -> int:
        entries = parse_entries(raw)
        if not entries:
            return 0
        poison = self._apply(shard, entries)  # retried while the database is down
        if poison:
            self._dead_letter(shard, poison)
        self._test_pause(len(entries))
        ack_and_trim(self.valkey, self.keys, shard, entries)
        if self.on_progress is not None:
            self.on_progress(self.report)
        return len(entries)

    # endregion: handle

    def _test_pause(self, entries: int) -> None:
        """The test hook: with ``pause_before_ack`` set, wait between commit and XACK."""
        if self.pause_before_ack > 0:
            if self.on_pause is not None:
                self.on_pause(entries)
            self.sleep(self.pause_before_ack)

    def _read(self, shard: int, start: str) -> list[Any]:
        stream = self.keys.write_behind_queue(shard)
        return read_entries(self.valkey, stream, self.consumer, start, self.batch)

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
            name = as_text(c.get("name", ""))
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
