"""The stampede demo: a herd of clients on one expensive key, defence by defence.

The herd is a load generator of its own: ``clients`` threads, each with the
commands it sent written down (:class:`Wire`), released together by a barrier and
reading one key in a loop while it expires, under each defence of
:mod:`flightcache.patterns.stampede` in turn; the rebuilds share a small
:class:`Pool` of database connections. Then the lock's faults: a dead holder, a
release by a stranger, a rebuild slower than its lease.

Importing this module is cheap (the command reads :class:`Options` and the limits
for ``--help``); the pattern, the database and the records load when the demo runs.
"""

from __future__ import annotations

import contextlib
import math
import queue
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.errors import FlightcacheError, UsageError
from flightcache.measure.duration import human_ns

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.demos.base import DemoContext, Record, Step, Table
    from flightcache.measure.timing import Stats
    from flightcache.patterns.stampede import Built, Defence, DefendedRead, Rebuild

MAX_CLIENTS = 500
"""Each client is a thread with a Valkey connection of its own. Past a few hundred
threads in one Python process the herd measures the interpreter lock and the
scheduler of this machine, not Valkey or the database."""
MAX_DB_POOL = 100
"""PostgreSQL allows 100 connections by default; the pool must leave room for others."""
MAX_REBUILD_MS = 5000
MAX_BETA = 10.0
"""Beyond about 10 XFetch recomputes almost as soon as a value is written."""
MAX_EXPIRIES = 100
MAX_THINK_MS = 1000


@dataclass(frozen=True)
class Options:
    """What ``flightcache stampede`` takes; every default is written here once."""

    clients: int = 50
    rebuild_ms: int = 200
    expiries: int = 3
    beta: float = 1.0
    think_ms: int = 20
    db_pool: int = 10

    def check(self) -> None:
        """One clear line for a value a herd cannot run with."""
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise UsageError(
                f"--clients must be between 1 and {MAX_CLIENTS}, not {self.clients}",
                hint="each client is a thread with its own connection; past a few hundred the"
                " run measures Python's thread scheduling, not the cache",
            )
        if not 0 <= self.rebuild_ms <= MAX_REBUILD_MS:
            raise UsageError(
                f"--rebuild-ms must be between 0 and {MAX_REBUILD_MS}, not {self.rebuild_ms}"
            )
        if not (self.beta > 0 and self.beta <= MAX_BETA):  # also refuses NaN
            raise UsageError(
                f"--beta must be greater than 0 and at most {MAX_BETA:g}, not {self.beta:g}",
                hint="1.0 is the paper's default; above 1 recomputes earlier",
            )
        if not 1 <= self.expiries <= MAX_EXPIRIES:
            raise UsageError(
                f"--expiries must be between 1 and {MAX_EXPIRIES}, not {self.expiries}"
            )
        if not 1 <= self.think_ms <= MAX_THINK_MS:
            raise UsageError(
                f"--think-ms must be between 1 and {MAX_THINK_MS}, not {self.think_ms}"
            )
        if not 1 <= self.db_pool <= MAX_DB_POOL:
            raise UsageError(f"--db-pool must be between 1 and {MAX_DB_POOL}, not {self.db_pool}")


REBUILDS = frozenset({"rebuilt", "early", "refreshed"})
"""Outcomes of a read that ran the query itself."""
WAITED = REBUILDS | {"waited", "rechecked"}
"""Outcomes of a read that waited for a rebuild, its own or another client's."""


# -- the herd's equipment ----------------------------------------------------------------
class Wire:
    """One client's Valkey commands, sent on the shared client and written down."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sent: list[list[Any]] = []

    def execute_command(self, *args: Any) -> Any:
        self.sent.append(list(args))
        return self.client.execute_command(*args)


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


def describe(exc: BaseException) -> str:
    """An exception as one line: its class and the first line of its message."""
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def explain(read: DefendedRead, beta: float) -> str:
    """Why a read acted, where its commands do not say: XFetch's draw, the soft expiry."""
    if read.draw is not None and read.delta_ms is not None and read.expiry_in_ms is not None:
        return (
            f"{read.expiry_in_ms} ms before the expiry, r = {read.draw:.4f}: -delta*beta*ln(r) ="
            f" {-read.delta_ms * beta * math.log(read.draw):.0f} ms reaches it"
        )
    if read.expiry_in_ms is not None:
        return f"{-read.expiry_in_ms} ms past the soft expiry"
    return ""


