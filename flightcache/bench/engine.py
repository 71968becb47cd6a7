"""The load loop: a workload's paths run in turns, every operation timed into HDR histograms.

A scenario offers two or more *paths* to the same work (the database alone, and
the cache in front of it). They run in the same run, in *slices*: every client
runs path A for a slice (0.25 s by default), all meet at a barrier, then every
client runs path B, and so on, the order rotating from round to round (A B, B A,
A B ...). Drift in the machine's speed (another process, a checkpoint) lands on
all paths alike, and each path is measured with every client on it at once.
The first slices of each path are warm-up and discarded. The garbage collector
collects between slices, never inside one.

Closed loop: each client issues its next operation as soon as the last one
returns. Open loop (``rate``): operations are *scheduled* at ``rate`` per second
per path, evenly spaced, and each latency is measured from the operation's
scheduled start, not from when a client got round to it; a client stuck on a slow
operation therefore cannot hide the operations that should have started meanwhile
(coordinated omission). An operation that has not started a grace period after
its slice ended is abandoned and counted.

Concurrency is ``clients`` threads in each of ``processes`` processes. Threads of
one CPython process share one GIL: beyond a few, they measure the client's
interpreter more than the server. Processes are synchronised slice by slice
through one barrier and a small shared array, so they too run one path at a time.
"""

from __future__ import annotations

import gc
import itertools
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flightcache.bench import hdr
from flightcache.bench.hdr import HALF, HALF_MAGNITUDE, MASK, SHIFT, UNIT
from flightcache.measure.zipf import zipf_ranks

Op = Callable[[int], Any]
"""One operation on key ``i`` of the keyspace. Returns True (cache hit), False (miss)
or None (no cache involved); or the answer itself, whose ``hit`` says which (a
cache-aside :class:`Lookup`; an answer without one, a database's rows, counts as
None). An answer is freed after the clock stops, as a caller frees one after using
it: freeing decoded rows costs a third of decoding them, and that belongs to
whoever holds them last, not to the read."""


def _hit(answer: Any) -> bool | None:
    if answer is None or answer is True or answer is False:
        return answer
    hit = getattr(answer, "hit", None)
    return None if hit is None else bool(hit)


PLAN = 1 << 16  # key and read/write draws per client, cycled
GRACE_S = 1.0  # open loop: how late past its slice an operation may still start
SPIN_NS = 150_000  # open loop, one client: sleep until this close, then spin
LATE_NS = 1_000_000  # open loop: an operation starting later than this is counted late
TOP = hdr.HIGHEST_NS


@dataclass
class Path:
    """One way to do the work. ``write`` is required when the scenario writes.

    ``tight`` makes a *reference* path: that zero-argument call is timed in a bare
    loop (``t0 = clock(); call(); samples.append(clock() - t0)``), with none of the
    harness around it, to show what the client library alone measures.

    ``counters`` returns running totals the pattern keeps (a near cache's raced
    fetches, say); what they grew by during the path's measured slices is reported.
    Give it on one client per process when the clients share what it counts.
    """

    read: Op
    write: Op | None = None
    tight: Callable[[], Any] | None = None
    counters: Callable[[], dict[str, int]] | None = None


@dataclass
class Workload:
    """One client's paths, over a keyspace of ``keyspace`` keys (key 0 the hottest)."""

    paths: dict[str, Path]
    keyspace: int = 1
    close: Callable[[], None] | None = None


@dataclass
class Opened:
    """What a factory hands one client: its workload, its database-call counter, a closer,
    and the meters of the database server's and Valkey's CPU seconds it accounts for."""

    workload: Workload
    calls: Callable[[], int]
    close: Callable[[], None]
    server_cpu: Callable[[], float] | None = None
    valkey_cpu: Callable[[], float] | None = None


Factory = Callable[[int], Opened]
"""Opens client ``i``'s connections and workload; must pickle for ``processes > 1``."""


