"""Leaderboard load: the booking simulator, and score writes, top-10 and rank reads per second.

:class:`Simulator` (`leaderboard simulate`) books random passengers on random flights
and counts them on the boards write-through, for `leaderboard live` to show. The
throughput workloads (`leaderboard bench`) each run for a fixed time and count
operations; they return numbers and print nothing. The flightcache figures drive
:class:`~flightcache.patterns.leaderboard.Board`; the bare figures issue the same commands through
valkey-py directly, in the same run, so that the overhead of flightcache's own
code shows as a fraction. Concurrency uses processes, not threads: one writer
and ``clients`` readers, each its own interpreter and connection. Threads would
share one GIL, and a writer packing 1,000-command pipelines holds it so long that
readers in the same process manage about a tenth of their solo rate (measured:
~1k top-10 reads/s beside a writer); that is a client limit, not Valkey's.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.lua import script
from flightcache.measure.zipf import zipf_cdf
from flightcache.patterns.leaderboard import Board
from flightcache.patterns.leaderboard_periods import ALL, Period, as_datetime, daily
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.undo import Undo

MEMBERS = 10_000  # players on the bench board
WRITE_BATCH = 1_000  # ZINCRBY per pipeline

# 004's published single-instance figures (Go service, its own benchmark and machine):
# `leaderboard bench` and `bench http` set theirs beside them
PUBLISHED_SOURCE = (
    "seed 004 (go-leader-board) README, Performance Metrics, single instance:"
    " ~25k writes/s and ~30k reads/s separately, ~13-14k writes/s and ~10k reads/s"
    " concurrently (wrk)"
)
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

    def __init__(self, board: Board, period: Period = ALL) -> None:
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

    spawn = multiprocessing.get_context("spawn")
    with safe_path():  # the children (and the resource tracker) run with python -P
        results: Any = spawn.Queue()
        start_at = time.time() + 1.0 + 0.3 * clients  # time to import and connect
        kinds = ["writes"] + ["top10"] * clients
        processes = [
            spawn.Process(target=_worker, args=(k, url, keys, name, seconds, start_at, results))
            for k in kinds
        ]
        for proc in processes:
            proc.start()
    got = [results.get(timeout=seconds + 60) for _ in processes]
    for proc in processes:
        proc.join()
    writes = [Figure(k, ops, secs) for k, ops, secs in got if k == "writes"]
    reads = [Figure(k, ops, secs) for k, ops, secs in got if k == "top10"]
    read_rate = sum(f.per_s for f in reads)
    total = sum(f.ops for f in reads)
    return {"writes": writes[0], "top10": Figure("top10", total, total / read_rate)}


def fraction(alone: dict[str, Figure], name: str) -> float:
    """flightcache's rate as a fraction of bare valkey-py's, in the same run."""
    bare = alone[f"bare_{name}"].per_s
    return alone[name].per_s / bare if bare else 0.0


def summary(
    valkey: str,
    alone: dict[str, Figure],
    together: dict[str, Figure],
    seconds: float,
    clients: int,
) -> dict[str, Any]:
    """The figures of `leaderboard bench --json`: each workload alone beside bare
    valkey-py, the concurrent run, and 004's published figures and targets."""
    doc: dict[str, Any] = {
        "valkey": valkey,
        "seconds": seconds,
        "clients": clients,
        "concurrency": "processes: one writer, --clients top-10 readers, no shared GIL",
        "write_batch": WRITE_BATCH,
        "separate": {
            name: {
                "flightcache_per_s": round(alone[name].per_s, 1),
                "bare_per_s": round(alone[f"bare_{name}"].per_s, 1),
                "fraction_of_bare": round(fraction(alone, name), 3),
                "ops": alone[name].ops,
            }
            for name in ("writes", "top10", "rank")
        },
        "concurrent": {
            name: {"flightcache_per_s": round(fig.per_s, 1), "ops": fig.ops}
            for name, fig in together.items()
        },
        "published_004": PUBLISHED,
        "targets": {"writes_per_s": 100_000, "top10_per_s": 15_000},
    }
    doc["targets_met"] = {
        "writes": alone["writes"].per_s >= 100_000,
        "top10": alone["top10"].per_s >= 15_000,
    }
    return doc


# -- the booking simulator of `leaderboard simulate` ----------------------------------------
BOARD = "airport-bookings"
CANDIDATES = 50_000  # flights and passengers the simulator picks from
ZIPF_S = 1.0  # skew of bookings toward the airports with most departures
# limits past which a value is a typo rather than a wish
MAX_RATE = 100_000
MAX_BATCH = 10_000
MAX_SECONDS = 86_400
MAX_CLIENTS = 64


