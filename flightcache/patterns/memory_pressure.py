"""Memory pressure: what an application sees when Valkey's memory is full.

Read path: cache-aside (GET; on a miss the database, then SET EX). At the limit
under ``noeviction`` Valkey refuses the SET with
``-OOM command not allowed when used memory > 'maxmemory'.``; the reader catches
it (valkey-py's OutOfMemoryError), serves the rows it read from the database and
goes on. Reads and DELs still work at the limit; only commands that may grow
memory are refused.
Write path: a fill writes real booking rows (JSON strings, or hashes) with TTLs
spread from 60 s to an hour, until Valkey refuses; under an eviction policy the
same writes succeed and ``evicted_keys`` (INFO stats) rises instead.
Failure mode: every setting the demo changes (maxmemory, maxmemory-policy,
slowlog-log-slower-than) is put back however it ends, on every primary. The
slow log is a shared record: the demo reads only the entries newer than the ones
it found, and SLOWLOG RESET runs only on a Valkey flightcache started itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import valkey.cluster
import valkey.exceptions

from flightcache import sqlfiles
from flightcache.catalogue import bind
from flightcache.catalogue import get as get_query
from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.cache_aside import CacheAside, Lookup
from flightcache.patterns.eviction import MemoryLimits, ServerSettings, limits_for, mib
from flightcache.undo import Undo
from flightcache.valkey_client import delete_matching, info, primaries

LAYOUTS = ("json", "hash")
POLICIES = ("allkeys-lru", "volatile-ttl", "allkeys-lfu")
"""The eviction policies shown after noeviction."""
INFO_FIELDS = (
    "used_memory_human",
    "used_memory_peak_human",
    "maxmemory_human",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
    "used_memory_dataset_perc",
    "mem_allocator",
)
BATCH = 500
MAX_FILL = 2_000_000
"""A fill stops here even if Valkey never refused a write (maxmemory far too high)."""
SLOW_KEYS = 20_000
"""Pairs in the SLOWLOG demo's MSET, and members in each sorted set of its ZUNIONSTORE."""


def oom_text(exc: Exception) -> str:
    """The reply as the server sent it: valkey-py keeps the text after the error code."""
    return f"OOM {exc}"


def key_ttl(n: int) -> int:
    """Row ``n``'s TTL in seconds: spread from 60 s to an hour, so volatile-ttl can choose."""
    return 60 + (n * 7919) % 3541


@dataclass
class FillResult:
    """What one round of writes did."""

    label: str
    layout: str = "json"
    written: int = 0
    oom: int = 0
    first_error: str = ""
    evicted: int = 0  # evicted_keys delta, every primary
    kept: int = 0
    used_memory: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "layout": self.layout,
            "written": self.written,
            "oom_errors": self.oom,
            "first_error": self.first_error,
            "evicted_keys": self.evicted,
            "keys_kept": self.kept,
            "used_memory": self.used_memory,
        }


