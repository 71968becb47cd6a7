"""Cache hit ratio: how often a cache-aside read finds its key, and what moves it.

Read path: GET the flight's key; on a hit return it; on a miss run the cheap
``flight_by_id`` query and SET the row as JSON with EX ttl. Write path: none
(rows are read-only here; an expired key is simply loaded again).
Failure mode: when Valkey fails, the read falls back to the database and counts
a miss and an error; it never fails the request.

The demo replays a Zipf-skewed stream of real flight ids and sets flightcache's
own counters beside the server's ``keyspace_hits``/``keyspace_misses`` (INFO
stats, a delta over the run, summed over every primary). The run is
time-compressed: it counts :data:`RATE` requests per simulated second, and a key
whose TTL has passed in simulated time is UNLINKed by the replay, as the
server's own expiry would do (the SET still carries EX ttl in real seconds).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.db import QueryResult
from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.measure.zipf import top_share, zipf_ranks
from flightcache.valkey_client import delete_matching, info_total, primaries

RATE = 100
"""Requests per simulated second: 5,000 requests span 50 simulated seconds."""

SLICES = 10
TIMELINE = "Hit ratio over time"
COMPARE_SKEWS = (0.6, 1.1, 1.5)
SERVER_STATS = ("keyspace_hits", "keyspace_misses")


def row_json(result: QueryResult) -> str | None:
    """The first row of a result as a JSON object, or None when there is none."""
    if not result.rows:
        return None
    return json.dumps(
        dict(zip(result.columns, result.rows[0], strict=True)),
        default=str,
        separators=(",", ":"),
    )


class Lookup(NamedTuple):
    value: str | None  # the flight as JSON; None when the id does not exist
    hit: bool
    stored: bool  # a miss that was written back to Valkey


class FlightReader:
    """Cache-aside reads of one flight by id, counting hits and misses itself."""

    def __init__(self, client: Any, db: Any, keys: Keys, ttl: int) -> None:
        self.valkey, self.db, self.keys, self.ttl = client, db, keys, ttl
        self.sql = sqlfiles.query(db.dialect, "flight_by_id")
        self.hits = self.misses = self.errors = 0

    def load(self, flight_id: int) -> str | None:
        return row_json(self.db.fetch(self.sql, {"flight_id": flight_id}))

    def get(self, flight_id: int) -> Lookup:
        key = self.keys.flight(flight_id)
        try:
            cached = self.valkey.get(key)
        except valkey.exceptions.ValkeyError:
            self.misses += 1
            self.errors += 1
            return Lookup(self.load(flight_id), hit=False, stored=False)
        if cached is not None:
            self.hits += 1
            return Lookup(cached, hit=True, stored=False)
        self.misses += 1
        value = self.load(flight_id)
        if value is None:
            return Lookup(None, hit=False, stored=False)
        try:
            self.valkey.set(key, value, ex=self.ttl)
        except valkey.exceptions.ValkeyError:
            self.errors += 1
            return Lookup(value, hit=False, stored=False)
        return Lookup(value, hit=False, stored=True)


@dataclass
class ReplayResult:
    """What one replay of a request stream counted."""

    skew: float
    ttl: int
    requests: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    expired: int = 0  # keys UNLINKed because their simulated TTL ran out
    distinct: int = 0
    slices: list[tuple[int, int]] = field(default_factory=list)  # (hits, requests)

    @property
    def ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0


def replay(
    reader: FlightReader,
    ids: Sequence[int],
    *,
    skew: float,
    requests: int,
    seed: int,
    slices: int = SLICES,
) -> ReplayResult:
    """Send ``requests`` Zipf-skewed reads of ``ids`` (hottest first) through ``reader``."""
    ranks = zipf_ranks(len(ids), skew, requests, seed)
    result = ReplayResult(skew=skew, ttl=reader.ttl, distinct=len(set(ranks)))
    size = max(1, math.ceil(requests / slices))
    expiring: list[tuple[float, int]] = []  # (simulated expiry, flight id)
    live: dict[int, float] = {}
    start_hits, start_misses, start_errors = reader.hits, reader.misses, reader.errors
    slice_hits = slice_requests = 0
    for n, rank in enumerate(ranks):
        now = n / RATE
        while expiring and expiring[0][0] <= now:
            at, gone = heapq.heappop(expiring)
            if live.get(gone) == at:
                del live[gone]
                reader.valkey.unlink(reader.keys.flight(gone))
                result.expired += 1
        flight_id = ids[rank]
        lookup = reader.get(flight_id)
        if lookup.stored:
            live[flight_id] = now + reader.ttl
            heapq.heappush(expiring, (now + reader.ttl, flight_id))
        slice_hits += lookup.hit
        slice_requests += 1
        if slice_requests == size:
            result.slices.append((slice_hits, slice_requests))
            slice_hits = slice_requests = 0
    if slice_requests:
        result.slices.append((slice_hits, slice_requests))
    result.requests = requests
    result.hits = reader.hits - start_hits
    result.misses = reader.misses - start_misses
    result.errors = reader.errors - start_errors
    return result


def hottest_first(ids: Sequence[int], seed: int) -> list[int]:
    """The ids in a seeded random order: rank 0 is the hottest, not the lowest id."""
    ordered = list(ids)
    random.Random(seed).shuffle(ordered)
    return ordered


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def demo(ctx: DemoContext) -> Iterator[Record]:
    requests: int = ctx.options["requests"]
    skew: float = ctx.options["skew"]
    ttl: int = ctx.options["ttl"]
    seed: int = ctx.options["seed"]
    nodes = len(primaries(ctx.valkey))

    with ctx.step(
        "Pick real flight ids",
        "the request stream reads flights that exist; a seeded shuffle decides which are hot",
    ) as step:
        result = ctx.db.fetch(sqlfiles.query(ctx.db.dialect, "flight_ids"))
        ids = hottest_first([int(r[0]) for r in result.rows], seed)
        if not ids:
            raise DataError("the flight table is empty", hint="run `flightcache data load`")
        ranks = zipf_ranks(len(ids), skew, requests, seed)
        top = min(10, len(ids))
        step.rows = len(ids)
        step.outcome = (
            f"{len(ids):,} flights; Zipf s={skew} sends {top_share(ranks, top):.0%} of "
            f"{requests:,} requests to the {top} hottest, and touches "
            f"{len(set(ranks)):,} distinct flights"
        )
    yield step

    reader = FlightReader(ctx.valkey, ctx.db, ctx.keys, ttl)
    hot = ids[0]
    with ctx.step(
        f"Read flight {hot}: a miss",
        "cache-aside looks in Valkey first; on a miss it runs the query and stores the row",
    ) as step:
        lookup = reader.get(hot)
        step.hit = lookup.hit
        step.bytes = len(lookup.value or "")
        step.outcome = f"miss: loaded from the database and stored with EX {ttl}"
    yield step

    with ctx.step(f"Read flight {hot} again: a hit", "the key is there until its TTL") as step:
        lookup = reader.get(hot)
        step.hit = lookup.hit
        step.bytes = len(lookup.value or "")
        step.outcome = "hit: no SQL ran" if lookup.hit else "miss: the key was gone"
    yield step

    key = ctx.keys.flight(hot)
    yield ctx.compare(
        "what a miss costs against a hit",
        {
            "database (flight_by_id)": lambda: reader.load(hot),
            "cache hit (GET)": lambda: ctx.valkey.get(key),
        },
        note="a miss pays the query and a SET on top; the hit ratio decides how often",
    )

    runs: dict[tuple[float, int], ReplayResult] = {}

    def run(run_skew: float, run_ttl: int) -> ReplayResult:
        if (run_skew, run_ttl) not in runs:
            with ctx.tracer.paused():
                delete_matching(ctx.valkey, ctx.keys.match())
                runs[run_skew, run_ttl] = replay(
                    FlightReader(ctx.valkey, ctx.db, ctx.keys, run_ttl),
                    ids,
                    skew=run_skew,
                    requests=requests,
                    seed=seed,
                )
        return runs[run_skew, run_ttl]

    with ctx.step(
        f"Replay {requests:,} requests: Zipf s={skew}, TTL {ttl} s",
        f"time-compressed: {RATE} requests per simulated second, so the run spans "
        f"{requests / RATE:,.0f} s; a key whose TTL has run out is UNLINKed",
    ) as step:
        before = info_total(ctx.valkey, "stats", SERVER_STATS)
        main = run(skew, ttl)
        after = info_total(ctx.valkey, "stats", SERVER_STATS)
        server = {name: after[name] - before[name] for name in SERVER_STATS}
        step.outcome = (
            f"flightcache counted {main.hits:,} hits and {main.misses:,} misses "
            f"({main.ratio:.1%}); the server's keyspace_hits rose by "
            f"{server['keyspace_hits']:,} and keyspace_misses by {server['keyspace_misses']:,}"
        )
        step.data = {
            "requests": main.requests,
            "hits": main.hits,
            "misses": main.misses,
            "errors": main.errors,
            "expired": main.expired,
            "distinct": main.distinct,
            "hit_ratio": main.ratio,
            "server": server,
            "primaries": nodes,
            "slices": [{"hits": h, "requests": n} for h, n in main.slices],
        }
    yield step

    server_total = server["keyspace_hits"] + server["keyspace_misses"]
    yield Table(
        "flightcache's counters and INFO stats, over the same run",
        ["", "flightcache", "INFO stats (delta)"],
        [
            ["hits", main.hits, server["keyspace_hits"]],
            ["misses", main.misses, server["keyspace_misses"]],
            [
                "hit ratio %",
                _pct(main.hits, main.requests),
                _pct(server["keyspace_hits"], server_total),
            ],
        ],
        note="INFO stats counts every key lookup on the server, from every client and for "
        "every key, not only these GETs; the delta over the run is the honest comparison"
        + (f" (summed over {nodes} primaries)" if nodes > 1 else ""),
    )

    timeline = []
    done = 0
    for h, n in main.slices:
        timeline.append([f"{done + 1:,}-{done + n:,}", h, _pct(h, n)])
        done += n
    yield Table(
        TIMELINE,
        ["requests", "hits", "hit ratio %"],
        timeline,
        note="the cache starts cold: early slices miss while the hot keys load",
    )

    counts = Counter(ranks)
    share = 0.0
    rows = []
    for rank in range(min(5, len(ids))):
        share += counts[rank] / requests
        rows.append(
            [rank + 1, ids[rank], counts[rank], _pct(counts[rank], requests), round(100 * share, 1)]
        )
    yield Table(
        "The hottest flights",
        ["rank", "flight_id", "requests", "share %", "cumulative %"],
        rows,
        note="a hot key pays one miss per TTL and is a hit for every other request",
    )

    short = max(1, ttl // 10)
    ttls = sorted({short, ttl})
    rows = []
    for run_skew in COMPARE_SKEWS:
        for run_ttl in ttls:
            r = run(run_skew, run_ttl)
            rows.append(
                [
                    run_skew,
                    run_ttl,
                    r.distinct,
                    r.hits,
                    r.misses,
                    r.expired,
                    _pct(r.hits, r.requests),
                ]
            )
    yield Table(
        "How skew and TTL move the hit ratio",
        ["skew", "TTL s", "distinct ids", "hits", "misses", "expired", "hit ratio %"],
        rows,
        note=f"{requests:,} requests each, seed {seed}, time-compressed at {RATE} requests "
        "per simulated second; more skew concentrates the requests on keys already cached, "
        "a shorter TTL sends even hot keys back to the database",
    )
