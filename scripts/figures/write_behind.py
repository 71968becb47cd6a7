"""How fast does the write-behind worker drain its queue into each database?

On each database: queue --writes bookings over 500 flights (pipelined Lua
scripts), then time `flightcache write-behind worker --once --batch N --json` in
a child process, and check that the database total equals the accepted seats.
The run's queue rows are removed from the shared database afterwards.

    .venv/bin/python scripts/figures write-behind --writes 200000 --batch 2000

Figures: "worker entries/s" is the worker's own count over its own run time
(recovery pass included, Python start-up excluded); "wall" is the child process
from start to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import time
import uuid

from figures.shared import KEY_PREFIX, Figure, Setup
from flightcache.config import ValkeyUrl
from flightcache.demos.write_behind import worker_command
from flightcache.keys import Keys
from flightcache.patterns import write_behind
from flightcache.valkey_client import close, delete_matching
from flightcache.valkey_client import connect as valkey_connect


def bench_one(
    setup: Setup, kind: str, valkey_url: ValkeyUrl, writes: int, batch: int
) -> dict[str, object]:
    url = setup.database(kind)
    prefix = f"{KEY_PREFIX}{uuid.uuid4().hex[:6]}:"
    db = setup.open(kind)
    client = valkey_connect(valkey_url)
    keys = Keys(prefix).scope("write-behind")
    try:
        version = db.server_version()
        pattern = write_behind.WriteBehind(client, db, keys)
        pattern.ensure_groups()
        pattern.preload_flights()
        flights = sorted(pattern.known_flights)[:500]
        rng = random.Random(1)
        bookings = [(rng.choice(flights), rng.randint(1, 4)) for _ in range(writes)]
        t0 = time.perf_counter()
        pattern.book_many(bookings)
        enqueue_s = time.perf_counter() - t0
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTCACHE_")}
        env["FLIGHTCACHE_CONFIG"] = "/nonexistent/flightcache.toml"
        command = worker_command(
            batch,
            "bench",
            [
                *("--db-url", url.url(redact=False)),
                *("--valkey-url", valkey_url.url(redact=False)),
                *("--key-prefix", prefix),
            ],
        )
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"worker failed on {kind}: {done.stderr.strip()}")
        report = json.loads(done.stdout)
        total = write_behind.db_total(db, keys.prefix)
        return {
            "database": f"{kind} {version}",
            "writes": writes,
            "enqueue writes/s": round(writes / enqueue_s),
            "batch": batch,
            "applied": report["applied"],
            "worker s": round(report["seconds"], 2),
            "worker entries/s": round(report["rate"]),
            "wall s": round(wall, 2),
            "db total == accepted": total == pattern.accepted_seats,
        }
    finally:
        write_behind.forget(db, keys.prefix)
        delete_matching(client, Keys(prefix).match())
        close(client)
        db.close()


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    valkey_url = setup.valkey()
    results = [
        bench_one(setup, kind, valkey_url, args.writes, args.batch) for kind in setup.kinds()
    ]
    for row in results:
        print(json.dumps(row))
    print()
    columns = list(results[0])
    print(" | ".join(columns))
    for row in results:
        print(" | ".join(str(row[c]) for c in columns))
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--writes", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)


FIGURES = [
    Figure(
        "write-behind",
        "`flightcache write-behind worker`: how fast the queue drains into each database",
        run,
        arguments,
    )
]
