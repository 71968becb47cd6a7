"""`flightcache near-cache`: query results in process memory, invalidated by the server."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands import _demo
from flightcache.demos.near_cache import ENTRIES_MAX, MODES, SPREAD_MAX, Options


def near_cache(
    ctx: typer.Context,
    params: _demo.ParamsArg = None,
    query: _demo.QueryOpt = Options.query,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help=f"Tracking mode of the demo's near cache: {', '.join(MODES)}.",
        ),
    ] = Options.mode,
    spread: Annotated[
        int,
        typer.Option(
            "--spread",
            min=4,
            max=SPREAD_MAX,
            help="Results another client rewrites when default and bcast tracking are compared.",
        ),
    ] = Options.spread,
    entries: Annotated[
        int,
        typer.Option(
            "--entries",
            min=0,
            max=ENTRIES_MAX,
            help="Results weighed in process memory against MEMORY USAGE (0: skip).",
        ),
    ] = Options.entries,
    as_json: _demo.JsonOpt = False,
    pause: _demo.PauseOpt = False,
    repeat: _demo.RepeatOpt = 200,
    keep: _demo.KeepOpt = False,
) -> None:
    """Near cache: results kept in this process's memory, the server pushing invalidations.

    Turns client tracking on (CLIENT TRACKING on REDIRECT to a connection that only
    receives pushes), reads a result from the database, from Valkey, then from
    memory, and times the memory hit beside a Valkey GET and the database. A second
    client changes the key: the push arrives, the copy is dropped, the next read
    refetches. Default and broadcast tracking side by side, with what each costs the
    server (CLIENT TRACKINGINFO, INFO tracking_total_keys/prefixes, pushes). The
    tracking connection is killed (CLIENT KILL ID) and the store flushed before it
    serves again. Ends with the store's memory against MEMORY USAGE.

    Examples:

    \b
      flightcache near-cache
      flightcache near-cache --mode bcast --spread 100
      flightcache near-cache --entries 10000 --repeat 2000 --json
    """
    from flightcache.errors import UsageError
    from flightcache.named_queries import get, parse_assignments

    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    get(query)  # an unknown name fails before any server is touched
    from flightcache.demos.near_cache import demo

    _demo.run(
        ctx,
        "near-cache",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(
            mode=mode,
            query=query,
            params=parse_assignments(params or []),
            spread=spread,
            entries=entries,
        ),
    )