# -- what a herd did ---------------------------------------------------------------------
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
class HerdTally:
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
        from flightcache.measure.timing import Stats

        return Stats.of(self.defence, self.latencies) if self.latencies else None

    def count(
        self,
        read: DefendedRead | Exception,
        ns: int,
        sent: list[list[Any]],
        client: int,
        expiry: int,
        note: str = "",
    ) -> None:
        """One read of client ``client`` in round ``expiry``: its outcome (or error), its
        latency, and its commands when it is the first read with that outcome."""
        self.latencies.append(ns)
        if isinstance(read, Exception):
            outcome, sql = "error", []
            self.errors += 1
            self.first_error = self.first_error or describe(read)
        else:
            outcome, sql = read.outcome, read.sql
            self.polls += read.polls
            self.renewals += read.renewals
            self.early_decisions += read.early
        self.outcomes[outcome] += 1
        if outcome not in self.examples:
            self.examples[outcome] = Example(client, expiry, outcome, list(sent), sql, note)

    def absorb(self, other: HerdTally) -> None:
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


# -- the herd ----------------------------------------------------------------------------
def _client(
    defence: Defence,
    client: Any,
    gate: threading.Barrier,
    end: list[int],
    think_ms: float,
    stop: threading.Event,
    log: HerdTally,
    number: int,
    expiry: int,
) -> None:
    wire = Wire(client)
    with contextlib.suppress(Exception):  # a Valkey that is down fails the round's SET
        wire.execute_command("GET", defence.value_key)  # opens this client's connection now
    try:
        gate.wait()  # everyone connected; the key is set up next
        gate.wait()  # go
    except threading.BrokenBarrierError:
        return
    del wire.sent[:]
    rng = random.Random()
    end_ms = end[0]  # set by the round between the two waits
    while not stop.is_set() and defence.clock() < end_ms:
        start = time.perf_counter_ns()
        read: DefendedRead | Exception
        try:
            read = defence.read(wire)
        except Exception as exc:  # counted and reported per defence, not raised here
            read = exc
        note = "" if isinstance(read, Exception) else explain(read, defence.beta)
        log.count(read, time.perf_counter_ns() - start, wire.sent, number, expiry, note)
        del wire.sent[:]
        stop.wait(think_ms * rng.uniform(0.5, 1.5) / 1000)


def run_round(
    defence: Defence,
    client: Any,
    built: Built,
    tally: HerdTally,
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
    logs = [HerdTally(defence.name, 1) for _ in range(clients)]
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
) -> list[HerdTally]:
    """Every defence through ``expiries`` rounds, the defences taking turns within
    each round, so that a slow patch of the machine lands on all of them alike."""
    tallies = [HerdTally(d.name, clients) for d in defences]
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


def burst(
    defence: Defence, client: Any, clients: int
) -> list[tuple[DefendedRead | Exception, Wire]]:
    """``clients`` threads released together by a barrier, one read each: what each
    read returned (or raised), and the commands it sent."""
    gate = threading.Barrier(clients)
    wires = [Wire(client) for _ in range(clients)]
    results: list[DefendedRead | Exception] = [RuntimeError("did not run")] * clients

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


# -- the demo ----------------------------------------------------------------------------
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


def _summary(t: HerdTally) -> str:
    stats = t.stats()
    per = ", ".join(str(q) for q in t.queries)
    parts = [
        f"database queries per expiry: {per}",
        f"{t.reads:,} reads, {t.waited:,} waited for a rebuild",
        f"p50 {human_ns(stats.p50 if stats else None)}, p99 "
        f"{human_ns(stats.p99 if stats else None)}, max {human_ns(stats.max if stats else None)}",
        f"{t.stale:,} stale reads",
    ]
    if t.early_decisions:
        parts.append(f"{t.early_decisions:,} early-recompute draws")
    if t.renewals:
        parts.append(f"{t.renewals} lease renewals")
    parts.append(f"{t.errors:,} errors" + (f" (first: {t.first_error})" if t.errors else ""))
    return "; ".join(parts)


def comparison(tallies: Sequence[HerdTally], clients: int, rebuild_ms: int) -> Table:
    from flightcache.demos.base import Table

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
    from flightcache.patterns.lock import lease_for
    from flightcache.patterns.stampede import DEFENCES, Defence, Rebuild

    options: Options = ctx.options
    options.check()
    pool_size = min(options.db_pool, options.clients)
    url = ctx.db.url
    pool = Pool(lambda: connect(url), pool_size)
    ctx.on_exit(pool.close)

    rebuild = Rebuild(pool, ctx.db.dialect, options.rebuild_ms)
    built = yield from _expensive_key(ctx, rebuild, pool_size)
    lease = lease_for(built.delta_ms)
    defences = [
        Defence(
            name,
            ctx.keys,
            Rebuild(pool, ctx.db.dialect, options.rebuild_ms),
            beta=options.beta,
            lease_ms=lease,
        )
        for name in DEFENCES
    ]
    lead = lead_for(built.delta_ms, options.beta, options.clients, options.think_ms)
    after = max(50, 2 * built.delta_ms)
    yield from _keeping(ctx, pool, defences, built, lease=lease, lead=lead, after=after)
    with ctx.tracer.paused():
        tallies = herd(
            defences,
            ctx.valkey,
            built,
            clients=options.clients,
            expiries=options.expiries,
            think_ms=options.think_ms,
            lead_ms=lead,
            after_ms=after,
        )
    for tally in tallies:
        yield _herd_step(ctx, tally, options.clients)
    yield comparison(tallies, options.clients, options.rebuild_ms)
    yield from faults(ctx, pool, lease)


