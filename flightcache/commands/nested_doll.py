"""`flightcache nested-doll`: one flight composed from layers with their own TTLs."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt, RowsYesOpt
from flightcache.demos.nested_doll import FLIGHT_MIN, Options, demo


def nested_doll(
    ctx: typer.Context,
    flight: Annotated[
        int | None,
        typer.Option(
            "--flight",
            min=FLIGHT_MIN,
            help="flight_id of the flight to compose. Default: the first flight with a delay.",
        ),
    ] = Options.flight,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 50,
    keep: KeepOpt = False,
    yes: RowsYesOpt = False,
) -> None:
    """Nested doll caching: a flight in four layers, each with the TTL of its volatility.

    Aircraft (24 h), schedule (6 h), seat availability (5 min) and status (30 s)
    are cached apart under one hash tag and composed in one pipeline. Shows the
    first compose (4 queries), the second (all hits, PTTLs), a booking that
    rebuilds only the seats layer, and the 30 s layer expiring while the 24 h one
    stays. The booking is removed again at the end.

    Examples:

    \b
      flightcache nested-doll
      flightcache nested-doll --flight 42
      flightcache nested-doll --flight 42 --keep    # then: flightcache valkey PTTL ...
    """
    from flightcache.commands._demo import run

    run(
        ctx,
        "nested-doll",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        changes_rows=True,
        yes=yes,
        options=Options(flight=flight),
    )
