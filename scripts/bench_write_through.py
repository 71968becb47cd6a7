"""Measure the timing tables of `flightcache write-through` and `flightcache nested-doll`.

    .venv/bin/python scripts/bench_write_through.py [--scale small] [--repeat 500]

Loads the generated dataset into throwaway databases (fc_bench_wt) on MySQL/MariaDB
and PostgreSQL, starts a Valkey of its own on a free port (or uses --valkey-url),
runs both demos with --json, prints each timing table, and drops the databases.
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
    return f"{ns / 1e6:8.3f} ms"


def _demo(exe: str, db: str, valkey: str, demo: str, repeat: int) -> list[dict[str, Any]]:
    cmd = [exe, "--db-url", db, "--valkey-url", valkey, "--key-prefix", "fcbench:", demo]
    proc = subprocess.run(
        [*cmd, "--json", "--repeat", str(repeat)], check=True, capture_output=True, text=True
    )
    records: list[dict[str, Any]] = json.loads(proc.stdout)["records"]
    return [r for r in records if r["type"] == "timing"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="small")
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_wt")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_wt")
    parser.add_argument("--valkey-url", default=None)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "flightcache")

    with contextlib.ExitStack() as stack:
        valkey = args.valkey_url or stack.enter_context(
            scratch_valkey(prefix="fc-bench-wt-")
        ).url.url(redact=False)
        for raw in (args.mysql, args.pg):
            url = DbUrl.parse(raw)
            conn = connect(url, create=True)
            try:
                t0 = time.perf_counter()
                load_generated(conn, args.scale, 1)
                print(f"\n== {url.kind} ({args.scale}, loaded in {time.perf_counter() - t0:.1f} s)")
            finally:
                conn.close()
            try:
                for demo in ("write-through", "nested-doll"):
                    for timing in _demo(exe, raw, valkey, demo, args.repeat):
                        print(f"{demo}: {timing['title']}")
                        for s in timing["series"]:
                            print(
                                f"  {s['label']:<22} n={s['n']:<5} p50 {_ms(s['p50'])}"
                                f"  p95 {_ms(s['p95'])}  p99 {_ms(s['p99'])}"
                                f"  speedup {s['speedup']:.1f}x"
                            )
            finally:
                drop_database(url)


if __name__ == "__main__":
    main()
