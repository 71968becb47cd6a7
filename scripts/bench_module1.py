"""Measure Module 1's cache-aside figures on the workshop dataset, both databases.

    .venv/bin/python scripts/bench_module1.py [--scale workshop] [--hits 5000] [--db-runs 30]

For each of MariaDB and PostgreSQL (this machine's, or --mysql/--pg URLs) it
makes sure the dataset is loaded in a database of its own (fc_bench_m1, kept
between runs so a re-run does not reload; --drop removes it afterwards), starts a
private Valkey, and reports, each measured side by side in one interleaved run:

- 001's airline route analysis uncached vs as a cache-aside hit (p50 ratio;
  the target is at least 100x);
- a cache-aside hit vs a bare valkey-py GET of the same value (p50 ratio; the
  target is at most 1.5x).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flightcache.config import DbUrl
from flightcache.data.load import info, load_generated
from flightcache.db import connect, drop_database
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.named_queries import bind, get
from flightcache.patterns.cache_aside import CacheAside
from flightcache.stack.valkey import scratch_valkey
from flightcache.valkey_client import close, parser_name
from flightcache.valkey_client import connect as vconnect


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


def us(ns: float) -> str:
    return f"{ns / 1e3:.1f} µs"


def line(s: Stats) -> str:
    return f"p50 {us(s.p50)}, p95 {us(s.p95)}, p99 {us(s.p99)} (n={s.n})"


def bench_database(raw: str, client: Any, args: argparse.Namespace) -> None:
    url = DbUrl.parse(raw)
    db = connect(url, create=True)
    found = info(db)
    if found.scale != args.scale or found.state != "complete":
        print(f"{url.kind}: loading scale {args.scale} ...", flush=True)
        load_generated(db, args.scale, 42, replace=True, force=True)
    q = get("airline_route_analysis")
    params = bind(db, q, {})
    sql = q.sql(db.dialect)
    pattern = CacheAside(client, db, Keys("fcbench:"), ttl=3600)
    key = pattern.key(q, params)
    client.delete(key)
    pattern.get(q, params)
    print(f"\n{url.kind} ({db.server_version()}), {len(pattern.get(q, params).rows)} rows")
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
    if args.drop:
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="workshop")
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--db-runs", type=int, default=30)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_m1")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_m1")
    parser.add_argument("--drop", action="store_true", help="drop the databases afterwards")
    args = parser.parse_args()

    with scratch_valkey(prefix="fc-bench-valkey-") as scratch:
        client = vconnect(scratch.url)
        print(f"Valkey {scratch.url}, reply parser {parser_name(client)}")
        for raw in (args.mysql, args.pg):
            bench_database(raw, client, args)
        close(client)


if __name__ == "__main__":
    main()
