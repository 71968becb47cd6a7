"""The narrated demo of `flightcache write-behind`: book, drain, poison, crash.

Steps: prepare the queue, book once and read it back, time write-through against
write-behind, a burst of bookings and the queue's depth, the worker's first batch and
the drain with the lag until the database caught up, two poison entries going to the
dead letters, then a child worker killed with SIGKILL between commit and XACK and its
restart, with the check that nothing was lost or applied twice.

The pattern modules import valkey; they are imported inside the steps, so that the
command, which reads :class:`Options` when its module loads, keeps ``--help`` fast.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.children import child_env, python_command
from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import FlightcacheError
from flightcache.measure.duration import human_seconds

if TYPE_CHECKING:
    from flightcache.keys import Keys
    from flightcache.patterns.write_behind import ShardDepth, Sql, WriteBehind

MAX_BURST = 1_000_000
"""Bookings one burst may hold."""
PAUSE_ENV = "FLIGHTCACHE_WB_PAUSE_BEFORE_ACK"
"""Test hook: seconds the worker sleeps between its database commit and XACK."""
POISON_SEATS = 10**20
"""More seats than a BIGINT column holds: the database refuses the entry for good."""


@dataclass(frozen=True)
class Options:
    """What `flightcache write-behind` takes; the command's defaults are these."""

    flight: int | None = None  # None: the first flight
    seats: int = 2
    burst: int = 5_000
    batch: int = 500
    crash_writes: int = 2_000  # 0 skips the crash
    repeat: int = 200  # timing samples (the context's repeat)
    keep: bool = False  # keep the keys, and the demo's rows in flightcache's tables
    child_env: Mapping[str, str] = field(default_factory=dict)  # the servers, for the worker


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.patterns.write_behind import check_seats
    from flightcache.patterns.write_behind_batch import check_batch

    options: Options = ctx.options
    check_seats(options.seats)
    check_batch(options.batch)
    clock = _Clock()
    pattern, flight = yield from _prepare(ctx, options)
    yield from _book_once(ctx, pattern, flight, options.seats)
    flights = sorted(pattern.known_flights)[:500]
    last_accepted = yield from _burst(ctx, pattern, flights, options.burst, clock)
    yield from _drain(ctx, pattern, options.batch, clock, last_accepted)
    yield from _poison(ctx, pattern, flight, options.batch)
    if options.crash_writes <= 0:
        return
    command = yield from _crash(ctx, pattern, flights, options)
    yield from _restart(ctx, pattern, command, options)


def _prepare(
    ctx: DemoContext, options: Options
) -> Generator[Record, None, tuple[WriteBehind, int]]:
    """The streams, their group, the script and flightcache's tables; returns the pattern
    and the flight to book on."""
    from flightcache.patterns.write_behind import (
        GROUP,
        SHARDS,
        WriteBehind,
        ensure_tables,
        forget,
    )

    pattern = WriteBehind(ctx.valkey, ctx.db, ctx.keys)
    with ctx.step(
        "Prepare the queue and flightcache's tables",
        f"{SHARDS} streams, one per hash tag {{wb0}}..{{wb{SHARDS - 1}}}, each with the consumer"
        f" group {GROUP}; flight ids cached so that a write needs no database",
    ) as step:
        known = pattern.preload_flights()
        flight = options.flight or min(pattern.known_flights, default=0)
        pattern.require_flights([flight])  # an unknown flight stops here, before any write
        ensure_tables(ctx.db)
        forget(ctx.db, pattern.queue)
        pattern.ensure_groups()
        pattern.load_script()
        step.outcome = f"{known:,} flight ids cached; tables flightcache_wb_seats, _applied ready"
    yield step
    if not options.keep:  # flightcache's own tables: the rows of this demo's queues
        for name in (pattern.queue, pattern.queue + "direct"):
            ctx.put_back("write_behind_forget_applied", {"queue": name})
            ctx.put_back("write_behind_forget_seats", {"queue": name})
    return pattern, flight


def _book_once(ctx: DemoContext, pattern: WriteBehind, flight: int, seats: int) -> Iterator[Record]:
    """One booking, read back at once, and the write timed against write-through."""
    from flightcache.patterns.write_behind import db_total

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
        in_db = db_total(ctx.db, pattern.queue, flight)
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


