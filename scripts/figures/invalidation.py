"""What invalidation and memory pressure cost, with the code the demos narrate.

    .venv/bin/python scripts/figures invalidation [--sizes 10,100,1000,10000] [--runs 15]

On a scratch Valkey (one node) and a scratch 3-node cluster, and each database
(the tiny dataset by default). Reports:

- invalidation: a tag with N members, from INCR of the epoch through the SPOPs
  to the last DEL (Invalidator.invalidate), p50 and p95 per N, one node and
  cluster; and a by-name invalidation of the two keys a booking affects;
- a miss through TaggedCache (GET, GET epoch, SELECT, SET, SADD + PEXPIRE per
  flight shown, GET epoch) beside a plain cache-aside miss and a hit;
- memory pressure: how many booking rows fit under maxmemory = used_memory +
  --headroom, per layout (JSON string, hash), and per eviction policy what a
  second round of as many writes does: accepted, refused (OOM), evicted_keys,
  the rows kept and their median TTL left (Filler, as `flightcache memory-pressure`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from figures.shared import KEY_PREFIX, Figure, Setup
from flightcache.demos.invalidation import Scene
from flightcache.demos.memory_pressure import Filler, FillResult, kept_and_median_ttl
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare, percentile
from flightcache.named_queries import bind, get
from flightcache.patterns.cache_aside import CacheAside
from flightcache.patterns.eviction import MemoryLimits, mib, parse_size, total
from flightcache.patterns.invalidation import Invalidator, TaggedCache, bookings_of
from flightcache.patterns.ttl import Jitter
from flightcache.sqlfiles import query
from flightcache.valkey_client import close, delete_matching, info, primaries
from flightcache.valkey_client import connect as valkey_connect

POLICIES = ("noeviction", "allkeys-lru", "volatile-ttl", "allkeys-lfu", "allkeys-random")


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


def tag_cost(client: Any, keys: Keys, n: int, runs: int, *, one_unlink: bool = False) -> Stats:
    """Invalidate a tag of ``n`` members, ``runs`` times; each run refills it first.

    ``one_unlink``: instead of Invalidator (one DEL per member, each reported), SPOP
    and a single multi-key UNLINK, which only one node (or one slot) allows.
    """
    members = [keys.query("bench", {"n": i}) for i in range(n)]
    invalidator = Invalidator(client, keys)
    samples = []
    for _ in range(runs):
        for start in range(0, n, 1000):
            pipe = client.pipeline(transaction=False)
            for key in members[start : start + 1000]:
                pipe.set(key, "x" * 200, ex=600)
                pipe.sadd(keys.tag("bench"), key)
            pipe.execute()
        t0 = time.perf_counter_ns()
        if one_unlink:
            client.incr(keys.invalidation_epoch())
            popped = client.spop(keys.tag("bench"), n)
            gone = client.unlink(*popped)
        else:
            gone = len(invalidator.invalidate(tags=["bench"]).deleted)
        samples.append(time.perf_counter_ns() - t0)
        assert gone == n, (gone, n)
    return Stats.of(f"tag of {n:,}", samples)


def bench_invalidation(label: str, client: Any, args: argparse.Namespace) -> None:
    keys = Keys(KEY_PREFIX).scope("invalidation")
    print(f"\ninvalidation, {label}")
    for n in args.sizes:
        s = tag_cost(client, keys, n, args.runs)
        print(
            f"  tag with {n:>6,} members: p50 {ms(s.p50)}, p95 {ms(s.p95)}"
            f" ({s.p50 / n / 1000:.2f} µs per member at p50, n={s.n})"
        )
        if label == "one node":
            u = tag_cost(client, keys, n, args.runs, one_unlink=True)
            print(
                f"      SPOP + one UNLINK of all: p50 {ms(u.p50)}, p95 {ms(u.p95)}"
                f" ({u.p50 / n / 1000:.2f} µs per member)"
            )
    invalidator = Invalidator(client, keys)
    pair = [keys.query("bench", {"k": 1}), keys.query("bench", {"k": 2})]
    samples = []
    for _ in range(args.runs * 20):
        for key in pair:
            client.set(key, "x", ex=600)
        t0 = time.perf_counter_ns()
        invalidator.invalidate(keys=pair)
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    print(
        f"  by name, 2 keys (a booking): p50 {ms(percentile(samples, 50))},"
        f" p95 {ms(percentile(samples, 95))} (n={len(samples)})"
    )
    delete_matching(client, keys.match())


def bench_reads(db: Any, client: Any, args: argparse.Namespace) -> None:
    keys = Keys(KEY_PREFIX).scope("reads")
    scene = Scene.find(db, None, None)
    spec = bookings_of(scene.booker)
    tagged = TaggedCache(client, db, keys, Jitter(10, 1), ttl_s=600)
    plain = CacheAside(client, db, keys.scope("plain"), ttl=600)
    q = get("passenger_bookings")
    params = bind(db, q, {"passenger_id": str(scene.booker)})
    key, plain_key = tagged.key(*spec), plain.key(q, params)
    shown = len(tagged.get(*spec).tags)

    def tagged_miss() -> Any:
        client.delete(key)
        return tagged.get(*spec)

    def plain_miss() -> Any:
        client.delete(plain_key)
        return plain.get(q, params)

    stats = compare(
        {
            "plain cache-aside miss": plain_miss,
            "tagged miss, re-check": tagged_miss,
            "tagged hit": lambda: tagged.get(*spec),
        },
        repeat=args.runs * 10,
        warmup=5,
    )
    print(f"  passenger {scene.booker}'s bookings ({shown} flights, so {shown} tag sets):")
    for s in stats:
        print(f"    {s.label:<24} p50 {ms(s.p50)}, p95 {ms(s.p95)} (n={s.n})")
    delete_matching(client, keys.match())


def bench_memory(db: Any, client: Any, args: argparse.Namespace) -> None:
    found = db.fetch(query(db.dialect, "booking_records"), {"limit": 20_000})
    records = [dict(zip(found.columns, row, strict=True)) for row in found.rows]
    keys = Keys(KEY_PREFIX).scope("memory")
    limits = MemoryLimits([client], None)  # no undo record: restored in the finally below
    nodes = primaries(client)
    try:
        for layout in ("json", "hash"):
            delete_matching(client, keys.match())
            used = int(info(client, "memory")["used_memory"])
            limit = used + args.headroom
            limits.apply([limit], "noeviction")
            filler = Filler(client, keys, records, layout)
            fill = FillResult("noeviction", layout)
            filler.until_full(fill)
            per_row = args.headroom / fill.written
            print(
                f"  {layout:<4}: {fill.written:,} rows fit in {mib(args.headroom)} above"
                f" used_memory ({per_row:.0f} bytes per row, {fill.oom:,} refused)"
            )
            if layout != "json":
                continue
            for policy in POLICIES:
                limits.apply([limit], policy)
                result = FillResult(policy, layout)
                before = total(nodes, "stats", "evicted_keys")
                filler.write(fill.written, result)
                result.evicted = total(nodes, "stats", "evicted_keys") - before
                kept, median = kept_and_median_ttl(nodes, keys)
                print(
                    f"    then {policy:<14} {fill.written:,} more writes: {result.written:,}"
                    f" accepted, {result.oom:,} refused, evicted_keys +{result.evicted:,},"
                    f" {kept:,} rows kept, median TTL left {median} s"
                )
    finally:
        limits.restore()
        delete_matching(client, keys.match())


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    args.sizes = [int(n) for n in args.sizes.split(",")]
    args.headroom = parse_size(args.headroom)
    one, three = setup.valkey(), setup.valkey(3)
    single, cluster = valkey_connect(one), valkey_connect(three)
    print(f"Valkey {one} (one node), {three} (3-node cluster)")
    bench_invalidation("one node", single, args)
    bench_invalidation("3-node cluster", cluster, args)
    for kind in setup.kinds():
        db = setup.open(kind)
        try:
            print(f"\n{kind} ({db.server_version()}), {args.scale} dataset")
            bench_reads(db, single, args)
            print(f"  memory pressure, one node, maxmemory = used_memory + {mib(args.headroom)}")
            bench_memory(db, single, args)
        finally:
            db.close()
    close(single)
    close(cluster)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--headroom", default="4mb", help="maxmemory above used_memory")


FIGURES = [
    Figure(
        "invalidation",
        "`flightcache invalidate` and `memory-pressure`: tag invalidation, tagged reads, maxmemory",
        run,
        arguments,
    )
]
