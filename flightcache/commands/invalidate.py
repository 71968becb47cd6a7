"""`flightcache invalidate`: delete exactly what a change makes wrong, by event, tag and time."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt, RowsYesOpt


def invalidate(
    ctx: typer.Context,
    flight: Annotated[
        int | None,
        typer.Option(
            "--flight", min=1, help="Flight to delay (id). Default: the first with 3 passengers."
        ),
    ] = None,
    passenger: Annotated[
        int | None,
        typer.Option(
            "--passenger", min=1, help="Passenger who books (id). Default: one on --flight."
        ),
    ] = None,
    delay: Annotated[
        int, typer.Option("--delay", min=1, max=720, help="Minutes the flight is delayed by.")
    ] = 15,
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=30 * 86_400, help="Base TTL of cached results, s.")
    ] = 3600,
    jitter: Annotated[
        float, typer.Option("--jitter", min=0, max=50, help="TTL jitter, percent either way.")
    ] = 10.0,
    warm: Annotated[
        int,
        typer.Option(
            "--warm", min=0, max=100_000, help="Passengers' bookings cached to show the jitter."
        ),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the jitter.")] = 1,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 50,
    keep: KeepOpt = False,
    yes: RowsYesOpt = False,
) -> None:
    """Invalidation: on a change, delete exactly the cached copies it makes wrong.

    Caches real results (passengers' bookings, flight searches, flight rows), each
    registered in the tag sets of the flights it shows. Event-driven: a passenger
    books a flight, and after the COMMIT exactly the keys the event names are
    deleted; it also shows why deleting before the COMMIT leaves stale data, and a
    reader that straddles the COMMIT. Tag-based: a flight is delayed, and its tag
    sets name every result to delete, on one node or a cluster. Time-based: TTLs
    with jitter. After each, the next read is checked against a fresh SELECT. The
    database changes are undone at the end.

    Examples:

    \b
      flightcache invalidate
      flightcache invalidate --flight 42 --delay 90
      flightcache invalidate --ttl 600 --jitter 20 --warm 1000 --json
    """
    from flightcache.commands import _demo
    from flightcache.patterns.invalidation_demo import run

    _demo.run(
        ctx,
        "invalidate",
        run,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        changes_rows=True,
        yes=yes,
        options={
            "flight": flight,
            "passenger": passenger,
            "delay": delay,
            "ttl": ttl,
            "jitter": jitter,
            "warm": warm,
            "seed": seed,
        },
    )
