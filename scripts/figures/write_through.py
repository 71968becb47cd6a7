"""The timing tables of `flightcache write-through` and `flightcache nested-doll`.

    .venv/bin/python scripts/figures write-through [--scale small] [--repeat 500]

Runs both demos with --json (the demos' own code) on each database and prints
each timing table.
"""

from __future__ import annotations

import argparse
from typing import Any

from figures.shared import Figure, Setup
from flightcache.config import DbUrl, ValkeyUrl


def _ms(ns: float) -> str:
    return f"{ns / 1e6:8.3f} ms"


def _demo(
    setup: Setup, db: DbUrl, valkey: ValkeyUrl, demo: str, repeat: int
) -> list[dict[str, Any]]:
    doc = setup.json_of(db, valkey, demo, "--json", "--repeat", str(repeat))
    records: list[dict[str, Any]] = doc["records"]
    return [r for r in records if r["type"] == "timing"]


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    valkey = setup.valkey()
    for url in setup.databases():
        print(f"\n== {url.kind} ({args.scale})")
        for demo in ("write-through", "nested-doll"):
            for timing in _demo(setup, url, valkey, demo, args.repeat):
                print(f"{demo}: {timing['title']}")
                for s in timing["series"]:
                    print(
                        f"  {s['label']:<22} n={s['n']:<5} p50 {_ms(s['p50'])}"
                        f"  p95 {_ms(s['p95'])}  p99 {_ms(s['p99'])}"
                        f"  speedup {s['speedup']:.1f}x"
                    )
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=500)


FIGURES = [
    Figure(
        "write-through",
        "`flightcache write-through` and `flightcache nested-doll`: their timing tables",
        run,
        arguments,
        scale="small",
    )
]