class Filler:
    """Writes rows ``n, n+1, ...`` (record ``n % len(records)``) in one of two layouts."""

    def __init__(
        self, client: Any, keys: Keys, records: Sequence[dict[str, Any]], layout: str = "json"
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
        if not records:
            raise DataError("the booking table is empty", hint="run `flightcache data load`")
        self.valkey, self.keys, self.layout = client, keys, layout
        self.texts = [json.dumps(r, default=str, separators=(",", ":")) for r in records]
        self.fields = [{k: "" if v is None else str(v) for k, v in r.items()} for r in records]
        self.next = 0

    def _queue(self, target: Any, n: int) -> None:
        """SET (or HSET + EXPIRE) row ``n`` on ``target``, a pipeline or the client."""
        i = n % len(self.texts)
        if self.layout == "json":
            target.set(self._key(n), self.texts[i], ex=key_ttl(n))
        else:
            target.hset(self._key(n), mapping=self.fields[i])
            target.expire(self._key(n), key_ttl(n))

    def write(self, count: int, result: FillResult) -> int:
        """Write ``count`` more rows, pipelined; OOM replies are counted, not raised.
        Returns how many of this call's writes Valkey refused."""
        refused = 0
        end = self.next + count
        while self.next < end:
            pipe = self.valkey.pipeline(transaction=False)
            batch = range(self.next, min(end, self.next + BATCH))
            for n in batch:
                self._queue(pipe, n)
            self.next = batch.stop
            replies = pipe.execute(raise_on_error=False)
            step = 1 if self.layout == "json" else 2  # a hash row is HSET + EXPIRE
            for reply in replies[::step]:
                if isinstance(reply, valkey.exceptions.OutOfMemoryError):
                    refused += 1
                    result.first_error = result.first_error or oom_text(reply)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    result.written += 1
        result.oom += refused
        return refused

    def until_full(self, result: FillResult, limit: int = MAX_FILL) -> bool:
        """Write until every primary refuses; False if ``limit`` rows came first.

        Pipelines first, until one is refused whole, then :meth:`top_up`.
        """
        while self.next < limit:
            if self.write(BATCH, result) == BATCH:
                return self.top_up(result, limit)
        return False

    def top_up(self, result: FillResult, limit: int = MAX_FILL) -> bool:
        """One row at a time until each primary has refused one: at the limit, now.

        The limit is a moving edge: a command's arguments and a pipeline's replies
        count as used memory while they are buffered, and Valkey shrinks idle
        client buffers in the background, so a server that refused a write may
        accept the next one a moment later.
        """
        nodes = len(primaries(self.valkey))
        full: set[str] = set()
        while len(full) < nodes and self.next < limit:
            n, self.next = self.next, self.next + 1
            node = self._node_of(n)
            if node in full:
                continue  # that primary is full: this row number stays unused
            try:
                self._queue(self.valkey, n)
            except valkey.exceptions.OutOfMemoryError as exc:
                full.add(node)
                result.oom += 1
                result.first_error = result.first_error or oom_text(exc)
            else:
                result.written += 1
        return len(full) == nodes

    def _key(self, n: int) -> str:
        return (
            self.keys.pressure_row(n) if self.layout == "json" else self.keys.pressure_row_hash(n)
        )

    def _node_of(self, n: int) -> str:
        if isinstance(self.valkey, valkey.cluster.ValkeyCluster):
            return str(self.valkey.get_node_from_key(self._key(n)).name)
        return "the node"


def total(nodes: Sequence[Any], section: str, name: str) -> int:
    return sum(int(info(node, section).get(name, 0)) for node in nodes)


def kept_and_median_ttl(nodes: Sequence[Any], keys: Keys) -> tuple[int, int | None]:
    """How many of the demo's keys exist, and the median TTL left among them (s)."""
    ttls: list[int] = []
    count = 0
    for node in nodes:
        names = list(node.scan_iter(match=keys.match(), count=1000))
        count += len(names)
        if names:
            pipe = node.pipeline(transaction=False)
            for name in names:
                pipe.ttl(name)
            ttls += [int(t) for t in pipe.execute() if int(t) >= 0]
    ttls.sort()
    return count, (ttls[len(ttls) // 2] if ttls else None)


class SlowLog:
    """A window on every primary's SLOWLOG: only entries newer than those found at the start."""

    def __init__(self, nodes: Sequence[Any], undo: Undo | None) -> None:
        self.nodes = list(nodes)
        self.settings = ServerSettings(nodes, ("slowlog-log-slower-than", "slowlog-max-len"), undo)
        self.last = [self._newest(node) for node in self.nodes]

    @staticmethod
    def _newest(node: Any) -> int:
        entries = node.slowlog_get(1)
        return int(entries[0]["id"]) if entries else -1

    def lower(self, micros: int) -> None:
        self.settings.set_all(slowlog_log_slower_than=micros)

    def entries(self) -> list[dict[str, Any]]:
        """Entries logged since the start, every primary, with the node's address."""
        found: list[dict[str, Any]] = []
        for node, last in zip(self.nodes, self.last, strict=True):
            length = int(node.slowlog_len())
            kwargs = node.connection_pool.connection_kwargs
            for entry in node.slowlog_get(max(length, 1)):
                if int(entry["id"]) <= last:
                    continue
                found.append(
                    {
                        "node": f"{kwargs.get('host')}:{kwargs.get('port')}",
                        "id": int(entry["id"]),
                        "duration_us": int(entry["duration"]),
                        "command": _text(entry.get("command", "")),
                        "client_name": _text(entry.get("client_name", "")),
                    }
                )
        return sorted(found, key=lambda e: (e["node"], e["id"]))

    def reset(self) -> None:
        for node in self.nodes:
            node.slowlog_reset()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _memory_rows(nodes: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """INFO memory's chosen fields: one column per primary, one row per field."""
    replies = [info(node, "memory") for node in nodes]
    names = [
        f"{n.connection_pool.connection_kwargs.get('host')}:"
        f"{n.connection_pool.connection_kwargs.get('port')}"
        for n in nodes
    ]
    return names, [[f, *(r.get(f, "") for r in replies)] for f in INFO_FIELDS]


def _records(ctx: DemoContext, count: int) -> list[dict[str, Any]]:
    result = ctx.db.fetch(sqlfiles.query(ctx.db.dialect, "booking_records"), {"limit": count})
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def demo(ctx: DemoContext) -> Iterator[Record]:
    o = ctx.options
    nodes = primaries(ctx.valkey)
    for node in nodes:
        if node is not ctx.valkey:
            ctx.tracer.instrument(node)  # a cluster's CONFIG, INFO and SLOWLOG go to each primary

    with ctx.step(
        "INFO memory, as the server reports it",
        "001's first look: used_memory_human against maxmemory_human (0 means no limit)",
    ) as step:
        names, rows = _memory_rows(nodes)
        field = {row[0]: row[1:] for row in rows}
        step.outcome = "; ".join(
            f"{name}: used {used}, maxmemory {limit} ({policy})"
            for name, used, limit, policy in zip(
                names,
                field["used_memory_human"],
                field["maxmemory_human"],
                field["maxmemory_policy"],
                strict=True,
            )
        )
        step.data = {"info": {name: {r[0]: r[1 + i] for r in rows} for i, name in enumerate(names)}}
    yield step
    yield Table("INFO memory", ["field", *names], rows)

    with ctx.step(
        "Read the rows to cache",
        "real bookings with their flight and passenger, one JSON value each; fetched once",
    ) as step:
        records = _records(ctx, o["rows"])
        filler = Filler(ctx.valkey, ctx.keys, records)
        step.rows = len(records)
        step.bytes = sum(len(t) for t in filler.texts)
        step.outcome = (
            f"{len(records):,} bookings, {step.bytes / max(1, len(records)):.0f} bytes of JSON"
            " each; the fill cycles through them, one key per write"
        )
    yield step

    limits = MemoryLimits(nodes, ctx.undo)
    ctx.on_exit(limits.restore)
    maxmemory = limits_for(nodes, o["maxmemory"])
    results: list[FillResult] = []
    q = get_query("passenger_bookings")
    params = bind(ctx.db, q, {})
    reader = CacheAside(ctx.valkey, ctx.db, ctx.keys, ttl=600)
    try:
        with ctx.step(
            f"Set maxmemory {', '.join(mib(m) for m in maxmemory)} and noeviction",
            "001's CONFIG SET maxmemory; noeviction makes Valkey refuse writes at the limit"
            + (" (every primary)" if len(nodes) > 1 else ""),
        ) as step:
            limits.apply(maxmemory, "noeviction")
            step.data = {"saved": limits.saved, "now": limits.current()}
            step.outcome = "was: " + ", ".join(
                f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in limits.saved
            )
        yield step

        fill = FillResult("noeviction")
        with ctx.step(
            "Fill until Valkey refuses",
            f"SET row EX ttl, {BATCH} per pipeline (the first SET is listed), until a whole"
            " pipeline is refused",
        ) as step:
            evicted = total(nodes, "stats", "evicted_keys")
            with ctx.tracer.paused():
                filler.write(BATCH, fill)  # listed below, by hand: 500 SETs are too many
                full = filler.until_full(fill)
            step.commands.append(
                ["SET", ctx.keys.pressure_row(0), filler.texts[0], "EX", key_ttl(0)]
            )
            fill.evicted = total(nodes, "stats", "evicted_keys") - evicted
            fill.used_memory = total(nodes, "memory", "used_memory")
            fill.kept = fill.written
            step.ok = full and fill.oom > 0
            step.outcome = (
                f"{filler.next:,} SETs: {fill.written:,} rows stored, {fill.oom:,} refused:"
                f" {fill.first_error!r}; used_memory {mib(fill.used_memory)} of"
                f" {mib(sum(maxmemory))}"
                if full
                else f"{fill.written:,} rows and still no refusal: lower --maxmemory"
            )
            step.data = fill.as_dict()
        results.append(fill)
        yield step

        with ctx.step(
            "MEMORY DOCTOR at the limit",
            "001's memory advice, as the server words it",
        ) as step:
            doctor = [_text(node.execute_command("MEMORY", "DOCTOR")) for node in nodes]
            said = list(dict.fromkeys(d.strip() for d in doctor))
            step.outcome = " | ".join(said) + (
                " (every primary)" if len(doctor) > len(said) else ""
            )
            step.data = {"doctor": doctor}
        yield step

        yield from _at_the_limit(ctx, filler, reader, q, params)

        for policy in POLICIES:
            result = FillResult(policy)
            with ctx.step(
                f"{policy}: write {fill.written:,} more rows",
                _WHY[policy],
            ) as step:
                limits.apply(maxmemory, policy)
                evicted = total(nodes, "stats", "evicted_keys")
                with ctx.tracer.paused():
                    filler.write(fill.written, result)
                    result.kept, median = kept_and_median_ttl(nodes, ctx.keys)
                result.evicted = total(nodes, "stats", "evicted_keys") - evicted
                result.used_memory = total(nodes, "memory", "used_memory")
                step.ok = result.oom == 0 and result.evicted > 0
                step.outcome = (
                    f"{result.written:,} writes accepted, {result.oom:,} refused; evicted_keys"
                    f" +{result.evicted:,}; {result.kept:,} rows kept, their median TTL left"
                    f" {median} s (TTLs given: 60 - 3600 s, evenly)"
                )
                step.data = {**result.as_dict(), "median_ttl_left": median}
                if policy == "allkeys-lru":
                    first, again = reader.get(q, params), reader.get(q, params)
                    step.data["cache_aside"] = [first.source, again.source]
                    step.ok = step.ok and first.stored and again.hit
                    step.outcome += (
                        f"; the cache-aside read now stores ({first.source}) and the next"
                        f" read hits: {again.hit}"
                    )
            results.append(result)
            yield step

        with ctx.step(
            "Put maxmemory back",
            "as it was before the demo, on every primary (an error or Ctrl-C does the same)",
        ) as step:
            limits.restore()
            with ctx.tracer.paused():
                delete_matching(ctx.valkey, ctx.keys.match())
            now = limits.current()
            step.ok = now == limits.saved
            step.outcome = ", ".join(
                f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in now
            )
            step.data = {"settings": now}
        yield step
    finally:
        limits.restore()

    yield from _slowlog(ctx, nodes, o["slower_than"], o["own_server"])

    yield Table(
        "At the limit, policy by policy",
        ["policy", "writes accepted", "refused (OOM)", "evicted_keys", "rows kept", "used_memory"],
        [[r.label, r.written, r.oom, r.evicted, r.kept, mib(r.used_memory)] for r in results],
        note=f"maxmemory {', '.join(mib(m) for m in maxmemory)}; rows of about"
        f" {sum(len(t) for t in filler.texts) / len(filler.texts):.0f} bytes of JSON; each"
        " policy writes as many rows as the noeviction fill stored",
    )


EDGE_TRIES = 5
"""Times a step at the limit tops up and tries again when a write slipped in."""


def _at_the_limit(
    ctx: DemoContext, filler: Filler, reader: CacheAside, q: Any, params: dict[str, Any]
) -> Iterator[Record]:
    topped = FillResult("top-up")  # rows written to get back to the limit (not listed)
    with ctx.step(
        "The application at the limit: a cache-aside read",
        "GET misses, the query runs, the SET is refused with OOM: the reader catches it and"
        " serves the rows from the database. Nothing crashes, but every read pays the database."
        " Before each read the demo writes single rows until one is refused again: Valkey"
        " frees idle client buffers in the background, so the limit moves",
    ) as step:
        tries = 0
        while True:
            tries += 1
            first, again = _read_at_the_limit(ctx, filler, topped, reader, q, params)
            if not (first.stored or again.stored) or tries == EDGE_TRIES:
                break
            # the edge moved between a top-up and its SET: undo the write, go again
            with ctx.tracer.paused():
                ctx.valkey.delete(first.key)
        fresh = ctx.db.fetch(q.sql(ctx.db.dialect), params)
        step.hit = again.hit
        step.rows = len(first.rows)
        step.ok = (
            not first.stored
            and not again.stored
            and not again.hit
            and len(again.rows) == len(fresh.rows)
        )
        step.outcome = (
            f"{len(first.rows)} rows served by the {first.source}; the next read: again a miss,"
            f" {again.source}{_retried(tries)}"
        )
        step.data = {
            "sources": [first.source, again.source],
            "stored": first.stored or again.stored,
            "tries": tries,
        }
    yield step

    key = ctx.keys.pressure_row(0)
    with ctx.step(
        "What still works at the limit",
        "GET and DEL never need memory; SET does, so Valkey refuses it (topped up first, as"
        " before the read)",
    ) as step:
        got, refused, tries = False, "", 0
        while not refused and tries < EDGE_TRIES:
            tries += 1
            with ctx.tracer.paused():
                filler.top_up(topped)
            got = ctx.valkey.get(key) is not None
            probe = ctx.keys.pressure_row(filler.next)
            try:
                ctx.valkey.set(probe, filler.texts[0], ex=60)
            except valkey.exceptions.OutOfMemoryError as exc:
                refused = oom_text(exc)
                continue
            # accepted: memory freed in the background since the top-up; undo and go again
            with ctx.tracer.paused():
                ctx.valkey.delete(probe)
            filler.next += 1
        deleted = int(ctx.valkey.delete(key))
        step.ok = got and bool(refused) and deleted == 1
        value = "a value" if got else "nil"
        step.outcome = (
            f"GET: {value}; SET: {refused or 'accepted'}; DEL: {deleted} key freed{_retried(tries)}"
        )
        step.data = {"get": got, "set_error": refused, "deleted": deleted, "tries": tries}
    yield step


def _read_at_the_limit(
    ctx: DemoContext,
    filler: Filler,
    topped: FillResult,
    reader: CacheAside,
    q: Any,
    params: dict[str, Any],
) -> tuple[Lookup, Lookup]:
    """Two cache-aside reads, each after a top-up that ends with a refused write."""
    reads: list[Lookup] = []
    for _ in range(2):
        with ctx.tracer.paused():
            filler.top_up(topped)
        reads.append(reader.get(q, params))
    return reads[0], reads[1]


def _retried(tries: int) -> str:
    if tries <= 1:
        return ""
    return f" (on try {tries}: the earlier writes landed as background frees moved the limit)"


def _slowlog(ctx: DemoContext, nodes: Sequence[Any], micros: int, own: bool) -> Iterator[Record]:
    log = SlowLog(nodes, ctx.undo)
    ctx.on_exit(log.settings.restore)
    try:
        with ctx.step(
            f"SLOWLOG: log every command slower than {micros:,} µs, for a moment",
            "CONFIG SET slowlog-log-slower-than (the default logs above 10,000 µs); the log"
            " already holds entries, so only newer ones are read back",
        ) as step:
            log.lower(micros)
            step.outcome = "was: " + ", ".join(
                f"{s['slowlog-log-slower-than']} µs, max-len {s['slowlog-max-len']}"
                for s in log.settings.saved
            )
            step.data = {"saved": log.settings.saved, "newest_id_before": log.last}
        yield step

        with ctx.step(
            f"Run two slow commands: MSET of {SLOW_KEYS:,} keys, ZUNIONSTORE of two sorted sets",
            "single commands that do a lot of work hold Valkey up for every other client;"
            " the keys share the hash tag {slow}, so each runs on one node of a cluster",
        ) as step:
            pairs = {ctx.keys.slowlog_string(n): n for n in range(SLOW_KEYS)}
            left, right = ctx.keys.slowlog_zset("a"), ctx.keys.slowlog_zset("b")
            with ctx.tracer.paused():
                ctx.valkey.mset(pairs)
                ctx.valkey.zadd(left, {f"m{n}": n for n in range(SLOW_KEYS)})
                ctx.valkey.zadd(
                    right, {f"m{n}": n for n in range(SLOW_KEYS // 2, SLOW_KEYS * 3 // 2)}
                )
            step.commands += [
                [
                    "MSET",
                    ctx.keys.slowlog_string(0),
                    0,
                    ctx.keys.slowlog_string(1),
                    1,
                    f"... ({SLOW_KEYS:,} pairs)",
                ],
                ["ZADD", left, 0, "m0", f"... ({SLOW_KEYS:,} members)"],
                [
                    "ZADD",
                    right,
                    SLOW_KEYS // 2,
                    f"m{SLOW_KEYS // 2}",
                    f"... ({SLOW_KEYS:,} members)",
                ],
            ]
            ctx.valkey.zunionstore(ctx.keys.slowlog_zset("union"), [left, right])
            step.outcome = f"{len(pairs):,} keys set, {SLOW_KEYS * 3 // 2:,} members in the union"
        yield step

        with ctx.step(
            "SLOWLOG GET: what was slow",
            "each entry: id, when, how long (µs), the command (arguments cut at 32, each at 128"
            " bytes), the client",
        ) as step:
            entries = log.entries()
            step.ok = bool(entries)
            step.outcome = (
                f"{len(entries)} new entries: "
                + "; ".join(f"{e['command'][:40]} {e['duration_us']:,} µs" for e in entries[:4])
                if entries
                else f"nothing slower than {micros:,} µs: lower --slower-than"
            )
            step.data = {"entries": entries}
        yield step
        yield Table(
            "SLOWLOG entries this demo added",
            ["node", "id", "µs", "command", "client"],
            [
                [e["node"], e["id"], e["duration_us"], e["command"][:70], e["client_name"]]
                for e in entries
            ],
        )

        with ctx.step(
            "SLOWLOG RESET?",
            "RESET empties the whole log, other clients' entries too",
        ) as step:
            if own:
                log.reset()
                step.outcome = "reset: this Valkey is flightcache's own"
            else:
                step.outcome = (
                    f"not reset: flightcache did not start this Valkey; its {len(entries)}"
                    " entries stay in the log beside everyone else's"
                )
            step.data = {"reset": own}
        yield step

        with ctx.step("Put the slow log settings back", "as they were before the demo") as step:
            log.settings.restore()
            now = log.settings.current()
            step.ok = now == log.settings.saved
            step.outcome = ", ".join(
                f"slowlog-log-slower-than {s['slowlog-log-slower-than']}" for s in now
            )
            step.data = {"settings": now}
        yield step
    finally:
        log.settings.restore()


_WHY: dict[str, str] = {
    "allkeys-lru": "evicts the least recently used key (from a sample): writes succeed again",
    "volatile-ttl": "evicts keys nearest to expiring, among keys with a TTL: the keys kept"
    " have more time left",
    "allkeys-lfu": "evicts the least frequently used key: popular keys keep their place",
}
