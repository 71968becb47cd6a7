"""The cache-aside demo: miss, SET with TTL, hit, expiry, Valkey down, then the timings.

The pattern itself is :class:`flightcache.patterns.cache_aside.CacheAside`; this
module narrates it. It imports the pattern inside :func:`demo`, so that the
command can read :class:`Options` without loading the drivers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Table
    from flightcache.named_queries import Query
    from flightcache.patterns.cache_aside import CacheAside, Lookup

TTL_MIN = 1  # seconds
TTL_MAX = 30 * 86_400  # seconds: a month


@dataclass(frozen=True)
class Options:
    """What `flightcache cache-aside` takes."""

    query: str = "airline_route_analysis"
    ttl: int = 3600  # seconds, TTL_MIN to TTL_MAX
    params: Mapping[str, str] = field(default_factory=dict)  # NAME=VALUE; defaults from the data


Reads = list[tuple[str, "Lookup"]]  # each read with its label


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Miss, database, SET with TTL, hit; expiry; Valkey down; then the timings."""
    from flightcache.named_queries import bind, get
    from flightcache.patterns.cache_aside import CacheAside

    options: Options = ctx.options
    query = get(options.query)
    params = bind(ctx.db, query, options.params)
    pattern = CacheAside(ctx.valkey, ctx.db, ctx.keys, ttl=options.ttl)
    reads: Reads = []

    yield from _first_read(ctx, pattern, query, params, reads)
    if ctx.valkey_up:
        yield from _read_again(ctx, pattern, query, params, reads)
        yield from _expire(ctx, pattern, query, params, reads)
    yield from _valkey_down(ctx, query, params, reads)
    if ctx.valkey_up:
        yield from _timings(ctx, pattern, query, params)
    yield _served_table(reads)


def _first_read(
    ctx: DemoContext, pattern: CacheAside, query: Query, params: dict[str, Any], reads: Reads
) -> Iterator[Record]:
    from flightcache.patterns.cache_aside import ServedBy

    with ctx.step(
        "Look in Valkey first",
        "cache-aside always asks the cache before the database; the key names the query "
        "and a digest of its parameters",
    ) as step:
        first = pattern.get(query, params)
        step.hit, step.rows, step.bytes = first.hit, len(first.rows), first.bytes
        if first.served_by is ServedBy.VALKEY_DOWN:
            step.ok = False
            step.outcome = f"Valkey is down: served from the {first.source}"
        else:
            step.outcome = (
                f"miss, so the query ran on {ctx.db.dialect} and its {len(first.rows)} rows "
                f"({first.bytes:,} bytes of JSON) were stored with a {pattern.ttl} s TTL"
            )
    yield step
    reads.append(("first", first))


def _read_again(
    ctx: DemoContext, pattern: CacheAside, query: Query, params: dict[str, Any], reads: Reads
) -> Iterator[Record]:
    first = reads[0][1]
    with ctx.step("Read it again", "the same key now answers from memory; no SQL runs") as step:
        again = pattern.get(query, params)
        step.hit, step.rows, step.bytes = again.hit, len(again.rows), again.bytes
        step.ok = again.rows == first.rows
        step.outcome = f"hit: {len(again.rows)} rows, identical: {again.rows == first.rows}"
    yield step
    reads.append(("second", again))

    with ctx.step(
        "How long will it live?", "the TTL bounds how stale a cached answer can be"
    ) as step:
        remaining = ctx.valkey.ttl(first.key)
        step.outcome = f"{remaining} s left of {pattern.ttl} s"
        step.data["ttl"] = remaining
    yield step


def _expire(
    ctx: DemoContext, pattern: CacheAside, query: Query, params: dict[str, Any], reads: Reads
) -> Iterator[Record]:
    with ctx.step(
        "Let the key expire",
        "PEXPIRE shortens the TTL to 50 ms so the demo need not wait an hour",
    ) as step:
        ctx.valkey.pexpire(pattern.key(query, params), 50)
        time.sleep(0.1)
        after = pattern.get(query, params)
        step.hit, step.rows = after.hit, len(after.rows)
        step.outcome = (
            "expired: the next read missed, ran the query again and stored a fresh copy"
            if not after.hit
            else "still cached (the key did not expire)"
        )
    yield step
    reads.append(("after expiry", after))


def _valkey_down(
    ctx: DemoContext, query: Query, params: dict[str, Any], reads: Reads
) -> Iterator[Record]:
    from flightcache.patterns.cache_aside import CacheAside
    from flightcache.valkey_client import unreachable

    first = reads[0][1]
    down = CacheAside(unreachable(), ctx.db, ctx.keys, ttl=ctx.options.ttl)
    with ctx.step(
        "Valkey goes away",
        "a client to a port nobody listens on stands in for a Valkey that crashed: "
        "readers must still get answers",
    ) as step:
        fallback = down.get(query, params)
        step.hit, step.rows = fallback.hit, len(fallback.rows)
        step.ok = fallback.rows == first.rows
        step.outcome = f"{len(fallback.rows)} rows from the {fallback.source}; no error raised"
        step.data["source"] = fallback.source
    yield step
    reads.append(("Valkey down", fallback))


def _timings(
    ctx: DemoContext, pattern: CacheAside, query: Query, params: dict[str, Any]
) -> Iterator[Record]:
    """Two runs: the database against a hit, then a hit against the GET it is built on.
    They are apart because a query leaves the calls just after it slower (the client's
    caches went cold while it waited), the hit's JSON decoding more than the GET: in
    one run with the route analysis's 0.2 s query, its 497-byte hit measured 2.6x its
    GET at p50."""
    sql = query.sql(ctx.db.dialect)
    key = pattern.key(query, params)
    cached = pattern.get(query, params)  # cached again for the hit contenders
    yield ctx.compare(
        f"{query.name}: database vs cache",
        {
            "database": lambda: ctx.db.fetch(sql, params),
            "cache-aside hit": lambda: pattern.get(query, params),
        },
        note="interleaved in one run after a warm-up; 'cache-aside hit' is the whole read:"
        " GET, JSON decode, rows",
    )
    yield ctx.compare(
        f"{query.name}: a hit vs the GET under it",
        {
            "bare GET": lambda: ctx.valkey.get(key),
            "cache-aside hit": lambda: pattern.get(query, params),
        },
        note=(
            "interleaved in a run of their own; 'bare GET' is valkey-py's GET of the same "
            f"{cached.bytes:,}-byte value, the floor for any cache read; what a hit costs "
            "beyond it is mostly decoding the JSON"
        ),
    )


def _served_table(reads: Reads) -> Table:
    from flightcache.demos.base import Table

    return Table(
        "what each read did",
        ["read", "hit", "served by", "rows", "bytes"],
        [
            [label, "yes" if lookup.hit else "no", lookup.source, len(lookup.rows), lookup.bytes]
            for label, lookup in reads
        ],
    )
