"""TTL management: one TTL per data class, and jitter against the expiry cliff.

Read path: GET the class's key; on a miss run its query and SET the rows as JSON
with the class's TTL (reference 24 h, business 1 h, operational 5 min, real time
60 s), spread by a seeded random jitter of ± a few percent.
Write path: ``SET key value PX ttl_ms``; a batch goes through one pipeline.
Failure mode: keys written together with one TTL also expire together, and every
reader of them misses in the same second and goes to the database (the expiry
cliff). Jitter spreads the expiries out. With Valkey down, reads fall through to
the database: slower, never wrong.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import valkey.exceptions

from flightcache.db import text_field
from flightcache.demos.base import DemoContext, Histogram, Record, Table
from flightcache.keys import Keys
from flightcache.measure.histogram import bucket_counts, densest_window, nice_width
from flightcache.sqlfiles import query
from flightcache.trace import TracedDatabase

DOWN = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)
CHUNK = 1_000  # commands per pipeline; the demo lists those of the first


@dataclass(frozen=True)
class DataClass:
    """How volatile some data is, and so how long a cached copy may live."""

    name: str
    ttl_s: int
    what: str
    query: str
    source: str
    why: str
    limit: int | None = 10


DATA_CLASSES = (
    DataClass(
        "reference",
        86_400,
        "airports",
        "ttl_reference_airports",
        "airport, airport_geo",
        "reference data changes a few times a year: keep it a day",
    ),
    DataClass(
        "business",
        3_600,
        "popular-routes",
        "ttl_popular_routes",
        "flight, airport",
        "business figures move with the schedule: an hour old is fine",
    ),
    DataClass(
        "operational",
        300,
        "delays",
        "ttl_recent_delays",
        "flight_log",
        "delays change while the day runs: five minutes at most",
    ),
    DataClass(
        "real-time",
        60,
        "weather",
        "ttl_current_weather",
        "weatherdata",
        "a weather reading is stale within minutes: one minute",
        limit=None,
    ),
)


class Jitter:
    """TTLs spread evenly over base ± ``pct`` percent by a seeded generator.

    The same seed gives the same TTLs in the same order; ``pct`` 0 gives the
    base TTL every time. A TTL never drops below 1 ms (PX 0 is an error).
    """

    def __init__(self, pct: float, seed: int | None = None) -> None:
        if not 0 <= pct <= 100:
            raise ValueError("jitter must be between 0 and 100 percent")
        self.pct = pct
        self._rng = random.Random(seed)

    def ttl_ms(self, base_s: float) -> int:
        base_ms = round(base_s * 1000)
        if self.pct == 0:
            return base_ms
        spread = base_ms * self.pct / 100
        return max(1, round(base_ms + self._rng.uniform(-spread, spread)))

    def bounds_ms(self, base_s: float) -> tuple[int, int]:
        """The smallest and largest TTL :meth:`ttl_ms` can give."""
        base_ms = round(base_s * 1000)
        spread = base_ms * self.pct / 100
        return max(1, round(base_ms - spread)), round(base_ms + spread)


class Loaded(NamedTuple):
    value: Any
    hit: bool
    ttl_ms: int | None  # the TTL given on a miss; None on a hit or with Valkey down


def plain(value: Any) -> Any:
    """A database value as JSON takes it, the same from both databases."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value.rstrip()  # PostgreSQL pads char(n)
    if type(value).__name__ == "Decimal":
        return float(value)
    return text_field(value)


def rows_as_dicts(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]


class ClassedCache:
    """Cache-aside where every key lives as long as its data class allows."""

    def __init__(self, client: Any, keys: Keys, jitter: Jitter) -> None:
        self.client = client
        self.keys = keys
        self.jitter = jitter

    def key(self, data_class: DataClass) -> str:
        return self.keys.ttl_class(data_class.name, data_class.what)

    def get_or_load(self, data_class: DataClass, load: Callable[[], Any]) -> Loaded:
        key = self.key(data_class)
        try:
            cached = self.client.get(key)
        except DOWN:
            return Loaded(load(), False, None)
        if cached is not None:
            return Loaded(json.loads(cached), True, None)
        value = load()
        ttl_ms = self.jitter.ttl_ms(data_class.ttl_s)
        try:
            self.client.set(key, json.dumps(value, separators=(",", ":")), px=ttl_ms)
        except DOWN:
            return Loaded(value, False, None)
        return Loaded(value, False, ttl_ms)


# -- the demo -------------------------------------------------------------------------
def _load(db: TracedDatabase, data_class: DataClass) -> list[dict[str, Any]]:
    params = {} if data_class.limit is None else {"limit": data_class.limit}
    result = db.fetch(query(db.dialect, data_class.query), params)
    return rows_as_dicts(result.columns, result.rows)


