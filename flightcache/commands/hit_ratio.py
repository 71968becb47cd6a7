"""`flightcache hit-ratio`: a skewed read workload through cache-aside, counted two ways."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt
from flightcache.commands._options import positive
from flightcache.demos.hit_ratio import REQUESTS_MAX, Options


def hit_ratio(
    ctx: typer.Context,
    requests: Annotated[
        int,
        typer.Option(
            "--requests", callback=positive, help="Reads in the replayed stream.", max=REQUESTS_MAX
        ),
    ] = Options.requests,
    skew: Annotated[
        float,
        typer.Option(
            "--skew",
            callback=positive,
            help="Zipf exponent: higher sends more reads to fewer flights.",
        ),
    ] = Options.skew,
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl", callback=positive, help="TTL of a cached flight, in simulated seconds."
        ),
    ] = Options.ttl,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the request stream.")] = Options.seed,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 200,
    keep: KeepOpt = False,
) -> None:
    """Measure the cache hit ratio of a skewed read workload, and what moves it.

    Replays Zipf-distributed reads of real flight ids through cache-aside (GET; on a
    miss the flight_by_id query and SET EX) and shows flightcache's own hit and miss
    counters beside keyspace_hits and keyspace_misses from INFO stats (the delta
    over the run), the hit ratio slice by slice as the cache warms, and a table of
    runs with skew 0.6, 1.1, 1.5 and a short and a long TTL. The run is
    time-compressed (100 requests per simulated second; expired keys are UNLINKed).

    Examples:

    \b
      flightcache hit-ratio
      flightcache hit-ratio --skew 0.8 --ttl 5
      flightcache hit-ratio --requests 20000 --seed 7 --json
    """
    from flightcache.commands import _demo
    from flightcache.demos.hit_ratio import demo

    _demo.run(
        ctx,
        "hit-ratio",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(requests=requests, skew=skew, ttl=ttl, seed=seed, bars=not as_json),
    )
