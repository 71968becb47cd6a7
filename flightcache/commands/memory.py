"""`flightcache memory`: the same flights stored six ways, and seat maps two ways, measured."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt

MAX_FLIGHTS = 200_000


def memory(
    ctx: typer.Context,
    flights: Annotated[
        int, typer.Option("--flights", help="How many flights to store (the first by id).")
    ] = 1000,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 50,
    keep: KeepOpt = False,
) -> None:
    """Memory optimisation: JSON vs hashes vs buckets, bitmaps vs sets, measured.

    Stores the same flights from the database as JSON strings, as hashes with full
    and with one-letter field names, as packed strings and in bucket hashes of many
    flights each; and their booked seats as bitmaps and as sets. Measures every key
    with MEMORY USAGE and the server with INFO memory, and shows each encoding.

    Examples:

    \b
      flightcache memory
      flightcache memory --flights 5000
      flightcache memory --keep     # then: flightcache valkey OBJECT ENCODING fc:memory:bucket100:0
    """
    from flightcache.commands import _demo
    from flightcache.errors import ConfigError
    from flightcache.patterns.memory import demo

    if not 1 <= flights <= MAX_FLIGHTS:
        raise ConfigError(
            f"--flights {flights} is out of range: the demo stores 1 to {MAX_FLIGHTS:,} flights",
            hint="try --flights 1000",
        )
    _demo.run(
        ctx,
        "memory",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options={"flights": flights},
    )