@dataclass(frozen=True)
class Load:
    """How to drive a workload."""

    clients: int = 1  # threads per process
    processes: int = 1
    rate: float | None = None  # per path, over all clients; None: closed loop
    seconds: float | None = 10.0  # measured, per scenario, shared by its paths
    requests: int | None = None  # per path (instead of seconds)
    warmup: float = 0.5  # seconds per path, discarded
    slice: float = 0.25  # seconds
    read_ratio: float = 1.0
    keys: str = "uniform"  # or "zipf"
    zipf_s: float = 1.0
    seed: int = 1


_HISTOGRAMS = ("read", "write", "service", "lag")
_TOTALS = ("ops", "hits", "misses", "db_calls", "abandoned", "seconds", "cpu", "server_cpu",
           "valkey_cpu", "counters")  # fmt: skip
"""A Tally's fields as they cross from a bench process to its parent: encode, decode."""


@dataclass
class Tally:
    """One path's measurements (one client's, or merged)."""

    read: Any = field(default_factory=hdr.new)
    write: Any = field(default_factory=hdr.new)
    service: Any = field(default_factory=hdr.new)  # open loop: from actual start
    lag: Any = field(default_factory=hdr.new)  # open loop: actual start - scheduled
    ops: int = 0
    hits: int = 0
    misses: int = 0
    db_calls: int = 0
    abandoned: int = 0
    seconds: float = 0.0  # wall time of the path's measured slices
    cpu: float = 0.0  # process CPU seconds during them (max over processes)
    counters: dict[str, int] = field(default_factory=dict)  # the path's own, see Path
    server_cpu: float = 0.0  # the database server's CPU seconds during them (summed)
    valkey_cpu: float = 0.0  # valkey-server's CPU seconds during them

    def reset(self) -> None:
        for h in (self.read, self.write, self.service, self.lag):
            h.reset()
        self.ops = self.hits = self.misses = self.db_calls = self.abandoned = 0
        self.seconds = self.cpu = self.server_cpu = self.valkey_cpu = 0.0
        self.counters = {}

    def count(self, before: dict[str, int], after: dict[str, int]) -> None:
        for name, value in after.items():
            self.counters[name] = self.counters.get(name, 0) + value - before.get(name, 0)

    def add(self, other: Tally, *, same_clock: bool) -> None:
        """Add ``other``; ``same_clock``: the two ran side by side (processes), so their
        wall times overlap instead of adding up."""
        for mine, theirs in (
            (self.read, other.read),
            (self.write, other.write),
            (self.service, other.service),
            (self.lag, other.lag),
        ):
            if theirs.get_total_count():
                mine.add(theirs)
        self.ops += other.ops
        self.hits += other.hits
        self.misses += other.misses
        self.db_calls += other.db_calls
        self.abandoned += other.abandoned
        self.count({}, other.counters)
        self.server_cpu += other.server_cpu  # each process metered its own clients' share
        self.valkey_cpu += other.valkey_cpu
        if same_clock:
            self.seconds = max(self.seconds, other.seconds)
            self.cpu = max(self.cpu, other.cpu)
        else:
            self.seconds += other.seconds
            self.cpu += other.cpu

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: hdr.encode(getattr(self, k)) for k in _HISTOGRAMS}
        for k in _TOTALS:
            out[k] = getattr(self, k)
        return out

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Tally:
        t = cls(**{k: hdr.decode(data[k]) for k in _HISTOGRAMS})
        for k in _TOTALS:
            setattr(t, k, data[k])
        return t


@dataclass
class Outcome:
    """What one run measured, per path, and how it ended."""

    tallies: dict[str, Tally]
    slices: int = 0
    interrupted: bool = False
    late: dict[str, int] = field(default_factory=dict)  # open loop: started > 1 ms late


