"""Measure the figures of `flightcache hit-ratio` and `flightcache eviction`.

Runs both demos with --json against the configured servers (FLIGHTCACHE_DB_URL,
FLIGHTCACHE_VALKEY_URL or the embedded stack) and prints, per run: wall time,
the miss/hit latencies, hit ratios of the skew x TTL grid, and per policy the hit
ratio, evicted keys and OOM refusals.

    .venv/bin/python scripts/bench_hit_eviction.py [--requests 5000] [--yes]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any


def run(*args: str) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flightcache", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return json.loads(proc.stdout), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--yes", action="store_true", help="pass --yes to eviction")
    opts = parser.parse_args()

    doc, wall = run("hit-ratio", "--requests", str(opts.requests))
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

    extra = ["--yes"] if opts.yes else []
    doc, wall = run("eviction", "--requests", str(opts.requests), *extra)
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


if __name__ == "__main__":
    main()
