"""Measure `flightcache leaderboard compare`: the top N airports by GROUP BY vs ZREVRANGE.

    .venv/bin/python scripts/bench_leaderboard.py [--scale small] [--repeat 200] [--n 10]

Loads the generated dataset into throwaway databases (fc_bench_lb) on MySQL/MariaDB and
PostgreSQL, starts a Valkey of its own on a free port (or uses --valkey-url), runs
`leaderboard compare --json` on each, prints the agreement check, p50/p95/p99 and the
ratio of the p50s, and drops the databases.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flightcache.config import DbUrl
from flightcache.data.load import load_generated
from flightcache.db import connect, drop_database
from flightcache.stack.valkey import scratch_valkey


def _ms(ns: float) -> str:
    return f"{ns / 1e6:9.3f} ms"


def _compare(exe: str, db: str, valkey: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [exe, "--db-url", db, "--valkey-url", valkey, "--key-prefix", "fcbench:"]
    cmd += ["leaderboard", "compare", "--json", "--repeat", str(args.repeat), "--n", str(args.n)]
    cmd += ["--period", args.period]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="small")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--period", default="all")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_lb")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_lb")
    parser.add_argument("--valkey-url", default=None)
    parser.add_argument("--no-load", action="store_true", help="use the data already there")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the databases")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "flightcache")

    with contextlib.ExitStack() as stack:
        valkey = args.valkey_url or stack.enter_context(
            scratch_valkey(prefix="fc-bench-lb-")
        ).url.url(redact=False)
        for raw in (args.mysql, args.pg):
            url = DbUrl.parse(raw)
            if not args.no_load:
                conn = connect(url, create=True)
                try:
                    t0 = time.perf_counter()
                    load_generated(conn, args.scale, 1)
                    print(f"\n{url.kind}: {args.scale} loaded in {time.perf_counter() - t0:.1f} s")
                finally:
                    conn.close()
            try:
                doc = _compare(exe, raw, valkey, args)
                for record in doc["records"]:
                    if record["type"] == "step" and "agree" in record["title"]:
                        print(f"{url.kind} ({doc['database']}): {record['outcome']}")
                    if record["type"] == "timing":
                        print(record["title"])
                        for s in record["series"]:
                            print(
                                f"  {s['label']:<14} n={s['n']:<5} p50 {_ms(s['p50'])}"
                                f"  p95 {_ms(s['p95'])}  p99 {_ms(s['p99'])}"
                            )
                        sql, zset = record["series"]
                        print(
                            f"  ratio SQL/ZSET: p50 {sql['p50'] / zset['p50']:,.0f}x,"
                            f" p95 {sql['p95'] / zset['p95']:,.0f}x"
                        )
            finally:
                if not args.keep_db:
                    drop_database(url)


if __name__ == "__main__":
    main()
