"""`flightcache memory-pressure`: Valkey at maxmemory: OOM, eviction, MEMORY DOCTOR, SLOWLOG.

A fill writes real booking rows (JSON strings, or hashes) with TTLs spread from
60 s to an hour until Valkey refuses (:class:`Filler`, the load generator, also
used by ``scripts/bench_invalidation.py``); a cache-aside read then shows what an
application sees at the limit; under an eviction policy the same writes succeed
and ``evicted_keys`` rises instead. Then the slow log. Every setting changed is
put back however the demo ends. The pattern and the records are imported where
they are used, so that the command reads :class:`Options` without loading the
clients.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record
    from flightcache.keys import Keys
    from flightcache.named_queries import Query
    from flightcache.patterns.cache_aside import CacheAside, Lookup
    from flightcache.patterns.eviction import MemoryLimits
    from flightcache.patterns.memory_pressure import SlowLog

ROWS_MIN, ROWS_MAX = 1, 1_000_000
SLOWER_THAN_MIN, SLOWER_THAN_MAX = 0, 10_000_000  # microseconds


@dataclass(frozen=True)
class Options:
    maxmemory: int | None = None  # bytes per primary; None: its used_memory + HEADROOM
    rows: int = 20_000  # bookings read to fill the cache with, ROWS_MIN to ROWS_MAX
    slower_than: int = 1000  # slowlog-log-slower-than (µs) during the SLOWLOG part
    own_server: bool = False  # flightcache started this Valkey: SLOWLOG RESET is allowed


LAYOUTS = ("json", "hash")
POLICIES = ("allkeys-lru", "volatile-ttl", "allkeys-lfu")
"""The eviction policies shown after noeviction."""
BATCH = 500
MAX_FILL = 2_000_000
"""A fill stops here even if Valkey never refused a write (maxmemory far too high)."""
SLOW_KEYS = 20_000
"""Pairs in the SLOWLOG demo's MSET, and members in each sorted set of its ZUNIONSTORE."""
EDGE_TRIES = 5
"""Times a step at the limit tops up and tries again when a write slipped in."""


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
        import valkey.exceptions

        from flightcache.patterns.memory_pressure import oom_text

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
        import valkey.exceptions

        from flightcache.patterns.memory_pressure import oom_text
        from flightcache.valkey_client import primaries

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
        import valkey.cluster

        if isinstance(self.valkey, valkey.cluster.ValkeyCluster):
            return str(self.valkey.get_node_from_key(self._key(n)).name)
        return "the node"


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


@dataclass
class Pressure:
    """What the steps at the limit share."""

    nodes: list[Any]
    filler: Filler
    limits: MemoryLimits
    maxmemory: list[int]
    reader: CacheAside
    query: Query
    params: dict[str, Any]


def demo(ctx: DemoContext) -> Iterator[Record]:
    """INFO memory; fill to the limit under noeviction, then under three policies; SLOWLOG."""
    from flightcache.named_queries import bind, get
    from flightcache.patterns.cache_aside import CacheAside
    from flightcache.patterns.eviction import MemoryLimits, limits_for
    from flightcache.valkey_client import primaries

    options: Options = ctx.options
    nodes = primaries(ctx.valkey)
    for node in nodes:
        if node is not ctx.valkey:
            ctx.tracer.instrument(node)  # a cluster's CONFIG, INFO and SLOWLOG go to each primary
    yield from _info_memory(ctx, nodes)
    filler = yield from _read_rows(ctx, options.rows)

    limits = MemoryLimits(nodes, ctx.undo)
    ctx.on_exit(limits.restore)
    query = get("passenger_bookings")
    pressure = Pressure(
        nodes,
        filler,
        limits,
        limits_for(nodes, options.maxmemory),
        CacheAside(ctx.valkey, ctx.db, ctx.keys, ttl=600),
        query,
        bind(ctx.db, query, {}),
    )
    results: list[FillResult] = []
    try:
        fill = yield from _noeviction(ctx, pressure)
        results.append(fill)
        yield from _doctor(ctx, nodes)
        yield from _read_at_the_limit(ctx, pressure)
        yield from _what_still_works(ctx, pressure)
        for policy in POLICIES:
            results.append((yield from _policy(ctx, pressure, policy, fill.written)))
        yield from _put_limits_back(ctx, limits)
    finally:
        limits.restore()

    yield from slowlog(ctx, nodes, options.slower_than, options.own_server)
    yield _summary(pressure, results)


def _info_memory(ctx: DemoContext, nodes: Sequence[Any]) -> Iterator[Record]:
    from flightcache.demos.base import Table
    from flightcache.patterns.memory_pressure import memory_report

    with ctx.step(
        "INFO memory, as the server reports it",
        "001's first look: used_memory_human against maxmemory_human (0 means no limit)",
    ) as step:
        names, rows = memory_report(nodes)
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


