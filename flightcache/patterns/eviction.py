"""Eviction policies: what Valkey does when the memory it may use is full.

Read path: GET a booking's key; on a miss SET it again (cache-aside, the values
come from one bulk query made beforehand, so the replay measures Valkey alone).
Write path: a fill writes many more bookings than fit under a small maxmemory,
then a Zipf-skewed replay reads them, once per eviction policy.
Failure mode: under ``noeviction`` (or a volatile-* policy with nothing left to
evict) Valkey refuses writes with an OOM error; the replay counts those as data.
Every maxmemory setting it changes is put back afterwards, however the run ends.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.demos.base import DemoContext, Record, Table, Timing
from flightcache.errors import ConfigError, DataError, FlightcacheError
from flightcache.keys import Keys
from flightcache.measure.timing import Stats
from flightcache.measure.zipf import zipf_ranks
from flightcache.undo import Undo
from flightcache.valkey_client import config_value, delete_matching, info, primaries

POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "volatile-lru",
    "volatile-ttl",
    "allkeys-random",
)
"""The policies the demo compares unless told otherwise."""

ALL_POLICIES = (*POLICIES, "volatile-lfu", "volatile-random")
SETTINGS = ("maxmemory", "maxmemory-policy")
HEADROOM = 4 * 1024 * 1024
"""The default maxmemory: this much above what each primary uses now."""
MARGIN = 1024 * 1024
"""A maxmemory must leave at least this much above used_memory."""
KEY_TTL = 3600
"""Every booking key gets EX this, so that the volatile-* policies may evict it."""
BATCH = 500

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|m|mb|g|gb)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def parse_size(text: str) -> int:
    """A memory size as valkey.conf writes it: bytes, 512kb, 4mb, 1gb (k/m/g are powers of 1000)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write bytes or e.g. 512kb, 4mb, 1gb")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _UNITS[unit]


def parse_policies(text: str) -> list[str]:
    """A comma-separated list of maxmemory policies, each known to Valkey."""
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in ALL_POLICIES]
    if unknown or not names:
        raise ValueError(
            f"unknown policy {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ALL_POLICIES)}"
        )
    return list(dict.fromkeys(names))


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


class ServerSettings:
    """CONFIG settings of every primary: changed for a demo, always put back."""

    def __init__(self, nodes: Sequence[Any], names: Sequence[str], undo: Undo | None) -> None:
        """``undo`` records the saved values in the state directory before the first
        CONFIG SET, so a killed demo's settings are put back by the next command
        (None: nowhere to record, for a test's own server)."""
        self.nodes = list(nodes)
        self.names = tuple(names)
        self.undo = undo
        self.saved = [{name: config_value(node, name) for name in names} for node in self.nodes]
        self.changed = False

    def set(self, values: Sequence[Mapping[str, Any]]) -> None:
        """CONFIG SET ``values[i]`` on node ``i`` (only names given at creation)."""
        for wanted in values:
            unknown = set(wanted) - set(self.names)
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not saved, so could not be restored")
        if len(values) != len(self.nodes):
            raise ValueError(f"{len(values)} sets of values for {len(self.nodes)} nodes")
        if self.undo is not None and not self.changed:
            for node, saved in zip(self.nodes, self.saved, strict=True):
                self.undo.save_settings(node, saved)
        self.changed = True
        for node, wanted in zip(self.nodes, values, strict=True):
            node.execute_command("CONFIG", "SET", *(x for item in wanted.items() for x in item))

    def set_all(self, **values: Any) -> None:
        """The same values on every node; ``slowlog_log_slower_than=100`` names a setting."""
        named = {name.replace("_", "-"): value for name, value in values.items()}
        self.set([named] * len(self.nodes))

    def current(self) -> list[dict[str, str]]:
        return [{name: config_value(node, name) for name in self.names} for node in self.nodes]

    def restore(self) -> None:
        """Put every node's settings back; try them all, then report what failed."""
        if not self.changed:
            return
        failed: list[str] = []
        for node, saved in zip(self.nodes, self.saved, strict=True):
            args = [x for item in saved.items() for x in item]
            try:
                node.execute_command("CONFIG", "SET", *args)
                if self.undo is not None:
                    self.undo.settings_back(node, self.names)
            except (valkey.exceptions.ValkeyError, OSError) as exc:
                kwargs = node.connection_pool.connection_kwargs
                failed.append(
                    f"{kwargs.get('host')}:{kwargs.get('port')} ({exc}): "
                    f"CONFIG SET {' '.join(args)}"
                )
        if failed:
            raise FlightcacheError(
                f"could not restore {', '.join(self.names)} on " + "; ".join(failed),
                hint="run the CONFIG SET shown on that node yourself",
            )
        self.changed = False