def plan(keyspace: int, load: Load, client: int) -> list[tuple[int, bool]]:
    """The client's cycled stream of (key, is_read): same for every path, so each path
    does the same work; Zipf puts key 0 hottest."""
    seed = load.seed * 1_000_003 + client
    if load.keys == "zipf" and keyspace > 1:
        ranks = zipf_ranks(keyspace, load.zipf_s, PLAN, seed)
    else:
        rng = random.Random(seed)
        ranks = [rng.randrange(keyspace) for _ in range(PLAN)]
    rng = random.Random(seed + 7)
    return [(k, rng.random() < load.read_ratio) for k in ranks]


@dataclass
class _Slice:
    path: str
    warm: bool
    tight: bool
    start: int  # perf_counter_ns
    end: int
    taken: Any  # itertools.count: operations handed out on this path (the --requests quota)
    limit: int
    schedule: Any = None  # open loop: itertools.count of this slice's schedule
    interval: float = 0.0  # open loop: ns between scheduled starts, in this process
    grace: int = 0


@dataclass
class _Client:
    index: int
    opened: Opened
    keys: list[tuple[int, bool]]
    tallies: dict[str, Tally]
    pos: int = 0
    mark: int = 0  # database calls at the start of the slice
    counted: dict[str, int] = field(default_factory=dict)  # the path's counters, then
    base: int = 0  # operations on the slice's path before it
    late: int = 0


class Sync:
    """How the processes of one run agree, slice by slice: a barrier and a flag array.

    Before each slice every process writes (still busy, stopped) into its half of a
    double-buffered array and waits at the barrier; after it, all read the same
    flags and take the same decision. A process that fails aborts the barrier.
    """

    def __init__(self, barrier: Any, flags: Any, index: int, processes: int) -> None:
        self.barrier, self.flags, self.index, self.processes = barrier, flags, index, processes
        self.generation = 0

    def agree(self, busy: bool, stopped: bool) -> tuple[bool, bool]:
        base = (self.generation % 2) * 2 * self.processes
        self.generation += 1
        self.flags[base + 2 * self.index] = int(busy)
        self.flags[base + 2 * self.index + 1] = int(stopped)
        self.barrier.wait()
        busy_any = any(self.flags[base + 2 * k] for k in range(self.processes))
        stop_any = any(self.flags[base + 2 * k + 1] for k in range(self.processes))
        return busy_any, stop_any

    def abort(self) -> None:
        self.barrier.abort()


