"""`flightcache hit-ratio`: a skewed read workload through cache-aside, counted two ways."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt
from flightcache.commands._options import positive

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flightcache.demos.base import DemoContext, Record

BLOCKS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 30


def sparkline(ratios: list[float]) -> str:
    """One block character per ratio in 0..1."""
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round(min(max(r, 0.0), 1.0) * top)] for r in ratios)


def bar(ratio: float, width: int = BAR_WIDTH) -> str:
    filled = round(min(max(ratio, 0.0), 1.0) * width)
    return "█" * filled + "·" * (width - filled)


def hit_ratio(
    ctx: typer.Context,
    requests: Annotated[
        int,
        typer.Option(
            "--requests", callback=positive, help="Reads in the replayed stream.", max=1_000_000
        ),
    ] = 5000,
    skew: Annotated[
        float,
        typer.Option(
            "--skew",
            callback=positive,
            help="Zipf exponent: higher sends more reads to fewer flights.",
        ),
    ] = 1.1,
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl", callback=positive, help="TTL of a cached flight, in simulated seconds."
        ),
    ] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the request stream.")] = 1,
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
    from flightcache.patterns.hit_ratio import demo

    def with_bars(demo_ctx: DemoContext) -> Iterator[Record]:
        from flightcache.demos.base import Table
        from flightcache.patterns.hit_ratio import TIMELINE

        for record in demo(demo_ctx):
            if not as_json and isinstance(record, Table) and record.title == TIMELINE:
                ratios = [row[-1] / 100 for row in record.rows]
                record = Table(
                    f"{record.title}  {sparkline(ratios)}",
                    [*record.columns, ""],
                    [[*row, bar(r)] for row, r in zip(record.rows, ratios, strict=True)],
                    record.note,
                )
            yield record

    _demo.run(
        ctx,
        "hit-ratio",
        with_bars,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options={"requests": requests, "skew": skew, "ttl": ttl, "seed": seed},
    )
