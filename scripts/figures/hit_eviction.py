"""The figures of `flightcache hit-ratio` and `flightcache eviction`.

Runs both demos with --json (the demos' own code), on each database, and prints
per run: wall time, the miss/hit latencies, hit ratios of the skew x TTL grid,
and per policy the hit ratio, evicted keys and OOM refusals.

    .venv/bin/python scripts/figures hit-eviction [--requests 5000] [--yes]

The eviction demo changes maxmemory: on the scratch Valkey it runs as is; on a
Valkey given by --valkey-url only with --yes.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from figures.shared import Figure, Setup
from flightcache.config import DbUrl, ValkeyUrl


def measure(setup: Setup, db: DbUrl, valkey: ValkeyUrl, *args: str) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    doc = setup.json_of(db, valkey, *args, "--json")
    return doc, time.perf_counter() - t0


def hit_ratio(setup: Setup, db: DbUrl, valkey: ValkeyUrl, requests: int) -> None:
    doc, wall = measure(setup, db, valkey, "hit-ratio", "--requests", str(requests))
    print(f"hit-ratio: {wall:.1f} s wall, database {doc['database']}, valkey {doc['valkey']}")
    for record in doc["records"]:
        if record["type"] == "timing":
            for s in record["series"]:
                p50, p99 = s["p50"] / 1000, s["p99"] / 1000
                print(f"  {s['label']:<24} p50 {p50:8.1f} µs  p99 {p99:8.1f} µs")
        elif record["type"] == "step" and "server" in record["data"]:
            d = record["data"]
            print(
                f"  replay: {record['elapsed_ns'] / 1e9:.2f} s for {d['requests']:,} requests,"
                f" ratio {d['hit_ratio']:.1%}, server delta {d['server']}"
            )
        elif record["type"] == "table" and record["title"].startswith("How skew"):
            for row in record["rows"]:
                print(f"  skew {row[0]:<4} ttl {row[1]:>3} s  hit ratio {row[-1]:5.1f}%")


def eviction(setup: Setup, db: DbUrl, valkey: ValkeyUrl, requests: int, yes: bool) -> None:
    extra = ["--yes"] if yes else []
    doc, wall = measure(setup, db, valkey, "eviction", "--requests", str(requests), *extra)
    print(f"eviction: {wall:.1f} s wall")
    for record in doc["records"]:
        if record["type"] == "step" and "policy" in record["data"]:
            d = record["data"]
            print(
                f"  {d['policy']:<15} {record['elapsed_ns'] / 1e9:5.2f} s"
                f"  ratio {d['hit_ratio']:6.1%}"
                f"  evicted {d['evicted_keys']:>6,}  OOM {d['oom_errors']:>6,}"
                f"  kept {d['keys_kept']:>6,}  used {d['used_memory'] / 2**20:.2f} MiB"
            )


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    valkey = setup.valkey()
    yes = args.yes or not args.valkey_url  # the scratch Valkey is ours to change
    for db in setup.databases():
        print(f"\n== {db.kind}")
        hit_ratio(setup, db, valkey, args.requests)
        eviction(setup, db, valkey, args.requests, yes)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--yes", action="store_true", help="pass --yes to eviction")


FIGURES = [
    Figure(
        "hit-eviction",
        "`flightcache hit-ratio` and `flightcache eviction`: latencies, hit ratios, policies",
        run,
        arguments,
        scale="workshop",
    )
]
