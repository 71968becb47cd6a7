"""Module 3's figures: `flightcache leaderboard compare` and `flightcache leaderboard bench`.

    .venv/bin/python scripts/figures leaderboard [--scale small] [--repeat 200] [--n 10]
    .venv/bin/python scripts/figures leaderboard-ops [--runs 5] [--seconds 3] [--cluster]

`leaderboard`: the top N airports by GROUP BY vs ZREVRANGE, on each database; prints
the agreement check, p50/p95/p99 and the ratio of the p50s.

`leaderboard-ops`: the board's operations per second, ``--runs`` times (a process
each), each run and the median of every figure. The machine is shared: medians
over runs, not one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from typing import Any

from figures.shared import Figure, Setup
from flightcache.config import ValkeyUrl


def _ms(ns: float) -> str:
    return f"{ns / 1e6:9.3f} ms"


def compare(setup: Setup, args: argparse.Namespace) -> int | None:
    valkey = setup.valkey()
    for url in setup.databases():
        doc = setup.json_of(
            url,
            valkey,
            *("leaderboard", "compare", "--json", "--repeat", str(args.repeat)),
            *("--n", str(args.n), "--period", args.period),
        )
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
    return None


def compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--period", default="all")


def _bench(setup: Setup, valkey: ValkeyUrl, seconds: float, clients: int) -> dict[str, Any]:
    cmd = [*setup.command(None, valkey), "leaderboard", "bench"]
    proc = subprocess.run(
        [*cmd, "--seconds", str(seconds), "--clients", str(clients), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def _figures(doc: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, fig in doc["separate"].items():
        out[f"{name} flightcache/s"] = fig["flightcache_per_s"]
        out[f"{name} bare/s"] = fig["bare_per_s"]
        out[f"{name} fraction"] = fig["fraction_of_bare"]
    for name, fig in doc["concurrent"].items():
        out[f"concurrent {name}/s"] = fig["flightcache_per_s"]
    return out


def operations(setup: Setup, args: argparse.Namespace) -> int | None:
    valkey = setup.valkey(3 if args.cluster else 1)
    runs = []
    for i in range(args.runs):
        figures = _figures(_bench(setup, valkey, args.seconds, args.clients))
        runs.append(figures)
        print(f"run {i + 1}: " + "  ".join(f"{k} {v:,.2f}" for k, v in figures.items()))
    print(f"\nmedian of {args.runs} runs, {args.seconds:g} s each, {valkey}:")
    for name in runs[0]:
        print(f"  {name:<24} {statistics.median(r[name] for r in runs):>12,.2f}")
    return None


def operations_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--cluster", action="store_true", help="a scratch 3-node cluster")


FIGURES = [
    Figure(
        "leaderboard",
        "`flightcache leaderboard compare`: top N by SQL GROUP BY vs ZREVRANGE",
        compare,
        compare_arguments,
        scale="small",
    ),
    Figure(
        "leaderboard-ops",
        "`flightcache leaderboard bench`: writes and reads per second, median of runs",
        operations,
        operations_arguments,
        scale=None,
    ),
]
