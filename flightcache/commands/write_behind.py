"""`flightcache write-behind`: the demo, the worker that drains the queue, and one booking."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt
from flightcache.commands._options import non_negative, positive
from flightcache.demos.write_behind import MAX_BURST, Options

if TYPE_CHECKING:
    from flightcache.app import App
    from flightcache.errors import FlightcacheError
    from flightcache.keys import Keys
    from flightcache.patterns.write_behind_worker import WorkerReport

DEMO = "write-behind"

app = typer.Typer(rich_markup_mode=None, no_args_is_help=False)


def _keys(application: App) -> Keys:
    from flightcache.keys import Keys

    return Keys(application.settings.key_prefix).scope(DEMO)


@app.callback(invoke_without_command=True)
def write_behind(
    ctx: typer.Context,
    flight: Annotated[
        int | None,
        typer.Option(
            "--flight", callback=positive, help="flight_id to book on. Default: the first."
        ),
    ] = Options.flight,
    seats: Annotated[
        int, typer.Option("--seats", help="Seats per booking in the first steps (1 to 1,000).")
    ] = Options.seats,
    burst: Annotated[
        int, typer.Option("--burst", min=1, max=MAX_BURST, help="Bookings in the burst.")
    ] = Options.burst,
    batch: Annotated[
        int, typer.Option("--batch", help="Entries per worker batch.")
    ] = Options.batch,
    crash_writes: Annotated[
        int,
        typer.Option(
            "--crash-writes", min=0, help="Bookings queued for the crash case (0 skips it)."
        ),
    ] = Options.crash_writes,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = Options.repeat,
    keep: KeepOpt = Options.keep,
) -> None:
    """Write-behind: write to Valkey now, to the database later, in batches.

    Books seats in Valkey (one Lua script: XADD to a stream and HINCRBY a
    counter), compares that write with write-through, shows the queue after a
    burst, drains it with the worker and the lag until the database caught up,
    shows two poison entries (ones no database can take) going to the
    dead-letter streams, then kills a worker with SIGKILL mid-batch, restarts
    it and checks that nothing was lost or applied twice. Subcommands: `worker`
    drains the queue, `book` queues one booking, `dead-letters` lists what the
    worker set aside.

    Examples:

    \b
      flightcache write-behind
      flightcache write-behind --burst 20000 --batch 1000
      flightcache write-behind worker --once
      flightcache write-behind book --flight 42 --seats 2
    """
    if ctx.invoked_subcommand is not None:
        return
    from flightcache.commands import _demo
    from flightcache.demos.write_behind import demo
    from flightcache.patterns.write_behind import check_flight_id, check_queue, check_seats
    from flightcache.patterns.write_behind_batch import check_batch

    check_seats(seats)
    check_batch(batch)
    if flight is not None:
        check_flight_id(flight)
    application: App = ctx.obj
    check_queue(_keys(application))
    child_env = {
        "FLIGHTCACHE_DB_URL": application.db_url().url(redact=False),
        "FLIGHTCACHE_VALKEY_URL": application.valkey_url().url(redact=False),
        "FLIGHTCACHE_KEY_PREFIX": application.settings.key_prefix,
    }
    _demo.run(
        ctx,
        DEMO,
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(
            flight=flight,
            seats=seats,
            burst=burst,
            batch=batch,
            crash_writes=crash_writes,
            repeat=repeat,
            keep=keep,
            child_env=child_env,
        ),
    )


@app.command("worker")
def worker(
    ctx: typer.Context,
    batch: Annotated[
        int, typer.Option("--batch", help="Entries per XREADGROUP and per transaction.")
    ] = 500,
    once: Annotated[
        bool, typer.Option("--once", help="Drain until the queue is empty, then exit.")
    ] = False,
    max_seconds: Annotated[
        float | None,
        typer.Option("--max-seconds", callback=positive, help="Stop after this many seconds."),
    ] = None,
    consumer: Annotated[
        str,
        typer.Option(
            "--consumer",
            help="Consumer name in the group; a restarted worker takes back its own pending"
            " entries, so keep it stable.",
        ),
    ] = "worker-1",
    claim_idle: Annotated[
        float,
        typer.Option(
            "--claim-idle",
            max=86_400,
            callback=non_negative,
            help="Take over other consumers' entries pending longer than this (seconds).",
        ),
    ] = 60.0,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            min=1,
            max=1_000_000,
            help="Give up after this many failed database attempts in a row."
            " Default: 6 with --once, no limit without.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the write-behind queue into the database, batch by batch.

    Each shard is read with XREADGROUP, a batch is applied in one transaction
    that records every entry id (a redelivered entry is skipped), then XACKed.
    At start the worker applies its own pending entries (a crashed run's),
    claims those of consumers idle too long and removes such consumers. While
    the database is down the batch stays pending, not acked, and the worker
    retries with backoff; with --once it gives up after --retries attempts, so
    it always ends. An entry the database refuses for good (a flight that does
    not exist, a value out of range) is a dead letter: moved with its error to
    the shard's dead-letter stream, acked, never retried
    (`flightcache write-behind dead-letters` lists them).

    Examples:

    \b
      flightcache write-behind worker                    # run until Ctrl-C
      flightcache write-behind worker --once             # drain what is queued, exit
      flightcache write-behind worker --batch 2000 --max-seconds 30
      flightcache write-behind worker --once --retries 2 # give up sooner when the DB is down
    """
    from flightcache.errors import ConnectionFailed
    from flightcache.patterns.write_behind import check_queue
    from flightcache.patterns.write_behind_batch import check_batch

    check_batch(batch)
    application: App = ctx.obj
    application.db_url()  # a bad URL is a configuration error now, not a retry later
    keys = _keys(application)
    check_queue(keys)
    report, left, dead = _drain(
        application,
        keys,
        consumer=consumer,
        batch=batch,
        claim_idle=claim_idle,
        retries=retries,
        once=once,
        max_seconds=max_seconds,
        show_status=not as_json,
    )
    _print_summary(report, left, dead, as_json=as_json)
    if report.stopped_pending:
        raise ConnectionFailed(
            f"the database stayed unavailable ({report.last_error});"
            f" {left:,} entries wait in the queue, none of them lost",
            hint="start the worker again once the database is back",
        )


