"""`flightcache write-through`: rename an airline in the database and in Valkey at once."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt, RowsYesOpt
from flightcache.demos.write_through import Options, demo


def write_through(
    ctx: typer.Context,
    airline: Annotated[
        str | None,
        typer.Option(
            "--airline",
            help="IATA code or id of the airline to rename."
            " Default: the first of the route analysis.",
        ),
    ] = Options.airline,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="The new name (at most 30 characters). Default: the old one + (new)."
        ),
    ] = Options.name,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 50,
    keep: KeepOpt = False,
    yes: RowsYesOpt = False,
) -> None:
    """Write-through: a rename goes to the database and to Valkey in one operation.

    Warms the cache (the airline as a hash, the route analysis and the airline's
    detail as tagged query results), renames the airline in a transaction and
    writes the row through to Valkey, invalidating the tagged results (SADD,
    SPOP, DEL). Every write of the hash is checked against the airline's version
    (INCR), so a slow reader cannot put the old name back: a step shows one
    refused. Then breaks it on purpose: (a) the database write fails and rolls
    back, (b) the cache write fails after COMMIT; neither leaves a stale copy.
    The original name is restored at the end.

    Examples:

    \b
      flightcache write-through
      flightcache write-through --airline 2 --name "Second Air"
      flightcache write-through --airline 7 --json
    """
    from flightcache.commands._demo import run

    run(
        ctx,
        "write-through",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        changes_rows=True,
        yes=yes,
        options=Options(airline=airline, name=name),
    )