class Runner:
    """The clients of one process, driving one workload slice by slice."""

    def __init__(
        self,
        factory: Factory,
        load: Load,
        *,
        stop: threading.Event,
        sync: Sync | None = None,
        process: int = 0,
        progress: Callable[[int, int | None, str, bool], None] | None = None,
    ) -> None:
        self.load, self.stop, self.sync, self.process = load, stop, sync, process
        self.progress = progress
        first = process * load.clients
        self.clients: list[_Client] = []
        try:
            for i in range(first, first + load.clients):
                opened = factory(i)
                names = list(opened.workload.paths)
                self.clients.append(
                    _Client(
                        i,
                        opened,
                        plan(opened.workload.keyspace, load, i),
                        {n: Tally() for n in names},
                    )
                )
        except BaseException:
            self.close()
            raise
        self.names = list(self.clients[0].tallies)
        self.tight = {n for n, p in self.clients[0].opened.workload.paths.items() if p.tight}
        rounds_warm = max(1, math.ceil(load.warmup / load.slice)) if load.warmup > 0 else 0
        self.warm_slices = rounds_warm * len(self.names)
        self.measured_slices: int | None = None
        if load.requests is None:
            seconds = load.seconds or 0.0
            per_path = max(1, math.ceil(seconds / (load.slice * len(self.names))))
            self.measured_slices = per_path * len(self.names)
        self.quota = self._quota()
        self.taken = {n: itertools.count() for n in self.names}
        self.index = 0
        self.current: _Slice | None = None
        self.error: BaseException | None = None
        self.interrupted = False
        self.late: dict[str, int] = dict.fromkeys(self.names, 0)
        self._cpu0 = 0.0
        self._servers0 = (0.0, 0.0)
        self.meters = (
            [c.opened.server_cpu for c in self.clients if c.opened.server_cpu],
            [c.opened.valkey_cpu for c in self.clients if c.opened.valkey_cpu],
        )
        self.barrier = threading.Barrier(load.clients, action=self._advance)

    def _quota(self) -> int:
        """This process's share of --requests per path (all of it with one process)."""
        if self.load.requests is None:
            return 1 << 62
        share, extra = divmod(self.load.requests, self.load.processes)
        return share + (1 if self.process < extra else 0)

    def close(self) -> None:
        for client in self.clients:
            try:
                if client.opened.workload.close is not None:
                    client.opened.workload.close()
            finally:
                client.opened.close()

    # -- the schedule ------------------------------------------------------------------
    @property
    def total_slices(self) -> int | None:
        if self.measured_slices is None:
            return None
        return self.warm_slices + self.measured_slices

    def _path_of(self, index: int) -> tuple[str, bool]:
        """Slice ``index``: its path and whether it is warm-up. Rounds rotate the order."""
        warm = index < self.warm_slices
        n = index if warm else index - self.warm_slices
        names = self.names
        rnd, pos = divmod(n, len(names))
        return names[(pos + rnd) % len(names)], warm

    def _busy(self) -> bool:
        if self.index < self.warm_slices:
            return True
        if self.measured_slices is not None:
            return self.index < self.warm_slices + self.measured_slices
        return any(sum(c.tallies[n].ops for c in self.clients) < self.quota for n in self.names)

    def _advance(self) -> None:
        """Barrier action (one thread, all others waiting): close the slice, open the next."""
        try:
            self._close_slice()
            gc.collect(1)  # the young generations: the garbage of one slice
            busy, stopped = self._busy(), self.stop.is_set()
            if self.sync is not None:
                busy, stopped = self.sync.agree(busy, stopped)
            if stopped or not busy:
                self.interrupted = stopped and busy
                self.current = None
                return
            self._open_slice()
        except BaseException as exc:  # a broken barrier everywhere beats a hang
            self.error = self.error or exc
            self.current = None
            if self.sync is not None:
                self.sync.abort()

    def _close_slice(self) -> None:
        s = self.current
        if s is None:
            return
        now = time.perf_counter_ns()
        served = done = 0
        for client in self.clients:
            tally = client.tallies[s.path]
            tally.db_calls += client.opened.calls() - client.mark
            counters = client.opened.workload.paths[s.path].counters
            if counters is not None:
                tally.count(client.counted, counters())
            self.late[s.path] += client.late
            served += tally.ops - client.base
            done += tally.ops
        if s.schedule is not None and not self.stop.is_set() and done < s.limit:
            scheduled = math.ceil((s.end - s.start) / s.interval)
            self.clients[0].tallies[s.path].abandoned += max(0, scheduled - served)
        if s.warm:
            if self.index == self.warm_slices:  # warm-up over: forget what it measured
                for client in self.clients:
                    for tally in client.tallies.values():
                        tally.reset()
                self.late = dict.fromkeys(self.names, 0)
            return
        first = self.clients[0].tallies[s.path]
        first.seconds += (now - s.start) / 1e9
        first.cpu += time.process_time() - self._cpu0
        database, valkey = self._servers()
        first.server_cpu += database - self._servers0[0]
        first.valkey_cpu += valkey - self._servers0[1]

    def _servers(self) -> tuple[float, float]:
        """The database server's and Valkey's CPU seconds this process's clients account for."""
        return sum(read() for read in self.meters[0]), sum(read() for read in self.meters[1])

    def _open_slice(self) -> None:
        path, warm = self._path_of(self.index)
        self.index += 1
        if self.progress is not None:
            self.progress(self.index, self.total_slices, path, warm)
        for client in self.clients:
            client.mark = client.opened.calls()
            counters = client.opened.workload.paths[path].counters
            client.counted = counters() if counters is not None else {}
            client.base = client.tallies[path].ops
            client.late = 0
        load = self.load
        self._servers0 = self._servers()  # before the clock starts: 128 reads take a while
        start = time.perf_counter_ns()
        self._cpu0 = time.process_time()
        s = _Slice(
            path=path,
            warm=warm,
            tight=path in self.tight,
            start=start,
            end=start + int(load.slice * 1e9),
            taken=itertools.count() if warm else self.taken[path],
            limit=1 << 62 if warm else self.quota,
        )
        if load.rate is not None and not s.tight:
            s.interval = 1e9 * load.processes / load.rate
            s.start += int(self.process * s.interval / load.processes)
            s.schedule = itertools.count()
            s.grace = s.end + int(max(GRACE_S, load.slice) * 1e9)
        self.current = s

    # -- the clients -------------------------------------------------------------------
    def run(self) -> Outcome:
        """Run every client in a thread of its own until the schedule ends or ``stop``.

        The garbage collector is paused meanwhile and collects between slices, at the
        barrier, so that a collection never lands inside a timed operation."""
        threads = [
            threading.Thread(target=self._client, args=(c,), name=f"bench-client-{c.index}")
            for c in self.clients[1:]
        ]
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for t in threads:
                t.start()
            self._client(self.clients[0])
            for t in threads:
                t.join()
        finally:
            if gc_was_enabled:
                gc.enable()
        if self.error is not None:
            raise self.error
        return self.outcome()

    def outcome(self) -> Outcome:
        merged: dict[str, Tally] = {n: Tally() for n in self.names}
        for client in self.clients:
            for name, tally in client.tallies.items():
                merged[name].add(tally, same_clock=False)
        for name in self.names:  # wall time and CPU were kept once, on the first client
            merged[name].seconds = self.clients[0].tallies[name].seconds
            merged[name].cpu = self.clients[0].tallies[name].cpu
            merged[name].server_cpu = self.clients[0].tallies[name].server_cpu
            merged[name].valkey_cpu = self.clients[0].tallies[name].valkey_cpu
        return Outcome(merged, self.index, self.interrupted, dict(self.late))

    def _client(self, client: _Client) -> None:
        try:
            while True:
                self.barrier.wait()
                s = self.current
                if s is None:
                    return
                if s.tight:
                    self._tight(client, s)
                elif s.schedule is not None:
                    self._open(client, s)
                else:
                    self._closed(client, s)
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:
            self.error = self.error or exc
            self.stop.set()
            self.barrier.abort()
            if self.sync is not None:
                self.sync.abort()

    def _closed(self, client: _Client, s: _Slice) -> None:
        path = client.opened.workload.paths[s.path]
        tally = client.tallies[s.path]
        ops_by_kind = (path.write or path.read, path.read)  # [is_read]
        counts = (tally.write.counts, tally.read.counts)
        mask, shift, half_mag, unit, half, top = MASK, SHIFT, HALF_MAGNITUDE, UNIT, HALF, TOP
        keys, wrap, pos = client.keys, PLAN - 1, client.pos
        taken, limit, end, stop = s.taken, s.limit, s.end, self.stop
        clock = time.perf_counter_ns
        seen: dict[bool | None, int] = {True: 0, False: 0, None: 0}  # hits, misses, neither
        reads = 0
        while not stop.is_set() and next(taken) < limit:
            key, is_read = keys[pos & wrap]
            pos += 1
            op = ops_by_kind[is_read]
            t0 = clock()
            answer = op(key)
            t1 = clock()
            hit, answer = _hit(answer), None  # the answer freed here, outside the clock
            ns = t1 - t0 if t1 - t0 < top else top
            bucket = (ns | mask).bit_length() - shift
            counts[is_read][((bucket + 1) << half_mag) + (ns >> (bucket + unit)) - half] += 1
            seen[hit] += 1
            reads += is_read
            if t1 >= end:
                break
        client.pos = pos
        _count(tally, seen, reads)

    def _tight(self, client: _Client, s: _Slice) -> None:
        """The reference: the bare call in the tightest loop there is, samples in a list."""
        call = client.opened.workload.paths[s.path].tight
        assert call is not None
        samples: list[int] = []
        keep = samples.append
        taken, limit, end, stop = s.taken, s.limit, s.end, self.stop
        clock = time.perf_counter_ns
        while not stop.is_set() and next(taken) < limit:
            t0 = clock()
            call()
            t1 = clock()
            keep(t1 - t0)
            if t1 >= end:
                break
        tally = client.tallies[s.path]
        counts = tally.read.counts
        for ns in samples:  # into the histogram after the loop, so the loop stays bare
            counts[hdr.index(min(ns, TOP))] += 1
        hdr.settle(tally.read, len(samples))
        tally.ops += len(samples)

    def _open(self, client: _Client, s: _Slice) -> None:
        path = client.opened.workload.paths[s.path]
        tally = client.tallies[s.path]
        ops_by_kind = (path.write or path.read, path.read)
        counts = (tally.write.counts, tally.read.counts)
        service, lag, index = tally.service.counts, tally.lag.counts, hdr.index
        keys, wrap, pos = client.keys, PLAN - 1, client.pos
        taken, limit, stop = s.taken, s.limit, self.stop
        schedule, interval, origin, end, grace = s.schedule, s.interval, s.start, s.end, s.grace
        spin = self.load.clients == 1
        clock = time.perf_counter_ns
        seen: dict[bool | None, int] = {True: 0, False: 0, None: 0}
        reads = late = 0
        while not stop.is_set():
            k = next(schedule)
            due = origin + int(k * interval)
            if due >= end or next(taken) >= limit:
                break
            now = clock()
            if now > grace:
                break  # hopelessly behind: the rest of the slice is abandoned, and counted
            if due > now:
                wait = due - now
                if not spin:
                    time.sleep(wait / 1e9)
                elif wait > SPIN_NS:
                    time.sleep((wait - SPIN_NS) / 1e9)
                while spin and clock() < due:
                    pass
            key, is_read = keys[pos & wrap]
            pos += 1
            op = ops_by_kind[is_read]
            t0 = clock()
            answer = op(key)
            t1 = clock()
            hit, answer = _hit(answer), None  # the answer freed here, outside the clock
            counts[is_read][index(min(t1 - due, TOP))] += 1  # from the schedule
            service[index(min(t1 - t0, TOP))] += 1
            lag[index(min(max(0, t0 - due), TOP))] += 1
            if t0 - due > LATE_NS:
                late += 1
            seen[hit] += 1
            reads += is_read
        client.pos = pos
        client.late += late
        ops = _count(tally, seen, reads)
        hdr.settle(tally.service, ops)
        hdr.settle(tally.lag, ops)


