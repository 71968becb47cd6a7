"""Measure what invalidation and memory pressure cost, with the code the demos narrate.

    .venv/bin/python scripts/bench_invalidation.py [--sizes 10,100,1000,10000] [--runs 15]

Starts a private Valkey (one node) and a private 3-node cluster, and fresh
databases named fc_bench_inv on MariaDB and PostgreSQL (the tiny dataset; both
dropped at the end). Reports:

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
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flightcache.catalogue import bind, get
from flightcache.config import DbUrl
from flightcache.data.load import load_generated
from flightcache.db import connect, drop_database
from flightcache.demos.invalidation import Scene
from flightcache.demos.memory_pressure import Filler, FillResult, kept_and_median_ttl
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare, percentile
from flightcache.patterns.cache_aside import CacheAside
from flightcache.patterns.eviction import MemoryLimits, mib, parse_size, total
from flightcache.patterns.invalidation import Invalidator, TaggedCache, bookings_of
from flightcache.patterns.ttl import Jitter
from flightcache.sqlfiles import query
from flightcache.stack.valkey import scratch_valkey
from flightcache.valkey_client import close, delete_matching, info, primaries
from flightcache.valkey_client import connect as vconnect

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
    keys = Keys("fcbench:").scope("invalidation")
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
    keys = Keys("fcbench:").scope("reads")
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
    keys = Keys("fcbench:").scope("memory")
    limits = MemoryLimits([client], None)  # a scratch Valkey: nothing to record
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--headroom", default="4mb", help="maxmemory above used_memory")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_inv")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_inv")
    args = parser.parse_args()
    args.sizes = [int(n) for n in args.sizes.split(",")]
    args.headroom = parse_size(args.headroom)

    with (
        scratch_valkey(prefix="fc-bench-inv-") as one,
        scratch_valkey(3, prefix="fc-bench-inv-cluster-") as three,
    ):
        single, cluster = vconnect(one.url), vconnect(three.url)
        print(f"Valkey {one.url} (one node), {three.url} (3-node cluster)")
        bench_invalidation("one node", single, args)
        bench_invalidation("3-node cluster", cluster, args)
        for raw in (args.mysql, args.pg):
            url = DbUrl.parse(raw)
            db = connect(url, create=True)
            try:
                load_generated(db, "tiny", 1, replace=True, force=True)
                print(f"\n{url.kind} ({db.server_version()}), tiny dataset")
                bench_reads(db, single, args)
                print(
                    f"  memory pressure, one node, maxmemory = used_memory + {mib(args.headroom)}"
                )
                bench_memory(db, single, args)
            finally:
                db.close()
                drop_database(url)
        close(single)
        close(cluster)


if __name__ == "__main__":
    main()
