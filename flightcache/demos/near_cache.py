"""The narrated `flightcache near-cache` demo: query results kept in this process's
memory, the server telling it when one changes.

Turns tracking on (``CLIENT TRACKING on REDIRECT``), reads a result three times (the
database, Valkey, memory), times the memory hit beside the Valkey GET and the
database, lets a second client change the key and shows the push and the refetch,
sets default and broadcast tracking side by side with what each costs the server,
kills the tracking connection, and weighs the local store against ``MEMORY USAGE``.
The database is only read; every key is under the demo's prefix.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Step
    from flightcache.named_queries import Query
    from flightcache.patterns.near_cache import NearCache, NearLookup, Tracker

MODES = ("default", "bcast", "optin")
ENTRIES_MAX = 20_000  # results weighed in the memory step
SPREAD_MAX = 1_000  # results the other process rewrites in the mode comparison
WAIT_S = 5.0  # for a push, a flush, tracking to come back


@dataclass(frozen=True)
class Options:
    """What `flightcache near-cache` takes; the command's defaults are these."""

    mode: str = "default"  # the tracking mode of the demo's near cache
    query: str = "passenger_bookings"
    params: Mapping[str, str] = field(default_factory=dict)  # NAME=VALUE; defaults from the data
    spread: int = 20  # results another process rewrites in the default-vs-bcast step
    entries: int = 1000  # results weighed in memory (0: skip the memory step)


class Pushes:
    """What the store was told, as it was told: invalidated keys, or a flush (None)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seen: list[tuple[int, list[str] | None]] = []
        self._changed = threading.Condition()

    def __call__(self, keys: list[str] | None) -> None:
        with self._changed:
            self.seen.append((time.perf_counter_ns(), keys))
            self._changed.notify_all()

    def wait(self, until: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(until, timeout)

    def since(self, mark: int, start_ns: int) -> list[str]:
        """The pushes after ``mark``, one line each, timed from ``start_ns``."""
        lines = []
        for at, keys in self.seen[mark:]:
            what = (
                "store flushed (tracking lost)"
                if keys is None
                else "invalidate " + " ".join(k.removeprefix(self.prefix) for k in keys)
            )
            lines.append(f"+{(at - start_ns) / 1e6:.3f} ms  {what}")
        return lines


@dataclass
class Reading:
    ctx: DemoContext
    near: NearCache
    query: Query
    params: dict[str, Any]
    pushes: Pushes
    reads: list[list[Any]] = field(default_factory=list)  # the summary table's rows

    @property
    def key(self) -> str:
        return self.near.key(self.query, self.params)

    @property
    def tracker(self) -> Tracker:
        return self.near.tracker(self.key)

    def read(self, label: str) -> NearLookup:
        found = self.near.get(self.query, self.params)
        self.reads.append([label, found.source, "yes" if found.kept else "", len(found.rows)])
        return found


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Tracking on; database, Valkey, memory; a write; the modes; a kill; the memory."""
    options: Options = ctx.options
    s = prepare(ctx, options, options.mode)
    yield from tracking_on(s)
    yield from three_reads(s)
    yield timings(s)
    yield from second_client_writes(s)
    yield from modes_compared(ctx, options)
    yield from tracking_killed(s)
    if options.entries:
        yield from memory(ctx, options)
    from flightcache.demos.base import Table

    yield Table(
        "What each read did",
        ["read", "served from", "kept in memory", "rows"],
        s.reads,
        note="the store's counters: "
        + ", ".join(f"{name} {n:,}" for name, n in vars(s.near.store.counters).items()),
    )


def prepare(ctx: DemoContext, options: Options, mode: str, **kw: Any) -> Reading:
    """A near cache on the demo's client, its tracked GETs traced, its pushes recorded."""
    from flightcache.named_queries import bind, get
    from flightcache.patterns.near_cache import NearCache

    query = get(options.query)
    params = bind(ctx.db, query, options.params)
    near = NearCache(ctx.valkey, ctx.db, ctx.keys, mode=mode, **kw)
    ctx.on_exit(near.close)
    pushes = Pushes(ctx.keys.prefix)
    near.store.on_invalidate = pushes
    for tracker in near.trackers.values():
        _trace_reads(ctx, tracker)
    if not near.wait_ready(WAIT_S):
        from flightcache.errors import FlightcacheError

        raise FlightcacheError("client tracking did not come up", hint="is Valkey 6 or later?")
    return Reading(ctx, near, query, params, pushes)


