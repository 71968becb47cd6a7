"""The narrated demo of universal caching (``flightcache universal``).

It starts the fake external API (:mod:`flightcache.fakeapi`) on a free loopback
port, caches one item of each of 001's six sources through
:class:`~flightcache.patterns.universal.UniversalCache`, times every origin
against its cached read, and then breaks the API on purpose: it fails, it
answers slower than the client's timeout, it is asked for something never
cached, it recovers, and finally it is gone. The API is stopped when the demo
ends, however it ends.

The pattern is :mod:`flightcache.patterns.universal`, its origins
:mod:`flightcache.patterns.universal_origins`; this module narrates them and
imports them inside its functions, so that the command can read :class:`Options`
without loading the clients at ``--help`` time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from flightcache.errors import UsageError
from flightcache.measure.duration import human_ns

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Step
    from flightcache.fakeapi import ApiSnapshot, FakeApi
    from flightcache.patterns.universal import Answer
    from flightcache.patterns.universal_origins import ApiClient, Source

SLOWER_BY_MS = 250  # how much slower than the timeout the API gets in the timeout step
API_LATENCY_MAX_MS = 60_000  # the longest --api-latency-ms
API_TIMEOUT_MIN_MS = 1  # the shortest and longest --api-timeout-ms
API_TIMEOUT_MAX_MS = 60_000


@dataclass(frozen=True)
class Options:
    """What `flightcache universal` takes; the command's defaults are these."""

    origin: str | None = None  # IATA codes of the route; None: from the data
    destination: str | None = None
    day: str | None = None  # YYYY-MM-DD of the statistics and the search
    flight: str | None = None  # the flight to track; None: one on the route
    api_latency_ms: float = 50.0  # how long each API answer takes, 0 to API_LATENCY_MAX_MS
    api_failure_rate: float = 0.0  # share of API requests answered with 503, 0 to 1
    api_timeout_ms: float = 500.0  # how long the client waits, API_TIMEOUT_MIN/MAX_MS


