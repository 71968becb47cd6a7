"""`flightcache universal`'s figures: each origin against its cached read.

Starts the fake external API (flightcache.fakeapi) on 127.0.0.1 and times, with
the same UniversalCache the demo narrates, side by side in one interleaved run each:

- each API (weather, flight tracking, airport services): HTTP call vs cache hit;
- route distance (SQL + haversine), daily booking statistics (SQL), flight
  search (SQL): origin vs cache hit, on both databases;
- while the API fails: a read with no hold (calls the API, then serves stale)
  vs a read with a hold (serves stale without calling it); and a read when the
  API is slower than the client's timeout.

    .venv/bin/python scripts/figures universal [--scale small] [--api-latency-ms 50]
        [--api-repeat 100] [--repeat 500]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from figures.shared import KEY_PREFIX, Figure, Setup, each_database
from flightcache.db import Database
from flightcache.fakeapi import ApiSnapshot, FakeApi
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.named_queries import bind, get
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


def bench_database(setup: Setup, kind: str, client: Any, args: Any) -> None:
    db = setup.open(kind)
    try:
        print(f"\n{kind} ({db.server_version()}): scale {args.scale}", flush=True)
        cache = UniversalCache(client, Keys(f"{KEY_PREFIX}universal:"))
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
        if args.apis_on == kind:
            with FakeApi(ApiSnapshot.load(db), latency_ms=args.api_latency_ms) as api:
                bench_apis(cache, api, db, args)
        for key in client.scan_iter(match=f"{KEY_PREFIX}universal:*"):
            client.delete(key)
    finally:
        db.close()


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    each_database(setup, args, bench_database)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-latency-ms", type=float, default=50.0)
    parser.add_argument("--api-timeout-ms", type=float, default=500.0)
    parser.add_argument("--api-repeat", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--apis-on", default="mysql", help="which database feeds the fake API")


FIGURES = [
    Figure(
        "universal",
        "`flightcache universal`: each origin (APIs, SQL) vs its cache hit, stale reads",
        run,
        arguments,
        scale="small",
    )
]
