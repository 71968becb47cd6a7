"""The stampede figures: database queries per expiry under each defence.

    .venv/bin/python scripts/figures stampede [--clients 50] [--rebuild-ms 200]
        [--expiries 3] [--cluster]

On each database, with a scratch Valkey (with --cluster also a 3-node cluster),
runs `flightcache stampede --json` (the demo's own code) and prints, per defence,
the database queries of each expiry, read latency p50/p99/max, stale reads and
errors. Exits 1 when a promise is missed.

The issue's figure: with 50 clients and a 200 ms rebuild, the lock and XFetch (with
the lock) cause at most 1 database query per expiry; and how many the undefended
case causes.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from figures.shared import Figure, Setup
from flightcache.patterns.stampede import AT_MOST_ONE


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:9.2f} ms"


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


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    valkeys = [("one node", setup.valkey())]
    if args.cluster:
        valkeys.append(("3-node cluster", setup.valkey(3)))
    ok = True
    for url in setup.databases():
        db = setup.open(url.kind)
        try:
            version = db.server_version()
        finally:
            db.close()
        for where, valkey in valkeys:
            t0 = time.perf_counter()
            doc = setup.json_of(
                url,
                valkey,
                *("stampede", "--clients", str(args.clients)),
                *("--rebuild-ms", str(args.rebuild_ms), "--expiries", str(args.expiries)),
                "--json",
            )
            label = (
                f"{url.kind} {version}, Valkey {where}: {args.clients} clients,"
                f" {args.rebuild_ms} ms rebuild, {args.expiries} expiries"
                f" ({time.perf_counter() - t0:.0f} s)"
            )
            ok = report(label, doc) and ok
    return 0 if ok else 1


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rebuild-ms", type=int, default=200)
    parser.add_argument("--expiries", type=int, default=3)
    parser.add_argument("--cluster", action="store_true", help="also on a 3-node cluster")


FIGURES = [
    Figure(
        "stampede",
        "`flightcache stampede`: database queries per expiry under each defence",
        run,
        arguments,
    )
]
