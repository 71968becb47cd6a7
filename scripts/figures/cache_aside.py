"""Module 1's cache-aside figures, each measured side by side in one interleaved run:

- 001's airline route analysis uncached vs as a cache-aside hit (p50 ratio;
  the target is at least 100x);
- a cache-aside hit vs a bare valkey-py GET of the same value (p50 ratio; the
  target is at most 1.5x).

    .venv/bin/python scripts/figures cache-aside [--scale workshop] [--hits 5000] [--db-runs 30]
"""

from __future__ import annotations

import argparse
from typing import Any

from figures.shared import KEY_PREFIX, Figure, Setup, each_database
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.named_queries import bind, get
from flightcache.patterns.cache_aside import CacheAside


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


def us(ns: float) -> str:
    return f"{ns / 1e3:.1f} µs"


def line(s: Stats) -> str:
    return f"p50 {us(s.p50)}, p95 {us(s.p95)}, p99 {us(s.p99)} (n={s.n})"


def bench_database(setup: Setup, kind: str, client: Any, args: argparse.Namespace) -> None:
    db = setup.open(kind)
    q = get("airline_route_analysis")
    params = bind(db, q, {})
    sql = q.sql(db.dialect)
    pattern = CacheAside(client, db, Keys(KEY_PREFIX), ttl=3600)
    key = pattern.key(q, params)
    client.delete(key)
    pattern.get(q, params)
    print(f"\n{kind} ({db.server_version()}), {len(pattern.get(q, params).rows)} rows")
    db_vs = compare(
        {
            "database": lambda: db.fetch(sql, params),
            "cache-aside hit": lambda: pattern.get(q, params),
        },
        repeat=args.db_runs,
        warmup=2,
    )
    for s in db_vs:
        print(f"  {s.label:<16} p50 {ms(s.p50)}, p95 {ms(s.p95)} (n={s.n})")
    print(f"  route analysis: cache hit is {db_vs[1].speedup:,.0f}x faster at p50")
    hit_vs = compare(
        {
            "bare GET": lambda: client.get(key),
            "cache-aside hit": lambda: pattern.get(q, params),
        },
        repeat=args.hits,
        warmup=200,
    )
    for s in hit_vs:
        print(f"  {s.label:<16} {line(s)}")
    ratio = hit_vs[1].p50 / hit_vs[0].p50
    print(f"  cache-aside hit costs {ratio:.2f}x a bare GET at p50 (target <= 1.5x)")
    client.delete(key)
    db.close()


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    each_database(setup, args, bench_database)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--db-runs", type=int, default=30)


FIGURES = [
    Figure(
        "cache-aside",
        "Module 1: route analysis uncached vs cache-aside hit; hit vs bare GET",
        run,
        arguments,
        scale="workshop",
    )
]
