"""Measure `flightcache bench`'s own figures, on the workshop dataset, both databases.

    .venv/bin/python scripts/bench_harness.py [--scale workshop] [--runs 2] [--floor 5]
    .venv/bin/python scripts/bench_harness.py --only mysql --keep   # keep the database

Starts a private Valkey, loads the dataset into fresh databases of its own
(fc_bench_harness on MariaDB and PostgreSQL; dropped at the end unless --keep,
reused when already loaded) and reports:

- the harness's cost per operation (an empty operation through the same loop,
  recorded into the same histogram), --floor times; the target is under 5 µs;
- the bare GET through `flightcache bench` over valkey-py's own tight loop, in
  the same run (p50 ratio; the target is at most 1.3x), from every run below;
- ``--runs`` consecutive runs of the default bench (`flightcache bench run`, as
  a user runs it: a process each), and for every scenario and path how far
  apart their p50s are (the target is within 10 %), with each run's wall time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flightcache.bench.run import measure_floor
from flightcache.config import DbUrl
from flightcache.data.load import info, load_generated
from flightcache.db import connect, drop_database
from flightcache.stack.valkey import scratch_valkey


def ensure_loaded(raw: str, scale: str) -> None:
    db = connect(DbUrl.parse(raw), create=True)
    try:
        found = info(db)
        if found.scale != scale or found.state != "complete":
            print(f"{DbUrl.parse(raw).kind}: loading scale {scale} ...", flush=True)
            load_generated(db, scale, 42, replace=True, force=True)
    finally:
        db.close()


def bench_run(exe: str, db: str, valkey: str, out: Path) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    cmd = [exe, "--db-url", db, "--valkey-url", valkey, "--key-prefix", "fcbench:"]
    subprocess.run(
        [*cmd, "bench", "run", "--json", str(out), "--no-histogram"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc, time.perf_counter() - started


def p50s(doc: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(s["name"], p["path"]): p["p50"] for s in doc["scenarios"] for p in s["paths"]}


def spread(runs: list[dict[str, Any]]) -> list[tuple[str, str, list[int], float]]:
    """Per path: every run's p50 and the largest pairwise gap, relative to the smaller."""
    out = []
    first = p50s(runs[0])
    for key in first:
        values = [p50s(r)[key] for r in runs]
        gap = max(abs(a - b) / min(a, b) for a, b in itertools.combinations(values, 2))
        out.append((key[0], key[1], values, gap))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="workshop")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--floor", type=int, default=5, help="harness floor measurements")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/fc_bench_harness")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/fc_bench_harness")
    parser.add_argument("--only", choices=["mysql", "postgresql"], default=None)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--out", default=None, help="keep each run's JSON in this directory")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "flightcache")

    floors = [measure_floor(threading.Event()) for _ in range(args.floor)]
    per_op = sorted(f.per_op_ns for f in floors)
    print(
        f"harness cost per operation (empty operation, {len(floors)} x 1 s):"
        f" median {per_op[len(per_op) // 2] / 1000:.2f} µs, worst {per_op[-1] / 1000:.2f} µs"
        f" (target under 5 µs); an empty operation measures p50"
        f" {sorted(f.p50 for f in floors)[len(floors) // 2]} ns"
    )
    urls = {"mysql": args.mysql, "postgresql": args.pg}
    kinds = [args.only] if args.only else ["mysql", "postgresql"]
    with (
        scratch_valkey(prefix="fc-bench-harness-") as scratch,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for kind in kinds:
            ensure_loaded(urls[kind], args.scale)
            runs = []
            for i in range(args.runs):
                folder = Path(args.out or tmp)
                folder.mkdir(parents=True, exist_ok=True)
                doc, wall = bench_run(
                    exe, urls[kind], scratch.url.url(redact=False), folder / f"{kind}-{i + 1}.json"
                )
                runs.append(doc)
                check = doc["self_check"]
                print(
                    f"{kind} run {i + 1}: {wall:.0f} s wall; bare GET: bench p50 /"
                    f" valkey-py loop p50 = {check.get('get_ratio')}x (target at most 1.3x);"
                    f" harness {check['per_op_ns'] / 1000:.2f} µs per operation",
                    flush=True,
                )
            if len(runs) > 1:
                rows = spread(runs)
                print(f"{kind}: p50 of each path over {len(runs)} consecutive runs")
                for scenario, path, values, gap in rows:
                    shown = ", ".join(f"{v / 1000:,.1f}" for v in values)
                    flag = "" if gap <= 0.10 else "  <-- over 10 %"
                    print(f"  {scenario:15} {path:15} {shown:>28} µs  spread {gap:5.1%}{flag}")
                print(f"{kind}: largest spread {max(r[3] for r in rows):.1%} (target within 10 %)")
            if not args.keep:
                drop_database(DbUrl.parse(urls[kind]))


if __name__ == "__main__":
    main()