def _expensive_key(
    ctx: DemoContext, rebuild: Rebuild, pool_size: int
) -> Generator[Record, None, Built]:
    """Run the expensive query once, timed: its rows and its delta."""
    from flightcache.patterns.cache_aside import encode
    from flightcache.patterns.stampede import Built

    with ctx.step(
        "The expensive key",
        "the ten airlines with the largest fleets, made slow on purpose: the query sleeps"
        f" {ctx.options.rebuild_ms} ms in the database, a stand-in for an expensive report",
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
    return Built(value, delta)


def _keeping(
    ctx: DemoContext,
    pool: Pool,
    defences: Sequence[Defence],
    built: Built,
    *,
    lease: int,
    lead: int,
    after: int,
) -> Iterator[Record]:
    """Store the value under every defence, each in its own shape."""
    from flightcache.patterns.stampede import VALUE_TTL_MS

    beta = ctx.options.beta
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
            f" lease while a rebuild runs); XFetch beta {beta:g}, delta {built.delta_ms} ms"
        )
        step.data.update(lease_ms=lease, lead_ms=lead, after_ms=after, beta=beta)
    yield step


def _herd_step(ctx: DemoContext, t: HerdTally, clients: int) -> Step:
    """One defence's herd: its figures, and the commands of the one client shown."""
    from flightcache.patterns.stampede import AT_MOST_ONE

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
    return step


# -- the lock's faults -------------------------------------------------------------------
def faults(ctx: DemoContext, pool: Pool, lease: int) -> Iterator[Record]:
    """A dead holder, a release by a stranger, a rebuild slower than its lease."""
    from flightcache.patterns.stampede import Defence, Rebuild

    lock = Defence("lock", ctx.keys, Rebuild(pool, ctx.db.dialect, 0), lease_ms=lease)
    yield _dead_holder(ctx, lock, lease)
    yield _stranger_release(ctx, lock)
    yield _slow_rebuild(ctx, pool, lease)


def _dead_holder(ctx: DemoContext, lock: Defence, lease: int) -> Step:
    wire = Wire(ctx.valkey)
    with ctx.step(
        "A lock holder dies",
        "a client takes the lock and dies before it releases it (here: it simply never does);"
        " the key has expired, so the next client waits",
    ) as step:
        wire.execute_command("DEL", lock.value_key)
        lock.lock.acquire(wire, "dead-" + secrets.token_hex(8))
        start = time.perf_counter_ns()
        read = lock.read(wire)
        waited = (time.perf_counter_ns() - start) // 1_000_000
        step.sql = read.sql
        step.ok = read.outcome == "rebuilt" and lock.rebuild.queries == 1
        step.outcome = (
            f"{read.outcome} after {waited} ms and {read.polls} polls: nobody renewed the dead"
            f" holder's {lease} ms lease, so it ran out and the waiter's SET NX won; 1 query"
        )
        step.data.update(waited_ms=waited, polls=read.polls, lease_ms=lease)
    return step


def _stranger_release(ctx: DemoContext, lock: Defence) -> Step:
    wire = Wire(ctx.valkey)
    with ctx.step(
        "A release by a client that does not own the lock",
        "the release script deletes the lock only when it holds the caller's token, so a"
        " client whose lease ran out cannot free a lock another client holds now",
    ) as step:
        owner, stranger = "owner-" + secrets.token_hex(8), "late-" + secrets.token_hex(8)
        took = lock.lock.acquire(wire, owner)
        by_stranger = lock.lock.release(wire, stranger)
        still = wire.execute_command("GET", lock.lock_key)
        by_owner = lock.lock.release(wire, owner)
        step.ok = took and not by_stranger and still == owner and by_owner
        step.outcome = (
            f"stranger's release: {int(by_stranger)} (nothing deleted, the lock still holds the"
            f" owner's token); owner's release: {int(by_owner)}"
        )
    return step


def _slow_rebuild(ctx: DemoContext, pool: Pool, lease: int) -> Step:
    from flightcache.patterns.stampede import Defence, Rebuild

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
        Wire(ctx.valkey).execute_command("DEL", slow.value_key)
        reads = burst(slow, ctx.valkey, herd_size)
        done = [(r, w) for r, w in reads if not isinstance(r, Exception)]
        holder, holder_wire = next(
            ((r, w) for r, w in done if r.outcome == "rebuilt"), (None, None)
        )
        errors = [describe(r) for r, _ in reads if isinstance(r, Exception)]
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
    return step