def _burst(
    ctx: DemoContext, pattern: WriteBehind, flights: Sequence[int], burst: int, clock: _Clock
) -> Generator[Record, None, float]:
    """Many bookings, pipelined, and the queue's depth after them; returns the clock's
    time of the last accepted write."""
    from flightcache.patterns.write_behind import PIPELINE_CHUNK

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
            f"{burst:,} accepted in {human_seconds(took)} ({burst / took:,.0f} writes/s);"
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
    return last_accepted


def _drain(
    ctx: DemoContext, pattern: WriteBehind, batch: int, clock: _Clock, last_accepted: float
) -> Iterator[Record]:
    """The worker's first batch, then the rest, and the lag until the database caught up."""
    from flightcache.patterns.write_behind import db_total
    from flightcache.patterns.write_behind_worker import Worker, WorkerReport

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
            total = db_total(ctx.db, pattern.queue)
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


def _poison(ctx: DemoContext, pattern: WriteBehind, flight: int, batch: int) -> Iterator[Record]:
    """Two entries no database can take go to the dead letters."""
    from flightcache.patterns.write_behind import backlog, db_total
    from flightcache.patterns.write_behind_dead_letters import dead_letters
    from flightcache.patterns.write_behind_worker import Worker

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
    where = ctx.keys.write_behind_dead_letters(0).replace("{wb0}", "{wbN}")
    yield Table(
        "Dead letters",
        ["stream", "entry", "flight", "seats", "error"],
        rows,
        f"XRANGE {where}; the worker's summary"
        " counts them (`flightcache write-behind worker`, `write-behind dead-letters`)",
    )


def _crash(
    ctx: DemoContext, pattern: WriteBehind, flights: Sequence[int], options: Options
) -> Generator[Record, None, list[str]]:
    """More bookings, and a child worker killed with SIGKILL between commit and XACK;
    returns the worker's command line, for the restart."""
    from flightcache.patterns.write_behind import db_total

    crash_writes, queue = options.crash_writes, pattern.queue
    with ctx.step(
        f"Crash: {crash_writes:,} more bookings, a worker killed with SIGKILL mid-batch",
        "a child worker commits its first batch, then (test hook) waits before XACK: we kill it",
    ) as step:
        with ctx.tracer.paused():
            pattern.book_many(_spread(flights, crash_writes, seed=11))
        command = worker_command(min(options.batch, 200), "demo-crash")
        env = {**os.environ, **options.child_env}
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
    return command


def _restart(
    ctx: DemoContext, pattern: WriteBehind, command: list[str], options: Options
) -> Iterator[Record]:
    """The killed worker restarted: it applies its pending entries, skipping those it had
    committed; then the final account."""
    from flightcache.patterns.write_behind import applied_count, db_total

    queue = pattern.queue
    with ctx.step(
        "Restart the worker", "it reads its own pending entries first (XREADGROUP ... 0)"
    ) as step:
        env = {**os.environ, **options.child_env}
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


# -- what the steps share ------------------------------------------------------------
def _spread(flights: Sequence[int], count: int, seed: int = 7) -> list[tuple[int, int]]:
    """``count`` bookings over ``flights``, 1-4 seats each, deterministic."""
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


def kill_after_commit(
    command: Sequence[str], env: dict[str, str], db: Sql, queue: str, timeout: float = 60
) -> tuple[int, int, int]:
    """Start a worker process that pauses between commit and XACK (the test hook),
    wait until its first batch is committed, SIGKILL it.

    Returns (pid, exit status, entries it committed and never acked).
    """
    from flightcache.patterns.write_behind import applied_count

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


def inject_poison(client: Any, keys: Keys, flight_id: int, seats: int | str) -> str:
    """XADD a booking straight into its shard's stream, past the script and its checks,
    as a buggy or hostile writer could; returns the entry id."""
    from flightcache.patterns.write_behind import shard_of

    stream = keys.write_behind_queue(shard_of(flight_id))
    entry_id = client.xadd(stream, {"flight": flight_id, "seats": seats})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
