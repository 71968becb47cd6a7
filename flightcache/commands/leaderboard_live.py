"""`flightcache leaderboard live`, `simulate` and `bench`: a board that moves, and its speed."""

from __future__ import annotations

import datetime as dt
import functools
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.commands._demo import JsonOpt, RowsYesOpt, require_ours
from flightcache.commands._options import positive
from flightcache.errors import UsageError, killed_by

if TYPE_CHECKING:
    from flightcache.app import App
    from flightcache.bench.leaderboard import Figure, SimulationReport, Simulator
    from flightcache.demos.leaderboard import LiveSnapshot


def register(app: typer.Typer) -> None:
    """Add `live`, `simulate` and `bench` to a Typer app (the `leaderboard` group)."""
    app.command("simulate")(_valkey_errors(simulate))
    app.command("live")(_valkey_errors(live))
    app.command("bench")(_valkey_errors(bench))


def _valkey_errors(command: Callable[..., None]) -> Callable[..., None]:
    """The command, with a Valkey failure mid-run turned into one clear line."""

    @functools.wraps(command)
    def run(ctx: typer.Context, *args: Any, **kwargs: Any) -> None:
        from flightcache.valkey_client import valkey_errors

        with valkey_errors(ctx.obj.valkey_url):
            command(ctx, *args, **kwargs)

    return run


