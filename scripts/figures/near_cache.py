"""How stale a near cache gets, how fast its hit is, and what its copies weigh.

    .venv/bin/python scripts/figures near-cache [--writes 10000] [--readers 3] [--think-us 100]

On the scratch one-node Valkey and each database (the small dataset: 12,000 passengers,
so 10,000 distinct results exist). With the pattern's own NearCache:

- staleness: one writer SETs new versions of ``--keys`` cached results (each row carries
  the version), ``--readers`` threads read them through the near cache, pausing
  ``--think-us`` between reads (Event.wait: no spinning thread holds the GIL). Per
  write: the time from the SET returning to the near cache's store dropping the key
  (the invalidation delay) and to a reader first being served the new version; and
  the reads that returned a version older than one whose invalidation the store had
  already applied (must be 0). The writer waits for both before the next write, so
  every write is tracked and heard (default mode tracks a key again once it is read);
- hits: the near-cache hit, the cache-aside hit and a bare GET of one of those results,
  interleaved in one run (measure.timing.compare);
- memory: ``--results`` passengers' bookings kept in the local store (tracemalloc)
  against MEMORY USAGE of the same keys in Valkey.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from figures.shared import KEY_PREFIX, Figure, Setup, each_database
from flightcache.demos.near_cache import weigh
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.named_queries import get
from flightcache.patterns.cache_aside import CacheAside
from flightcache.patterns.near_cache import MODES, NearCache
from flightcache.sqlfiles import query
from flightcache.valkey_client import delete_matching

BOOKINGS = get("passenger_bookings")


@dataclass
class Race:
    """The shared state of one staleness run."""

    keys: list[str]
    pending: dict[str, int]  # key -> the version being written (set before its SET)
    floor: dict[str, int]  # key -> the newest version whose invalidation was applied
    want: tuple[str, int] = ("", 0)  # the write the writer waits on
    dropped_ns: int = 0
    seen_ns: int = 0
    dropped: threading.Event = field(default_factory=threading.Event)
    seen: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: int = 0
    from_memory: int = 0
    stale: int = 0
    flushes: int = 0

    def on_invalidate(self, names: list[str] | None) -> None:
        """The store's hook: runs after the store dropped ``names`` (None: a flush)."""
        now = time.perf_counter_ns()
        if names is None:
            self.flushes += 1
            return
        for name in names:
            if name in self.pending:
                self.floor[name] = max(self.floor[name], self.pending[name])
            if name == self.want[0] and not self.dropped.is_set():
                self.dropped_ns = now
                self.dropped.set()

    def saw(self, key: str, version: int) -> None:
        with self.lock:
            if (key, version) == self.want and not self.seen.is_set():
                self.seen_ns = time.perf_counter_ns()
                self.seen.set()


def versioned(doc: dict[str, Any], version: int) -> str:
    """A cached result whose every row ends with ``version``."""
    rows = [[*row, version] for row in doc["rows"]]
    return json.dumps({"columns": [*doc["columns"], "version"], "rows": rows}, default=str)


def with_rows(aside: CacheAside, db: Any, wanted: int) -> list[dict[str, int]]:
    """Parameter sets of passengers with at least one booking, cached in Valkey."""
    found = db.fetch(query(db.dialect, "candidate_passengers"), {"limit": 50 * wanted})
    chosen = []
    for (pid,) in found.rows:
        params = {"passenger_id": int(pid)}
        if aside.get(BOOKINGS, params).rows:
            chosen.append(params)
            if len(chosen) == wanted:
                return chosen
    raise SystemExit(f"fewer than {wanted} passengers with bookings")


def reader(
    near: NearCache, race: Race, params: list[dict[str, int]], think_s: float, seed: int
) -> None:
    rng = random.Random(seed)
    while not race.done.is_set():
        n = rng.randrange(len(params))
        key = race.keys[n]
        before = race.floor[key]
        got = near.get(BOOKINGS, params[n])
        version = int(got.rows[0][-1])
        race.reads += 1
        race.from_memory += got.from_memory
        if version < before:
            race.stale += 1
        race.saw(key, version)
        race.done.wait(think_s)


def staleness(near: NearCache, client: Any, db: Any, args: argparse.Namespace) -> dict[str, Any]:
    aside = CacheAside(client, db, near.keys)
    params = with_rows(aside, db, args.keys)
    keys = [near.key(BOOKINGS, p) for p in params]
    docs = [json.loads(client.get(k)) for k in keys]
    for key, doc in zip(keys, docs, strict=True):
        client.set(key, versioned(doc, 0), ex=3600)
    race = Race(keys, dict.fromkeys(keys, 0), dict.fromkeys(keys, 0))
    near.store.on_invalidate = race.on_invalidate
    threads = [
        threading.Thread(target=reader, args=(near, race, params, args.think_us / 1e6, seed))
        for seed in range(args.readers)
    ]
    for t in threads:
        t.start()
    delays, seen, early, unheard, unseen = [], [], 0, 0, 0
    try:
        time.sleep(0.2)  # every key read (and tracked) once
        for i in range(1, args.writes + 1):
            n = i % len(keys)
            race.dropped.clear()
            race.seen.clear()
            race.want = (keys[n], i)
            race.pending[keys[n]] = i
            client.set(keys[n], versioned(docs[n], i), ex=3600)
            returned = time.perf_counter_ns()
            if race.dropped.wait(1.0):
                early += race.dropped_ns < returned
                delays.append(max(0, race.dropped_ns - returned))
            else:
                unheard += 1
            if race.seen.wait(1.0):
                seen.append(max(0, race.seen_ns - returned))
            else:
                unseen += 1
    finally:
        race.done.set()
        for t in threads:
            t.join(10)
        near.store.on_invalidate = None
    return {
        "delay": Stats.of("invalidation delay", delays),
        "seen": Stats.of("new value seen", seen),
        "early": early,
        "unheard": unheard,
        "unseen": unseen,
        "race": race,
    }


