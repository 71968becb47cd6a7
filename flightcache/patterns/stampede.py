"""Stampede prevention: a herd of clients on one expensive key as it expires.

Read path, per defence (each defence has its own value key and lock key, which
share a hash tag):

- ``none``: GET; every client that misses runs the query and SETs the value
  (plain cache-aside, so a herd that misses together queries together).
- ``lock``: GET; on a miss SET lock <random token> NX PX <lease>. The winner reads
  the value once more (a holder may have finished just before), rebuilds, SETs it
  and releases the lock with a compare-and-delete script; the others poll GET with
  a growing, jittered pause and are served the winner's value.
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
sleep of ``rebuild_ms``) on a small pool of connections; every query is counted.

Failure mode: a lock holder renews its lease (compare-and-PEXPIRE) every half
lease while it rebuilds, so a slow rebuild keeps its lock; a holder that dies
stops renewing, its lease runs out and the next poller takes the lock and
rebuilds. A release or renewal by a client that no longer owns the lock changes
nothing. Valkey errors raise from :meth:`Defence.read`; in a herd they are
counted per defence with the first message, never raised from a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import queue
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.db import Database
from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import FlightcacheError, UsageError
from flightcache.keys import Keys
from flightcache.measure.timing import Stats
from flightcache.patterns.cache_aside import encode
from flightcache.trace import format_sql

DEFENCES = ("none", "lock", "xfetch", "xfetch+lock", "stale")

MAX_CLIENTS = 500
"""Each client is a thread with a Valkey connection of its own. Past a few hundred
threads in one Python process the herd measures the interpreter lock and the
scheduler of this machine, not Valkey or the database."""
MAX_DB_POOL = 100
"""PostgreSQL allows 100 connections by default; the pool must leave room for others."""
MAX_REBUILD_MS = 5000
MAX_BETA = 10.0
"""Beyond about 10 XFetch recomputes almost as soon as a value is written."""

VALUE_TTL_MS = 300_000
"""What a rebuild gives its value: five minutes. Each round of the demo moves the
expiry forward to a moment a little ahead, so nobody waits five minutes."""
LEASE_FLOOR_MS = 250
LEASE_FACTOR = 3
MAX_HOLD_MS = 60_000
"""A holder stops renewing after this long: a rebuild hung for a minute gives way."""
FIRST_POLL_MS = 5
MAX_POLL_MS = 50
REBUILDS = frozenset({"rebuilt", "early", "refreshed"})
"""Outcomes of a read that ran the query itself."""
WAITED = REBUILDS | {"waited", "rechecked"}
"""Outcomes of a read that waited for a rebuild, its own or another client's."""
AT_MOST_ONE = frozenset({"lock", "xfetch+lock", "stale"})
"""The defences that promise at most one database query per expiry (the lock's)."""


@dataclass(frozen=True)
class Script:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