@dataclass
class SimulationReport:
    bookings: int = 0
    batches: int = 0
    valkey_failures: int = 0
    events: int = 0
    db_ns: int = 0
    valkey_ns: int = 0
    seconds: float = 0.0
    booking_ids: list[int] = field(default_factory=list, repr=False)
    per_airport: dict[str, int] = field(default_factory=dict)
    cleaned: int = 0
    cleanup_valkey_failed: bool = False

    @property
    def rate(self) -> float:
        return self.bookings / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "bookings": self.bookings,
            "batches": self.batches,
            "rate_per_s": round(self.rate, 1),
            "seconds": round(self.seconds, 3),
            "db_ms": round(self.db_ns / 1e6, 1),
            "valkey_ms": round(self.valkey_ns / 1e6, 1),
            "valkey_failures": self.valkey_failures,
            "events_published": self.events,
            "first_booking_id": min(self.booking_ids, default=None),
            "last_booking_id": max(self.booking_ids, default=None),
            "cleaned_up": self.cleaned,
            "cleanup_valkey_failed": self.cleanup_valkey_failed,
            "top_airports": dict(
                sorted(self.per_airport.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            ),
        }


@dataclass(frozen=True)
class NewBooking:
    flight_id: int
    passenger_id: int
    price: Decimal
    airport: str
    day: dt.date  # the flight's departure day: the daily board the booking counts on


