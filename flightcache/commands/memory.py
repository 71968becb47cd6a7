"""`flightcache memory`: the same flights stored six ways, and seat maps two ways, measured."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt
from flightcache.demos.memory import Options


def memory(
    ctx: typer.Context,
    flights: Annotated[
        int, typer.Option("--flights", help="How many flights to store (the first by id).")
    ] = Options.flights,
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
    from flightcache.demos.memory import demo

    options = Options(flights=flights)  # out of range: a ConfigError, before any server
    _demo.run(
        ctx,
        "memory",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=options,
    )