def _trace_reads(ctx: DemoContext, tracker: Tracker) -> None:
    """Record the tracked connection's commands as the step's, like the traced client's."""
    original = tracker.get

    def traced(key: str, *, tracked: bool) -> Any:
        if ctx.tracer._active:
            if tracker.optin and tracked:
                ctx.tracer.commands.append(["CLIENT", "CACHING", "yes"])
            ctx.tracer.commands.append(["GET", key])
        return original(key, tracked=tracked)

    tracker.get = traced  # type: ignore[method-assign]


def tracking_commands(tracker: Tracker) -> list[list[Any]]:
    """What the pattern sent to turn tracking on for one primary, ids filled in."""
    return [
        ["HELLO", 3],
        ["CLIENT", "ID"],
        ["CLIENT", "ID"],
        ["CLIENT", "TRACKING", "off"],
        ["CLIENT", "TRACKING", "on", "REDIRECT", tracker.sink_id, *tracker.tracking],
    ]


def trackinginfo(tracker: Tracker) -> dict[str, Any]:
    """``CLIENT TRACKINGINFO`` of the tracked connection, as a dict."""
    from valkey.utils import str_if_bytes

    reply = tracker.ask("CLIENT", "TRACKINGINFO")
    if isinstance(reply, dict):
        pairs = list(reply.items())
    else:
        pairs = list(zip(reply[::2], reply[1::2], strict=True))

    def plain(v: Any) -> Any:
        return [str_if_bytes(x) for x in v] if isinstance(v, list) else str_if_bytes(v)

    return {str_if_bytes(k): plain(v) for k, v in pairs}


def tracking_on(s: Reading) -> Iterator[Record]:
    with s.ctx.step(
        f"Turn client tracking on ({s.near.mode} mode)",
        "per primary: a RESP3 connection that only receives pushes (HELLO 3, CLIENT ID),"
        " and one for the reads, whose CLIENT TRACKING sends its invalidations to the first"
        " (REDIRECT <its id>)",
    ) as step:
        for tracker in s.near.trackers.values():
            step.commands += tracking_commands(tracker)
        infos = {name: trackinginfo(t) for name, t in s.near.trackers.items()}
        step.commands += [["CLIENT", "TRACKINGINFO"]] * len(infos)
        step.ok = all(
            int(info.get("redirect", -1)) == s.near.trackers[name].sink_id
            for name, info in infos.items()
        )
        step.outcome = "; ".join(
            f"{name}: reads on client {t.reader_id}, pushes to client {t.sink_id},"
            f" CLIENT TRACKINGINFO flags {' '.join(infos[name].get('flags', []))}"
            for name, t in s.near.trackers.items()
        )
        step.data = {
            "trackers": {
                name: {"sink_id": t.sink_id, "reader_id": t.reader_id, "info": infos[name]}
                for name, t in s.near.trackers.items()
            }
        }
    yield step


def three_reads(s: Reading) -> Iterator[Record]:
    ctx = s.ctx
    mark, start = len(s.pushes.seen), time.perf_counter_ns()
    with ctx.step(
        "First read: a miss everywhere",
        "the GET on the tracked connection makes the server remember the key; the fill's SET"
        " changes it, so the server pushes an invalidation of it at once",
    ) as step:
        first = s.read("first")
        s.pushes.wait(lambda: len(s.pushes.seen) > mark)
        step.hit, step.rows, step.bytes = False, len(first.rows), first.bytes
        step.data["pushes"] = s.pushes.since(mark, start)
        step.ok = first.source == "database" and not first.kept and bool(step.data["pushes"])
        step.outcome = f"from the {first.source}; not kept: the fill's own SET came back as a push"
    yield step

    with ctx.step(
        "Second read: Valkey answers, and the copy is kept",
        "the GET is tracked again; no invalidation came while it was in flight",
    ) as step:
        second = s.read("second")
        step.hit, step.rows = True, len(second.rows)
        step.ok = second.source == "valkey" and second.kept
        step.outcome = f"from {second.source}; kept: {second.kept}; store holds {len(s.near.store)}"
    yield step

    with ctx.step(
        "Third read: from this process's memory",
        "no command at all: the store is served while tracking is whole and nothing is"
        " waiting unread on either connection",
    ) as step:
        third = s.read("third")
        step.hit, step.rows = True, len(third.rows)
        step.ok = third.from_memory and not step.commands and third.rows == second.rows
        step.outcome = f"from {third.source}, {len(third.rows)} rows, no network"
    yield step


