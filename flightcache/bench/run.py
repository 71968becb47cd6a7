"""Running scenarios: connections per client, setup and teardown, the harness's floor.

The command layer parses options into a :class:`~flightcache.bench.engine.Load`
and calls :func:`run_scenario` per scenario; everything here returns numbers and
prints nothing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from flightcache.bench import hdr, server_cpu
from flightcache.bench.engine import Load, Opened, Outcome, Path, RunProgress, Workload, drive
from flightcache.bench.scenarios import Env, Scenario
from flightcache.bench.scenarios import get as get_scenario
from flightcache.db import Database, Params, QueryResult
from flightcache.errors import UsageError
from flightcache.keys import Keys
from flightcache.undo import Undo

MAX_CLIENTS = 256
"""Clients in all. Each is a thread with a database and a Valkey connection; in one
CPython process more than a few threads already queue on the GIL, and 256 is more
than the servers here accept connections for (MariaDB's default max_connections is
151) unless raised."""
MAX_RATE_PER_PROCESS = 50_000.0
"""Operations per second one process can schedule: the loop itself costs ~2 µs per
operation and the quickest Valkey round trip through valkey-py ~25-60 µs of client
CPU, so a process that keeps a 50k/s schedule has no time left to wait for replies."""


class CountingDatabase:
    """A :class:`Database` that counts the statements it sends: the bench's database calls.

    Every ``fetch``, ``execute`` and ``execute_many`` is one call; BEGIN and COMMIT are
    not counted (they ride on the statements' connection)."""

    def __init__(self, db: Database) -> None:
        self.inner = db
        self.dialect = db.dialect
        self.url = db.url
        self.calls = 0

    def fetch(self, sql: str, params: Params = None) -> QueryResult:
        self.calls += 1
        return self.inner.fetch(sql, params)

    def execute(self, sql: str, params: Params = None) -> int:
        self.calls += 1
        return self.inner.execute(sql, params)

    def execute_many(self, sql: str, params: Sequence[Params]) -> int:
        self.calls += 1
        return self.inner.execute_many(sql, params)

    def transaction(self) -> AbstractContextManager[None]:
        return self.inner.transaction()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(frozen=True)
class Target:
    """The servers, as URLs, so that a client process can open its own connections.
    ``db_url`` carries the password: it is never printed."""

    db_url: str
    valkey_url: str
    key_prefix: str
    state_dir: str = ""  # where the setup records what a killed run leaves ("": nowhere)
    dataset: str = ""  # the load the rows belong to (flightcache_meta loaded_at)

    def database(self) -> Database:
        from flightcache.config import DbUrl
        from flightcache.db import connect

        return connect(DbUrl.parse(self.db_url))

    def valkey(self) -> Any:
        from flightcache.config import ValkeyUrl
        from flightcache.valkey_client import connect

        return connect(ValkeyUrl.parse(self.valkey_url))

    def keys(self, scenario: str) -> Keys:
        return Keys(self.key_prefix).scope("bench").scope(scenario)

    def undo(self) -> Undo | None:
        from pathlib import Path

        from flightcache.config import DbUrl

        if not self.state_dir:
            return None
        return Undo(Path(self.state_dir), DbUrl.parse(self.db_url), self.dataset)


@dataclass(frozen=True)
class ClientFactory:
    """Opens one client of a scenario: its connections, its :class:`Env`, its workload."""

    scenario: str
    target: Target

    def open(self, index: int) -> tuple[Opened, Env]:
        from flightcache.valkey_client import close

        sc = get_scenario(self.scenario)
        db = CountingDatabase(self.target.database())
        try:
            valkey = self.target.valkey()
        except BaseException:
            db.close()
            raise

        def release() -> None:
            try:
                close(valkey)
            finally:
                db.close()

        undo = self.target.undo() if index < 0 else None  # the setup records, clients not
        env = Env(db, valkey, self.target.keys(sc.name), index, undo=undo)
        try:
            workload = sc.build(env)
            meters: tuple[server_cpu.Meter | None, server_cpu.Meter | None] = (None, None)
            if index >= 0:
                from flightcache.config import ValkeyUrl

                url = ValkeyUrl.parse(self.target.valkey_url)
                meters = (
                    server_cpu.meter(db.inner, index),
                    server_cpu.valkey_meter(valkey, url, index),
                )
        except BaseException:
            release()
            raise
        return Opened(workload, lambda: db.calls, release, *meters), env

    def __call__(self, index: int) -> Opened:
        return self.open(index)[0]


DEFAULT_SLICE = 0.25


def scenario_load(
    sc: Scenario,
    base: Load,
    read_ratio: float | None,
    slice_s: float | None = None,
    rounds: int = 1,
) -> Load:
    """The load for one scenario in one of ``rounds``: its own read ratio, duration and
    slice unless given; the duration shared by the rounds."""
    ratio = (sc.read_ratio if read_ratio is None else read_ratio) if sc.writes else 1.0
    seconds = None if base.requests is not None else (base.seconds or sc.seconds) / rounds
    turns = slice_s or sc.slice or DEFAULT_SLICE
    return dataclasses.replace(base, read_ratio=ratio, seconds=seconds, slice=turns)


@dataclass
class ScenarioRun:
    """One scenario's outcome, and what it ran with."""

    scenario: Scenario
    load: Load
    outcome: Outcome
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    keyspace: int = 1
    rounds: int = 1
    machine: CpuShare | None = None  # how busy the whole machine was meanwhile

    def add(self, later: ScenarioRun) -> None:
        """Fold a later round of the same scenario into this one."""
        for name, tally in later.outcome.tallies.items():
            self.outcome.tallies[name].add(tally, same_clock=False)
            self.outcome.late[name] = self.outcome.late.get(name, 0) + later.outcome.late.get(
                name, 0
            )
        self.outcome.slices += later.outcome.slices
        self.outcome.interrupted = self.outcome.interrupted or later.outcome.interrupted
        self.wall_s += later.wall_s
        self.rounds += later.rounds
        if self.machine is not None and later.machine is not None:
            self.machine = self.machine.plus(later.machine)


@dataclass(frozen=True)
class CpuShare:
    """Jiffies of every CPU of the machine (Linux /proc/stat): busy and in all. The
    servers, this bench and whatever else runs there all count."""

    busy: int
    total: int

    @classmethod
    def now(cls) -> CpuShare | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return cls(sum(fields) - idle, sum(fields))

    def since(self, earlier: CpuShare) -> CpuShare:
        return CpuShare(self.busy - earlier.busy, self.total - earlier.total)

    def plus(self, other: CpuShare) -> CpuShare:
        return CpuShare(self.busy + other.busy, self.total + other.total)

    @property
    def fraction(self) -> float:
        return self.busy / self.total if self.total else 0.0


def run_scenario(
    sc: Scenario,
    target: Target,
    load: Load,
    *,
    stop: threading.Event,
    progress: RunProgress | None = None,
) -> ScenarioRun | None:
    """Set up, drive every client, tear down. None when stopped before measuring."""
    from flightcache.valkey_client import delete_matching

    started = time.perf_counter()
    factory = ClientFactory(sc.name, target)
    keys = target.keys(sc.name)
    setup_client = target.valkey()
    try:
        delete_matching(setup_client, keys.match())  # leftovers of a run that was killed
    finally:
        from flightcache.valkey_client import close

        close(setup_client)
    opened, env = factory.open(-1)
    try:
        if stop.is_set():
            return None
        cpu = CpuShare.now()
        outcome = drive(factory, load, stop=stop, progress=progress)
        after = CpuShare.now()
        return ScenarioRun(
            sc,
            load,
            outcome,
            env.notes,
            time.perf_counter() - started,
            opened.workload.keyspace,
            machine=after.since(cpu) if after is not None and cpu is not None else None,
        )
    finally:
        try:
            for fn in reversed(env.teardowns):
                fn()
            delete_matching(env.valkey, keys.match())
        finally:
            opened.close()


# -- the harness's own floor -------------------------------------------------------------
def _nothing(i: int) -> None:
    return None


def _zero() -> int:
    return 0


def _no_close() -> None:
    return None


@dataclass(frozen=True)
class EmptyFactory:
    """One client whose only path does nothing: what the loop itself costs."""

    def __call__(self, index: int) -> Opened:
        return Opened(Workload({"empty": Path(_nothing)}), _zero, _no_close)


@dataclass
class Floor:
    """The harness measuring nothing: the latency an empty operation shows, and the
    loop's cost per operation (timer reads, key draw, HDR record, counting)."""

    p50: int
    p99: int
    per_op_ns: float
    ops: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "empty_op_p50_ns": self.p50,
            "empty_op_p99_ns": self.p99,
            "per_op_ns": round(self.per_op_ns, 1),
            "ops": self.ops,
        }


