"""`flightcache hit-ratio`: a Zipf-skewed stream of reads through cache-aside, counted two ways.

The demo replays a stream of real flight ids through
:class:`~flightcache.patterns.hit_ratio.FlightReader` and sets its counters beside
the server's ``keyspace_hits``/``keyspace_misses`` (a delta over the run, summed
over every primary). The run is time-compressed: it counts :data:`RATE` requests
per simulated second, and a key whose TTL has passed in simulated time is UNLINKed
by the replay, as the server's own expiry would do (the SET still carries EX ttl
in real seconds). The pattern and the records are imported where they are used,
so that the command reads :class:`Options` without loading the clients.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Table
    from flightcache.patterns.hit_ratio import FlightReader

REQUESTS_MAX = 1_000_000
RATE = 100
"""Requests per simulated second: 5,000 requests span 50 simulated seconds."""
SLICES = 10
COMPARE_SKEWS = (0.6, 1.1, 1.5)
BLOCKS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 30


def sparkline(ratios: list[float]) -> str:
    """One block character per ratio in 0..1."""
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round(min(max(r, 0.0), 1.0) * top)] for r in ratios)


def bar(ratio: float, width: int = BAR_WIDTH) -> str:
    filled = round(min(max(ratio, 0.0), 1.0) * width)
    return "█" * filled + "·" * (width - filled)


@dataclass(frozen=True)
class Options:
    requests: int = 5000  # reads in the replayed stream, up to REQUESTS_MAX
    skew: float = 1.1  # Zipf exponent: higher sends more reads to fewer flights
    ttl: int = 30  # TTL of a cached flight, in simulated seconds
    seed: int = 1  # of the request stream
    bars: bool = False  # draw the timeline's ratios as bars and a sparkline (text output)


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
    from flightcache.measure.zipf import zipf_ranks

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


class Replays:
    """Replays of the same ids, one per (skew, TTL), each from an empty cache, run once."""

    def __init__(self, ctx: DemoContext, ids: Sequence[int]) -> None:
        self.ctx, self.ids = ctx, ids
        self.done: dict[tuple[float, int], ReplayResult] = {}

    def run(self, skew: float, ttl: int) -> ReplayResult:
        from flightcache.patterns.hit_ratio import FlightReader
        from flightcache.valkey_client import delete_matching

        ctx, options = self.ctx, self.ctx.options
        if (skew, ttl) not in self.done:
            with ctx.tracer.paused():
                delete_matching(ctx.valkey, ctx.keys.match())
                self.done[skew, ttl] = replay(
                    FlightReader(ctx.valkey, ctx.db, ctx.keys, ttl),
                    self.ids,
                    skew=skew,
                    requests=options.requests,
                    seed=options.seed,
                )
        return self.done[skew, ttl]


def _percent(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def demo(ctx: DemoContext) -> Iterator[Record]:
    """A miss and a hit, what each costs, a replay counted two ways, then skew and TTL."""
    options: Options = ctx.options
    ids, ranks = yield from _pick_ids(ctx, options)
    yield from _miss_then_hit(ctx, ids[0], options.ttl)
    replays = Replays(ctx, ids)
    main, server = yield from _replay(ctx, replays, options)
    yield _counted_two_ways(ctx, main, server)
    yield _timeline(main, options.bars)
    yield _hottest(ids, ranks, options.requests)
    yield _skew_and_ttl(replays, options)


def _pick_ids(
    ctx: DemoContext, options: Options
) -> Generator[Record, None, tuple[list[int], list[int]]]:
    from flightcache import sqlfiles
    from flightcache.measure.zipf import top_share, zipf_ranks

    with ctx.step(
        "Pick real flight ids",
        "the request stream reads flights that exist; a seeded shuffle decides which are hot",
    ) as step:
        result = ctx.db.fetch(sqlfiles.query(ctx.db.dialect, "flight_ids"))
        ids = hottest_first([int(r[0]) for r in result.rows], options.seed)
        if not ids:
            raise DataError("the flight table is empty", hint="run `flightcache data load`")
        ranks = zipf_ranks(len(ids), options.skew, options.requests, options.seed)
        top = min(10, len(ids))
        step.rows = len(ids)
        step.outcome = (
            f"{len(ids):,} flights; Zipf s={options.skew} sends {top_share(ranks, top):.0%} of "
            f"{options.requests:,} requests to the {top} hottest, and touches "
            f"{len(set(ranks)):,} distinct flights"
        )
    yield step
    return ids, ranks


def _miss_then_hit(ctx: DemoContext, hot: int, ttl: int) -> Iterator[Record]:
    from flightcache.patterns.hit_ratio import FlightReader

    reader = FlightReader(ctx.valkey, ctx.db, ctx.keys, ttl)
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


def _replay(
    ctx: DemoContext, replays: Replays, options: Options
) -> Generator[Record, None, tuple[ReplayResult, dict[str, int]]]:
    from flightcache.patterns.hit_ratio import SERVER_STATS, server_counters
    from flightcache.valkey_client import primaries

    with ctx.step(
        f"Replay {options.requests:,} requests: Zipf s={options.skew}, TTL {options.ttl} s",
        f"time-compressed: {RATE} requests per simulated second, so the run spans "
        f"{options.requests / RATE:,.0f} s; a key whose TTL has run out is UNLINKed",
    ) as step:
        before = server_counters(ctx.valkey)
        main = replays.run(options.skew, options.ttl)
        after = server_counters(ctx.valkey)
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
            "primaries": len(primaries(ctx.valkey)),
            "slices": [{"hits": h, "requests": n} for h, n in main.slices],
        }
    yield step
    return main, server


def _counted_two_ways(ctx: DemoContext, main: ReplayResult, server: dict[str, int]) -> Table:
    from flightcache.demos.base import Table
    from flightcache.valkey_client import primaries

    nodes = len(primaries(ctx.valkey))
    server_total = server["keyspace_hits"] + server["keyspace_misses"]
    return Table(
        "flightcache's counters and INFO stats, over the same run",
        ["", "flightcache", "INFO stats (delta)"],
        [
            ["hits", main.hits, server["keyspace_hits"]],
            ["misses", main.misses, server["keyspace_misses"]],
            [
                "hit ratio %",
                _percent(main.hits, main.requests),
                _percent(server["keyspace_hits"], server_total),
            ],
        ],
        note="INFO stats counts every key lookup on the server, from every client and for "
        "every key, not only these GETs; the delta over the run is the honest comparison"
        + (f" (summed over {nodes} primaries)" if nodes > 1 else ""),
    )


def _timeline(main: ReplayResult, bars: bool) -> Table:
    from flightcache.demos.base import Table

    title, columns = "Hit ratio over time", ["requests", "hits", "hit ratio %"]
    rows: list[list[Any]] = []
    done = 0
    for h, n in main.slices:
        rows.append([f"{done + 1:,}-{done + n:,}", h, _percent(h, n)])
        done += n
    if bars:
        ratios = [row[-1] / 100 for row in rows]
        title, columns = f"{title}  {sparkline(ratios)}", [*columns, ""]
        rows = [[*row, bar(r)] for row, r in zip(rows, ratios, strict=True)]
    return Table(
        title,
        columns,
        rows,
        note="the cache starts cold: early slices miss while the hot keys load",
    )


def _hottest(ids: Sequence[int], ranks: Sequence[int], requests: int) -> Table:
    from flightcache.demos.base import Table

    counts = Counter(ranks)
    share = 0.0
    rows = []
    for rank in range(min(5, len(ids))):
        share += counts[rank] / requests
        rows.append(
            [
                rank + 1,
                ids[rank],
                counts[rank],
                _percent(counts[rank], requests),
                round(100 * share, 1),
            ]
        )
    return Table(
        "The hottest flights",
        ["rank", "flight_id", "requests", "share %", "cumulative %"],
        rows,
        note="a hot key pays one miss per TTL and is a hit for every other request",
    )


def _skew_and_ttl(replays: Replays, options: Options) -> Table:
    from flightcache.demos.base import Table

    ttls = sorted({max(1, options.ttl // 10), options.ttl})
    rows: list[list[Any]] = []
    for skew in COMPARE_SKEWS:
        for ttl in ttls:
            r = replays.run(skew, ttl)
            rows.append(
                [skew, ttl, r.distinct, r.hits, r.misses, r.expired, _percent(r.hits, r.requests)]
            )
    return Table(
        "How skew and TTL move the hit ratio",
        ["skew", "TTL s", "distinct ids", "hits", "misses", "expired", "hit ratio %"],
        rows,
        note=f"{options.requests:,} requests each, seed {options.seed}, time-compressed at"
        f" {RATE} requests per simulated second; more skew concentrates the requests on keys"
        " already cached, a shorter TTL sends even hot keys back to the database",
    )