def timings(s: Reading) -> Record:
    from flightcache.patterns.cache_aside import CacheAside

    ctx, query, params = s.ctx, s.query, s.params
    sql = query.sql(ctx.db.dialect)
    aside = CacheAside(ctx.valkey, ctx.db, ctx.keys)
    hits = s.near.store.counters.hits
    timing = ctx.compare(
        f"{query.name}: database, Valkey, memory",
        {
            "database": lambda: ctx.db.fetch(sql, params),
            "cache-aside hit (Valkey)": lambda: aside.get(query, params),
            "bare GET": lambda: ctx.valkey.get(s.key),
            "near-cache hit (memory)": lambda: s.near.get(query, params),
        },
    )
    timing.note = (
        f"interleaved in one run after a warm-up. 'near-cache hit' is NearCache.get; of its"
        f" {ctx.repeat + ctx.warmup:,} calls {s.near.store.counters.hits - hits:,} were served"
        " from the local store (the rest found a push or a reply pending, and went to Valkey)"
    )
    return timing


def second_client_writes(s: Reading) -> Iterator[Record]:
    ctx = s.ctx
    held = s.near.get(s.query, s.params)
    doc: dict[str, Any] = {"columns": held.columns, "rows": held.rows[:-1]}
    mark = len(s.pushes.seen)
    with ctx.step(
        "A second client changes the key",
        "another connection SETs the result (one row fewer, as if a booking were cancelled):"
        " the server pushes invalidate <key> to the tracking connection, and its thread drops"
        " the copy",
    ) as step:
        start = time.perf_counter_ns()
        ctx.valkey.set(s.key, json.dumps(doc, default=str), ex=3600)
        returned = time.perf_counter_ns()
        holding = s.near.store.keys
        dropped = s.pushes.wait(lambda: s.key not in holding())
        step.data["pushes"] = s.pushes.since(mark, start)
        step.ok = dropped
        step.outcome = (
            f"SET returned after {(returned - start) / 1e3:,.0f} µs; the copy was dropped"
            if dropped
            else "no invalidation arrived"
        )
    yield step

    with ctx.step(
        "The first client's next read misses and refetches",
        "the copy is gone, so the GET goes to Valkey and brings the new value; the one after"
        " is from memory again",
    ) as step:
        after = s.read("after the write")
        again = s.read("again")
        step.ok = (
            after.source == "valkey" and len(after.rows) == len(doc["rows"]) and again.from_memory
        )
        step.outcome = (
            f"from {after.source}: {len(after.rows)} rows (was {len(held.rows)});"
            f" next read from {again.source}"
        )
    yield step


def _server_tracking(ctx: DemoContext) -> dict[str, int]:
    """INFO stats' tracking figures, summed over the primaries (server-wide)."""
    from flightcache.valkey_client import primaries

    total = {"tracking_total_keys": 0, "tracking_total_prefixes": 0}
    for node in primaries(ctx.valkey):
        stats: Any = node.info("stats")
        for name in total:
            total[name] += int(stats.get(name, 0))
    return total