def _read_rows(ctx: DemoContext, count: int) -> Generator[Record, None, Filler]:
    from flightcache import sqlfiles

    with ctx.step(
        "Read the rows to cache",
        "real bookings with their flight and passenger, one JSON value each; fetched once",
    ) as step:
        result = ctx.db.fetch(sqlfiles.query(ctx.db.dialect, "booking_records"), {"limit": count})
        records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        filler = Filler(ctx.valkey, ctx.keys, records)
        step.rows = len(records)
        step.bytes = sum(len(t) for t in filler.texts)
        step.outcome = (
            f"{len(records):,} bookings, {step.bytes / max(1, len(records)):.0f} bytes of JSON"
            " each; the fill cycles through them, one key per write"
        )
    yield step
    return filler


def _noeviction(ctx: DemoContext, pressure: Pressure) -> Generator[Record, None, FillResult]:
    """Set the limit with noeviction, then fill until Valkey refuses."""
    from flightcache.patterns.eviction import mib, total

    limits, maxmemory, nodes = pressure.limits, pressure.maxmemory, pressure.nodes
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

    fill, filler = FillResult("noeviction"), pressure.filler
    with ctx.step(
        "Fill until Valkey refuses",
        f"SET row EX ttl, {BATCH} per pipeline (the first SET is listed), until a whole"
        " pipeline is refused",
    ) as step:
        evicted = total(nodes, "stats", "evicted_keys")
        with ctx.tracer.paused():
            filler.write(BATCH, fill)  # listed below, by hand: 500 SETs are too many
            full = filler.until_full(fill)
        step.commands.append(["SET", ctx.keys.pressure_row(0), filler.texts[0], "EX", key_ttl(0)])
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
    yield step
    return fill


def _doctor(ctx: DemoContext, nodes: Sequence[Any]) -> Iterator[Record]:
    from flightcache.patterns.memory_pressure import memory_doctor

    with ctx.step(
        "MEMORY DOCTOR at the limit",
        "001's memory advice, as the server words it",
    ) as step:
        doctor = memory_doctor(nodes)
        said = list(dict.fromkeys(d.strip() for d in doctor))
        step.outcome = " | ".join(said) + (" (every primary)" if len(doctor) > len(said) else "")
        step.data = {"doctor": doctor}
    yield step


def _read_at_the_limit(ctx: DemoContext, pressure: Pressure) -> Iterator[Record]:
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
            first, again = _two_reads(ctx, pressure)
            if not (first.stored or again.stored) or tries == EDGE_TRIES:
                break
            # the edge moved between a top-up and its SET: undo the write, go again
            with ctx.tracer.paused():
                ctx.valkey.delete(first.key)
        fresh = ctx.db.fetch(pressure.query.sql(ctx.db.dialect), pressure.params)
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


def _two_reads(ctx: DemoContext, pressure: Pressure) -> tuple[Lookup, Lookup]:
    """Two cache-aside reads, each after a top-up that ends with a refused write."""
    reads: list[Lookup] = []
    for _ in range(2):
        with ctx.tracer.paused():
            pressure.filler.top_up(FillResult("top-up"))  # rows written to get back to the limit
        reads.append(pressure.reader.get(pressure.query, pressure.params))
    return reads[0], reads[1]


def _what_still_works(ctx: DemoContext, pressure: Pressure) -> Iterator[Record]:
    import valkey.exceptions

    from flightcache.patterns.memory_pressure import oom_text

    filler, key = pressure.filler, ctx.keys.pressure_row(0)
    with ctx.step(
        "What still works at the limit",
        "GET and DEL never need memory; SET does, so Valkey refuses it (topped up first, as"
        " before the read)",
    ) as step:
        got, refused, tries = False, "", 0
        while not refused and tries < EDGE_TRIES:
            tries += 1
            with ctx.tracer.paused():
                filler.top_up(FillResult("top-up"))
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


def _retried(tries: int) -> str:
    if tries <= 1:
        return ""
    return f" (on try {tries}: the earlier writes landed as background frees moved the limit)"


def _policy(
    ctx: DemoContext, pressure: Pressure, policy: str, count: int
) -> Generator[Record, None, FillResult]:
    """Under ``policy``, write ``count`` more rows: accepted, and keys evicted instead."""
    from flightcache.patterns.eviction import total

    nodes, result = pressure.nodes, FillResult(policy)
    with ctx.step(f"{policy}: write {count:,} more rows", WHY[policy]) as step:
        pressure.limits.apply(pressure.maxmemory, policy)
        evicted = total(nodes, "stats", "evicted_keys")
        with ctx.tracer.paused():
            pressure.filler.write(count, result)
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
            reader, query, params = pressure.reader, pressure.query, pressure.params
            first, again = reader.get(query, params), reader.get(query, params)
            step.data["cache_aside"] = [first.source, again.source]
            step.ok = step.ok and first.stored and again.hit
            step.outcome += (
                f"; the cache-aside read now stores ({first.source}) and the next"
                f" read hits: {again.hit}"
            )
    yield step
    return result


def _put_limits_back(ctx: DemoContext, limits: MemoryLimits) -> Iterator[Record]:
    from flightcache.valkey_client import delete_matching

    with ctx.step(
        "Put maxmemory back",
        "as it was before the demo, on every primary (an error or Ctrl-C does the same)",
    ) as step:
        limits.restore()
        with ctx.tracer.paused():
            delete_matching(ctx.valkey, ctx.keys.match())
        now = limits.current()
        step.ok = now == limits.saved
        step.outcome = ", ".join(f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in now)
        step.data = {"settings": now}
    yield step