def measure_floor(stop: threading.Event, seconds: float = 1.0) -> Floor:
    load = Load(clients=1, processes=1, seconds=seconds, warmup=0.25, slice=0.25)
    tally = drive(EmptyFactory(), load, stop=stop).tallies["empty"]
    s = hdr.summary(tally.read)
    return Floor(s.p50, s.p99, tally.seconds * 1e9 / max(1, tally.ops), tally.ops)


# -- checks before anything runs -----------------------------------------------------------
def check_connections(db: Any, clients: int) -> None:
    """UsageError when the database takes fewer connections than the clients need."""
    from flightcache.sqlfiles import query

    rows = db.fetch(query(db.dialect, "bench_max_connections")).rows
    allowed = int(rows[0][0]) if rows else 0
    if allowed and clients + 2 > allowed:
        raise UsageError(
            f"--clients {clients} needs {clients + 1} database connections;"
            f" the {db.dialect} server allows {allowed} (max_connections)",
            hint=f"use at most {allowed - 2} clients, or raise max_connections",
        )


def make_load(
    *,
    clients: int,
    processes: int,
    rate: float | None,
    duration: float | None,
    requests: int | None,
    warmup: float,
    slice_s: float | None,
    read_ratio: float | None,
    keys: str,
    zipf_s: float,
    seed: int,
) -> Load:
    """The options as a :class:`Load`, or a UsageError naming the one that cannot be used."""
    import os

    cpus = os.cpu_count() or 1
    if not 1 <= clients <= MAX_CLIENTS:
        raise UsageError(
            f"--clients must be 1 to {MAX_CLIENTS}, not {clients}",
            hint="each client is a thread with its own database and Valkey connection;"
            " beyond a few per process they measure the GIL, not the server",
        )
    max_processes = min(clients, 4 * cpus)
    if not 1 <= processes <= max_processes:
        raise UsageError(
            f"--processes must be 1 to {max_processes} (at most --clients, and 4 per CPU"
            f" here: {cpus}), not {processes}",
            hint="more processes than that only take turns on the same cores",
        )
    if clients % processes:
        raise UsageError(
            f"--clients {clients} cannot be shared evenly by --processes {processes}",
            hint="give a --clients that is a multiple of --processes",
        )
    if rate is not None:
        top = MAX_RATE_PER_PROCESS * processes
        if not 0 < rate <= top:
            raise UsageError(
                f"--rate must be above 0 and at most {top:,.0f} operations/s"
                f" ({MAX_RATE_PER_PROCESS:,.0f} per process), not {rate:g}",
                hint="one process cannot schedule more; add --processes for more",
            )
    if duration is not None and requests is not None:
        raise UsageError("give --duration or --requests, not both", hint="--duration 10, say")
    if duration is not None and not 0 < duration <= 3600:
        raise UsageError(
            f"--duration must be above 0 and at most 3600 s, not {duration:g}",
            hint="measured seconds per scenario, e.g. --duration 10",
        )
    if requests is not None and not 1 <= requests <= 100_000_000:
        raise UsageError(
            f"--requests must be 1 to 100,000,000, not {requests}",
            hint="operations per path, e.g. --requests 1000",
        )
    if not 0 <= warmup <= 600:
        raise UsageError(
            f"--warmup must be 0 to 600 s, not {warmup:g}",
            hint="seconds per path run first and discarded, e.g. --warmup 0.5",
        )
    if slice_s is not None and not 0.01 <= slice_s <= 60:
        raise UsageError(
            f"--slice must be 0.01 to 60 s, not {slice_s:g}",
            hint="seconds each path runs before the next takes over, e.g. --slice 0.25",
        )
    if read_ratio is not None and not 0 <= read_ratio <= 1:
        raise UsageError(
            f"--read-ratio must be 0 to 1, not {read_ratio:g}", hint="0.9: nine reads a write"
        )
    if keys not in ("uniform", "zipf"):
        raise UsageError(
            f"--keys must be uniform or zipf, not {keys!r}",
            hint="zipf sends most requests to a few hot keys (--zipf-s sets how few)",
        )
    if not 0 < zipf_s <= 10:
        raise UsageError(
            f"--zipf-s must be above 0 and at most 10, not {zipf_s:g}",
            hint="1.0 is classic Zipf; larger piles more requests on the hottest keys",
        )
    return Load(
        clients=clients // processes,
        processes=processes,
        rate=rate,
        seconds=duration,
        requests=requests,
        warmup=warmup,
        slice=slice_s or DEFAULT_SLICE,
        read_ratio=1.0 if read_ratio is None else read_ratio,
        keys=keys,
        zipf_s=zipf_s,
        seed=seed,
    )


def resolve(names: Sequence[str]) -> list[Scenario]:
    """Scenario names as typed (none: the default set; ``all``: every one)."""
    from flightcache.bench.scenarios import REGISTRY, default_set

    if not names:
        names = default_set()
    elif "all" in names:
        names = list(REGISTRY)
    return [get_scenario(n) for n in dict.fromkeys(names)]
