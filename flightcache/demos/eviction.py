"""`flightcache eviction`: the same fill and the same skewed reads, policy by policy.

The replay fills many more bookings than fit under a small maxmemory, then sends
a Zipf-skewed stream of cache-aside reads (:class:`~flightcache.patterns.eviction.BookingCache`)
under each policy, counting hits, misses and writes refused. The values come from
one bulk query made beforehand, so the replay measures Valkey alone. The pattern
and the records are imported where they are used, so that the command reads
:class:`Options` without loading the clients.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record
    from flightcache.patterns.eviction import BookingCache, MemoryLimits

KEYS_MAX = 1_000_000
REQUESTS_MAX = 1_000_000
BATCH = 500


@dataclass(frozen=True)
class Options:
    policies: tuple[str, ...] = (
        *("noeviction", "allkeys-lru", "allkeys-lfu"),
        *("volatile-lru", "volatile-ttl", "allkeys-random"),
    )  # compared in this order
    maxmemory: int | None = None  # bytes per primary; None: its used_memory + HEADROOM
    keys: int = 40_000  # bookings written, one key each; up to KEYS_MAX
    requests: int = 5000  # reads replayed per policy; up to REQUESTS_MAX
    skew: float = 1.1  # Zipf exponent of the reads
    seed: int = 1  # of the fill order and the reads


@dataclass
class PolicyResult:
    """What one policy did with the same fill and the same request stream."""

    policy: str
    written: int = 0  # fill SETs Valkey accepted
    hits: int = 0
    misses: int = 0
    oom: int = 0  # writes refused with an OOM error (fill and replay)
    evicted: int = 0  # evicted_keys delta, every primary
    kept: int = 0  # the demo's keys still there at the end
    used_memory: int = 0  # every primary, at the end
    latencies: list[int] = field(default_factory=list)  # ns of reads timed one by one

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "written": self.written,
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.ratio,
            "oom_errors": self.oom,
            "evicted_keys": self.evicted,
            "keys_kept": self.kept,
            "used_memory": self.used_memory,
        }


class EvictionReplay:
    """Fill many booking keys, then replay skewed reads with cache-aside writes."""

    def __init__(self, cache: BookingCache) -> None:
        self.cache = cache

    def fill(self, order: Sequence[int], result: PolicyResult) -> None:
        """SET every booking in ``order``, pipelined; OOM replies are counted, not raised."""
        import valkey.exceptions

        for start in range(0, len(order), BATCH):
            pipe = self.cache.valkey.pipeline(transaction=False)
            for booking_id in order[start : start + BATCH]:
                self.cache.queue(pipe, booking_id)
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, valkey.exceptions.OutOfMemoryError):
                    result.oom += 1
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    result.written += 1

    def replay(self, stream: Sequence[int], result: PolicyResult) -> None:
        """GET each booking; on a miss SET it back (an OOM refusal is counted)."""
        for booking_id in stream:
            self.read(booking_id, result)

    def read(self, booking_id: int, result: PolicyResult) -> None:
        """One cache-aside read, counted."""
        outcome = self.cache.read(booking_id)
        if outcome == "hit":
            result.hits += 1
            return
        result.misses += 1
        if outcome == "refused":
            result.oom += 1

    def read_latencies(self, stream: Sequence[int]) -> list[int]:
        """Nanoseconds of each read of ``stream``, timed one by one."""
        probe = PolicyResult("probe")
        samples = []
        for booking_id in stream:
            start = time.perf_counter_ns()
            self.read(booking_id, probe)
            samples.append(time.perf_counter_ns() - start)
        return samples

    def count_kept(self) -> int:
        from flightcache.valkey_client import primaries

        return sum(
            1
            for node in primaries(self.cache.valkey)
            for _ in node.scan_iter(match=self.cache.keys.match(), count=1000)
        )


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Read the bookings, set a small maxmemory, then fill and replay under each policy."""
    from flightcache.patterns.eviction import BookingCache
    from flightcache.valkey_client import primaries

    options: Options = ctx.options
    nodes = primaries(ctx.valkey)
    for node in nodes:
        if node is not ctx.valkey:
            ctx.tracer.instrument(node)  # a cluster's CONFIG SET and INFO go to each primary
    records = yield from _read_bookings(ctx, options.keys)
    limits, maxmemory = yield from _settings_now(ctx, nodes, options.maxmemory)

    order = list(records)
    random.Random(options.seed).shuffle(order)  # fill in random order, so fill age is not rank
    plan = ReplayPlan(order, _stream(order, options), maxmemory)
    replay = EvictionReplay(BookingCache(ctx.valkey, ctx.keys, records))
    results: list[PolicyResult] = []
    ctx.on_exit(limits.restore)
    try:
        for policy in options.policies:
            result = PolicyResult(policy)
            yield from _run_policy(ctx, nodes, limits, plan, replay, result)
            results.append(result)
    finally:
        limits.restore()
    yield from _put_back(ctx, nodes, limits)
    yield from _summary(ctx, records, results)


@dataclass(frozen=True)
class ReplayPlan:
    """The same for every policy: the fill order, the reads and the memory limits."""

    order: list[int]
    stream: list[int]
    maxmemory: list[int]  # per primary


def _stream(order: Sequence[int], options: Options) -> list[int]:
    """The reads: Zipf ranks over the bookings, the hottest chosen by a seeded shuffle."""
    from flightcache.measure.zipf import zipf_ranks

    hot = list(order)
    random.Random(options.seed + 1).shuffle(hot)
    return [hot[r] for r in zipf_ranks(len(hot), options.skew, options.requests, options.seed)]