def _drain(
    application: App,
    keys: Keys,
    *,
    consumer: str,
    batch: int,
    claim_idle: float,
    retries: int | None,
    once: bool,
    max_seconds: float | None,
    show_status: bool,
) -> tuple[WorkerReport, int, int]:
    """Run the worker; returns its report, the backlog left and the dead letters kept."""

    from flightcache.console import err
    from flightcache.demos.write_behind import PAUSE_ENV
    from flightcache.patterns.write_behind import backlog, queue_depth
    from flightcache.patterns.write_behind_dead_letters import dead_count
    from flightcache.patterns.write_behind_worker import Worker
    from flightcache.valkey_client import close, valkey_errors

    client: Any = application.valkey()
    said = _WorkerStatus(client, keys)
    drainer = Worker(
        client,
        keys,
        application.database,
        consumer=consumer,
        batch=batch,
        claim_idle_ms=int(claim_idle * 1000),
        pause_before_ack=float(os.environ.get(PAUSE_ENV) or 0),
        on_retry=said.on_retry,
        on_progress=said.on_progress,
        on_pause=said.on_pause,
        max_retries=retries,
    )
    try:
        with valkey_errors(application.valkey_url):
            if err.is_terminal and show_status:
                with err.status(f"draining {keys.prefix}{{wb*}}:queue") as said.status:
                    report = drainer.run(once=once, max_seconds=max_seconds)
            else:
                report = drainer.run(once=once, max_seconds=max_seconds)
            return report, backlog(queue_depth(client, keys)), dead_count(client, keys)
    finally:
        drainer.close()
        close(client)


class _WorkerStatus:
    """What the worker says while it runs: retries on stderr, progress in a status line."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.status: Any = None  # the rich status line, on a terminal
        self.shown = 0.0
        self.started = time.monotonic()

    def on_retry(self, exc: FlightcacheError, delay: float, attempt: int, pending: int) -> None:
        from flightcache.console import err, styled

        err.print(
            styled("[yellow]database unavailable:[/yellow] {}", exc.message)
            + f"; {pending} entries stay pending (not acked); retry {attempt} in {delay:.1f} s",
            soft_wrap=True,
        )

    def on_progress(self, report: WorkerReport) -> None:
        from flightcache.patterns.write_behind import backlog, queue_depth

        now = time.monotonic()
        if self.status is None or now - self.shown < 0.5:
            return
        self.shown = now
        left = backlog(queue_depth(self.client, self.keys))
        self.status.update(
            f"applied {report.applied:,}  skipped {report.skipped:,}  backlog {left:,}"
            f"  {report.applied / max(report.seconds or now - self.started, 1e-9):,.0f} entries/s"
        )

    def on_pause(self, entries: int) -> None:
        from flightcache.console import err
        from flightcache.demos.write_behind import PAUSE_ENV

        err.print(f"{PAUSE_ENV}: {entries} entries committed, waiting before XACK", style="dim")


def _print_summary(report: WorkerReport, left: int, dead: int, *, as_json: bool) -> None:
    """The worker's summary: one JSON document, or a table."""
    from flightcache.console import out, table
    from flightcache.measure.duration import human_ns

    if as_json:
        out.print_json(json.dumps({**report.as_dict(), "backlog": left, "dead_letters": dead}))
        return
    rows = [
        ["applied", f"{report.applied:,}"],
        ["skipped (applied before)", f"{report.skipped:,}"],
        ["recovered from own pending", f"{report.recovered:,}"],
        ["claimed from idle consumers", f"{report.claimed:,}"],
        ["batches", f"{report.batches:,}"],
        ["database retries", f"{report.retries:,}"],
        ["time", human_ns(report.seconds * 1e9)],
        ["entries/s", f"{report.rate:,.0f}"],
        ["backlog left", f"{left:,}"],
        ["dead-lettered (refused for good)", f"{report.dead_lettered:,}"],
        ["dead letters kept, all shards", f"{dead:,}"],
        ["idle consumers removed", f"{report.swept:,}"],
    ]
    out.print(table(f"worker {report.consumer}", ["", "this run"], rows))