def human_s(seconds: float) -> str:
    """86400 -> "24 h", 77760 -> "21.6 h", 270 -> "4.5 min", 54 -> "54 s"."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def _pipelines(n: int) -> str:
    count = -(-n // CHUNK)
    if count == 1:
        return "one pipeline"
    return f"{count:,} pipelines of {CHUNK:,} (the first one listed)"


def _given(n: int, ttls_ms: Sequence[int]) -> dict[str, int]:
    """The TTLs as sent (exact, unlike PTTLs read back a few milliseconds later)."""
    peak, _ = densest_window(ttls_ms, 1000)
    return {"keys": n, "min_ms": min(ttls_ms), "max_ms": max(ttls_ms), "peak_1s": peak}


def _series_figures(pttls: Sequence[int], bucket_peak: int) -> dict[str, Any]:
    live = [p for p in pttls if p >= 0]
    peak, start = densest_window(live, 1000) if live else (0, 0)
    return {
        "keys": len(pttls),
        "with_ttl": len(live),
        "min_ms": min(live, default=None),
        "max_ms": max(live, default=None),
        "peak_1s": peak,
        "peak_1s_from_ms": start,
        "peak_bucket": bucket_peak,
    }


def demo(ctx: DemoContext) -> Iterator[Record]:
    o = ctx.options
    n: int = o.get("keys", 1000)
    ttl_s: int = o.get("ttl", 60)
    pct: float = o.get("jitter", 10.0)
    seed: int = o.get("seed", 1)
    jitter = Jitter(pct, seed)
    cache = ClassedCache(ctx.valkey, ctx.keys, jitter)

    yield Table(
        "One TTL per data class",
        ["class", "data", "source", "TTL", f"with ±{pct:g}% jitter"],
        [
            [
                dc.name,
                dc.what,
                dc.source,
                human_s(dc.ttl_s),
                "{} - {}".format(*(human_s(b / 1000) for b in jitter.bounds_ms(dc.ttl_s))),
            ]
            for dc in DATA_CLASSES
        ],
        note="001's ladder: static 24 h, semi-static 6 h, dynamic 5 min, real time 30 s; "
        "its SETEX examples use 24 h, 1 h, 5 min and 60 s, as here.",
    )

    summary: list[list[Any]] = []
    weather = "[]"
    for dc in DATA_CLASSES:
        key = cache.key(dc)
        with ctx.step(f"Cache the {dc.name} data: {dc.what}", dc.why) as step:
            loaded = cache.get_or_load(dc, partial(_load, ctx.db, dc))
            ttl = int(ctx.valkey.ttl(key))
            pttl = int(ctx.valkey.pttl(key))
            low, high = jitter.bounds_ms(dc.ttl_s)
            step.hit = loaded.hit
            step.rows = len(loaded.value)
            step.outcome = (
                f"{len(loaded.value)} rows cached for {human_s(dc.ttl_s)} ± {pct:g}%: "
                f"TTL {ttl:,} s, PTTL {pttl:,} ms (allowed {low:,} - {high:,} ms)"
            )
            step.data = {
                "class": dc.name,
                "key": key,
                "base_s": dc.ttl_s,
                "given_ms": loaded.ttl_ms,
                "ttl_s": ttl,
                "pttl_ms": pttl,
                "min_ms": low,
                "max_ms": high,
            }
        yield step
        summary.append(
            [dc.name, key, human_s(dc.ttl_s), f"{loaded.ttl_ms:,}", f"{ttl:,}", f"{pttl:,}"]
        )
        if dc.name == "real-time":
            weather = json.dumps(loaded.value, separators=(",", ":"))
    yield Table(
        "What Valkey holds now",
        ["class", "key", "base TTL", "given PX (ms)", "TTL (s)", "PTTL (ms)"],
        summary,
        note="TTL rounds to seconds; PTTL counts milliseconds. A key without TTL answers -1.",
    )

    # -- the expiry cliff --------------------------------------------------------------
    plain_keys = [ctx.keys.ttl_batch("plain", i) for i in range(n)]
    jitter_keys = [ctx.keys.ttl_batch("jitter", i) for i in range(n)]
    base_ms = ttl_s * 1000
    batch_jitter = Jitter(pct, seed)
    ttls = [batch_jitter.ttl_ms(ttl_s) for _ in range(n)]
    low, high = batch_jitter.bounds_ms(ttl_s)

    def queue_set(pipe: Any, key_and_ttl: tuple[str, int]) -> None:
        pipe.set(key_and_ttl[0], weather, px=key_and_ttl[1])

    def queue_pttl(pipe: Any, key: str) -> None:
        pipe.pttl(key)

    with ctx.step(
        f"Write {n:,} keys together, every one with TTL {human_s(ttl_s)}",
        "a cache warm-up, a bulk import, a deploy: many keys written in the same second",
    ) as step:
        ctx.pipelined([(k, base_ms) for k in plain_keys], queue_set, chunk=CHUNK)
        step.outcome = f"{n:,} SETs with PX {base_ms:,} in {_pipelines(n)}"
        step.data = {"series": "plain", "given": _given(n, [base_ms] * n)}
    yield step

    with ctx.step(
        f"Write {n:,} more keys together, TTL {human_s(ttl_s)} ± {pct:g}%",
        f"jitter: each TTL drawn evenly from {low:,} - {high:,} ms (seed {seed})",
    ) as step:
        ctx.pipelined(list(zip(jitter_keys, ttls, strict=True)), queue_set, chunk=CHUNK)
        step.outcome = f"{n:,} SETs, PX from {min(ttls):,} to {max(ttls):,} ms, in {_pipelines(n)}"
        step.data = {"series": "jitter", "given": _given(n, ttls)}
    yield step

    with ctx.step(
        "Read back every key's PTTL",
        "PTTL is how many milliseconds a key has left; the expiry time of each key",
    ) as step:
        plain_pttls = [int(v) for v in ctx.pipelined(plain_keys, queue_pttl, chunk=CHUNK)]
        jitter_pttls = [int(v) for v in ctx.pipelined(jitter_keys, queue_pttl, chunk=CHUNK)]
        live = [p for p in plain_pttls + jitter_pttls if p >= 0]
        span = (max(live) - min(live)) if live else 0
        buckets = bucket_counts(
            {
                "same TTL": [p for p in plain_pttls if p >= 0],
                f"±{pct:g}% jitter": [p for p in jitter_pttls if p >= 0],
            },
            nice_width(span, 24, minimum=1000),
        )
        figures = {
            "plain": _series_figures(plain_pttls, buckets.peak("same TTL")),
            "jitter": _series_figures(jitter_pttls, buckets.peak(f"±{pct:g}% jitter")),
        }
        step.data = {
            "keys": n,
            "base_ms": base_ms,
            "jitter_pct": pct,
            "seed": seed,
            "bounds_ms": [low, high],
            "bucket_ms": buckets.width,
            **figures,
        }
        gone = sum(1 for p in plain_pttls + jitter_pttls if p < 0)
        step.outcome = f"{2 * n - gone:,} PTTLs read" + (
            f"; {gone:,} keys already gone" if gone else ""
        )
    yield step

    yield Histogram(
        f"When the {2 * n:,} keys expire (time left, buckets of {human_s(buckets.width / 1000)})",
        "ms",
        buckets.edges,
        buckets.counts,
        note="one scale for both columns: the tall bar is the cliff",
    )
    yield Table(
        "The expiry cliff",
        ["keys written", "first expiry", "last expiry", "most in one second", "most in one bucket"],
        [
            [
                label,
                _seconds(f["min_ms"]),
                _seconds(f["max_ms"]),
                f"{f['peak_1s']:,} of {f['keys']:,}",
                f"{f['peak_bucket']:,}",
            ]
            for label, f in (
                (f"{n:,} with the same TTL", figures["plain"]),
                (f"{n:,} with ±{pct:g}% jitter", figures["jitter"]),
            )
        ],
        note="'most in one second' is the busiest one-second window, wherever it starts: "
        "that many readers miss at once and go to the database.",
    )

    if o.get("watch"):
        yield from _watch(ctx, plain_keys, jitter_keys, high, pct)


def _seconds(ms: int | None) -> str:
    return "-" if ms is None else f"in {ms / 1000:,.3f} s"


def _alive(ctx: DemoContext, keys: Sequence[str], traced: bool) -> int:
    """How many of ``keys`` still exist (EXISTS also removes a key that is due)."""
    with nullcontext() if traced else ctx.tracer.paused():
        return sum(int(v) for v in ctx.pipelined(keys, lambda p, k: p.exists(k), chunk=CHUNK))


def _watch(
    ctx: DemoContext,
    plain_keys: Sequence[str],
    jitter_keys: Sequence[str],
    high_ms: int,
    pct: float,
) -> Iterator[Record]:
    series = {"same TTL": plain_keys, f"±{pct:g}% jitter": jitter_keys}
    expired: dict[str, list[int]] = {name: [] for name in series}
    with ctx.step(
        "Watch the keys expire",
        "once a second, EXISTS on every key (EXISTS also removes a key that is due)",
    ) as step:
        alive = {name: len(keys) for name, keys in series.items()}
        start = time.monotonic()
        deadline = start + high_ms / 1000 + 2
        tick = 0
        while any(alive.values()) and time.monotonic() < deadline:
            tick += 1
            time.sleep(max(0.0, start + tick - time.monotonic()))
            for name, keys in series.items():
                now = _alive(ctx, keys, traced=tick == 1)
                expired[name].append(alive[name] - now)
                alive[name] = now
        peaks = {name: max(counts, default=0) for name, counts in expired.items()}
        step.data = {"seconds": tick, "expired": expired, "peak_per_second": peaks, "left": alive}
        step.outcome = f"sampled for {tick} s; most gone in one second: " + ", ".join(
            f"{name} {peak:,}" for name, peak in peaks.items()
        )
    yield step
    yield Histogram(
        "Keys that expired in each second of watching (observed)",
        "s",
        list(range(tick + 1)),
        expired,
        note="counted, not predicted: the number of keys that EXISTS no longer found",
    )