def us(ns: float) -> str:
    return f"{ns / 1e3:,.1f} µs"


def measure(setup: Setup, kind: str, client: Any, args: argparse.Namespace) -> None:
    db = setup.open(kind)
    keys = Keys(KEY_PREFIX).scope("near-cache-figures")
    near = NearCache(client, db, keys, mode=args.mode, max_entries=max(10_000, args.results))
    try:
        assert near.wait_ready(10), "tracking did not come up"
        print(f"\n{kind}, {args.mode} tracking")
        found = staleness(near, client, db, args)
        race: Race = found["race"]
        d, s = found["delay"], found["seen"]
        print(
            f"  staleness over {args.writes:,} writes to {args.keys} keys, {args.readers} readers"
            f" (think {args.think_us:g} µs), {race.reads:,} reads"
            f" ({race.from_memory:,} from memory):"
        )
        print(
            f"    write returned -> store dropped the key: p50 {us(d.p50)}, p99 {us(d.p99)},"
            f" max {us(d.max)} ({found['early']:,} dropped before the SET's reply was read;"
            f" {found['unheard']} never heard)"
        )
        print(
            f"    write returned -> a reader served the new value: p50 {us(s.p50)},"
            f" p99 {us(s.p99)}, max {us(s.max)} ({found['unseen']} never seen)"
        )
        print(
            f"    reads older than an invalidation already applied: {race.stale}"
            f" (store flushes: {race.flushes})"
        )
        hits(near, client, db, keys, args)
        memory(near, client, db, args)
    finally:
        near.close()
        delete_matching(client, keys.match())
        db.close()


def hits(near: NearCache, client: Any, db: Any, keys: Keys, args: argparse.Namespace) -> None:
    aside = CacheAside(client, db, keys)
    params = with_rows(aside, db, 1)[0]
    key = near.key(BOOKINGS, params)
    near.get(BOOKINGS, params)
    size = len(client.get(key))
    before = near.store.counters.hits
    calls = [0]

    def near_hit() -> Any:
        calls[0] += 1
        return near.get(BOOKINGS, params)

    stats = compare(
        {
            "bare GET": lambda: client.get(key),
            "cache-aside hit": lambda: aside.get(BOOKINGS, params),
            "near-cache hit": near_hit,
        },
        repeat=args.repeat,
    )
    served = near.store.counters.hits - before
    print(f"  hits of one {size:,}-byte result, {args.repeat:,} samples each, interleaved:")
    for st in stats:
        print(
            f"    {st.label:<16} p50 {us(st.p50)}, p99 {us(st.p99)}"
            + (f"  ({st.speedup:,.1f}x the bare GET's speed)" if st.label != "bare GET" else "")
        )
    print(f"    near-cache calls served from memory: {served:,} of {calls[0]:,}")


def memory(near: NearCache, client: Any, db: Any, args: argparse.Namespace) -> None:
    found = db.fetch(query(db.dialect, "candidate_passengers"), {"limit": args.results})
    params = [{"passenger_id": int(r[0])} for r in found.rows]
    aside = CacheAside(client, db, near.keys)
    for p in params:
        aside.get(BOOKINGS, p)
    near.store.flush()
    kept, grown = weigh(near, BOOKINGS, params)
    keys = [near.key(BOOKINGS, p) for p in params]
    usage = 0
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key)
        usage += sum(int(u or 0) for u in pipe.execute())
    json_bytes = near.store.bytes
    print(
        f"  memory of {len(params):,} cached results ({kept:,} kept): Python heap"
        f" +{grown / 1e6:,.2f} MB ({grown / max(kept, 1):,.0f} B each), their JSON"
        f" {json_bytes / 1e6:,.2f} MB, MEMORY USAGE in Valkey {usage / 1e6:,.2f} MB"
        f" ({usage / max(len(keys), 1):,.0f} B each): {grown / max(usage, 1):.1f}x"
    )


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    each_database(setup, args, measure)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--writes", type=int, default=10_000, help="default 10,000")
    parser.add_argument("--keys", type=int, default=8, help="results written, default 8")
    parser.add_argument("--readers", type=int, default=3, help="reader threads, default 3")
    parser.add_argument("--think-us", type=float, default=100.0, help="between reads, µs")
    parser.add_argument("--mode", choices=MODES, default="default")
    parser.add_argument("--repeat", type=int, default=5000, help="hit samples, default 5,000")
    parser.add_argument("--results", type=int, default=10_000, help="weighed, default 10,000")


FIGURES = [
    Figure(
        "near-cache",
        "Advanced: near-cache staleness (write -> dropped -> seen), hit vs GET, memory",
        run,
        arguments,
        scale="small",
    )
]