def _read_bookings(ctx: DemoContext, count: int) -> Generator[Record, None, dict[int, str]]:
    from flightcache import sqlfiles

    with ctx.step(
        "Read the bookings to cache",
        "one JSON value per booking, fetched once, so the replays time Valkey only",
    ) as step:
        result = ctx.db.fetch(sqlfiles.query(ctx.db.dialect, "booking_records"), {"limit": count})
        records = {
            int(row[0]): json.dumps(
                dict(zip(result.columns, row, strict=True)), default=str, separators=(",", ":")
            )
            for row in result.rows
        }
        if not records:
            raise DataError("the booking table is empty", hint="run `flightcache data load`")
        size = sum(len(v) for v in records.values())
        step.rows = len(records)
        step.bytes = size
        step.outcome = f"{len(records):,} bookings, {size / len(records):.0f} bytes of JSON each"
    yield step
    return records


def _settings_now(
    ctx: DemoContext, nodes: Sequence[Any], wanted: int | None
) -> Generator[Record, None, tuple[MemoryLimits, list[int]]]:
    from flightcache.patterns.eviction import MemoryLimits, limits_for, mib

    with ctx.step(
        "Look at the server's memory settings",
        "the demo changes them on every primary and puts them back at the end",
    ) as step:
        limits = MemoryLimits(nodes, ctx.undo)
        maxmemory = limits_for(nodes, wanted)
        current = ", ".join(
            f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in limits.saved
        )
        step.outcome = (
            f"now: maxmemory {current}; for the demo: maxmemory "
            f"{', '.join(mib(m) for m in maxmemory)}"
            + (" (one per primary)" if len(nodes) > 1 else "")
        )
        step.data = {"saved": limits.saved, "maxmemory": maxmemory}
    yield step
    return limits, maxmemory


def _run_policy(
    ctx: DemoContext,
    nodes: Sequence[Any],
    limits: MemoryLimits,
    plan: ReplayPlan,
    replay: EvictionReplay,
    result: PolicyResult,
) -> Iterator[Record]:
    from flightcache.patterns.eviction import mib, total
    from flightcache.valkey_client import delete_matching

    policy = result.policy
    with ctx.step(
        f"{policy}: fill {len(plan.order):,} keys, then replay {len(plan.stream):,} reads",
        WHY.get(policy, ""),
    ) as step:
        with ctx.tracer.paused():
            delete_matching(ctx.valkey, ctx.keys.match())
        limits.apply(plan.maxmemory, policy)
        evicted_before = total(nodes, "stats", "evicted_keys")
        with ctx.tracer.paused():
            replay.fill(plan.order, result)
            replay.replay(plan.stream, result)
            result.latencies = replay.read_latencies(plan.stream[: ctx.repeat])
            result.kept = replay.count_kept()
        result.evicted = total(nodes, "stats", "evicted_keys") - evicted_before
        result.used_memory = total(nodes, "memory", "used_memory")
        step.outcome = (
            f"hit ratio {result.ratio:.1%}; {result.evicted:,} keys evicted; "
            f"{result.oom:,} writes refused (OOM); {result.kept:,} keys kept; "
            f"used_memory {mib(result.used_memory)}"
        )
        step.data = result.as_dict()
    yield step


def _put_back(ctx: DemoContext, nodes: Sequence[Any], limits: MemoryLimits) -> Iterator[Record]:
    from flightcache.patterns.eviction import SETTINGS
    from flightcache.valkey_client import config_value, delete_matching

    with ctx.step("Put the settings back", "as they were before the demo") as step:
        with ctx.tracer.paused():
            delete_matching(ctx.valkey, ctx.keys.match())
        now = [{name: config_value(node, name) for name in SETTINGS} for node in nodes]
        step.ok = now == limits.saved
        step.outcome = ", ".join(f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in now)
        step.data = {"settings": now}
    yield step


def _summary(
    ctx: DemoContext,
    records: dict[int, str],
    results: list[PolicyResult],
) -> Iterator[Record]:
    from flightcache.demos.base import Table, Timing
    from flightcache.measure.timing import Stats
    from flightcache.patterns.eviction import KEY_TTL, mib

    options: Options = ctx.options
    size = sum(len(v) for v in records.values())
    yield Table(
        "Eviction policies, same keys, same request stream",
        ["policy", "hit ratio %", "evicted_keys", "OOM errors", "keys kept", "used_memory"],
        [
            [
                r.policy,
                round(100 * r.ratio, 1),
                r.evicted,
                r.oom,
                r.kept,
                mib(r.used_memory),
            ]
            for r in results
        ],
        note=f"{len(records):,} keys of ~{size / len(records):.0f} bytes JSON,"
        f" {options.requests:,} reads, Zipf s={options.skew}, seed {options.seed}; every key"
        f" has EX {KEY_TTL}, so volatile-* may evict any",
    )
    if results:
        yield Timing(
            "Read latency at maxmemory, per policy (GET; on a miss SET, which may evict)",
            [Stats.of(r.policy, r.latencies) for r in results if r.latencies],
            note=f"the first {ctx.repeat:,} reads of the stream replayed once more after each "
            "policy's run, one at a time; the policies run one after another, not interleaved, "
            "so compare them on a quiet machine",
        )


WHY: dict[str, str] = {
    "noeviction": "nothing is evicted: once memory is full, every write is refused (OOM)",
    "allkeys-lru": "evicts the key least recently used, from a sample of keys",
    "allkeys-lfu": "evicts the key least frequently used: hot keys keep their place",
    "volatile-lru": "like allkeys-lru, but only among keys with a TTL",
    "volatile-lfu": "like allkeys-lfu, but only among keys with a TTL",
    "volatile-ttl": "evicts the key closest to expiring, among keys with a TTL",
    "volatile-random": "evicts a random key with a TTL",
    "allkeys-random": "evicts a random key: popularity plays no part",
}
"""One line per policy: what it evicts."""