class MemoryLimits(ServerSettings):
    """The maxmemory settings of every primary: changed for the demo, always put back."""

    def __init__(self, nodes: Sequence[Any], undo: Undo | None) -> None:
        super().__init__(nodes, SETTINGS, undo)

    def apply(self, maxmemory: Sequence[int], policy: str) -> None:
        self.set([{"maxmemory": limit, "maxmemory-policy": policy} for limit in maxmemory])


@dataclass
class PolicyResult:
    """What one policy did with the same fill and the same request stream."""

    policy: str
    written: int = 0  # fill SETs Valkey accepted
    hits: int = 0
    misses: int = 0
    oom: int = 0  # writes refused with an OOM error (fill and replay)
    evicted: int = 0  # evicted_keys delta, every primary
    kept: int = 0  # the demo's keys still there at the end
    used_memory: int = 0  # every primary, at the end

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "written": self.written,
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.ratio,
            "oom_errors": self.oom,
            "evicted_keys": self.evicted,
            "keys_kept": self.kept,
            "used_memory": self.used_memory,
        }


class EvictionReplay:
    """Fill many booking keys, then replay skewed reads with cache-aside writes."""

    def __init__(self, client: Any, keys: Keys, records: dict[int, str]) -> None:
        self.valkey, self.keys, self.records = client, keys, records

    def _set(self, booking_id: int) -> bool:
        """SET one booking; False when Valkey refuses it for lack of memory."""
        try:
            self.valkey.set(self.keys.booking(booking_id), self.records[booking_id], ex=KEY_TTL)
        except valkey.exceptions.OutOfMemoryError:
            return False
        return True

    def fill(self, order: Sequence[int], result: PolicyResult) -> None:
        """SET every booking in ``order``, pipelined; OOM replies are counted, not raised."""
        for start in range(0, len(order), BATCH):
            pipe = self.valkey.pipeline(transaction=False)
            for booking_id in order[start : start + BATCH]:
                pipe.set(self.keys.booking(booking_id), self.records[booking_id], ex=KEY_TTL)
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, valkey.exceptions.OutOfMemoryError):
                    result.oom += 1
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    result.written += 1

    def replay(self, stream: Sequence[int], result: PolicyResult) -> None:
        """GET each booking; on a miss SET it back (an OOM refusal is counted)."""
        for booking_id in stream:
            self.read(booking_id, result)

    def read(self, booking_id: int, result: PolicyResult) -> None:
        """One cache-aside read: GET, and on a miss SET (which may make Valkey evict)."""
        if self.valkey.get(self.keys.booking(booking_id)) is not None:
            result.hits += 1
            return
        result.misses += 1
        if not self._set(booking_id):
            result.oom += 1

    def read_latencies(self, stream: Sequence[int]) -> list[int]:
        """Nanoseconds of each read of ``stream``, timed one by one."""
        probe = PolicyResult("probe")
        samples = []
        for booking_id in stream:
            start = time.perf_counter_ns()
            self.read(booking_id, probe)
            samples.append(time.perf_counter_ns() - start)
        return samples

    def count_kept(self) -> int:
        return sum(
            1
            for node in primaries(self.valkey)
            for _ in node.scan_iter(match=self.keys.match(), count=1000)
        )


def _sum(nodes: Sequence[Any], section: str, name: str) -> int:
    return sum(int(info(node, section).get(name, 0)) for node in nodes)


def limits_for(nodes: Sequence[Any], maxmemory: int | None) -> list[int]:
    """Each primary's maxmemory: the one given, or used_memory + HEADROOM; checked."""
    used = [int(info(node, "memory")["used_memory"]) for node in nodes]
    if maxmemory is None:
        return [u + HEADROOM for u in used]
    for node, u in zip(nodes, used, strict=True):
        if maxmemory < u + MARGIN:
            kwargs = node.connection_pool.connection_kwargs
            raise ConfigError(
                f"--maxmemory {maxmemory:,} bytes is below what Valkey at "
                f"{kwargs.get('host')}:{kwargs.get('port')} already uses ({u:,} bytes) "
                f"plus a {mib(MARGIN)} safety margin",
                hint=f"give at least {u + MARGIN:,} bytes, or leave --maxmemory out "
                f"for used_memory + {mib(HEADROOM)}",
            )
    return [maxmemory] * len(nodes)


