"""Leaderboard throughput: score writes, top-10 reads and rank reads per second.

Each workload runs for a fixed time and counts operations; it returns numbers and
prints nothing. The flightcache figures drive :class:`~flightcache.patterns.
leaderboard_live.Board`; the bare figures issue the same commands through
valkey-py directly, in the same run, so that the overhead of flightcache's own
code shows as a fraction. Concurrency uses processes, not threads: one writer
and ``clients`` readers, each its own interpreter and connection. Threads would
share one GIL, and a writer packing 1,000-command pipelines holds it so long that
readers in the same process manage about a tenth of their solo rate (measured:
~1k top-10 reads/s beside a writer); that is a client limit, not Valkey's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flightcache.keys import Keys
from flightcache.patterns.leaderboard_live import Board

MEMBERS = 10_000  # players on the bench board
WRITE_BATCH = 1_000  # ZINCRBY per pipeline

# 004's published single-instance figures (Go service, its own benchmark and machine)
PUBLISHED = {
    "writes_separate": 25_000,
    "reads_separate": 30_000,
    "writes_concurrent": 13_500,
    "reads_concurrent": 10_000,
}


@dataclass
class Figure:
    name: str
    ops: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


def member(i: int) -> str:
    return f"player:{i:05d}"


def timed(name: str, seconds: float, step: Callable[[], int], stop: threading.Event) -> Figure:
    """Call ``step`` (which returns the operations it did) until ``seconds`` pass."""
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    while not stop.is_set():
        ops += step()
        if time.perf_counter() >= deadline:
            break
    return Figure(name, ops, time.perf_counter() - start)


class Workloads:
    """The three workloads, through flightcache's Board and through bare valkey-py."""

    def __init__(self, board: Board, period: str = "all") -> None:
        self.board = board
        self.period = period
        self.key = board.key(period)
        self.counter = 0
        self.batches: list[list[tuple[str, float]]] = []

    def _pairs(self) -> list[tuple[str, float]]:
        """The next batch of (member, 1): made once, then cycled, so that building
        them costs neither contender anything."""
        if not self.batches:
            self.batches = [
                [(member((b * WRITE_BATCH + i) * 7919 % MEMBERS), 1.0) for i in range(WRITE_BATCH)]
                for b in range(MEMBERS // WRITE_BATCH)
            ]
        self.counter += 1
        return self.batches[self.counter % len(self.batches)]

    def seed(self) -> None:
        """Every member on the board once, so that reads find a full board."""
        for start in range(0, MEMBERS, WRITE_BATCH):
            self.board.add_scores(
                self.period,
                [(member(i), float(i % 977)) for i in range(start, start + WRITE_BATCH)],
            )

    # flightcache
    def fc_write(self, board: Board | None = None) -> Callable[[], int]:
        target = board or self.board
        return lambda: len(target.add_scores(self.period, self._pairs()))

    def fc_top(self, board: Board | None = None) -> Callable[[], int]:
        target = board or self.board

        def step() -> int:
            target.top(self.period, 10)
            return 1

        return step

    def fc_rank(self, board: Board | None = None) -> Callable[[], int]:
        target = board or self.board
        n = [0]

        def step() -> int:
            n[0] += 1
            target.rank(member(n[0] * 31 % MEMBERS), self.period)
            return 1

        return step

    # bare valkey-py
    def bare_write(self) -> Callable[[], int]:
        client = self.board.client

        def step() -> int:
            pipe = client.pipeline(transaction=False)
            for m, amount in self._pairs():
                pipe.zincrby(self.key, amount, m)
            return len(pipe.execute())

        return step

    def bare_top(self) -> Callable[[], int]:
        client = self.board.client

        def step() -> int:
            client.zrevrange(self.key, 0, 9, withscores=True)
            return 1

        return step

    def bare_rank(self) -> Callable[[], int]:
        client = self.board.client
        n = [0]

        def step() -> int:
            n[0] += 1
            client.zrevrank(self.key, member(n[0] * 31 % MEMBERS))
            return 1

        return step


def separate(work: Workloads, seconds: float) -> dict[str, Figure]:
    """Each workload alone, flightcache and bare alternating, one connection."""
    stop = threading.Event()
    out: dict[str, Figure] = {}
    for name, fc, bare in (
        ("writes", work.fc_write(), work.bare_write()),
        ("top10", work.fc_top(), work.bare_top()),
        ("rank", work.fc_rank(), work.bare_rank()),
    ):
        timed(name, min(0.2, seconds), fc, stop)  # warm-up
        out[name] = timed(name, seconds, fc, stop)
        out[f"bare_{name}"] = timed(f"bare_{name}", seconds, bare, stop)
    return out


def _worker(
    kind: str, url: str, keys: Keys, name: str, seconds: float, start_at: float, results: Any
) -> None:
    """One process of the concurrent run: a writer or a top-10 reader, own connection."""
    from flightcache.children import die_with_mp_parent
    from flightcache.config import ValkeyUrl
    from flightcache.valkey_client import close, connect

    die_with_mp_parent()
    client = connect(ValkeyUrl.parse(url))
    board = Board(client, keys, name)
    work = Workloads(board)
    step = work.fc_write() if kind == "writes" else work.fc_top()
    time.sleep(max(0.0, start_at - time.time()))
    fig = timed(kind, seconds, step, threading.Event())
    results.put((kind, fig.ops, fig.seconds))
    board.close()
    close(client)


def concurrent(url: str, keys: Keys, name: str, seconds: float, clients: int) -> dict[str, Figure]:
    """One writer process and ``clients`` top-10 reader processes at once, each with its
    own interpreter (no shared GIL) and connection; they start together at one wall-clock
    moment. Returns the writes and the reads summed over the readers."""
    import multiprocessing

    from flightcache.children import safe_path

    mp = multiprocessing.get_context("spawn")
    with safe_path():  # the children (and the resource tracker) run with python -P
        results: Any = mp.Queue()
        start_at = time.time() + 1.0 + 0.3 * clients  # time to import and connect
        kinds = ["writes"] + ["top10"] * clients
        procs = [
            mp.Process(target=_worker, args=(k, url, keys, name, seconds, start_at, results))
            for k in kinds
        ]
        for proc in procs:
            proc.start()
    got = [results.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join()
    writes = [Figure(k, ops, secs) for k, ops, secs in got if k == "writes"]
    reads = [Figure(k, ops, secs) for k, ops, secs in got if k == "top10"]
    read_rate = sum(f.per_s for f in reads)
    total = sum(f.ops for f in reads)
    return {"writes": writes[0], "top10": Figure("top10", total, total / read_rate)}
