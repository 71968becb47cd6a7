"""`flightcache bench`'s own figures, on the workshop dataset, both databases.

    .venv/bin/python scripts/figures harness [--scale workshop] [--runs 2] [--floor 5]
    .venv/bin/python scripts/figures harness --only mysql

Reports:

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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from figures.shared import Figure, Setup
from flightcache.bench.run import measure_floor
from flightcache.config import DbUrl, ValkeyUrl


def bench_run(
    setup: Setup, db: DbUrl, valkey: ValkeyUrl, out: Path
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    subprocess.run(
        [*setup.command(db, valkey), "bench", "run", "--json", str(out), "--no-histogram"],
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


def floor(measurements: int) -> None:
    floors = [measure_floor(threading.Event()) for _ in range(measurements)]
    per_op = sorted(f.per_op_ns for f in floors)
    print(
        f"harness cost per operation (empty operation, {len(floors)} x 1 s):"
        f" median {per_op[len(per_op) // 2] / 1000:.2f} µs, worst {per_op[-1] / 1000:.2f} µs"
        f" (target under 5 µs); an empty operation measures p50"
        f" {sorted(f.p50 for f in floors)[len(floors) // 2]} ns"
    )


def consecutive(setup: Setup, url: DbUrl, valkey: ValkeyUrl, folder: Path, count: int) -> None:
    kind = url.kind
    runs = []
    for i in range(count):
        folder.mkdir(parents=True, exist_ok=True)
        doc, wall = bench_run(setup, url, valkey, folder / f"{kind}-{i + 1}.json")
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


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    floor(args.floor)
    valkey = setup.valkey()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in setup.kinds():
            url = setup.database(kind)
            consecutive(setup, url, valkey, Path(args.out or tmp), args.runs)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--floor", type=int, default=5, help="harness floor measurements")
    parser.add_argument("--out", default=None, help="keep each run's JSON in this directory")


FIGURES = [
    Figure(
        "harness",
        "`flightcache bench`'s own cost, its bare GET against valkey-py, run-to-run spread",
        run,
        arguments,
        scale="workshop",
    )
]