def modes_compared(ctx: DemoContext, options: Options) -> Iterator[Record]:
    """Default and broadcast tracking over the same results: the server's cost."""
    from flightcache.demos.base import Table
    from flightcache.named_queries import get
    from flightcache.patterns.cache_aside import CacheAside
    from flightcache.sqlfiles import query as sql_of

    bookings = get("passenger_bookings")
    found = ctx.db.fetch(sql_of(ctx.db.dialect, "candidate_passengers"), {"limit": options.spread})
    params = [{"passenger_id": int(r[0])} for r in found.rows]
    aside = CacheAside(ctx.valkey, ctx.db, ctx.keys)
    with ctx.tracer.paused():
        for p in params:
            aside.get(bookings, p)
    read = params[: max(1, len(params) // 4)]
    rows = []
    for mode in ("default", "bcast"):
        step = _one_mode(ctx, options, mode, bookings, params, read)
        yield step
        rows.append(
            [
                mode,
                len(read),
                step.data["tracking_total_keys"],
                step.data["tracking_total_prefixes"],
                step.data["invalidations"],
            ]
        )
    yield Table(
        "What each tracking mode costs",
        ["mode", "results read", "keys tracked", "prefixes tracked", "invalidations received"],
        rows,
        note="keys and prefixes tracked: INFO stats tracking_total_keys / _prefixes before and"
        " after the reads (server-wide, summed over the primaries). OPTIN: as default, but only"
        " reads after CLIENT CACHING yes are tracked",
    )


def _one_mode(
    ctx: DemoContext,
    options: Options,
    mode: str,
    bookings: Query,
    params: list[dict[str, Any]],
    read: list[dict[str, Any]],
) -> Step:
    """One tracking mode: read some results, another client rewrites all of them."""
    before = _server_tracking(ctx)
    s = prepare(ctx, options, mode)
    with ctx.step(
        f"{mode} tracking: read {len(read)} of {len(params)} results, then another client"
        f" rewrites all {len(params)}",
        "the server remembers every key read (tracking_total_keys) and pushes once per key read"
        if mode == "default"
        else "the server remembers the prefix only (tracking_total_prefixes) and pushes every"
        " change under it, read or not",
    ) as step:
        with ctx.tracer.paused():
            for p in read:
                s.near.get(bookings, p)
        held = _server_tracking(ctx)
        info = trackinginfo(s.tracker)
        ctx.tracer.commands.append(["CLIENT", "TRACKINGINFO"])  # on the tracked connection
        pushes = sum(t.pushes for t in s.near.trackers.values())
        invalidated = s.near.store.counters.invalidations
        mark, start = len(s.pushes.seen), time.perf_counter_ns()
        keys = [s.near.key(bookings, p) for p in params]
        for i, key in enumerate(keys):  # the first rewrite is shown
            with ctx.tracer.paused() if i else nullcontext():
                ctx.valkey.set(key, ctx.valkey.get(key), ex=3600)
        want = len(read) if mode == "default" else len(keys)
        s.pushes.wait(lambda: s.near.store.counters.invalidations - invalidated >= want)
        time.sleep(0.05)  # room for pushes beyond those expected, which must not come
        got = s.near.store.counters.invalidations - invalidated
        lines = s.pushes.since(mark, start)
        step.data = {
            "mode": mode,
            "pushes": lines[:3] + ([f"... {len(lines) - 3} more"] if len(lines) > 3 else []),
            "invalidations": got,
            "push_messages": sum(t.pushes for t in s.near.trackers.values()) - pushes,
            "tracking_total_keys": held["tracking_total_keys"] - before["tracking_total_keys"],
            "tracking_total_prefixes": held["tracking_total_prefixes"]
            - before["tracking_total_prefixes"],
            "trackinginfo": info,
        }
        step.ok = got == want
        step.outcome = (
            f"{got} keys invalidated in {step.data['push_messages']} pushes;"
            f" the server's tracking table grew by {step.data['tracking_total_keys']} keys"
            f" and {step.data['tracking_total_prefixes']} prefixes;"
            f" CLIENT TRACKINGINFO flags {' '.join(info.get('flags', []))},"
            f" prefixes {info.get('prefixes') or '[]'}"
        )
    s.near.close()
    return step


def tracking_killed(s: Reading) -> Iterator[Record]:
    from flightcache.valkey_client import node_name, primaries

    ctx, tracker = s.ctx, s.tracker
    s.read("before the kill")
    old, flushes = tracker.sink_id, s.near.store.counters.flushes
    node = next(n for n in primaries(ctx.valkey) if node_name(n) == tracker.name)
    mark, start = len(s.pushes.seen), time.perf_counter_ns()
    with ctx.step(
        "Kill the tracking connection",
        "CLIENT KILL ID <the push connection>: invalidations sent from now on are lost, so"
        " the store is flushed before anything more is served from it",
    ) as step:
        step.commands.append(["CLIENT", "KILL", "ID", old])
        with ctx.tracer.paused():
            node.execute_command("CLIENT", "KILL", "ID", old)
        flushed = s.pushes.wait(lambda: s.near.store.counters.flushes > flushes)
        during = s.read("tracking down")
        step.data["pushes"] = s.pushes.since(mark, start)
        step.ok = flushed and not during.from_memory and len(s.near.store) == 0
        step.outcome = (
            f"store flushed: {flushed}; the next read came from {during.source}, not memory"
        )
    yield step

    with ctx.step(
        "Tracking comes back on a new connection",
        "the thread connects again, takes its CLIENT ID, and points the reads' tracking at it",
    ) as step:
        ready = s.near.wait_ready(WAIT_S)
        step.commands += tracking_commands(tracker)
        s.read("tracking back")
        back = s.read("and again")
        info = trackinginfo(tracker)
        ctx.tracer.commands.append(["CLIENT", "TRACKINGINFO"])  # on the tracked connection
        step.ok = ready and tracker.sink_id != old and back.from_memory
        step.outcome = (
            f"push connection {old} -> {tracker.sink_id} ({tracker.connects} connections so"
            f" far); CLIENT TRACKINGINFO redirect {info.get('redirect')}; the second read after"
            f" it from {back.source}"
        )
        step.data = {"old_sink": old, "new_sink": tracker.sink_id, "connects": tracker.connects}
    yield step


def memory(ctx: DemoContext, options: Options) -> Iterator[Record]:
    """The local store's Python objects (tracemalloc) against MEMORY USAGE."""
    from flightcache.named_queries import get
    from flightcache.patterns.cache_aside import CacheAside
    from flightcache.sqlfiles import query as sql_of

    bookings = get("passenger_bookings")
    found = ctx.db.fetch(sql_of(ctx.db.dialect, "candidate_passengers"), {"limit": options.entries})
    params = [{"passenger_id": int(r[0])} for r in found.rows]
    with ctx.step(
        f"Memory: {len(params):,} results in the local store and in Valkey",
        "the store's growth measured by tracemalloc (decoded rows, keys, entries) against"
        " MEMORY USAGE of the same keys in Valkey",
    ) as step:
        aside = CacheAside(ctx.valkey, ctx.db, ctx.keys)
        with ctx.tracer.paused():
            for p in params:
                aside.get(bookings, p)
        s = prepare(ctx, options, "default", max_entries=max(10_000, len(params)))
        keys = [s.near.key(bookings, p) for p in params]
        with ctx.tracer.paused():
            kept, grown = weigh(s.near, bookings, params)
        usage = ctx.pipelined(keys, lambda pipe, key: pipe.memory_usage(key))
        in_valkey = sum(int(u or 0) for u in usage)
        json_bytes = s.near.store.bytes
        step.ok = kept == len(params) and in_valkey > 0
        step.outcome = (
            f"{kept:,} kept; Python heap +{grown / 1e6:,.2f} MB ({grown / max(kept, 1):,.0f} B"
            f" per result), their JSON {json_bytes / 1e6:,.2f} MB, MEMORY USAGE in Valkey"
            f" {in_valkey / 1e6:,.2f} MB ({in_valkey / max(len(keys), 1):,.0f} B per key):"
            f" the local copy is {grown / max(in_valkey, 1):.1f}x Valkey's"
        )
        step.data = {
            "results": len(params),
            "kept": kept,
            "python_bytes": grown,
            "json_bytes": json_bytes,
            "valkey_bytes": in_valkey,
        }
        s.near.close()
    yield step


def weigh(near: NearCache, query: Query, params: list[dict[str, Any]]) -> tuple[int, int]:
    """Read every parameter set once (each a Valkey hit, kept): how many were kept, and
    by how many bytes the Python heap grew (tracemalloc, after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        kept = sum(near.get(query, p).kept for p in params)
        gc.collect()
        return kept, tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