@app.command("book")
def book(
    ctx: typer.Context,
    flight: Annotated[
        int, typer.Option("--flight", callback=positive, help="flight_id to book on.")
    ],
    seats: Annotated[int, typer.Option("--seats", help="Seats to book (1 to 1,000).")] = 1,
    times: Annotated[
        int,
        typer.Option("--times", min=1, max=1_000_000, help="Queue the booking this many times."),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Queue one booking: Valkey now, the database when the worker runs.

    Checks that the flight exists, then runs the same Lua script as the demo
    (XADD to the shard's stream and HINCRBY the flight's counter). Run
    `flightcache write-behind worker` to move it into the database.

    Examples:

    \b
      flightcache write-behind book --flight 42 --seats 2
      flightcache write-behind book --flight 42 --times 500   # pipelined
      flightcache write-behind book --flight 42 --json
    """

    from flightcache.console import out
    from flightcache.data.load import require_dataset
    from flightcache.patterns.write_behind import (
        WriteBehind,
        backlog,
        check_flight_id,
        check_queue,
        check_seats,
        queue_depth,
    )
    from flightcache.valkey_client import close, valkey_errors

    check_flight_id(flight)
    check_seats(seats)
    application: App = ctx.obj
    keys = _keys(application)
    check_queue(keys)
    db = application.database()
    client: Any = None
    try:
        with valkey_errors(application.valkey_url):
            require_dataset(db)
            client = application.valkey()
            pattern = WriteBehind(client, db, keys)
            pattern.require_flights([flight])
            pattern.ensure_groups()
            if times > 1:
                pattern.book_many([(flight, seats)] * (times - 1))
            booking = pattern.book(flight, seats)
            left = backlog(queue_depth(client, keys))
    finally:
        if client is not None:
            close(client)
        db.close()
    if as_json:
        out.print_json(json.dumps({**booking.__dict__, "backlog": left}))
        return
    out.print(
        f"booked {seats} seats on flight {flight}"
        + (f" {times:,} times" if times > 1 else "")
        + f": last entry {booking.entry_id} in {booking.queue};"
        f" Valkey now says {booking.booked} seats. {left:,} entries wait for"
        " `flightcache write-behind worker`.",
        soft_wrap=True,
    )


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    count: Annotated[
        int,
        typer.Option("--count", min=1, max=10_000, help="The newest this many of each shard."),
    ] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List the dead letters: queued entries the database refused for good.

    The worker moves an entry it can never apply (a flight that does not exist,
    a value out of range for its column, a malformed entry) to its shard's
    dead-letter stream with the error, and acks it, so the queue keeps moving.
    Nothing here is retried; fix the cause and book again.

    Examples:

    \b
      flightcache write-behind dead-letters
      flightcache write-behind dead-letters --count 100 --json
    """

    from flightcache.console import out, table
    from flightcache.patterns.write_behind import check_queue
    from flightcache.patterns.write_behind_dead_letters import dead_count
    from flightcache.patterns.write_behind_dead_letters import dead_letters as newest
    from flightcache.valkey_client import close, valkey_errors

    application: App = ctx.obj
    keys = _keys(application)
    check_queue(keys)
    client: Any = application.valkey()
    try:
        with valkey_errors(application.valkey_url):
            letters = newest(client, keys, count)
            total = dead_count(client, keys)
    finally:
        close(client)
    if as_json:
        out.print_json(json.dumps({"total": total, "dead_letters": [d.__dict__ for d in letters]}))
        return
    from rich.markup import escape

    rows = [  # the fields and the error are anyone's text: never markup
        [f"{{wb{d.shard}}}"]
        + [escape(x) for x in (d.entry, d.fields.get("flight", ""), d.fields.get("seats", ""))]
        + [escape(d.error)]
        for d in letters
    ]
    out.print(
        table(
            escape(f"{total:,} dead letters under {keys.prefix}{{wb*}}:dead"),
            ["shard", "entry", "flight", "seats", "error"],
            rows,
        )
    )
