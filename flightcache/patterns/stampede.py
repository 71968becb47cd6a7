"""Stampede prevention: many clients on one expensive key as it expires.

Read path, per defence (each defence has its own value key and lock key, which
share a hash tag):

- ``none``: GET; every client that misses runs the query and SETs the value
  (plain cache-aside, so clients that miss together query together).
- ``lock``: GET; on a miss take the :class:`~flightcache.patterns.lock.Lock`
  (SET NX PX with a random token). The winner reads the value once more (a holder
  may have finished just before), rebuilds, SETs it and releases the lock; the
  others poll GET with a growing, jittered pause and are served the winner's value.
- ``xfetch``: the value is one JSON string holding the rows, ``delta`` (how long
  the last rebuild took) and ``expiry``; a reader draws r in (0, 1] and
  recomputes early when ``now - delta * beta * ln(r) >= expiry`` (Vattani,
  Chierichetti and Lowenstein, VLDB 2015). ln(r) <= 0, so the term moves "now"
  forward. Nothing stops two readers drawing an early recompute at once.
- ``xfetch+lock``: XFetch decides *when*, the lock decides *who*: a reader that
  draws an early recompute takes the lock, or, when another client holds it,
  serves the value it has, which has not expired yet.
- ``stale``: the value carries a soft expiry, the key a longer hard TTL; the first
  reader past the soft expiry takes the lock and refreshes, the others are served
  the stale value meanwhile.

Write path: a rebuild runs the named query ``stampede_rebuild`` (real work plus a
sleep of ``rebuild_ms``) on a connection from a shared pool; every query is
counted, and its time is the ``delta`` stored with the value.

Failure mode: a lock holder renews its lease while it rebuilds, so a slow rebuild
keeps its lock; a holder that dies stops renewing, its lease runs out and the next
poller takes the lock and rebuilds. A waiter that sees neither a value nor a free
lock for ten leases raises :class:`LockWaitTimeout`. Valkey and database errors
raise from :meth:`Defence.read`.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from flightcache import sqlfiles
from flightcache.db import Database
from flightcache.errors import FlightcacheError, UsageError
from flightcache.keys import Keys
from flightcache.patterns.cache_aside import encode
from flightcache.patterns.lock import LEASE_FLOOR_MS, Lock, new_token
from flightcache.trace import format_sql

DEFENCES = ("none", "lock", "xfetch", "xfetch+lock", "stale")
AT_MOST_ONE = frozenset({"lock", "xfetch+lock", "stale"})
"""The defences that promise at most one database query per expiry (the lock's)."""

VALUE_TTL_MS = 300_000
"""What a rebuild gives its value: five minutes."""
FIRST_POLL_MS = 5
MAX_POLL_MS = 50


def now_ms() -> int:
    """Wall-clock epoch milliseconds: expiries in values are compared with it, so the
    clients that share a key must share a clock (NTP keeps them within a few ms)."""
    return time.time_ns() // 1_000_000


def unit_random() -> float:
    """Uniform in (0, 1]: ln of it is finite."""
    return 1.0 - random.random()


# region: xfetch
def xfetch_early(now: float, delta_ms: float, beta: float, expiry_ms: float, r: float) -> bool:
    """The XFetch rule: recompute when ``now - delta * beta * ln(r) >= expiry``.

    ``r`` is uniform in (0, 1]; ``-ln(r)`` is exponentially distributed with mean 1,
    so a reader recomputes early with probability ``exp(-(expiry - now) / (delta *
    beta))``: rarely far from the expiry, almost surely right before it, earlier
    for a slow rebuild (large delta) or a larger beta.
    """
    return now - delta_ms * beta * math.log(r) >= expiry_ms


# endregion: xfetch


class Connections(Protocol):
    """Where a rebuild borrows a database connection: a pool shared by the clients."""

    def connection(self) -> AbstractContextManager[Database]: ...


@dataclass(frozen=True)
class Built:
    value: str  # the rows as JSON
    delta_ms: int  # how long the rebuild took


class Rebuild:
    """The expensive query; ``queries`` counts every one issued."""

    def __init__(self, pool: Connections, dialect: sqlfiles.Dialect, rebuild_ms: int) -> None:
        self.pool = pool
        self.sql = sqlfiles.query(dialect, "stampede_rebuild")
        self.params = {"seconds": rebuild_ms / 1000}
        self.queries = 0
        self._count = threading.Lock()

    @property
    def statement(self) -> str:
        return format_sql(self.sql, self.params)

    def run(self) -> Built:
        with self._count:
            self.queries += 1
        with self.pool.connection() as db:
            start = time.perf_counter_ns()
            result = db.fetch(self.sql, self.params)
            value = encode(result.columns, result.rows)
        return Built(value, max(1, (time.perf_counter_ns() - start) // 1_000_000))


@dataclass(frozen=True)
class Envelope:
    value: Any
    delta_ms: int
    expiry_ms: int


def pack(value: str, delta_ms: int, expiry_ms: int) -> str:
    """The value with its rebuild time and logical expiry, as one JSON string."""
    return f'{{"expiry":{expiry_ms},"delta":{delta_ms},"value":{value}}}'


def unpack(raw: str | None) -> Envelope | None:
    """An envelope, or None for a missing or damaged one (a miss)."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        return Envelope(doc["value"], int(doc["delta"]), int(doc["expiry"]))
    except (ValueError, KeyError, TypeError):
        return None


def plain(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass
class DefendedRead:
    """What one read did: its outcome, and the value it served."""

    outcome: str  # hit, rebuilt, waited, rechecked, early, early-busy, stale, refreshed
    value: Any = None
    polls: int = 0
    renewals: int = 0
    early: bool = False  # XFetch drew an early recompute
    sql: list[str] = field(default_factory=list)
    # why, where the commands do not say: set when a read acted on the stored expiry
    expiry_in_ms: int | None = None  # ms from the read to that expiry; negative past it
    delta_ms: int | None = None  # the stored rebuild time XFetch drew with
    draw: float | None = None  # XFetch's r, when it drew an early recompute


class LockWaitTimeout(FlightcacheError):
    """A waiter gave up: the holder neither finished nor let its lease run out."""


class Defence:
    """One defence against a stampede on one key: ``read(valkey)`` is a client's read.

    ``valkey`` is any client with ``execute_command`` (a demo passes one that writes
    down each command it sends).
    """

    def __init__(
        self,
        name: str,
        keys: Keys,
        rebuild: Rebuild,
        *,
        beta: float = 1.0,
        lease_ms: int = LEASE_FLOOR_MS,
        ttl_ms: int = VALUE_TTL_MS,
        rand: Callable[[], float] = unit_random,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if name not in DEFENCES:
            raise UsageError(f"no defence named {name!r}", hint="one of " + ", ".join(DEFENCES))
        self.name = name
        self.value_key = keys.stampede_value(name)
        self.lock = Lock(keys.stampede_lock(name), lease_ms)
        self.lock_key = self.lock.key
        self.rebuild = rebuild
        self.beta = beta
        self.ttl_ms = ttl_ms
        self.rand = rand
        self.clock = clock
        self.max_wait_ms = max(10 * lease_ms, 5000)
        self.enveloped = name in ("xfetch", "xfetch+lock", "stale")

    # -- storing the value ----------------------------------------------------------
    def _current(self, valkey: Any) -> Any:
        """The value if the key holds one (fresh or, for stale, not): for a recheck."""
        raw = valkey.execute_command("GET", self.value_key)
        if self.enveloped:
            envelope = unpack(raw)
            return None if envelope is None else envelope.value
        return plain(raw)

    def store(self, valkey: Any, built: Built, expiry_ms: int | None = None) -> None:
        """SET the value so that it expires (logically) at ``expiry_ms``, by default a
        full TTL from now. One SET with PX: the value and its expiry change together."""
        now = self.clock()
        expiry = now + self.ttl_ms if expiry_ms is None else expiry_ms
        left = max(1, expiry - now)
        if not self.enveloped:
            valkey.execute_command("SET", self.value_key, built.value, "PX", left)
        elif self.name == "stale":  # soft expiry inside, hard TTL one more TTL later
            packed = pack(built.value, built.delta_ms, expiry)
            valkey.execute_command("SET", self.value_key, packed, "PX", left + self.ttl_ms)
        else:
            packed = pack(built.value, built.delta_ms, expiry)
            valkey.execute_command("SET", self.value_key, packed, "PX", left)

    def _rebuilt(self, valkey: Any, outcome: str, **extra: Any) -> DefendedRead:
        built = self.rebuild.run()
        self.store(valkey, built)
        return DefendedRead(outcome, json.loads(built.value), sql=[self.rebuild.statement], **extra)

    # -- reads ----------------------------------------------------------------------
    def read(self, valkey: Any) -> DefendedRead:
        """One client's read of the key, under this defence."""
        if not self.enveloped:
            value = plain(valkey.execute_command("GET", self.value_key))
            if value is not None:
                return DefendedRead("hit", value)
            return self._rebuilt(valkey, "rebuilt") if self.name == "none" else self._fill(valkey)
        envelope = unpack(valkey.execute_command("GET", self.value_key))
        if envelope is None:
            return self._rebuilt(valkey, "rebuilt") if self.name == "xfetch" else self._fill(valkey)
        now = self.clock()
        if self.name == "stale":
            if now < envelope.expiry_ms:
                return DefendedRead("hit", envelope.value)
            read = self._refresh(valkey, envelope, busy="stale", done="refreshed", early=False)
            read.expiry_in_ms = envelope.expiry_ms - now
            return read
        # region: xfetch-read
        r = self.rand()
        if not xfetch_early(now, envelope.delta_ms, self.beta, envelope.expiry_ms, r):
            return DefendedRead("hit", envelope.value)
        if self.name == "xfetch":
            read = self._rebuilt(valkey, "early", early=True)
        else:  # xfetch+lock: one client recomputes, the others serve what they have
            read = self._refresh(valkey, envelope, busy="early-busy", done="early", early=True)
        # endregion: xfetch-read
        read.expiry_in_ms, read.delta_ms, read.draw = envelope.expiry_ms - now, envelope.delta_ms, r
        return read

    def _refresh(
        self, valkey: Any, seen: Envelope, *, busy: str, done: str, early: bool
    ) -> DefendedRead:
        """Refresh a value that is still there: one client under the lock, and every
        other client is served the value it already has."""
        token = new_token()
        if not self.lock.acquire(valkey, token):
            return DefendedRead(busy, seen.value, early=early)
        with self.lock.held(valkey, token) as lease:
            fresh = unpack(valkey.execute_command("GET", self.value_key))
            if fresh is not None and fresh.expiry_ms != seen.expiry_ms:  # refreshed meanwhile
                return DefendedRead("rechecked", fresh.value, early=early)
            read = self._rebuilt(valkey, done, early=early)
        read.renewals = lease.renewals
        return read

    def _fill(self, valkey: Any) -> DefendedRead:
        """A hard miss: one client rebuilds under the lock, the others poll for its value.

        A poller also tries the lock again, so when a holder dies its lease runs out
        and the next poller rebuilds.
        """
        token = new_token()
        deadline = time.monotonic() + self.max_wait_ms / 1000
        pause_ms = FIRST_POLL_MS
        polls = 0
        while True:
            if self.lock.acquire(valkey, token):
                with self.lock.held(valkey, token) as lease:
                    current = self._current(valkey)
                    if current is not None:  # a holder finished just before we got the lock
                        return DefendedRead("rechecked", current, polls=polls)
                    read = self._rebuilt(valkey, "rebuilt", polls=polls)
                read.renewals = lease.renewals
                return read
            polls += 1
            time.sleep(random.uniform(pause_ms / 2, pause_ms) / 1000)
            current = self._current(valkey)
            if current is not None:
                return DefendedRead("waited", current, polls=polls)
            if time.monotonic() > deadline:
                raise LockWaitTimeout(
                    f"gave up waiting for {self.value_key} after {self.max_wait_ms} ms: its"
                    " lock holder kept renewing its lease without storing a value"
                )
            pause_ms = min(pause_ms * 2, MAX_POLL_MS)
