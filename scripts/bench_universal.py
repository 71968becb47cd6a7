"""Measure `flightcache universal`'s figures: each origin against its cached read.

    .venv/bin/python scripts/bench_universal.py [--scale small] [--api-latency-ms 50]
        [--api-repeat 100] [--repeat 500]

Starts a private Valkey and the fake external API (flightcache.fakeapi) on
127.0.0.1, loads the generated dataset into fresh databases named
fc_bench_universal on MySQL/MariaDB and PostgreSQL (dropped at the end), and
times with the same UniversalCache the demo narrates, side by side in one
interleaved run each:

- each API (weather, flight tracking, airport services): HTTP call vs cache hit;
- route distance (SQL + haversine), daily booking statistics (SQL), flight
  search (SQL): origin vs cache hit, on both databases;
- while the API fails: a read with no hold (calls the API, then serves stale)
  vs a read with a hold (serves stale without calling it); and a read when the
  API is slower than the client's timeout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flightcache.catalogue import bind, get
from flightcache.config import DbUrl
from flightcache.data.load import load_generated
from flightcache.db import Database, connect, drop_database
from flightcache.fakeapi import ApiSnapshot, FakeApi
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.patterns.universal import UniversalCache
from flightcache.patterns.universal_origins import (
    DISTANCE,
    SEARCH,
    STATS,
    WEATHER,
    ApiClient,
    Source,
    api_paths,
    daily_bookings,
    flight_search,
    route_distance,
)
from flightcache.stack.valkey import scratch_valkey
from flightcache.valkey_client import close, parser_name
from flightcache.valkey_client import connect as vconnect


def fmt(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms" if ns >= 1e6 else f"{ns / 1e3:.1f} µs"


def show(title: str, stats: list[Stats]) -> None:
    print(f"  {title}")
    for s in stats:
        print(f"    {s.label:<28} p50 {fmt(s.p50):>11}  p95 {fmt(s.p95):>11}  (n={s.n})")
    first, second = stats
    print(f"    {second.label} is {second.speedup or 0:,.1f}x faster than {first.label} at p50")


def pair(
    cache: UniversalCache, source: Source, item: str, fetch: Callable[[], Any], label: str, n: int
) -> list[Stats]:
    def hit() -> Any:
        return cache.get(item, fetch, ttl=source.ttl_s, stale_ttl=source.stale_ttl_s)

    served = hit()
    assert hit().source == "cache", served
    return compare({label: fetch, "cache hit": hit}, repeat=n, warmup=3)


def bench_apis(cache: UniversalCache, api: FakeApi, db: Database, args: Any) -> None:
    route = bind(db, get("flight_search"), {})
    origin = str(route["origin"]).strip()
    flightno = next(iter(api.snapshot.flights))
    client = ApiClient(api.url, timeout_s=args.api_timeout_ms / 1000)
    client.recording = False
    print(f"\nfake API at {api.url}, latency {args.api_latency_ms:g} ms per answer")
    for source, path in api_paths(origin, flightno).items():
        item = source.item_for(iata=origin, flightno=flightno)
        stats = pair(cache, source, item, lambda p=path: client.get(p), "API call", args.api_repeat)
        show(f"{source.name} ({path})", stats)

    item = WEATHER.item_for(iata=origin)
    keys = cache.keys
    api.configure(failure_rate=1.0)

    def failing_no_hold() -> Any:
        cache.client.delete(keys.cached_item(item), keys.cached_item_hold(item))
        return cache.get(item, lambda: client.get(f"/weather/{origin}"), ttl=600, stale_ttl=3600)

    def failing_held() -> Any:
        cache.client.delete(keys.cached_item(item))
        return cache.get(item, lambda: client.get(f"/weather/{origin}"), ttl=600, stale_ttl=3600)

    assert failing_no_hold().source == "stale" and failing_held().source == "stale"
    stats = compare(
        {"stale, API called (503)": failing_no_hold, "stale, held (no call)": failing_held},
        repeat=args.api_repeat,
        warmup=3,
    )
    show("weather API failing: stale copy served", stats)
    api.configure(failure_rate=0.0, latency_ms=args.api_timeout_ms + 250)
    slow = compare({"stale after timeout": failing_no_hold}, repeat=10, warmup=1)
    print(f"  API slower than the {args.api_timeout_ms:g} ms timeout:")
    print(f"    {slow[0].label:<28} p50 {fmt(slow[0].p50):>11}  (n={slow[0].n})")
    api.configure(failure_rate=0.0, latency_ms=args.api_latency_ms)


def bench_database(raw: str, client: Any, args: Any) -> None:
    url = DbUrl.parse(raw)
    db = connect(url, create=True)
    try:
        print(f"\n{url.kind} ({db.server_version()}): loading scale {args.scale} ...", flush=True)
        load_generated(db, args.scale, 42, replace=True, force=True)
        cache = UniversalCache(client, Keys("fcbench:universal:"))
        params = bind(db, get("flight_search"), {})
        origin, destination = str(params["origin"]).strip(), str(params["destination"]).strip()
        day = params["day"]
        print(f"route {origin}-{destination}, day {day}")
        for source, item, fetch, label in (
            (
                DISTANCE,
                DISTANCE.item_for(origin=origin, destination=destination),
                lambda: route_distance(db, origin, destination),
                "compute (SQL + haversine)",
            ),
            (STATS, STATS.item_for(day=day), lambda: daily_bookings(db, day), "SQL aggregate"),
            (SEARCH, SEARCH.item_for(**params), lambda: flight_search(db, params), "SQL search"),
        ):
            show(f"{source.name} ({item})", pair(cache, source, item, fetch, label, args.repeat))
        if args.apis_on == url.kind:
            with FakeApi(ApiSnapshot.load(db), latency_ms=args.api_latency_ms) as api:
                bench_apis(cache, api, db, args)
        for key in client.scan_iter(match="fcbench:universal:*"):
            client.delete(key)
    finally:
        db.close()
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="small")
    parser.add_argument("--api-latency-ms", type=float, default=50.0)
    parser.add_argument("--api-timeout-ms", type=float, default=500.0)
    parser.add_argument("--api-repeat", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_universal")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_universal")
    parser.add_argument("--apis-on", default="mysql", help="which database feeds the fake API")
    args = parser.parse_args()
    with scratch_valkey(prefix="fc-bench-universal-") as scratch:
        client = vconnect(scratch.url)
        print(f"Valkey {scratch.url}, reply parser {parser_name(client)}")
        for raw in (args.mysql, args.pg):
            bench_database(raw, client, args)
        close(client)


if __name__ == "__main__":
    main()
