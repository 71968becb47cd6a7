"""A cache-aside hit against the bare GET it is built on, for values of ~0.5, 1, 2, 4 KB.

The values are real ones: passenger_bookings results, one passenger per size, picked
from a sample of the loaded dataset by the size of their cached JSON. Each round
times, interleaved in one run (flightcache.measure.timing.compare), valkey-py's GET
of each value and CacheAside.get of the same query, a hit; it prints each size's
p50s and their ratio, then each ratio's median over the rounds, with the load
average before and after, since the ratio moves with how busy the machine is.

    .venv/bin/python scripts/bench_hit_floor.py --db-url postgresql://postgres@127.0.0.1/fc
    .venv/bin/python scripts/bench_hit_floor.py --rounds 5 --repeat 3000 --sizes 512,4096

The database must hold a dataset (`flightcache data load`); Valkey is a scratch one
started for the run unless --valkey-url names one (the run's keys are deleted after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flightcache.bench.scenarios import by_size
from flightcache.config import DbUrl, ValkeyUrl
from flightcache.db import connect
from flightcache.keys import Keys
from flightcache.measure.timing import compare
from flightcache.named_queries import get
from flightcache.patterns.cache_aside import CacheAside


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


@contextmanager
def valkey_url(given: str | None) -> Iterator[ValkeyUrl]:
    if given:
        yield ValkeyUrl.parse(given)
        return
    from flightcache.stack.valkey import scratch_valkey

    with scratch_valkey(prefix="fc-hit-floor-") as scratch:
        yield scratch.url


def run(args: argparse.Namespace) -> None:
    from flightcache.valkey_client import close
    from flightcache.valkey_client import connect as valkey_connect

    targets = [int(s) for s in args.sizes.split(",")]
    db = connect(DbUrl.parse(args.db_url))
    q = get("passenger_bookings")
    with valkey_url(args.valkey_url) as url:
        client = valkey_connect(url)
        pattern = CacheAside(client, db, Keys(args.key_prefix), ttl=3600)
        chosen: dict[int, tuple[dict[str, Any], int]] = {}
        try:
            chosen = dict(zip(targets, by_size(db, q, tuple(targets)), strict=True))
            contenders = {}
            for params, size in chosen.values():
                if not pattern.get(q, params).stored:  # a miss now, so the timed reads hit
                    sys.exit(f"could not cache the {size:,}-byte value: is Valkey full?")
                key = pattern.key(q, params)
                contenders[f"GET {size}"] = lambda key=key: client.get(key)
                contenders[f"hit {size}"] = lambda params=params: pattern.get(q, params)
            print(f"{db.dialect} {db.server_version()}, Valkey {url.address}")
            print(f"values: {', '.join(f'{s:,} B' for _, s in chosen.values())}; {load()}")
            ratios: dict[int, list[float]] = {size: [] for _, size in chosen.values()}
            for round_no in range(1, args.rounds + 1):
                stats = {s.label: s for s in compare(contenders, repeat=args.repeat, warmup=50)}
                cells = []
                for size in ratios:
                    got, hit = stats[f"GET {size}"], stats[f"hit {size}"]
                    if not hit.p50:
                        continue
                    ratios[size].append(hit.p50 / got.p50)
                    cells.append(
                        f"{size:,} B: GET {got.p50 / 1e3:.1f} µs, hit {hit.p50 / 1e3:.1f} µs,"
                        f" {hit.p50 / got.p50:.2f}x"
                    )
                print(f"round {round_no}: " + " | ".join(cells) + f"; {load()}")
            print(
                "median hit/GET p50 over the rounds: "
                + ", ".join(f"{size:,} B {statistics.median(r):.2f}x" for size, r in ratios.items())
            )
        finally:
            for params, _ in chosen.values():
                client.delete(pattern.key(q, params))
            close(client)
            db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db-url",
        default=os.environ.get(
            "FLIGHTCACHE_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a database holding a dataset (default: FLIGHTCACHE_DB_URL)",
    )
    parser.add_argument("--valkey-url", default=None, help="default: a scratch Valkey")
    parser.add_argument("--key-prefix", default="fc-hit-floor:")
    parser.add_argument("--sizes", default="512,1024,2048,4096", help="bytes, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2000, help="samples per contender a round")
    args = parser.parse_args()
    if args.rounds < 1 or args.repeat < 1:
        parser.error("--rounds and --repeat must be at least 1")
    run(args)


if __name__ == "__main__":
    main()