def simulate(
    ctx: typer.Context,
    rate: Annotated[
        float, typer.Option("--rate", callback=positive, help="Bookings per second, about.")
    ] = 200.0,
    batch: Annotated[
        int, typer.Option("--batch", callback=positive, help="Bookings per batch (one commit).")
    ] = 20,
    seconds: Annotated[
        float, typer.Option("--seconds", callback=positive, help="How long to run.")
    ] = 30.0,
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="Book only flights departing that day, YYYY-MM-DD (its daily board"
            " moves). Default: any day.",
        ),
    ] = None,
    cleanup: Annotated[
        bool,
        typer.Option(
            "--cleanup",
            help="At the end, delete the bookings this run inserted (by id) and take"
            " their increments back off the boards.",
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    yes: RowsYesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Produce bookings: INSERT into the database, then ZINCRBY and PUBLISH.

    Every booking is a real row in the booking table (a random passenger on a
    random flight, drawn Zipf-skewed toward busy departure airports, seat NULL,
    a price). After each batch commits, one pipeline adds the batch to the
    `airport-bookings` boards that exist, the daily board of each flight's departure
    day (EXPIRE 7 days) and all-time, as the write-through path does (a missing board
    is rebuilt from the database by the next read), and PUBLISHes one event per
    changed airport and board for `flightcache leaderboard live`.
    Valkey failures after the commit are counted, not fatal. The bookings stay
    in the database unless --cleanup deletes them at the end (also after Ctrl-C,
    SIGTERM or SIGHUP, which finish the batch under way). A database flightcache
    did not load is refused unless --yes.

    Examples:

    \b
      flightcache leaderboard simulate --rate 200 --batch 20 --seconds 30
      flightcache leaderboard simulate --rate 2000 --batch 100 --seconds 10 --cleanup
      flightcache leaderboard simulate --date 2025-06-02 --seconds 5 --json
    """
    from flightcache.bench.leaderboard import MAX_BATCH, MAX_RATE, MAX_SECONDS
    from flightcache.console import err

    check_positive("--rate", rate, MAX_RATE, "200")
    check_positive("--batch", batch, MAX_BATCH, "20")
    check_positive("--seconds", seconds, MAX_SECONDS, "30")
    from flightcache.patterns.leaderboard_periods import daily

    day = parse_day(date)
    with _simulator(ctx, day, seed=seed, cleanup=cleanup, yes=yes) as sim:
        if not as_json:
            err.print(
                f"booking at ~{rate:g}/s in batches of {batch} for {seconds:g} s into"
                f" {sim.board.key(daily(sim.day)) if sim.day else 'each departure day'}"
                f" and {sim.board.key()} (the boards that exist)",
                style="dim",
                soft_wrap=True,
            )
        try:
            with _stopped_by_signals() as (stop, came):
                sim.run(rate, batch, seconds, _progress, stop=stop)
        finally:  # the signals' own handlers are back: a second Ctrl-C stops the cleanup
            if cleanup:
                sim.cleanup()
        _simulate_summary(sim, rate, cleanup=cleanup, interrupted=stop.is_set(), as_json=as_json)
    if stop.is_set():
        raise typer.Exit(killed_by(came[0]))


@contextmanager
def _simulator(
    ctx: typer.Context, day: dt.date | None, *, seed: int | None, cleanup: bool, yes: bool
) -> Iterator[Simulator]:
    """A simulator on the configured servers; with ``cleanup``, every batch's ids are
    written down before it commits: a run killed before the end (SIGKILL too) has its
    bookings deleted by the next command."""
    from flightcache.bench.leaderboard import Simulator
    from flightcache.console import err
    from flightcache.data.load import require_dataset
    from flightcache.patterns.leaderboard import board_keys
    from flightcache.undo import Undo, repair_rows
    from flightcache.valkey_client import close

    application: App = ctx.obj
    db = application.database()
    client: Any = None
    try:
        found = require_dataset(db)
        require_ours(found, db, "leaderboard simulate", yes)
        dataset = found.loaded_at or ""
        state_dir = application.settings.state_dir
        for line in repair_rows(state_dir, db, dataset):
            err.print(line, style="yellow", soft_wrap=True)
        client = application.valkey()
        undo = Undo(state_dir, db.url, dataset) if cleanup else None
        keys = board_keys(application.settings.key_prefix)
        yield Simulator(db, client, keys, day, seed=seed, undo=undo)
    finally:
        if client is not None:
            close(client)
        db.close()


@contextmanager
def _stopped_by_signals() -> Iterator[tuple[threading.Event, list[int]]]:
    """An event that SIGINT, SIGTERM and SIGHUP set, and the signals that came: the
    batch under way is finished (no half-written batch, no lost ids), then the run ends;
    the exit status says which signal (128 + its number)."""
    stop = threading.Event()
    came: list[int] = []

    def interrupted(signum: int, frame: Any) -> None:
        came.append(signum)
        stop.set()

    ending = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {number: signal.signal(number, interrupted) for number in ending}
    try:
        yield stop, came
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _progress(r: SimulationReport) -> None:
    """One line per second of a simulation, on stderr, so with --json too."""
    from flightcache.console import err
    from flightcache.measure.duration import human_ns

    err.print(
        f"{r.seconds:6.1f} s  bookings {r.bookings:,}  {r.rate:,.0f}/s"
        f"  db {human_ns(r.db_ns / max(r.batches, 1))}/batch"
        f"  valkey {human_ns(r.valkey_ns / max(r.batches, 1))}/batch"
        f"  valkey failures {r.valkey_failures}",
        soft_wrap=True,
    )


def _simulate_summary(
    sim: Simulator, rate: float, *, cleanup: bool, interrupted: bool, as_json: bool
) -> None:
    from flightcache.console import err, out, table
    from flightcache.measure.duration import human_ns
    from flightcache.patterns.leaderboard_periods import daily

    report = sim.report
    if report.cleanup_valkey_failed:
        err.print(
            "--cleanup deleted the bookings, but Valkey failed: the boards still count them",
            style="yellow",
            soft_wrap=True,
        )
    summary = report.as_dict()
    summary.update(
        board=sim.board.name,
        keys=sorted({sim.board.key(daily(d)) for _, d in sim.counted} | {sim.board.key()}),
        channel=sim.board.channel,
        database=sim.db.dialect,
        stayed_in_database=0 if cleanup else report.bookings,
    )
    summary["interrupted"] = interrupted
    if as_json:
        out.print_json(json.dumps(summary))
        return
    rows = [
        ["bookings written", f"{report.bookings:,} in {report.batches:,} batches"],
        ["achieved rate", f"{report.rate:,.1f}/s (asked {rate:g}/s)"],
        ["database time", f"{human_ns(report.db_ns)} (INSERT + COMMIT)"],
        ["valkey time", f"{human_ns(report.valkey_ns)} (ZINCRBY, EXPIRE, PUBLISH)"],
        ["events published", f"{report.events:,} on {sim.board.channel}"],
        ["valkey failures", str(report.valkey_failures)],
        [
            "bookings left in the database",
            "none (--cleanup deleted them)"
            if cleanup
            else f"{report.bookings:,} (ids {summary['first_booking_id']}"
            f"..{summary['last_booking_id']})",
        ],
    ]
    out.print(table("simulate: summary", ["what", "figure"], rows))


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


def parse_day(text: str | None) -> dt.date | None:
    """``--date`` as a date; None (any day) when absent."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--date {text!r} is not a date", hint="write it as YYYY-MM-DD, e.g. 2026-06-02"
        ) from None


def live(
    ctx: typer.Context,
    board: Annotated[
        str, typer.Option("--board", help="Which board to show.")
    ] = "airport-bookings",
    period: Annotated[str, typer.Option("--period", help="`all` or `daily:YYYY-MM-DD`.")] = "all",
    top: Annotated[
        int, typer.Option("--top", callback=positive, help="How many places to show.")
    ] = 10,
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", callback=positive, help="Stop after this many seconds."),
    ] = None,
) -> None:
    """Show a board as a table that updates in place, pushed through pub/sub.

    SUBSCRIBEs to the board's update channel; on events it re-reads the top N
    with ZREVRANGE WITHSCORES, at most about 10 redraws a second however fast
    events come. Arrows show places gained or lost. A missing board is
    reported and waited for. Run `flightcache leaderboard simulate` beside it.
    Ctrl-C stops it.

    Examples:

    \b
      flightcache leaderboard live
      flightcache leaderboard live --period daily:2025-06-02 --top 5
      flightcache leaderboard live --seconds 30
    """
    from rich.live import Live

    from flightcache.bench.leaderboard import MAX_SECONDS
    from flightcache.console import out
    from flightcache.demos.leaderboard import MAX_TOP, LiveBoard, live_period
    from flightcache.patterns.leaderboard import Board, board_keys, definition
    from flightcache.valkey_client import close

    definition(board)
    on_view = live_period(period)
    check_positive("--top", top, MAX_TOP, "10")
    if seconds is not None:
        check_positive("--seconds", seconds, MAX_SECONDS, "30")
    application: App = ctx.obj
    keys = board_keys(application.settings.key_prefix)
    client: Any = application.valkey()
    shown = Board(client, keys, board)
    view = LiveBoard(shown, on_view, top)
    key, channel = shown.key(on_view), shown.channel
    pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel)
        started = time.monotonic()
        snap = view.snapshot()
        with Live(
            _render(snap, key, channel),
            console=out,
            refresh_per_second=10,
            auto_refresh=False,
        ) as screen:
            dirty = False
            drawn = time.monotonic()
            while seconds is None or time.monotonic() - started < seconds:
                message = pubsub.get_message(timeout=0.05)
                while message is not None:  # drain a burst before drawing
                    if message.get("type") == "message" and view.event(str(message["data"])):
                        dirty = True
                    message = pubsub.get_message(timeout=0)
                now = time.monotonic()
                if (dirty or not snap.exists or now - drawn >= 1.0) and now - drawn >= 0.1:
                    snap = view.snapshot()
                    screen.update(_render(snap, key, channel), refresh=True)
                    dirty, drawn = False, now
            snap = view.snapshot()
            screen.update(_render(snap, key, channel), refresh=True)
        if not out.is_terminal:
            out.print()
        out.print(
            f"events {snap.events:,}  redraws {snap.redraws:,}  places shown {len(snap.rows)}",
            style="dim",
        )
    finally:
        pubsub.close()
        shown.close()
        close(client)