def _count(tally: Tally, seen: dict[bool | None, int], reads: int) -> int:
    """After a slice: the histograms' totals, and the operations, hits and misses; returns
    the operations."""
    ops = sum(seen.values())
    hdr.settle(tally.read, reads)
    hdr.settle(tally.write, ops - reads)
    tally.ops += ops
    tally.hits += seen[True]
    tally.misses += seen[False]
    return ops


# -- one process or several ----------------------------------------------------------------
RunProgress = Callable[[int, "int | None", str, bool], None]
"""progress(slices opened, slices in all or None, path, warm-up?)"""


def drive(
    factory: Factory, load: Load, *, stop: threading.Event, progress: RunProgress | None = None
) -> Outcome:
    """Run the workload: ``load.clients`` threads here, or in each of ``load.processes``."""
    if load.processes == 1:
        runner = Runner(factory, load, stop=stop, progress=progress)
        try:
            return runner.run()
        finally:
            runner.close()
    return _processes(factory, load, stop, progress)


def _child(
    factory: Factory,
    load: Load,
    index: int,
    barrier: Any,
    flags: Any,
    stopped: Any,
    results: Any,
    progress: Any,
) -> None:
    """One process of a multi-process run. Ctrl-C reaches the parent, which tells us;
    should the parent be killed, we die with it."""
    import signal

    from flightcache.children import die_with_mp_parent

    die_with_mp_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()

    def watch() -> None:  # a plain flag, polled: an Event's condition breaks if we exit
        while not stop.is_set():
            if stopped.value:
                stop.set()
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    report = None if index else (lambda *a: progress.put(a))
    try:
        runner = Runner(
            factory, load, stop=stop, sync=Sync(barrier, flags, index, load.processes),
            process=index, progress=report,
        )  # fmt: skip
    except BaseException as exc:
        barrier.abort()
        results.put((index, None, _why(exc)))
        return
    try:
        out = runner.run()
        tallies = {name: tally.encode() for name, tally in out.tallies.items()}
        results.put((index, (tallies, out.slices, out.interrupted, out.late), None))
    except BaseException as exc:
        barrier.abort()
        results.put((index, None, _why(exc)))
    finally:
        stop.set()
        try:
            runner.close()
        except Exception:
            pass


