"""`flightcache cache-aside`: lazy loading, narrated and timed."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands import _demo
from flightcache.demos.cache_aside import TTL_MAX, TTL_MIN, Options, demo


def cache_aside(
    ctx: typer.Context,
    params: _demo.ParamsArg = None,
    query: _demo.QueryOpt = Options.query,
    ttl: Annotated[
        int,
        typer.Option("--ttl", min=TTL_MIN, max=TTL_MAX, help="TTL of the cached result, seconds."),
    ] = Options.ttl,
    as_json: _demo.JsonOpt = False,
    pause: _demo.PauseOpt = False,
    repeat: _demo.RepeatOpt = 50,
    keep: _demo.KeepOpt = False,
) -> None:
    """Cache-aside: look in Valkey, on a miss query the database and SET with a TTL.

    Shows a miss, the query, the SET with its TTL, a hit, the key expiring, and
    reads falling back to the database when Valkey is unreachable. Ends with two
    timings: the database against a cache-aside hit, then the hit against a bare
    GET of the same value. Runs even with Valkey down: every read then says it
    came from the database.

    Examples:

    \b
      flightcache cache-aside
      flightcache cache-aside --query flight_search origin=FRA destination=JFK
      flightcache cache-aside --repeat 200 --json
    """
    from flightcache.named_queries import get, parse_assignments

    get(query)  # an unknown name fails before any server is touched
    _demo.run(
        ctx,
        "cache-aside",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(query=query, ttl=ttl, params=parse_assignments(params or [])),
        valkey_optional=True,
    )
