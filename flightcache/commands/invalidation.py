"""`flightcache invalidation`: delete exactly what a change makes wrong, by event, tag and time."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt, RowsYesOpt
from flightcache.demos.invalidation import DELAY_MAX, JITTER_MAX, TTL_MAX, WARM_MAX, Options


def invalidation(
    ctx: typer.Context,
    flight: Annotated[
        int | None,
        typer.Option(
            "--flight", min=1, help="Flight to delay (id). Default: the first with 3 passengers."
        ),
    ] = Options.flight,
    passenger: Annotated[
        int | None,
        typer.Option(
            "--passenger", min=1, help="Passenger who books (id). Default: one on --flight."
        ),
    ] = Options.passenger,
    delay: Annotated[
        int,
        typer.Option("--delay", min=1, max=DELAY_MAX, help="Minutes the flight is delayed by."),
    ] = Options.delay,
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=TTL_MAX, help="Base TTL of cached results, s.")
    ] = Options.ttl,
    jitter: Annotated[
        float,
        typer.Option("--jitter", min=0, max=JITTER_MAX, help="TTL jitter, percent either way."),
    ] = Options.jitter,
    warm: Annotated[
        int,
        typer.Option(
            "--warm", min=0, max=WARM_MAX, help="Passengers' bookings cached to show the jitter."
        ),
    ] = Options.warm,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the jitter.")] = Options.seed,
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
      flightcache invalidation
      flightcache invalidation --flight 42 --delay 90
      flightcache invalidation --ttl 600 --jitter 20 --warm 1000 --json
    """
    from flightcache.commands import _demo
    from flightcache.demos.invalidation import demo

    _demo.run(
        ctx,
        "invalidation",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        changes_rows=True,
        yes=yes,
        options=Options(
            flight=flight,
            passenger=passenger,
            delay=delay,
            ttl=ttl,
            jitter=jitter,
            warm=warm,
            seed=seed,
        ),
    )