class _Run:
    """What the steps share: the cache, the API and its client, the items."""

    def __init__(self, ctx: DemoContext, api: FakeApi, client: ApiClient, route: dict[str, Any]):
        from flightcache.patterns import universal_origins as origins
        from flightcache.patterns.universal import UniversalCache

        self.ctx = ctx
        self.api = api
        self.client = client
        self.cache = UniversalCache(ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
        self.origin, self.destination = route["origin"], route["destination"]
        self.day, self.flightno = route["day"], route["flightno"]
        self.params = {"origin": self.origin, "destination": self.destination, "day": self.day}
        self.served: list[list[Any]] = []
        paths = origins.api_paths(self.origin, self.flightno)
        db = ctx.db
        weather, flight, services = origins.WEATHER, origins.FLIGHT, origins.SERVICES
        distance, stats, search = origins.DISTANCE, origins.STATS, origins.SEARCH
        self.fetch: dict[Source, Callable[[], Any]] = {
            **{s: partial(client.get, p, name=s.name) for s, p in paths.items()},
            distance: partial(origins.route_distance, db, self.origin, self.destination),
            stats: partial(origins.daily_bookings, db, self.day),
            search: partial(origins.flight_search, db, self.params),
        }
        self.items = {
            weather: weather.item_for(iata=self.origin),
            flight: flight.item_for(flightno=self.flightno),
            services: services.item_for(iata=self.origin),
            distance: distance.item_for(origin=self.origin, destination=self.destination),
            stats: stats.item_for(day=self.day),
            search: search.item_for(**self.params),
        }
        self.shown: dict[Source, tuple[str, ...]] = {  # the fields an outcome line shows
            weather: ("temp_c", "condition", "wind_kmh"),
            flight: ("status", "from", "to", "eta", "altitude_ft"),
            services: ("restaurants", "shops", "lounges", "wifi"),
            distance: ("km", "miles", "domestic"),
            stats: ("total", "domestic", "international"),
            search: (),
        }

    def get(self, source: Source, item: str | None = None, fetch: Any = None) -> Answer:
        return self.cache.get(
            item or self.items[source],
            fetch or self.fetch[source],
            ttl=source.ttl_s,
            stale_ttl=source.stale_ttl_s,
            what=source.name,
        )

    def read(self, step: Step, source: Source, label: str, **kwargs: Any) -> Answer | None:
        """One read inside ``step``: its outcome, and a row of the closing table."""
        from flightcache.patterns.universal import NothingCached

        before = self.api.requests
        item = kwargs.get("item") or self.items[source]
        try:
            served = self.get(source, **kwargs)
        except NothingCached as exc:
            step.fails_on_purpose()  # the origin failed with nothing cached: the clear error
            step.hit = False
            step.outcome = f"error: {exc.message} ({exc.hint})"
            step.data.update(item=item, source="error", error=exc.message)
            self.served.append([label, item, "error: nothing cached", "-"])
            return None
        finally:
            step.data["http"] = self.client.take()
            step.data["api_requests"] = self.api.requests - before
        step.hit = served.source == "cache"
        step.rows = len(served.value) if isinstance(served.value, list) else None
        step.data.update(
            item=item,
            key=self.ctx.keys.cached_item(item),
            source=served.source,
            age_s=round(served.age_s, 3),
            error=served.error,
            value=served.value,
        )
        step.outcome = served.describe()
        self.served.append([label, item, served.source, f"{served.age_s:.1f} s"])
        return served


def summary(value: Any, keys: Sequence[str] = ()) -> str:
    """A short text of a cached value for an outcome line."""
    if isinstance(value, list):
        return f"{len(value)} rows"
    if isinstance(value, dict):
        shown = keys or list(value)[:4]
        return ", ".join(f"{key}={value[key]}" for key in shown if key in value)
    return str(value)[:80]


def _route(ctx: DemoContext) -> dict[str, Any]:
    """Route, day and flight from the options, defaults from the data; checked."""
    from flightcache.named_queries import bind
    from flightcache.named_queries import get as get_query
    from flightcache.patterns.universal_origins import airport_coords

    options: Options = ctx.options
    given: dict[str, Any] = {}
    if options.origin:
        given["origin"] = options.origin.strip().upper()
    if options.destination:
        given["destination"] = options.destination.strip().upper()
    if options.day:
        given["day"] = options.day
    with ctx.tracer.paused():
        params = bind(ctx.db, get_query("flight_search"), given)
        params["origin"] = str(params["origin"]).strip().upper()
        params["destination"] = str(params["destination"]).strip().upper()
        if params["origin"] == params["destination"]:
            raise UsageError(
                f"--origin and --destination are both {params['origin']}",
                hint="a route needs two different airports",
            )
        airport_coords(ctx.db, params["origin"], params["destination"])  # UsageError if unknown
    return params


def _flight(snapshot: ApiSnapshot, route: dict[str, Any], given: str | None) -> str:
    if given:
        code = given.strip().upper()
        if code not in snapshot.flights:
            some = ", ".join(list(snapshot.flights)[:5]) or "none: flightschedule is empty"
            raise UsageError(
                f"no scheduled flight {code!r} in flightschedule", hint=f"try one of {some}"
            )
        return code
    flights = list(snapshot.flights.values())
    for wanted in (
        lambda flight: (
            flight.origin == route["origin"] and flight.destination == route["destination"]
        ),
        lambda flight: flight.origin == route["origin"],
        lambda flight: True,
    ):
        for flight in flights:
            if wanted(flight):
                return flight.flightno
    raise UsageError(
        "flightschedule is empty: the flight-tracking API has no flight to track",
        hint="load data with `flightcache data load`",
    )


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Start the API; first reads and reads again; TTLs; timings; the API failing."""
    from flightcache.demos.base import Table

    options: Options = ctx.options
    route = _route(ctx)
    run = yield from _start_api(ctx, route)
    yield from _first_reads(ctx, run)
    yield _read_again(ctx, run)
    yield from _ttls(ctx, run)
    yield from _timings(ctx, run)
    yield from _failures(ctx, run, options.api_latency_ms, options.api_timeout_ms)
    yield Table(
        "What each read did",
        ["read", "item", "served by", "age of the data"],
        run.served,
        note="'stale' is the last good copy, served because the origin failed; its age is "
        "the age of the data, taken from the fetched_at stored with it.",
    )


def _start_api(ctx: DemoContext, route: dict[str, Any]) -> Generator[Record, None, _Run]:
    """Start the fake API on a free port; returns what the steps share."""
    from flightcache.fakeapi import ApiSnapshot, FakeApi
    from flightcache.patterns.universal_origins import ApiClient

    options: Options = ctx.options
    latency_ms, failure_rate = options.api_latency_ms, options.api_failure_rate
    timeout_ms = options.api_timeout_ms
    with ctx.step(
        "Start the slow external API",
        "a small HTTP service on this machine stands in for 001's weather, flight-tracking "
        "and airport services APIs; it answers from a snapshot of the database",
    ) as step:
        snapshot = ApiSnapshot.load(ctx.db)
        route["flightno"] = _flight(snapshot, route, options.flight)
        api = FakeApi(snapshot, latency_ms=latency_ms, failure_rate=failure_rate)
        ctx.on_exit(api.stop)
        api.start()
        client = ApiClient(api.url, timeout_s=timeout_ms / 1000)
        step.outcome = (
            f"{api.url} serves /weather/<IATA>, /flights/<FLIGHTNO> and "
            f"/airports/<IATA>/services for {len(snapshot.airports):,} airports and "
            f"{len(snapshot.flights):,} scheduled flights; each answer takes {latency_ms:g} ms, "
            f"{failure_rate:.0%} fail; the client gives up after {timeout_ms:g} ms"
        )
        step.data = {"url": api.url, "latency_ms": latency_ms, "failure_rate": failure_rate}
    yield step
    return _Run(ctx, api, client, route)


def _first_reads(ctx: DemoContext, run: _Run) -> Iterator[Record]:
    """What each source is cached for, then its first read: a miss, the origin, two SETs."""
    from flightcache.demos.base import Table
    from flightcache.measure.duration import human_seconds
    from flightcache.patterns.universal_origins import SOURCES

    yield Table(
        "What is cached, and for how long",
        ["source", "key (001's name)", "001's data class", "TTL", "last good kept"],
        [
            [
                source.name,
                run.items[source],
                f"{source.data_class}: {source.class_range}",
                human_seconds(source.ttl_s),
                human_seconds(source.stale_ttl_s),
            ]
            for source in SOURCES
        ],
        note="001's TTL strategy by data source: static reference data 24 h, business APIs "
        "1-6 h, real-time APIs 1-10 min, user-specific data 5-30 min. The fresh copy of an "
        f"item is {ctx.keys.cached_item('<item>')}; its last good copy and its hold share "
        "the hash tag.",
    )
    for source in SOURCES:
        with ctx.step(
            f"{source.name}: first read of {run.items[source]}",
            f"a miss: GET the fresh copy, MGET the last good copy and the hold, then the "
            f"origin ({source.origin}); both copies are written in one pipeline",
        ) as step:
            served = run.read(step, source, "first read")
            if served is not None:
                step.outcome = (
                    f"{served.describe()}: {summary(served.value, run.shown[source])}; "
                    f"fresh for {human_seconds(source.ttl_s)}, last good copy kept "
                    f"{human_seconds(source.stale_ttl_s)}"
                )
        yield step


def _read_again(ctx: DemoContext, run: _Run) -> Step:
    from flightcache.patterns.universal import NothingCached
    from flightcache.patterns.universal_origins import SOURCES

    with ctx.step(
        "Read all six again", "every one is a GET of the fresh copy: no HTTP request, no SQL"
    ) as step:
        outcomes = []
        hits = 0
        for source in SOURCES:
            try:
                again = run.get(source)
            except NothingCached as exc:
                step.ok = False
                outcomes.append(f"{source.name}: {exc.message}")
                continue
            hits += again.source == "cache"
            outcomes.append(f"{source.name}: {again.source}, {again.age_s:.2f} s old")
            run.served.append(
                ["read again", run.items[source], again.source, f"{again.age_s:.1f} s"]
            )
        step.hit = hits == len(SOURCES)
        step.data = {"hits": hits, "http": run.client.take()}
        step.outcome = f"{hits} of {len(SOURCES)} hits; " + "; ".join(outcomes)
    return step


def _ttls(ctx: DemoContext, run: _Run) -> Iterator[Record]:
    from flightcache.demos.base import Table
    from flightcache.measure.duration import human_seconds
    from flightcache.patterns.universal_origins import SOURCES

    with ctx.step("How long each copy lives", "TTL of every fresh and last good copy") as step:
        pipe = ctx.tracer.pipeline(ctx.valkey)
        for source in SOURCES:
            pipe.ttl(ctx.keys.cached_item(run.items[source]))
            pipe.ttl(ctx.keys.cached_item_good(run.items[source]))
        replies = pipe.execute()
        rows = [
            [
                source.name,
                run.items[source],
                human_seconds(source.ttl_s),
                replies[2 * number],
                replies[2 * number + 1],
            ]
            for number, source in enumerate(SOURCES)
        ]
        missing = sum(1 for r in replies if r == -2)
        step.outcome = f"{len(replies)} TTLs read" + (
            f"; {missing} keys do not exist (TTL -2): their origin failed" if missing else ""
        )
        step.data = {"ttls": rows}
    yield step
    yield Table(
        "What Valkey holds now",
        ["source", "item", "class TTL", "fresh TTL (s)", "last good TTL (s)"],
        rows,
    )


def _attempt(read: Callable[[], Any], failed: list[int]) -> Callable[[], None]:
    from flightcache.patterns.universal import OriginDown

    def call() -> None:
        try:
            read()
        except OriginDown:
            failed[0] += 1

    return call


def _timings(ctx: DemoContext, run: _Run) -> Iterator[Record]:
    from flightcache.demos.base import Table
    from flightcache.patterns.universal import NothingCached
    from flightcache.patterns.universal_origins import (
        DISTANCE,
        FLIGHT,
        SEARCH,
        SERVICES,
        SOURCES,
        STATS,
        WEATHER,
    )

    labels = {
        WEATHER: "API call (HTTP GET)",
        FLIGHT: "API call (HTTP GET)",
        SERVICES: "API call (HTTP GET)",
        DISTANCE: "compute (SQL + haversine)",
        STATS: "SQL aggregate",
        SEARCH: "SQL search",
    }
    rows: list[list[Any]] = []
    run.client.recording = False
    try:
        for source in SOURCES:
            try:
                ready = run.get(source)  # cached, so that the cached contender hits
            except NothingCached as exc:
                rows.append([source.name, "-", "-", f"not timed: {exc.message}"])
                continue
            if ready.stale:
                rows.append(
                    [source.name, "-", "-", f"not timed: only a stale copy ({ready.error})"]
                )
                continue
            failed = [0]
            timing = ctx.compare(
                f"{source.name}: {labels[source]} vs cached read",
                {
                    labels[source]: _attempt(run.fetch[source], failed),
                    "cached read": _attempt(partial(run.get, source), failed),
                },
                note=f"'cached read' is the whole read of {run.items[source]}: GET, JSON "
                "decode, age"
                + (f"; {failed[0]} calls failed (--api-failure-rate)" if failed[0] else ""),
            )
            yield timing
            origin, cached = timing.stats
            rows.append(
                [
                    source.name,
                    human_ns(origin.p50),
                    human_ns(cached.p50),
                    f"{cached.speedup or 0:,.0f}x",
                ]
            )
    finally:
        run.client.recording = True
    yield Table(
        "With and without the cache (p50)",
        ["source", "origin", "cached read", "faster"],
        rows,
        note="the API's latency is --api-latency-ms plus a real HTTP round trip on 127.0.0.1",
    )


def _failures(
    ctx: DemoContext, run: _Run, latency_ms: float, timeout_ms: float
) -> Iterator[Record]:
    from flightcache.measure.duration import human_seconds
    from flightcache.patterns.universal_origins import WEATHER

    api, item = run.api, run.items[WEATHER]
    fresh, hold = ctx.keys.cached_item(item), ctx.keys.cached_item_hold(item)

    with ctx.step(
        "The weather API fails, and the fresh copy has expired",
        "the API now answers 503 to everything; PEXPIRE ends the fresh copy as if "
        f"{human_seconds(WEATHER.ttl_s)} had passed (so the stale copy is only seconds old here, "
        f"at least {human_seconds(WEATHER.ttl_s)} in real life)",
    ) as step:
        api.configure(failure_rate=1.0)
        ctx.valkey.pexpire(fresh, 1)
        time.sleep(0.005)
        served = run.read(step, WEATHER, "API failing")
        if served is not None:
            step.outcome = f"{served.describe()}; the hold now keeps readers off the API"
    yield step

    with ctx.step(
        "Read again while the API is down",
        "the hold from the last failure is there: serve the last good copy, do not call the API",
    ) as step:
        served = run.read(step, WEATHER, "API still down")
        if served is not None:
            step.outcome = f"{served.describe()}; API requests made: {step.data['api_requests']}"
    yield step

    with ctx.step(
        "The API answers, but slower than the client's timeout",
        f"the API now takes {timeout_ms + SLOWER_BY_MS:g} ms, the client waits {timeout_ms:g} "
        "ms; DEL the hold as if its retry interval had passed",
    ) as step:
        api.configure(failure_rate=0.0, latency_ms=timeout_ms + SLOWER_BY_MS)
        ctx.valkey.delete(hold)
        run.read(step, WEATHER, "API too slow")
    yield step

    other = WEATHER.item_for(iata=run.destination)
    with ctx.step(
        f"The API is down and {other} was never cached",
        "no fresh copy, no last good copy: the reader gets a clear error, not a guess",
    ) as step:
        api.configure(failure_rate=1.0, latency_ms=latency_ms)
        fetch = partial(run.client.get, f"/weather/{run.destination}", name=WEATHER.name)
        run.read(step, WEATHER, "never cached", item=other, fetch=fetch)
    yield step

    with ctx.step(
        "The API recovers",
        "the API answers again, every time; once the hold is gone the next miss calls it "
        "and both copies are renewed",
    ) as step:
        api.configure(failure_rate=0.0, latency_ms=latency_ms)
        ctx.valkey.delete(hold)
        served = run.read(step, WEATHER, "API back")
        if served is not None:
            step.outcome = served.describe() + f": {summary(served.value, run.shown[WEATHER])}"
    yield step

    with ctx.step(
        "The API server is gone",
        "the service is stopped: connections are refused; PEXPIRE ends the fresh copy again",
    ) as step:
        api.stop()
        ctx.valkey.pexpire(fresh, 1)
        time.sleep(0.005)
        run.read(step, WEATHER, "API stopped")
    yield step
