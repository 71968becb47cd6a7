"""A scenario's load curve: the same workload at rising concurrency, threads and processes.

One single-client run says what one round trip costs; it says nothing of what
happens when many clients read at once, which is when a cache earns its keep. A
curve runs one scenario at each of several client counts (``1,8,32,128``), each
count once with every client a thread of one process and once spread over
processes, and keeps per path: operations per second (closed loop, so at the top
of the curve this is the throughput at saturation), p50 and p99, and the database
server's and Valkey's CPU seconds per operation (see
:mod:`flightcache.bench.server_cpu`). The database path should cost the database
CPU on every read and Valkey none; the cache path the other way round, so the
figure a path should not have is what else ran on that server meanwhile.

Returns numbers, prints nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flightcache.bench import hdr
from flightcache.bench.engine import RunProgress
from flightcache.bench.run import MAX_CLIENTS, Target, make_load, run_scenario, scenario_load
from flightcache.bench.scenarios import Scenario
from flightcache.errors import UsageError

MODES = ("threads", "processes")
DEFAULT_CLIENTS = (1, 8, 32, 128)


def parse_clients(text: str) -> list[int]:
    """``1,8,32,128`` as a list of client counts, each 1 to MAX_CLIENTS, rising."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= n <= MAX_CLIENTS for n in counts):
        raise UsageError(
            f"--clients must be a comma-separated list of counts 1 to {MAX_CLIENTS}, not {text!r}",
            hint="e.g. --clients 1,8,32,128",
        )
    return sorted(set(counts))


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise UsageError(
            f"--modes must be threads, processes or both, not {text!r}",
            hint="e.g. --modes threads,processes",
        )
    return list(dict.fromkeys(modes))


def processes_for(clients: int, mode: str, cpus: int) -> int:
    """How many processes carry ``clients``: one for threads; for processes one per client,
    up to 4 per CPU (the bench's limit), and a count that divides the clients evenly."""
    if mode == "threads":
        return 1
    top = min(clients, 4 * cpus)
    return max(p for p in range(1, top + 1) if clients % p == 0)


@dataclass
class CurvePath:
    """One path at one point of the curve."""

    path: str
    ops: int
    seconds: float
    p50_ns: int
    p99_ns: int
    server_cpu_s: float | None  # None: the server could not be read
    valkey_cpu_s: float | None = None

    @property
    def per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def server_us_per_op(self) -> float | None:
        return _per_op(self.server_cpu_s, self.ops)

    @property
    def valkey_us_per_op(self) -> float | None:
        return _per_op(self.valkey_cpu_s, self.ops)

    def as_dict(self) -> dict[str, Any]:
        per_op, valkey = self.server_us_per_op, self.valkey_us_per_op
        return {
            "path": self.path,
            "ops": self.ops,
            "seconds": round(self.seconds, 4),
            "ops_per_s": round(self.per_s, 1),
            "p50_ns": self.p50_ns,
            "p99_ns": self.p99_ns,
            "db_server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 4),
            "db_server_cpu_us_per_op": None if per_op is None else round(per_op, 2),
            "valkey_cpu_s": None if self.valkey_cpu_s is None else round(self.valkey_cpu_s, 4),
            "valkey_cpu_us_per_op": None if valkey is None else round(valkey, 2),
        }


def _per_op(seconds: float | None, ops: int) -> float | None:
    return None if seconds is None or not ops else seconds * 1e6 / ops


@dataclass
class CurvePoint:
    """One client count in one mode: every path's figures, and how busy the machine was."""

    clients: int
    mode: str
    processes: int
    paths: list[CurvePath]
    load_before: float
    load_after: float
    machine_busy: float | None
    interrupted: bool = False

    def path(self, name: str) -> CurvePath | None:
        return next((p for p in self.paths if p.path == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "mode": self.mode,
            "processes": self.processes,
            "threads_per_process": self.clients // self.processes,
            "load_average_before": round(self.load_before, 2),
            "load_average_after": round(self.load_after, 2),
            "machine_cpu_busy": None if self.machine_busy is None else round(self.machine_busy, 3),
            "interrupted": self.interrupted,
            "paths": [p.as_dict() for p in self.paths],
        }


@dataclass
class Curve:
    scenario: Scenario
    environment: dict[str, Any]
    settings: dict[str, Any]
    metered: str | None  # what the server CPU figure covers; None: not read
    valkey_metered: bool
    points: list[CurvePoint]
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "flightcache bench curve",
            "scenario": self.scenario.name,
            "about": self.scenario.about,
            "environment": self.environment,
            "settings": self.settings,
            "db_server_cpu": self.metered,
            "valkey_cpu": "the valkey-server process" if self.valkey_metered else None,
            "points": [p.as_dict() for p in self.points],
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class CurveOptions:
    clients: Sequence[int] = DEFAULT_CLIENTS
    modes: Sequence[str] = MODES
    duration: float = 4.0  # measured seconds per point, shared by its paths
    warmup: float = 1.0
    seed: int = 1


def plan(options: CurveOptions, cpus: int | None = None) -> list[tuple[int, str, int]]:
    """(clients, mode, processes) of every point, in the order they run."""
    cpus = cpus or os.cpu_count() or 1
    return [
        (n, mode, processes_for(n, mode, cpus)) for n in options.clients for mode in options.modes
    ]


def loads(options: CurveOptions) -> Iterator[tuple[int, str, Any]]:
    """Every point's :class:`Load`, checked by the bench's own rules before anything runs."""
    for clients, mode, processes in plan(options):
        yield clients, mode, make_load(
            clients=clients, processes=processes, rate=None, duration=options.duration,
            requests=None, warmup=options.warmup, slice_s=None, read_ratio=None,
            keys="uniform", zipf_s=1.0, seed=options.seed,
        )  # fmt: skip


def measure(
    sc: Scenario,
    target: Target,
    options: CurveOptions,
    *,
    metered: bool,
    valkey_metered: bool,
    stop: threading.Event,
    progress: Callable[[str], RunProgress] | None = None,
) -> tuple[list[CurvePoint], bool]:
    """Run every point; returns them and whether Ctrl-C cut the curve short."""
    points: list[CurvePoint] = []
    for clients, mode, load in list(loads(options)):
        if stop.is_set():
            break
        label = f"{clients} client(s), {mode}"
        before = os.getloadavg()[0]
        run = run_scenario(
            sc,
            target,
            scenario_load(sc, load, None),
            stop=stop,
            progress=None if progress is None else progress(label),
        )
        if run is None:
            break
        paths = []
        for name, tally in run.outcome.tallies.items():
            s = hdr.summary(tally.read)
            server = tally.server_cpu if metered else None
            valkey = tally.valkey_cpu if valkey_metered else None
            paths.append(CurvePath(name, tally.ops, tally.seconds, s.p50, s.p99, server, valkey))
        busy = None if run.machine is None else run.machine.fraction
        late = os.getloadavg()[0]
        stopped = run.outcome.interrupted
        points.append(CurvePoint(clients, mode, load.processes, paths, before, late, busy, stopped))
    return points, stop.is_set()
