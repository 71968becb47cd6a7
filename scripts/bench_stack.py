"""Measure issue 2's figures: --help time, `up` on a fresh state dir and when up,
load time and rows/s per table on both databases, and the uncached route query.

    .venv/bin/python scripts/bench_stack.py [--scale workshop] [--runs 7] [--no-load]

`up` includes what the credentials cost (generating them, scram-sha-256, Valkey's
AUTH). Loads go into throwaway databases (fc_bench_*) that are dropped afterwards;
--no-load measures only --help and `up`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flightcache import sqlfiles
from flightcache.config import DbUrl
from flightcache.data.load import load_generated
from flightcache.db import connect, drop_database
from flightcache.stack import Stack


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="workshop")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_load")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_load")
    parser.add_argument("--no-load", action="store_true", help="measure --help and up only")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "flightcache")

    helps = [timed([exe, "--help"]) for _ in range(args.runs)]
    print(
        f"flightcache --help: median {statistics.median(helps):.3f} s, max {max(helps):.3f} s"
        f" over {args.runs} runs"
    )

    root = Path(tempfile.mkdtemp(prefix="fc-bench-", dir="/tmp"))
    root.chmod(0o755)
    stack = Stack(root / "state")
    try:
        t0 = time.perf_counter()
        stack.up()
        print(f"up, fresh state dir (initdb included): {time.perf_counter() - t0:.2f} s")
        again = [
            timed([exe, "--state-dir", str(root / "state"), "up", "--no-load"])
            for _ in range(args.runs)
        ]
        print(f"up when already up (whole CLI process): median {statistics.median(again):.3f} s")
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)

    for raw in () if args.no_load else (args.mysql, args.pg):
        url = DbUrl.parse(raw)
        db = connect(url, create=True, loader=True)  # it times the load: LOAD DATA LOCAL
        try:
            t0 = time.perf_counter()
            report = load_generated(db, args.scale, 42, replace=True, force=True)
            total = time.perf_counter() - t0
            print(
                f"\n{url.kind}: scale {args.scale} loaded in {total:.1f} s (incl. schema, ANALYZE)"
            )
            for name, n, secs in report.tables:
                rate = n / secs if secs else 0
                print(f"  {name:<18} {n:>10,} rows {secs:7.2f} s {rate:>10,.0f} rows/s")
            sql = sqlfiles.query(db.dialect, "airline_route_analysis")
            times = sorted(db.fetch(sql).elapsed_ns / 1e6 for _ in range(5))
            print(
                f"  airline_route_analysis uncached: median {times[2]:.0f} ms"
                f" (5 runs, min {times[0]:.0f})"
            )
        finally:
            db.close()
            drop_database(url)


if __name__ == "__main__":
    main()