def _render(snap: LiveSnapshot, key: str, channel: str) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not snap.exists:
        return Text(f"board {key} is missing: waiting for the first score on {channel} ...")
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("")
    table.add_column("member")
    table.add_column("score", justify="right")
    for row in snap.rows:
        if row.change is None:
            arrow = Text("new", style="cyan")
        elif row.change > 0:
            arrow = Text(f"▲{row.change}", style="green")
        elif row.change < 0:
            arrow = Text(f"▼{-row.change}", style="red")
        else:
            arrow = Text("=", style="dim")
        table.add_row(str(row.rank), arrow, row.member, f"{row.score:,.0f}")
    last = (
        "no event yet"
        if snap.last_update is None
        else "last update " + time.strftime("%H:%M:%S", time.localtime(snap.last_update))
    )
    footer = Text(f"{last}  {snap.events_per_s:,.1f} events/s  {snap.events:,} events", "dim")
    return Group(Text(key, style="bold"), table, footer)


def bench(
    ctx: typer.Context,
    seconds: Annotated[
        float, typer.Option("--seconds", callback=positive, help="Seconds per measurement.")
    ] = 2.0,
    clients: Annotated[
        int,
        typer.Option(
            "--clients", callback=positive, help="Reader processes in the concurrent run."
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Measure score writes/s, top-10 reads/s and rank reads/s on this Valkey.

    Writes are ZINCRBY pipelined 1,000 at a time; top-10 reads are ZREVRANGE 0 9
    WITHSCORES and rank reads ZREVRANK, one at a time on one connection. Each
    runs alone, through flightcache's Board and through a bare valkey-py loop
    in the same run; then one writer process and --clients reader processes run
    together (processes, because threads would share one GIL). Figures are printed beside 004's
    published ones. The bench board is deleted at the end.

    Examples:

    \b
      flightcache leaderboard bench
      flightcache leaderboard bench --seconds 5 --clients 2
      flightcache leaderboard bench --json
    """
    from flightcache.bench.leaderboard import (
        MAX_CLIENTS,
        Workloads,
        concurrent,
        separate,
        summary,
    )
    from flightcache.console import out, table
    from flightcache.patterns.leaderboard import Board, board_keys
    from flightcache.valkey_client import close

    check_positive("--seconds", seconds, 600, "2")
    check_positive("--clients", clients, MAX_CLIENTS, "1")
    application: App = ctx.obj
    keys = board_keys(application.settings.key_prefix)
    client: Any = application.valkey()
    board = Board(client, keys, "bench")
    try:
        client.delete(board.key())
        work = Workloads(board)
        work.seed()
        alone = separate(work, seconds)
        together = concurrent(
            application.valkey_url().url(redact=False), keys, board.name, seconds, clients
        )
    finally:
        board.close()
        client.delete(board.key())
        close(client)
    doc = summary(str(application.valkey_url()), alone, together, seconds, clients)
    if as_json:
        out.print_json(json.dumps(doc))
        return
    out.print(
        table(
            f"leaderboard bench: {seconds:g} s each, {application.valkey_url()}",
            ["operation", "run", "flightcache /s", "bare /s", "fraction", "004 /s"],
            _bench_rows(alone, together, clients),
        )
    )
    out.print(
        "concurrent: separate processes (threads would share one GIL); the server and"
        " the clients share this machine's cores. 004's figures are a Go service's, on its"
        " machine.",
        style="dim",
    )


def _bench_rows(
    alone: dict[str, Figure], together: dict[str, Figure], clients: int
) -> list[list[str]]:
    from flightcache.bench.leaderboard import PUBLISHED, fraction

    def separate_row(label: str, name: str, published: str) -> list[str]:
        return [
            label,
            "alone",
            f"{alone[name].per_s:,.0f}",
            f"{alone[f'bare_{name}'].per_s:,.0f}",
            f"{fraction(alone, name):.2f}",
            published,
        ]

    return [
        separate_row("writes: ZINCRBY x1000", "writes", f"{PUBLISHED['writes_separate']:,}"),
        separate_row("top-10: ZREVRANGE", "top10", f"{PUBLISHED['reads_separate']:,}"),
        separate_row("rank: ZREVRANK", "rank", "-"),
        ["writes", f"+{clients} reader(s)", f"{together['writes'].per_s:,.0f}", "-", "-",
         "13-14k"],
        ["top-10", "+1 writer", f"{together['top10'].per_s:,.0f}", "-", "-",
         f"{PUBLISHED['reads_concurrent']:,}"],
    ]  # fmt: skip
