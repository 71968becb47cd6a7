"""`flightcache universal`: caching anything queryable, with a last good copy."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands import _demo
from flightcache.demos.universal import (
    API_LATENCY_MAX_MS,
    API_TIMEOUT_MAX_MS,
    API_TIMEOUT_MIN_MS,
    Options,
)


def universal(
    ctx: typer.Context,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="IATA code of the route's first airport (default: data)."),
    ] = Options.origin,
    destination: Annotated[
        str | None,
        typer.Option("--destination", help="IATA code of the second airport (default: data)."),
    ] = Options.destination,
    day: Annotated[
        str | None,
        typer.Option("--day", help="Day of the statistics and the search, YYYY-MM-DD."),
    ] = Options.day,
    flight: Annotated[
        str | None,
        typer.Option("--flight", help="Flight number to track (default: one on the route)."),
    ] = Options.flight,
    api_latency_ms: Annotated[
        float,
        typer.Option(
            "--api-latency-ms",
            min=0,
            max=API_LATENCY_MAX_MS,
            help="How long each API answer takes, ms.",
        ),
    ] = Options.api_latency_ms,
    api_failure_rate: Annotated[
        float,
        typer.Option(
            "--api-failure-rate",
            min=0.0,
            max=1.0,
            help="Share of API requests that fail with 503, 0 to 1.",
        ),
    ] = Options.api_failure_rate,
    api_timeout_ms: Annotated[
        float,
        typer.Option(
            "--api-timeout-ms",
            min=API_TIMEOUT_MIN_MS,
            max=API_TIMEOUT_MAX_MS,
            help="How long the client waits for the API, ms.",
        ),
    ] = Options.api_timeout_ms,
    as_json: _demo.JsonOpt = False,
    pause: _demo.PauseOpt = False,
    repeat: _demo.RepeatOpt = 50,
    keep: _demo.KeepOpt = False,
) -> None:
    """Universal caching: API answers, computed results, aggregates and searches.

    Starts a slow local HTTP service standing in for 001's weather, flight-tracking
    and airport services APIs, then caches one item of each of six sources with
    the TTL of its data class (API answers 2 min to 2 h, a great-circle distance
    24 h, daily booking statistics 1 h, a flight search 15 min). Times each origin
    against its cached read, then breaks the API: failing, slower than the timeout,
    asked for something never cached, recovered, stopped. A failed API serves the
    last good copy, marked stale with its age. The API stops when the demo ends.

    Examples:

    \b
      flightcache universal
      flightcache universal --origin FRA --destination JFK --day 2025-06-03
      flightcache universal --api-latency-ms 200 --api-failure-rate 0.3 --repeat 10
    """
    from flightcache.demos.universal import demo

    _demo.run(
        ctx,
        "universal",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(
            origin=origin,
            destination=destination,
            day=day,
            flight=flight,
            api_latency_ms=api_latency_ms,
            api_failure_rate=api_failure_rate,
            api_timeout_ms=api_timeout_ms,
        ),
    )