RELEASE = Script(
    """-- KEYS[1]: the lock key. ARGV[1]: the caller's owner token.
-- Deletes the lock only while it holds ARGV[1]: a client whose lease ran out cannot
-- delete the lock another client took after it. Returns 1 if deleted, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)

RENEW = Script(
    """-- KEYS[1]: the lock key. ARGV[1]: the caller's owner token. ARGV[2]: lease, ms.
-- Sets the lease to ARGV[2] ms from now only while the lock holds ARGV[1].
-- Returns 1 if renewed, 0 if the lock is gone or another client's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)


def now_ms() -> int:
    """Wall-clock epoch milliseconds: expiries in values are compared with it, so the
    clients that share a key must share a clock (NTP keeps them within a few ms)."""
    return time.time_ns() // 1_000_000


def unit_random() -> float:
    """Uniform in (0, 1]: ln of it is finite."""
    return 1.0 - random.random()


def xfetch_early(now: float, delta_ms: float, beta: float, expiry_ms: float, r: float) -> bool:
    """The XFetch rule: recompute when ``now - delta * beta * ln(r) >= expiry``.

    ``r`` is uniform in (0, 1]; ``-ln(r)`` is exponentially distributed with mean 1,
    so a reader recomputes early with probability ``exp(-(expiry - now) / (delta *
    beta))``: rarely far from the expiry, almost surely right before it, earlier
    for a slow rebuild (large delta) or a larger beta.
    """
    return now - delta_ms * beta * math.log(r) >= expiry_ms


def lease_for(delta_ms: int) -> int:
    """The lock's lease for a rebuild measured at ``delta_ms``.

    Three rebuilds long, and at least 250 ms, so that an ordinary rebuild never
    needs its renewal; the holder renews every half lease anyway, so one that runs
    long (a database under load, which is when stampedes happen) keeps its lock. A
    dead holder blocks the others for at most one lease, not for a fixed minute.
    """
    return max(LEASE_FLOOR_MS, LEASE_FACTOR * delta_ms)


def check_herd(clients: int, rebuild_ms: int, beta: float, expiries: int = 1) -> None:
    """One clear line for a value a herd cannot run with."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise UsageError(
            f"--clients must be between 1 and {MAX_CLIENTS}, not {clients}",
            hint="each client is a thread with its own connection; past a few hundred the"
            " run measures Python's thread scheduling, not the cache",
        )
    if not 0 <= rebuild_ms <= MAX_REBUILD_MS:
        raise UsageError(f"--rebuild-ms must be between 0 and {MAX_REBUILD_MS}, not {rebuild_ms}")
    if not (beta > 0 and beta <= MAX_BETA):  # also refuses NaN
        raise UsageError(
            f"--beta must be greater than 0 and at most {MAX_BETA:g}, not {beta:g}",
            hint="1.0 is the paper's default; above 1 recomputes earlier",
        )
    if expiries < 1:
        raise UsageError(f"--expiries must be at least 1, not {expiries}")


class Wire:
    """One client's Valkey commands, sent on the shared client and written down."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sent: list[list[Any]] = []

    def __call__(self, *args: Any) -> Any:
        self.sent.append(list(args))
        return self.client.execute_command(*args)

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA, or EVAL when the node has not seen the script (it caches it then)."""
        try:
            return self("EVALSHA", script.sha, len(keys), *keys, *args)
        except valkey.exceptions.NoScriptError:
            return self("EVAL", script.source, len(keys), *keys, *args)


class Pool:
    """A few database connections shared by the herd, as an application server has."""

    def __init__(self, connect: Callable[[], Database], size: int) -> None:
        self.size = size
        self._connect = connect
        self._idle: queue.LifoQueue[Database] = queue.LifoQueue()
        self._all: list[Database] = []

    def fill(self) -> None:
        """Open every connection now, so that no client pays for connecting."""
        while len(self._all) < self.size:
            conn = self._connect()
            self._all.append(conn)
            self._idle.put(conn)

    @contextmanager
    def connection(self) -> Iterator[Database]:
        if not self._all:
            self.fill()
        try:
            conn = self._idle.get(timeout=120)
        except queue.Empty:
            raise FlightcacheError(
                "no database connection came free in 120 s", hint="raise --db-pool"
            ) from None
        try:
            yield conn
        finally:
            self._idle.put(conn)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()


@dataclass(frozen=True)
class Built:
    value: str  # the rows as JSON
    delta_ms: int  # how long the rebuild took


class Rebuild:
    """The expensive query on the pool; ``queries`` counts every one issued."""

    def __init__(self, pool: Pool, dialect: sqlfiles.Dialect, rebuild_ms: int) -> None:
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
class Read:
    """What one read did: its outcome, and the value it served."""

    outcome: str  # hit, rebuilt, waited, rechecked, early, early-busy, stale, refreshed
    value: Any = None
    polls: int = 0
    renewals: int = 0
    early: bool = False  # XFetch drew an early recompute
    sql: list[str] = field(default_factory=list)
    note: str = ""  # why, where the commands do not say: XFetch's draw, the soft expiry


@dataclass
class Lease:
    renewals: int = 0
    lost: bool = False


class LockWaitTimeout(FlightcacheError):
    """A waiter gave up: the holder neither finished nor let its lease run out."""


class Defence:
    """One defence against a stampede on one key: ``read(wire)`` is a client's read."""

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
        self.lock_key = keys.stampede_lock(name)
        self.rebuild = rebuild
        self.beta = beta
        self.lease_ms = lease_ms
        self.ttl_ms = ttl_ms
        self.rand = rand
        self.clock = clock
        self.max_wait_ms = max(10 * lease_ms, 5000)
        self.enveloped = name in ("xfetch", "xfetch+lock", "stale")

    # -- the lock -------------------------------------------------------------------
    def acquire(self, w: Wire, token: str) -> bool:
        return bool(w("SET", self.lock_key, token, "NX", "PX", self.lease_ms))

    def release(self, w: Wire, token: str) -> bool:
        return bool(w.script(RELEASE, [self.lock_key], [token]))

    def renew(self, w: Wire, token: str) -> bool:
        return bool(w.script(RENEW, [self.lock_key], [token, self.lease_ms]))

    @contextmanager
    def holding(self, w: Wire, token: str) -> Iterator[Lease]:
        """While the body runs, renew the lease every half lease; release at the end."""
        lease = Lease()
        stop = threading.Event()

        def keep() -> None:
            held = 0
            while not stop.wait(self.lease_ms / 2000):
                held += self.lease_ms // 2
                if held >= MAX_HOLD_MS:
                    return
                try:
                    renewed = self.renew(w, token)
                except Exception:  # Valkey gone: the lease runs out by itself
                    renewed = False
                if not renewed:
                    lease.lost = True
                    return
                lease.renewals += 1

        keeper = threading.Thread(target=keep, name="stampede-lease", daemon=True)
        keeper.start()
        try:
            yield lease
        finally:
            stop.set()
            keeper.join()
            self.release(w, token)

    # -- storing the value ----------------------------------------------------------
    def _current(self, w: Wire) -> Any:
        """The value if the key holds one (fresh or, for stale, not): for a recheck."""
        raw = w("GET", self.value_key)
        if self.enveloped:
            env = unpack(raw)
            return None if env is None else env.value
        return plain(raw)

    def store(self, w: Wire, built: Built, expiry_ms: int | None = None) -> None:
        """SET the value so that it expires (logically) at ``expiry_ms``, by default a
        full TTL from now. One SET with PX: the value and its expiry change together."""
        now = self.clock()
        expiry = now + self.ttl_ms if expiry_ms is None else expiry_ms
        left = max(1, expiry - now)
        if not self.enveloped:
            w("SET", self.value_key, built.value, "PX", left)
        elif self.name == "stale":  # soft expiry inside, hard TTL one more TTL later
            w(
                "SET",
                self.value_key,
                pack(built.value, built.delta_ms, expiry),
                "PX",
                left + self.ttl_ms,
            )
        else:
            w("SET", self.value_key, pack(built.value, built.delta_ms, expiry), "PX", left)

    def _rebuilt(self, w: Wire, outcome: str, **extra: Any) -> Read:
        built = self.rebuild.run()
        self.store(w, built)
        return Read(outcome, json.loads(built.value), sql=[self.rebuild.statement], **extra)

    # -- reads ----------------------------------------------------------------------
    def read(self, w: Wire) -> Read:
        """One client's read of the key, under this defence."""
        if not self.enveloped:
            value = plain(w("GET", self.value_key))
            if value is not None:
                return Read("hit", value)
            return self._rebuilt(w, "rebuilt") if self.name == "none" else self._fill(w)
        env = unpack(w("GET", self.value_key))
        if env is None:
            return self._rebuilt(w, "rebuilt") if self.name == "xfetch" else self._fill(w)
        now = self.clock()
        if self.name == "stale":
            if now < env.expiry_ms:
                return Read("hit", env.value)
            read = self._refresh(w, env, busy="stale", done="refreshed", early=False)
            read.note = f"{now - env.expiry_ms} ms past the soft expiry"
            return read
        r = self.rand()
        if not xfetch_early(now, env.delta_ms, self.beta, env.expiry_ms, r):
            return Read("hit", env.value)
        if self.name == "xfetch":
            read = self._rebuilt(w, "early", early=True)
        else:
            read = self._refresh(w, env, busy="early-busy", done="early", early=True)
        read.note = (
            f"{env.expiry_ms - now} ms before the expiry, r = {r:.4f}: -delta*beta*ln(r) ="
            f" {-env.delta_ms * self.beta * math.log(r):.0f} ms reaches it"
        )
        return read

    def _refresh(self, w: Wire, seen: Envelope, *, busy: str, done: str, early: bool) -> Read:
        """Refresh a value that is still there: one client under the lock, and every
        other client is served the value it already has."""
        token = secrets.token_hex(16)
        if not self.acquire(w, token):
            return Read(busy, seen.value, early=early)
        with self.holding(w, token) as lease:
            fresh = unpack(w("GET", self.value_key))
            if fresh is not None and fresh.expiry_ms != seen.expiry_ms:  # refreshed meanwhile
                return Read("rechecked", fresh.value, early=early)
            read = self._rebuilt(w, done, early=early)
        read.renewals = lease.renewals
        return read

    def _fill(self, w: Wire) -> Read:
        """A hard miss: one client rebuilds under the lock, the others poll for its value.

        A poller also tries the lock again, so when a holder dies its lease runs out
        and the next poller rebuilds.
        """
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.max_wait_ms / 1000
        pause_ms = FIRST_POLL_MS
        polls = 0
        while True:
            if self.acquire(w, token):
                with self.holding(w, token) as lease:
                    current = self._current(w)
                    if current is not None:  # a holder finished just before we got the lock
                        return Read("rechecked", current, polls=polls)
                    read = self._rebuilt(w, "rebuilt", polls=polls)
                read.renewals = lease.renewals
                return read
            polls += 1
            time.sleep(random.uniform(pause_ms / 2, pause_ms) / 1000)
            current = self._current(w)
            if current is not None:
                return Read("waited", current, polls=polls)
            if time.monotonic() > deadline:
                raise LockWaitTimeout(
                    f"gave up waiting for {self.value_key} after {self.max_wait_ms} ms: its"
                    " lock holder kept renewing its lease without storing a value"
                )
            pause_ms = min(pause_ms * 2, MAX_POLL_MS)


# -- the herd ----------------------------------------------------------------------
@dataclass
class Example:
    """The commands one client sent for one read, and the SQL it ran."""

    client: int
    expiry: int
    outcome: str
    valkey: list[list[Any]]
    sql: list[str]
    note: str = ""


@dataclass
class Tally:
    """Everything one defence's herd did, over every expiry."""

    defence: str
    clients: int
    queries: list[int] = field(default_factory=list)  # per expiry
    latencies: list[int] = field(default_factory=list)  # ns, every read
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    first_error: str = ""
    polls: int = 0
    renewals: int = 0
    early_decisions: int = 0
    elapsed_ns: int = 0
    examples: dict[str, Example] = field(default_factory=dict)  # first per outcome

    @property
    def reads(self) -> int:
        return len(self.latencies)

    @property
    def stale(self) -> int:
        return self.outcomes["stale"]

    @property
    def waited(self) -> int:
        return sum(self.outcomes[o] for o in WAITED)

    def stats(self) -> Stats | None:
        return Stats.of(self.defence, self.latencies) if self.latencies else None

    def count(
        self, read: Read | Exception, ns: int, sent: list[list[Any]], client: int, expiry: int
    ) -> None:
        """One read of client ``client`` in round ``expiry``: its outcome (or error), its
        latency, and its commands when it is the first read with that outcome."""
        self.latencies.append(ns)
        if isinstance(read, Exception):
            outcome, sql, note = "error", [], ""
            self.errors += 1
            self.first_error = self.first_error or describe(read)
        else:
            outcome, sql, note = read.outcome, read.sql, read.note
            self.polls += read.polls
            self.renewals += read.renewals
            self.early_decisions += read.early
        self.outcomes[outcome] += 1
        if outcome not in self.examples:
            self.examples[outcome] = Example(client, expiry, outcome, list(sent), sql, note)

    def absorb(self, other: Tally) -> None:
        """Add another client's reads to this tally."""
        self.latencies += other.latencies
        self.outcomes.update(other.outcomes)
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.polls += other.polls
        self.renewals += other.renewals
        self.early_decisions += other.early_decisions
        for outcome, example in other.examples.items():
            self.examples.setdefault(outcome, example)

    def traced(self) -> Example | None:
        """The one client to show: the first that rebuilt, else the first that did
        anything but hit, else the first read."""
        for pick in (REBUILDS, set(self.examples) - {"hit"}, set(self.examples)):
            found = [e for o, e in self.examples.items() if o in pick]
            if found:
                return min(found, key=lambda e: (e.expiry, e.client))
        return None

    def as_dict(self) -> dict[str, Any]:
        stats = self.stats()
        return {
            "defence": self.defence,
            "clients": self.clients,
            "queries_per_expiry": self.queries,
            "queries": sum(self.queries),
            "max_queries_per_expiry": max(self.queries, default=0),
            "reads": self.reads,
            "waited_for_rebuild": self.waited,
            "stale_reads": self.stale,
            "early_decisions": self.early_decisions,
            "p50_ns": stats.p50 if stats else None,
            "p99_ns": stats.p99 if stats else None,
            "max_ns": stats.max if stats else None,
            "errors": self.errors,
            "first_error": self.first_error,
            "polls": self.polls,
            "lease_renewals": self.renewals,
            "outcomes": dict(self.outcomes),
        }


def describe(exc: BaseException) -> str:
    """An exception as one line: its class and the first line of its message."""
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _client(
    defence: Defence,
    client: Any,
    gate: threading.Barrier,
    end: list[int],
    think_ms: float,
    stop: threading.Event,
    log: Tally,
    number: int,
    expiry: int,
) -> None:
    w = Wire(client)
    with contextlib.suppress(Exception):  # a Valkey that is down fails the round's SET
        w("GET", defence.value_key)  # opens this client's connection before the clock runs
    try:
        gate.wait()  # everyone connected; the key is set up next
        gate.wait()  # go
    except threading.BrokenBarrierError:
        return
    del w.sent[:]
    rng = random.Random()
    end_ms = end[0]  # set by the round between the two waits
    while not stop.is_set() and defence.clock() < end_ms:
        start = time.perf_counter_ns()
        read: Read | Exception
        try:
            read = defence.read(w)
        except Exception as exc:  # counted and reported per defence, not raised here
            read = exc
        log.count(read, time.perf_counter_ns() - start, w.sent, number, expiry)
        del w.sent[:]
        stop.wait(think_ms * rng.uniform(0.5, 1.5) / 1000)


def run_round(
    defence: Defence,
    client: Any,
    built: Built,
    tally: Tally,
    *,
    expiry: int,
    clients: int,
    lead_ms: int,
    after_ms: int,
    think_ms: float,
) -> None:
    """One expiry: the key is set to expire ``lead_ms`` from now, and ``clients``
    threads, released together, read it in a loop until ``after_ms`` after."""
    gate = threading.Barrier(clients + 1)
    stop = threading.Event()
    logs = [Tally(defence.name, 1) for _ in range(clients)]
    end = [0]
    threads = [
        threading.Thread(
            target=_client,
            args=(defence, client, gate, end, think_ms, stop, log, i, expiry),
            name=f"stampede-client-{i}",
            daemon=True,
        )
        for i, log in enumerate(logs)
    ]
    for t in threads:
        t.start()
    started = time.perf_counter_ns()
    try:
        gate.wait()
        expires = defence.clock() + lead_ms
        end[0] = expires + after_ms
        defence.store(Wire(client), built, expires)
        before = defence.rebuild.queries
        gate.wait()
        for t in threads:
            t.join()
    except BaseException:
        stop.set()
        gate.abort()
        for t in threads:
            t.join()
        raise
    tally.queries.append(defence.rebuild.queries - before)
    tally.elapsed_ns += time.perf_counter_ns() - started
    for log in logs:
        tally.absorb(log)


def lead_for(delta_ms: int, beta: float, clients: int, think_ms: float) -> int:
    """How long before the expiry each round starts.

    Long enough that, under XFetch, the herd is already reading steadily when the
    first early recompute becomes likely: with ``rate`` reads per ms, the first one
    comes about ``delta * beta * ln(rate * delta * beta)`` before the expiry, and
    two more ``delta * beta`` make a burst of early recomputes at the start
    unlikely. The other defences only see hits before the expiry.
    """
    scale = max(1.0, delta_ms * beta)
    rate = clients / max(think_ms, 1.0)
    return int(min(60_000, max(50, scale * (math.log(max(math.e, rate * scale)) + 2))))


def herd(
    defences: Sequence[Defence],
    client: Any,
    built: Built,
    *,
    clients: int,
    expiries: int,
    think_ms: float,
    lead_ms: int,
    after_ms: int,
) -> list[Tally]:
    """Every defence through ``expiries`` rounds, the defences taking turns within
    each round, so that a slow patch of the machine lands on all of them alike."""
    tallies = [Tally(d.name, clients) for d in defences]
    for n in range(1, expiries + 1):
        for d, tally in zip(defences, tallies, strict=True):
            run_round(
                d,
                client,
                built,
                tally,
                expiry=n,
                clients=clients,
                lead_ms=lead_ms,
                after_ms=after_ms,
                think_ms=think_ms,
            )
    return tallies


def burst(defence: Defence, client: Any, clients: int) -> list[tuple[Read | Exception, Wire]]:
    """``clients`` threads released together by a barrier, one read each: what each
    read returned (or raised), and the commands it sent."""
    gate = threading.Barrier(clients)
    wires = [Wire(client) for _ in range(clients)]
    results: list[Read | Exception] = [RuntimeError("did not run")] * clients

    def one(i: int) -> None:
        try:
            gate.wait()
            results[i] = defence.read(wires[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return list(zip(results, wires, strict=True))


# -- the demo ------------------------------------------------------------------------
WHY = {
    "none": "plain cache-aside: GET, and every client that misses runs the query and SETs"
    " the value",
    "lock": "on a miss, SET lock <token> NX PX <lease>; the winner reads again, rebuilds, SETs"
    " and releases with a compare-and-delete script; the others poll GET with backoff",
    "xfetch": "each read draws r and recomputes early when now - delta*beta*ln(r) >= expiry;"
    " nothing stops two readers drawing an early recompute at the same time",
    "xfetch+lock": "XFetch decides when, SET NX decides who: an early reader that finds the lock"
    " taken serves the value it has, which has not expired yet",
    "stale": "past the soft expiry the first reader takes the lock and refreshes; the others"
    " get the stale value (a longer hard TTL keeps it) until the refresh lands",
}


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 2)


def _human_ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.2f} ms"


def _summary(t: Tally) -> str:
    stats = t.stats()
    per = ", ".join(str(q) for q in t.queries)
    parts = [
        f"database queries per expiry: {per}",
        f"{t.reads:,} reads, {t.waited:,} waited for a rebuild",
        f"p50 {_human_ms(stats.p50 if stats else None)}, p99 "
        f"{_human_ms(stats.p99 if stats else None)}, max {_human_ms(stats.max if stats else None)}",
        f"{t.stale:,} stale reads",
    ]
    if t.early_decisions:
        parts.append(f"{t.early_decisions:,} early-recompute draws")
    if t.renewals:
        parts.append(f"{t.renewals} lease renewals")
    parts.append(f"{t.errors:,} errors" + (f" (first: {t.first_error})" if t.errors else ""))
    return "; ".join(parts)


def comparison(tallies: Sequence[Tally], clients: int, rebuild_ms: int) -> Table:
    rows: list[list[Any]] = []
    for t in tallies:
        stats = t.stats()
        rows.append(
            [
                t.defence,
                ", ".join(str(q) for q in t.queries),
                t.reads,
                t.waited,
                t.stale,
                _ms(stats.p50 if stats else None),
                _ms(stats.p99 if stats else None),
                _ms(stats.max if stats else None),
                t.errors,
            ]
        )
    return Table(
        f"{clients} clients, one key, a {rebuild_ms} ms rebuild: each defence side by side",
        [
            "defence",
            "queries",
            "reads",
            "waited",
            "stale",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
        ],
        rows,
        note="queries: database queries in each expiry's round; waited: reads that"
        " waited for a rebuild, their own or another client's; stale: reads served a value"
        " past its soft expiry; latency covers every read of every client in the rounds,"
        " and the defences take turns within each expiry",
    )


def demo(ctx: DemoContext) -> Iterator[Record]:
    """The expensive query; the herd under each defence; then the lock's faults."""
    from flightcache.db import connect

    clients = int(ctx.options.get("clients", 50))
    expiries = int(ctx.options.get("expiries", 3))
    rebuild_ms = int(ctx.options.get("rebuild_ms", 200))
    beta = float(ctx.options.get("beta", 1.0))
    think_ms = float(ctx.options.get("think_ms", 20))
    pool_size = min(int(ctx.options.get("db_pool", 10)), clients)
    check_herd(clients, rebuild_ms, beta, expiries)

    url = ctx.db.url
    pool = Pool(lambda: connect(url), pool_size)
    ctx.on_exit(pool.close)

    rebuild = Rebuild(pool, ctx.db.dialect, rebuild_ms)
    with ctx.step(
        "The expensive key",
        "the ten airlines with the largest fleets, made slow on purpose: the query sleeps"
        f" {rebuild_ms} ms in the database, a stand-in for an expensive report",
    ) as step:
        start = time.perf_counter_ns()
        result = ctx.db.fetch(rebuild.sql, rebuild.params)
        value = encode(result.columns, result.rows)
        delta = max(1, (time.perf_counter_ns() - start) // 1_000_000)
        step.rows, step.bytes = len(result.rows), len(value.encode())
        step.outcome = (
            f"{len(result.rows)} rows in {delta} ms: every client that rebuilds it holds a"
            f" database connection that long (the herd shares a pool of {pool_size})"
        )
        step.data["delta_ms"] = delta
    yield step
    built = Built(value, delta)
    lease = lease_for(delta)
    lead = lead_for(delta, beta, clients, think_ms)
    after = max(50, 2 * delta)

    defences = [
        Defence(
            name, ctx.keys, Rebuild(pool, ctx.db.dialect, rebuild_ms), beta=beta, lease_ms=lease
        )
        for name in DEFENCES
    ]
    with ctx.step(
        "How each defence keeps the key",
        "none and lock store the rows; xfetch and stale store one JSON string with the last"
        " rebuild time (delta) and the expiry, so one GET reads all three. Each round the demo"
        f" sets the expiry {lead} ms ahead instead of waiting {VALUE_TTL_MS // 60000} minutes",
    ) as step:
        pool.fill()
        for d in defences:
            d.store(Wire(ctx.valkey), built)
        step.outcome = (
            f"5 keys, one per defence; locks lease {lease} ms (3 rebuilds, renewed every half"
            f" lease while a rebuild runs); XFetch beta {beta:g}, delta {delta} ms"
        )
        step.data.update(lease_ms=lease, lead_ms=lead, after_ms=after, beta=beta)
    yield step

    with ctx.tracer.paused():
        tallies = herd(
            defences,
            ctx.valkey,
            built,
            clients=clients,
            expiries=expiries,
            think_ms=think_ms,
            lead_ms=lead,
            after_ms=after,
        )
    for t in tallies:
        example = t.traced()
        with ctx.step(f"{t.defence}: {clients} clients as the key expires", WHY[t.defence]) as step:
            if example is not None:
                step.commands = [list(c) for c in example.valkey]
                step.sql = list(example.sql)
            step.outcome = _summary(t) + (
                f". Shown: client {example.client}'s read at expiry {example.expiry}"
                f" ({example.outcome}" + (f": {example.note})" if example.note else ")")
                if example
                else ""
            )
            promised = t.defence in AT_MOST_ONE and max(t.queries, default=0) > 1
            step.ok = t.errors == 0 and not promised
            step.data = t.as_dict()
            step.data["examples"] = {
                o: {"client": e.client, "expiry": e.expiry, "valkey": len(e.valkey)}
                for o, e in t.examples.items()
            }
        step.elapsed_ns = t.elapsed_ns
        yield step
    yield comparison(tallies, clients, rebuild_ms)
    yield from faults(ctx, pool, lease)


def faults(ctx: DemoContext, pool: Pool, lease: int) -> Iterator[Record]:
    """A dead holder, a release by a stranger, a rebuild slower than its lease."""
    rebuild = Rebuild(pool, ctx.db.dialect, 0)
    lock = Defence("lock", ctx.keys, rebuild, lease_ms=lease)
    wire = Wire(ctx.valkey)
    with ctx.step(
        "A lock holder dies",
        "a client takes the lock and dies before it releases it (here: it simply never does);"
        " the key has expired, so the next client waits",
    ) as step:
        wire("DEL", lock.value_key)
        lock.acquire(wire, "dead-" + secrets.token_hex(8))
        start = time.perf_counter_ns()
        read = lock.read(wire)
        waited = (time.perf_counter_ns() - start) // 1_000_000
        step.sql = read.sql
        step.ok = read.outcome == "rebuilt" and rebuild.queries == 1
        step.outcome = (
            f"{read.outcome} after {waited} ms and {read.polls} polls: nobody renewed the dead"
            f" holder's {lease} ms lease, so it ran out and the waiter's SET NX won; 1 query"
        )
        step.data.update(waited_ms=waited, polls=read.polls, lease_ms=lease)
    yield step

    with ctx.step(
        "A release by a client that does not own the lock",
        "the release script deletes the lock only when it holds the caller's token, so a"
        " client whose lease ran out cannot free a lock another client holds now",
    ) as step:
        owner, stranger = "owner-" + secrets.token_hex(8), "late-" + secrets.token_hex(8)
        took = lock.acquire(wire, owner)
        by_stranger = lock.release(wire, stranger)
        still = wire("GET", lock.lock_key)
        by_owner = lock.release(wire, owner)
        step.ok = took and not by_stranger and still == owner and by_owner
        step.outcome = (
            f"stranger's release: {int(by_stranger)} (nothing deleted, the lock still holds the"
            f" owner's token); owner's release: {int(by_owner)}"
        )
    yield step

    slow_ms = 5 * lease // 2
    slow = Defence("lock", ctx.keys, Rebuild(pool, ctx.db.dialect, slow_ms), lease_ms=lease)
    herd_size = min(5, pool.size + 1)
    with (
        ctx.step(
            "A rebuild slower than its lease",
            f"the query now sleeps {slow_ms} ms, past the {lease} ms lease; the holder renews"
            f" it every {lease // 2} ms with a compare-and-PEXPIRE script, so no second client"
            " rebuilds",
        ) as step,
        ctx.tracer.paused(),
    ):
        Wire(ctx.valkey)("DEL", slow.value_key)
        reads = burst(slow, ctx.valkey, herd_size)
        done = [(r, w) for r, w in reads if isinstance(r, Read)]
        holder, holder_wire = next(
            ((r, w) for r, w in done if r.outcome == "rebuilt"), (None, None)
        )
        errors = [describe(r) for r, _ in reads if not isinstance(r, Read)]
        step.commands = holder_wire.sent if holder_wire else []
        step.sql = holder.sql if holder else []
        step.ok = slow.rebuild.queries == 1 and not errors
        step.outcome = (
            f"{herd_size} clients at once: {slow.rebuild.queries} database query,"
            f" {holder.renewals if holder else 0} lease renewals, the others waited"
            + (f"; errors: {errors[0]}" if errors else "")
        )
        step.data.update(
            queries=slow.rebuild.queries,
            renewals=holder.renewals if holder else 0,
            outcomes=dict(Counter(r.outcome for r, _ in done)),
        )
    yield step
