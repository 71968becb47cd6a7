"""Measure the stampede figures: database queries per expiry under each defence.

    .venv/bin/python scripts/bench_stampede.py [--clients 50] [--rebuild-ms 200]
        [--expiries 3] [--cluster]

For each of MariaDB and PostgreSQL (this machine's, or --mysql/--pg URLs) it loads
the generated dataset into a throwaway database (fc_bench_stampede, dropped at the
end), starts a private Valkey (with --cluster also a 3-node cluster), runs
`flightcache stampede --json` (the demo's own code) and prints, per defence, the
database queries of each expiry, read latency p50/p99/max, stale reads and errors.

The issue's figure: with 50 clients and a 200 ms rebuild, the lock and XFetch (with
the lock) cause at most 1 database query per expiry; and how many the undefended
case causes.
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
from flightcache.patterns.stampede import AT_MOST_ONE
from flightcache.stack.valkey import scratch_valkey


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:9.2f} ms"


def run(exe: str, db: str, valkey: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        exe,
        "--db-url",
        db,
        "--valkey-url",
        valkey,
        "--key-prefix",
        "fcbench:",
        "stampede",
        "--clients",
        str(args.clients),
        "--rebuild-ms",
        str(args.rebuild_ms),
        "--expiries",
        str(args.expiries),
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:1] + cmd[5:])} failed ({proc.returncode}): {proc.stderr}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def report(label: str, doc: dict[str, Any]) -> bool:
    steps = [r for r in doc["records"] if r["type"] == "step"]
    per = [s["data"] for s in steps if "defence" in s["data"]]
    print(f"\n== {label}")
    print(
        f"  {'defence':<12} {'queries per expiry':<20} {'reads':>6} {'p50':>12} {'p99':>12}"
        f" {'max':>12} {'stale':>6} {'errors':>6}"
    )
    ok = True
    for d in per:
        print(
            f"  {d['defence']:<12} {', '.join(map(str, d['queries_per_expiry'])):<20}"
            f" {d['reads']:>6} {_ms(d['p50_ns'])} {_ms(d['p99_ns'])} {_ms(d['max_ns'])}"
            f" {d['stale_reads']:>6} {d['errors']:>6}"
        )
        if d["defence"] in AT_MOST_ONE and d["max_queries_per_expiry"] > 1:
            ok = False
        ok = ok and d["errors"] == 0
    faults = [s for s in steps if "defence" not in s["data"] and s["title"][0] == "A"]
    for s in faults:
        print(f"  fault: {s['title']}: {'ok' if s['ok'] else 'FAILED'}: {s['outcome']}")
        ok = ok and s["ok"]
    none = next(d for d in per if d["defence"] == "none")
    lock = next(d for d in per if d["defence"] == "lock")
    xfl = next(d for d in per if d["defence"] == "xfetch+lock")
    xf = next(d for d in per if d["defence"] == "xfetch")
    print(
        f"  figure: lock max {lock['max_queries_per_expiry']}, xfetch+lock max"
        f" {xfl['max_queries_per_expiry']} queries per expiry (target <= 1); xfetch alone max"
        f" {xf['max_queries_per_expiry']}; undefended {none['queries_per_expiry']}"
        f" -> {'OK' if ok else 'MISSED'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rebuild-ms", type=int, default=200)
    parser.add_argument("--expiries", type=int, default=3)
    parser.add_argument("--scale", default="tiny", help="the rebuild reads airline and airplane")
    parser.add_argument("--cluster", action="store_true", help="also on a 3-node cluster")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_stampede")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_stampede")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "flightcache")
    ok = True
    with contextlib.ExitStack() as stack:
        single = stack.enter_context(scratch_valkey(prefix="fc-bench-st-"))
        valkeys = [("one node", single.url.url(redact=False))]
        if args.cluster:
            cluster = stack.enter_context(scratch_valkey(3, prefix="fc-bench-st-cluster-"))
            valkeys.append(("3-node cluster", cluster.url.url(redact=False)))
        for raw in (args.mysql, args.pg):
            url = DbUrl.parse(raw)
            conn = connect(url, create=True)
            try:
                load_generated(conn, args.scale, 1, replace=True, force=True)
                version = conn.server_version()
            finally:
                conn.close()
            try:
                for where, valkey in valkeys:
                    t0 = time.perf_counter()
                    doc = run(exe, raw, valkey, args)
                    label = (
                        f"{url.kind} {version}, Valkey {where}: {args.clients} clients,"
                        f" {args.rebuild_ms} ms rebuild, {args.expiries} expiries"
                        f" ({time.perf_counter() - t0:.0f} s)"
                    )
                    ok = report(label, doc) and ok
            finally:
                drop_database(url)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