def demo(ctx: DemoContext) -> Iterator[Record]:
    policies: list[str] = ctx.options["policies"]
    count: int = ctx.options["keys"]
    requests: int = ctx.options["requests"]
    skew: float = ctx.options["skew"]
    seed: int = ctx.options["seed"]
    nodes = primaries(ctx.valkey)
    for node in nodes:
        if node is not ctx.valkey:
            ctx.tracer.instrument(node)  # a cluster's CONFIG SET and INFO go to each primary

    with ctx.step(
        "Read the bookings to cache",
        "one JSON value per booking, fetched once, so the replays time Valkey only",
    ) as step:
        result = ctx.db.fetch(sqlfiles.query(ctx.db.dialect, "booking_records"), {"limit": count})
        records = {
            int(row[0]): json.dumps(
                dict(zip(result.columns, row, strict=True)), default=str, separators=(",", ":")
            )
            for row in result.rows
        }
        if not records:
            raise DataError("the booking table is empty", hint="run `flightcache data load`")
        size = sum(len(v) for v in records.values())
        step.rows = len(records)
        step.bytes = size
        step.outcome = f"{len(records):,} bookings, {size / len(records):.0f} bytes of JSON each"
    yield step

    with ctx.step(
        "Look at the server's memory settings",
        "the demo changes them on every primary and puts them back at the end",
    ) as step:
        limits = MemoryLimits(nodes, ctx.undo)
        maxmemory = limits_for(nodes, ctx.options["maxmemory"])
        current = ", ".join(
            f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in limits.saved
        )
        step.outcome = (
            f"now: maxmemory {current}; for the demo: maxmemory "
            f"{', '.join(mib(m) for m in maxmemory)}"
            + (" (one per primary)" if len(nodes) > 1 else "")
        )
        step.data = {"saved": limits.saved, "maxmemory": maxmemory}
    yield step

    ids = list(records)
    order = ids[:]
    random.Random(seed).shuffle(order)  # fill in random order, so fill age is not rank
    hot = order[:]
    random.Random(seed + 1).shuffle(hot)
    stream = [hot[r] for r in zipf_ranks(len(hot), skew, requests, seed)]
    replay = EvictionReplay(ctx.valkey, ctx.keys, records)
    results: list[PolicyResult] = []
    latencies: dict[str, list[int]] = {}
    ctx.on_exit(limits.restore)
    try:
        for policy in policies:
            outcome = PolicyResult(policy)
            with ctx.step(
                f"{policy}: fill {len(order):,} keys, then replay {requests:,} reads",
                _WHY.get(policy, ""),
            ) as step:
                with ctx.tracer.paused():
                    delete_matching(ctx.valkey, ctx.keys.match())
                limits.apply(maxmemory, policy)
                evicted_before = _sum(nodes, "stats", "evicted_keys")
                with ctx.tracer.paused():
                    replay.fill(order, outcome)
                    replay.replay(stream, outcome)
                    latencies[policy] = replay.read_latencies(stream[: ctx.repeat])
                    outcome.kept = replay.count_kept()
                outcome.evicted = _sum(nodes, "stats", "evicted_keys") - evicted_before
                outcome.used_memory = _sum(nodes, "memory", "used_memory")
                step.outcome = (
                    f"hit ratio {outcome.ratio:.1%}; {outcome.evicted:,} keys evicted; "
                    f"{outcome.oom:,} writes refused (OOM); {outcome.kept:,} keys kept; "
                    f"used_memory {mib(outcome.used_memory)}"
                )
                step.data = outcome.as_dict()
            results.append(outcome)
            yield step
    finally:
        limits.restore()

    with ctx.step("Put the settings back", "as they were before the demo") as step:
        with ctx.tracer.paused():
            delete_matching(ctx.valkey, ctx.keys.match())
        now = [{name: config_value(node, name) for name in SETTINGS} for node in nodes]
        step.ok = now == limits.saved
        step.outcome = ", ".join(f"{s['maxmemory']} bytes / {s['maxmemory-policy']}" for s in now)
        step.data = {"settings": now}
    yield step

    yield Table(
        "Eviction policies, same keys, same request stream",
        ["policy", "hit ratio %", "evicted_keys", "OOM errors", "keys kept", "used_memory"],
        [
            [
                r.policy,
                round(100 * r.ratio, 1),
                r.evicted,
                r.oom,
                r.kept,
                mib(r.used_memory),
            ]
            for r in results
        ],
        note=f"{len(order):,} keys of ~{size / len(records):.0f} bytes JSON, {requests:,} reads, "
        f"Zipf s={skew}, seed {seed}; every key has EX {KEY_TTL}, so volatile-* may evict any",
    )
    if latencies:
        yield Timing(
            "Read latency at maxmemory, per policy (GET; on a miss SET, which may evict)",
            [Stats.of(policy, samples) for policy, samples in latencies.items() if samples],
            note=f"the first {ctx.repeat:,} reads of the stream replayed once more after each "
            "policy's run, one at a time; the policies run one after another, not interleaved, "
            "so compare them on a quiet machine",
        )


_WHY: dict[str, str] = {
    "noeviction": "nothing is evicted: once memory is full, every write is refused (OOM)",
    "allkeys-lru": "evicts the key least recently used, from a sample of keys",
    "allkeys-lfu": "evicts the key least frequently used: hot keys keep their place",
    "volatile-lru": "like allkeys-lru, but only among keys with a TTL",
    "volatile-lfu": "like allkeys-lfu, but only among keys with a TTL",
    "volatile-ttl": "evicts the key closest to expiring, among keys with a TTL",
    "volatile-random": "evicts a random key with a TTL",
    "allkeys-random": "evicts a random key: popularity plays no part",
}