def _why(exc: BaseException) -> tuple[str, str, str | None]:
    return type(exc).__name__, str(exc) or type(exc).__name__, getattr(exc, "hint", None)


def _processes(
    factory: Factory, load: Load, stop: threading.Event, progress: RunProgress | None
) -> Outcome:
    import multiprocessing
    import queue

    from flightcache.children import safe_path
    from flightcache.errors import FlightcacheError

    mp = multiprocessing.get_context("spawn")  # fork would copy the parent's threads' locks
    with safe_path():  # the children (and the resource tracker) run with python -P
        barrier = mp.Barrier(load.processes)
        flags = mp.Array("i", 4 * load.processes, lock=False)
        stopped, results, updates = mp.RawValue("i", 0), mp.Queue(), mp.Queue()
        procs = [
            mp.Process(
                target=_child,
                args=(factory, load, i, barrier, flags, stopped, results, updates),
                name=f"bench-process-{i}",
            )
            for i in range(load.processes)
        ]
        for proc in procs:
            proc.start()
    got: dict[int, Any] = {}
    try:
        while len(got) < len(procs):
            if stop.is_set():
                stopped.value = 1
            try:
                update = updates.get(timeout=0.05)
                if progress is not None:
                    progress(*update)
            except queue.Empty:
                pass
            try:
                while True:
                    index, data, error = results.get_nowait()
                    got[index] = (data, error)
            except queue.Empty:
                pass
            for i, proc in enumerate(procs):
                if i not in got and proc.exitcode is not None and results.empty():
                    time.sleep(0.2)  # its last word may still be in the pipe
                    if results.empty():
                        barrier.abort()
                        got[i] = (None, ("ProcessDied", f"exit code {proc.exitcode}", None))
    finally:
        stopped.value = 1
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    errors = [e for _, e in got.values() if e is not None]
    if errors:
        name, message, hint = next((e for e in errors if e[0] != "BrokenBarrierError"), errors[0])
        raise FlightcacheError(f"a bench process failed: {message}", hint=hint)
    merged: dict[str, Tally] = {}
    late: dict[str, int] = {}
    slices, interrupted = 0, False
    for data, _ in got.values():
        tallies, n, was_stopped, was_late = data
        slices, interrupted = max(slices, n), interrupted or was_stopped
        for name, encoded in tallies.items():
            merged.setdefault(name, Tally()).add(Tally.decode(encoded), same_clock=True)
            late[name] = late.get(name, 0) + was_late.get(name, 0)
    return Outcome(merged, slices, interrupted, late)