def _summary(pressure: Pressure, results: list[FillResult]) -> Record:
    from flightcache.demos.base import Table
    from flightcache.patterns.eviction import mib

    texts = pressure.filler.texts
    return Table(
        "At the limit, policy by policy",
        ["policy", "writes accepted", "refused (OOM)", "evicted_keys", "rows kept", "used_memory"],
        [[r.label, r.written, r.oom, r.evicted, r.kept, mib(r.used_memory)] for r in results],
        note=f"maxmemory {', '.join(mib(m) for m in pressure.maxmemory)}; rows of about"
        f" {sum(len(t) for t in texts) / len(texts):.0f} bytes of JSON; each"
        " policy writes as many rows as the noeviction fill stored",
    )


# -- the slow log ------------------------------------------------------------------------
def slowlog(ctx: DemoContext, nodes: Sequence[Any], micros: int, own: bool) -> Iterator[Record]:
    """Lower the slow log threshold, run two slow commands, read back only the new
    entries, reset the log only when ``own`` (flightcache started this Valkey), and
    put the settings back however it ends."""
    from flightcache.patterns.memory_pressure import SlowLog

    log = SlowLog(nodes, ctx.undo)
    ctx.on_exit(log.settings.restore)
    try:
        yield from _lower_threshold(ctx, log, micros)
        yield from _slow_commands(ctx)
        entries = yield from _slowlog_get(ctx, log, micros)
        yield from _reset(ctx, log, own, len(entries))
        yield from _put_slowlog_back(ctx, log)
    finally:
        log.settings.restore()


def _lower_threshold(ctx: DemoContext, log: SlowLog, micros: int) -> Iterator[Record]:
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


def _slow_commands(ctx: DemoContext) -> Iterator[Record]:
    keys = ctx.keys
    with ctx.step(
        f"Run two slow commands: MSET of {SLOW_KEYS:,} keys, ZUNIONSTORE of two sorted sets",
        "single commands that do a lot of work hold Valkey up for every other client;"
        " the keys share the hash tag {slow}, so each runs on one node of a cluster",
    ) as step:
        pairs = {keys.slowlog_string(n): n for n in range(SLOW_KEYS)}
        left, right = keys.slowlog_zset("a"), keys.slowlog_zset("b")
        with ctx.tracer.paused():
            ctx.valkey.mset(pairs)
            ctx.valkey.zadd(left, {f"m{n}": n for n in range(SLOW_KEYS)})
            ctx.valkey.zadd(right, {f"m{n}": n for n in range(SLOW_KEYS // 2, SLOW_KEYS * 3 // 2)})
        half = SLOW_KEYS // 2
        step.commands += [
            [
                "MSET",
                keys.slowlog_string(0),
                0,
                keys.slowlog_string(1),
                1,
                f"... ({SLOW_KEYS:,} pairs)",
            ],
            ["ZADD", left, 0, "m0", f"... ({SLOW_KEYS:,} members)"],
            ["ZADD", right, half, f"m{half}", f"... ({SLOW_KEYS:,} members)"],
        ]
        ctx.valkey.zunionstore(keys.slowlog_zset("union"), [left, right])
        step.outcome = f"{len(pairs):,} keys set, {SLOW_KEYS * 3 // 2:,} members in the union"
    yield step


def _slowlog_get(
    ctx: DemoContext, log: SlowLog, micros: int
) -> Generator[Record, None, list[dict[str, Any]]]:
    from flightcache.demos.base import Table

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
    return entries


def _reset(ctx: DemoContext, log: SlowLog, own: bool, added: int) -> Iterator[Record]:
    with ctx.step(
        "SLOWLOG RESET?",
        "RESET empties the whole log, other clients' entries too",
    ) as step:
        if own:
            log.reset()
            step.outcome = "reset: this Valkey is flightcache's own"
        else:
            step.outcome = (
                f"not reset: flightcache did not start this Valkey; its {added}"
                " entries stay in the log beside everyone else's"
            )
        step.data = {"reset": own}
    yield step


def _put_slowlog_back(ctx: DemoContext, log: SlowLog) -> Iterator[Record]:
    with ctx.step("Put the slow log settings back", "as they were before the demo") as step:
        log.settings.restore()
        now = log.settings.current()
        step.ok = now == log.settings.saved
        step.outcome = ", ".join(
            f"slowlog-log-slower-than {s['slowlog-log-slower-than']}" for s in now
        )
        step.data = {"settings": now}
    yield step


WHY: dict[str, str] = {
    "allkeys-lru": "evicts the least recently used key (from a sample): writes succeed again",
    "volatile-ttl": "evicts keys nearest to expiring, among keys with a TTL: the keys kept"
    " have more time left",
    "allkeys-lfu": "evicts the least frequently used key: popular keys keep their place",
}
"""One line per policy shown: what it evicts."""