class Simulator:
    """Books random passengers on random flights, write-through to the boards.

    Flights are drawn Zipf-skewed by their departure airport's rank in departures,
    so the board has hubs at the top, as real traffic does. Seats stay NULL (the
    unique index on (flight_id, seat) allows any number of NULLs). After each batch
    commits, it is counted on the daily and all-time boards the way the write-through
    path counts a booking (the ``leaderboard_apply`` script): a period key that does not
    exist is left alone, so a fresh Valkey gets no board holding only the simulated
    bookings; the next read rebuilds it from the database, these bookings included.
    Valkey failures after the commit are counted, not fatal.
    """

    def __init__(
        self,
        db: Database,
        client: Any,
        keys: Keys,
        day: dt.date | None = None,
        *,
        seed: int | None = None,
        undo: Undo | None = None,
    ) -> None:
        """``day``: book only flights departing that day (None: any day). ``undo``:
        record each batch's ids before it commits, so that the bookings of a run killed
        before :meth:`cleanup` are deleted by the next command."""
        self.db = db
        self.undo = undo
        self._undo_entries: list[str] = []
        self.client = client
        self.board = Board(client, keys, BOARD)
        self.day = day
        self.rng = random.Random(seed)
        self.report = SimulationReport()
        self.counted: dict[tuple[str, dt.date], int] = {}  # what cleanup takes back
        params: dict[str, Any] = {"limit": CANDIDATES, "day": day}
        sql = "leaderboard_candidate_flights" if day is None else "leaderboard_candidate_flights_on"
        flights = db.fetch(query(db.dialect, sql), params).rows
        passengers = db.fetch(query(db.dialect, "candidate_passengers"), {"limit": CANDIDATES}).rows
        if not flights or not passengers:
            raise DataError(
                "no flights or passengers to book"
                + ("" if day is None else f" departing on {day}")
                + ": the database holds no such FlughafenDB data",
                hint="pick a day with departures (or leave --date out), or load the data"
                " with `flightcache data load --scale tiny`",
            )
        by_airport: dict[str, list[tuple[int, dt.date]]] = {}
        for flight_id, iata, departure in flights:
            flight = (int(flight_id), as_datetime(departure).date())
            by_airport.setdefault(str(iata), []).append(flight)
        self.airports = sorted(by_airport, key=lambda a: (-len(by_airport[a]), a))
        self.flights = by_airport
        self.cdf = zipf_cdf(len(self.airports), ZIPF_S)
        self.passengers = [int(p) for (p,) in passengers]

    def draw(self) -> NewBooking:
        total = self.cdf[-1]
        rank = min(bisect.bisect_right(self.cdf, self.rng.random() * total), len(self.cdf) - 1)
        airport = self.airports[rank]
        flight_id, day = self.rng.choice(self.flights[airport])
        return NewBooking(
            flight_id=flight_id,
            day=day,
            passenger_id=self.rng.choice(self.passengers),
            price=Decimal(self.rng.randint(4_900, 89_900)) / 100,
            airport=airport,
        )

    def insert(self, bookings: Sequence[NewBooking]) -> list[int]:
        """INSERT the bookings in one transaction; returns their booking_ids."""
        sql = query(self.db.dialect, "leaderboard_booking_insert")
        last_id = query(self.db.dialect, "last_insert_id")
        ids: list[int] = []
        with self.db.transaction():
            for b in bookings:
                params = {
                    "flight_id": b.flight_id,
                    "passenger_id": b.passenger_id,
                    "price": b.price,
                }
                if self.db.dialect == "postgresql":  # INSERT ... RETURNING booking_id
                    ids.append(int(self.db.fetch(sql, params).rows[0][0]))
                else:
                    self.db.execute(sql, params)
                    ids.append(int(self.db.fetch(last_id).rows[0][0]))
            if self.undo is not None and ids:  # written down before the commit
                entry = self.undo.record("booking_remove_ids", {"booking_ids": ids})
                self._undo_entries.append(entry)
        return ids

    def batch(self, size: int) -> None:
        """One batch: DB commit first, then the boards (write-through)."""
        bookings = [self.draw() for _ in range(size)]
        t0 = time.perf_counter_ns()
        ids = self.insert(bookings)
        t1 = time.perf_counter_ns()
        self.report.db_ns += t1 - t0
        self.report.booking_ids.extend(ids)
        self.report.bookings += len(ids)
        self.report.batches += 1
        counts: dict[tuple[str, dt.date], int] = {}
        for b in bookings:
            counts[(b.airport, b.day)] = counts.get((b.airport, b.day), 0) + 1
            self.counted[(b.airport, b.day)] = self.counted.get((b.airport, b.day), 0) + 1
            self.report.per_airport[b.airport] = self.report.per_airport.get(b.airport, 0) + 1
        try:
            self.report.events += self.count(counts)
        except valkey.exceptions.ValkeyError:
            self.report.valkey_failures += len(ids)
        self.report.valkey_ns += time.perf_counter_ns() - t1

    # region: simulator-count
    def count(self, counts: Mapping[tuple[str, dt.date], int]) -> int:
        """Count each (airport, departure day) on the daily board of that day and on the
        all-time board, like the write-through's
        :meth:`~flightcache.patterns.leaderboard_sync.Leaderboards.apply`: one
        ``leaderboard_apply`` script each (ZINCRBY + EXPIRE only on a key that exists,
        ZREM at 0, atomically), pipelined on the board's node; then PUBLISH each new
        score. A board that does not exist is not created (it would hold only these
        bookings): the next read rebuilds it from the database. Returns the events."""
        apply = script("leaderboard_apply")
        apply.load(self.client)  # a pipeline cannot fall back from EVALSHA to EVAL
        pipe = self.board.pipeline()
        for (member, day), n in counts.items():
            periods = (daily(day), ALL)
            keys = [self.board.keys.board_applied(BOARD), *(self.board.key(p) for p in periods)]
            apply.queue(pipe, keys, [member, n, "", *(p.ttl or 0 for p in periods)])
        replies = pipe.execute()
        pipe = self.board.pipeline()
        events = 0
        for (member, day), scores in zip(counts, replies, strict=True):
            for period, score in zip((daily(day), ALL), scores, strict=False):
                if score is None:  # the board does not exist: the next read rebuilds it
                    continue
                event = {"member": member, "score": float(score), "period": period.name}
                pipe.publish(self.board.channel, json.dumps(event, separators=(",", ":")))
                events += 1
        pipe.execute()
        return events

    # endregion: simulator-count

    def run(
        self,
        rate: float,
        batch: int,
        seconds: float,
        on_progress: Callable[[SimulationReport], None] | None = None,
        *,
        progress_every: float = 1.0,
        stop: threading.Event | None = None,
    ) -> SimulationReport:
        """Batches of ``batch`` paced to about ``rate`` bookings/s for ``seconds``, or
        until ``stop`` is set (a batch under way is finished first)."""
        stop = stop or threading.Event()
        start = time.monotonic()
        deadline = start + seconds
        shown = start
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            due = start + self.report.bookings / rate  # when this batch may start
            if due > now:
                stop.wait(min(due, deadline) - now)
                continue
            self.batch(batch)
            self.report.seconds = time.monotonic() - start
            if on_progress is not None and time.monotonic() - shown >= progress_every:
                shown = time.monotonic()
                on_progress(self.report)
        self.report.seconds = time.monotonic() - start
        return self.report

    def cleanup(self) -> int:
        """DELETE the bookings this run inserted (by id) and take their increments back
        off the boards (ZINCRBY by minus the count; a member left at 0 is ZREMoved),
        publishing the changes. Returns the bookings deleted."""
        ids = self.report.booking_ids
        if not ids:
            return 0
        sql = query(self.db.dialect, "booking_remove")
        with self.db.transaction():
            for start in range(0, len(ids), 1_000):
                self.db.execute_many(sql, [{"booking_id": i} for i in ids[start : start + 1_000]])
        self.report.cleaned = len(ids)
        if self.undo is not None:
            for entry in self._undo_entries:
                self.undo.done(entry)
            self._undo_entries.clear()
        try:
            self.count({k: -n for k, n in self.counted.items()})
        except valkey.exceptions.ValkeyError:  # the rows are gone; the boards keep them
            self.report.cleanup_valkey_failed = True
        return len(ids)
