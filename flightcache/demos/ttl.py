"""The TTL demo: one TTL per data class, then the expiry cliff with and without jitter.

The pattern itself is :mod:`flightcache.patterns.ttl` (data classes, :class:`Jitter`,
:class:`ClassedCache`); this module narrates it, one function per step, and writes
the batches of keys whose expiries it draws. It imports the pattern inside the
functions, so that the command can read :class:`Options` without loading the drivers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flightcache.measure.histogram import Buckets, bucket_counts, densest_window, nice_width

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Table
    from flightcache.patterns.ttl import ClassedCache, Jitter

CHUNK = 1_000  # commands per pipeline; the demo lists those of the first
KEYS_MAX = 1_000_000  # keys per batch
TTL_MAX = 30 * 86_400  # seconds
WATCH_TTL_MAX = 120  # seconds: --watch waits for the keys to expire
WATCH_KEYS_MAX = 100_000


@dataclass(frozen=True)
class Options:
    """What `flightcache ttl` takes."""

    keys: int = 1000  # keys per batch, 1 to KEYS_MAX
    ttl: int = 60  # base TTL of the batches, seconds, 1 to TTL_MAX
    jitter: float = 10.0  # percent of the TTL, 0 to patterns.ttl.JITTER_MAX_PERCENT
    seed: int = 1  # same seed, same TTLs
    watch: bool = False  # wait for the keys to expire and count them each second


@dataclass(frozen=True)
class Batches:
    """Two batches of keys written together: one TTL for all, and jittered TTLs."""

    plain_keys: list[str]
    jitter_keys: list[str]
    base_ms: int
    ttls_ms: list[int]  # the jittered batch's TTLs, in key order
    low_ms: int  # the bounds of the jitter
    high_ms: int


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.patterns.ttl import ClassedCache, Jitter

    options: Options = ctx.options
    jitter = Jitter(options.jitter, options.seed)
    cache = ClassedCache(ctx.valkey, ctx.keys, jitter)
    yield _classes_table(jitter)
    weather = yield from _cache_each_class(ctx, cache)
    batches = _batches(ctx)
    yield from _write_batches(ctx, batches, weather)
    buckets, figures = yield from _read_pttls(ctx, batches)
    yield from _cliff(options, buckets, figures)
    if options.watch:
        yield from _watch(ctx, batches.plain_keys, batches.jitter_keys, batches.high_ms)


def _classes_table(jitter: Jitter) -> Table:
    from flightcache.demos.base import Table
    from flightcache.measure.duration import human_seconds
    from flightcache.patterns.ttl import DATA_CLASSES

    return Table(
        "One TTL per data class",
        ["class", "data", "source", "TTL", f"with ±{jitter.percent:g}% jitter"],
        [
            [
                data_class.name,
                data_class.what,
                data_class.source,
                human_seconds(data_class.ttl_s),
                "{} - {}".format(
                    *(human_seconds(b / 1000) for b in jitter.bounds_ms(data_class.ttl_s))
                ),
            ]
            for data_class in DATA_CLASSES
        ],
        note="001's ladder: static 24 h, semi-static 6 h, dynamic 5 min, real time 30 s; "
        "its SETEX examples use 24 h, 1 h, 5 min and 60 s, as here.",
    )


def _cache_each_class(ctx: DemoContext, cache: ClassedCache) -> Generator[Record, None, str]:
    """One step per data class, then what Valkey holds; the weather as JSON."""
    from functools import partial

    from flightcache.demos.base import Table
    from flightcache.measure.duration import human_seconds
    from flightcache.patterns.ttl import DATA_CLASSES, load

    percent = cache.jitter.percent
    summary: list[list[Any]] = []
    weather = "[]"
    for data_class in DATA_CLASSES:
        key = cache.key(data_class)
        with ctx.step(
            f"Cache the {data_class.name} data: {data_class.what}", data_class.why
        ) as step:
            loaded = cache.get_or_load(data_class, partial(load, ctx.db, data_class))
            ttl = int(ctx.valkey.ttl(key))
            pttl = int(ctx.valkey.pttl(key))
            low, high = cache.jitter.bounds_ms(data_class.ttl_s)
            step.hit = loaded.hit
            step.rows = len(loaded.value)
            step.outcome = (
                f"{len(loaded.value)} rows cached for {human_seconds(data_class.ttl_s)}"
                f" ± {percent:g}%: "
                f"TTL {ttl:,} s, PTTL {pttl:,} ms (allowed {low:,} - {high:,} ms)"
            )
            step.data = {
                "class": data_class.name,
                "key": key,
                "base_s": data_class.ttl_s,
                "given_ms": loaded.ttl_ms,
                "ttl_s": ttl,
                "pttl_ms": pttl,
                "min_ms": low,
                "max_ms": high,
            }
        yield step
        summary.append(
            [
                data_class.name,
                key,
                human_seconds(data_class.ttl_s),
                f"{loaded.ttl_ms:,}",
                f"{ttl:,}",
                f"{pttl:,}",
            ]
        )
        if data_class.name == "real-time":
            weather = json.dumps(loaded.value, separators=(",", ":"))
    yield Table(
        "What Valkey holds now",
        ["class", "key", "base TTL", "given PX (ms)", "TTL (s)", "PTTL (ms)"],
        summary,
        note="TTL rounds to seconds; PTTL counts milliseconds. A key without TTL answers -1.",
    )
    return weather


def _batches(ctx: DemoContext) -> Batches:
    from flightcache.patterns.ttl import Jitter

    options: Options = ctx.options
    count = options.keys
    batch_jitter = Jitter(options.jitter, options.seed)
    low, high = batch_jitter.bounds_ms(options.ttl)
    return Batches(
        plain_keys=[ctx.keys.ttl_batch("plain", i) for i in range(count)],
        jitter_keys=[ctx.keys.ttl_batch("jitter", i) for i in range(count)],
        base_ms=options.ttl * 1000,
        ttls_ms=[batch_jitter.ttl_ms(options.ttl) for _ in range(count)],
        low_ms=low,
        high_ms=high,
    )


def _write_batches(ctx: DemoContext, batches: Batches, weather: str) -> Iterator[Record]:
    from flightcache.measure.duration import human_seconds

    options: Options = ctx.options
    count, base_ms, ttls = options.keys, batches.base_ms, batches.ttls_ms

    def queue_set(pipe: Any, key_and_ttl: tuple[str, int]) -> None:
        pipe.set(key_and_ttl[0], weather, px=key_and_ttl[1])

    with ctx.step(
        f"Write {count:,} keys together, every one with TTL {human_seconds(options.ttl)}",
        "a cache warm-up, a bulk import, a deploy: many keys written in the same second",
    ) as step:
        ctx.pipelined([(k, base_ms) for k in batches.plain_keys], queue_set, chunk=CHUNK)
        step.outcome = f"{count:,} SETs with PX {base_ms:,} in {_pipelines(count)}"
        step.data = {"series": "plain", "given": _given(count, [base_ms] * count)}
    yield step

    with ctx.step(
        f"Write {count:,} more keys together,"
        f" TTL {human_seconds(options.ttl)} ± {options.jitter:g}%",
        f"jitter: each TTL drawn evenly from {batches.low_ms:,} - {batches.high_ms:,} ms"
        f" (seed {options.seed})",
    ) as step:
        ctx.pipelined(list(zip(batches.jitter_keys, ttls, strict=True)), queue_set, chunk=CHUNK)
        step.outcome = (
            f"{count:,} SETs, PX from {min(ttls):,} to {max(ttls):,} ms, in {_pipelines(count)}"
        )
        step.data = {"series": "jitter", "given": _given(count, ttls)}
    yield step


def _read_pttls(
    ctx: DemoContext, batches: Batches
) -> Generator[Record, None, tuple[Buckets, dict[str, dict[str, Any]]]]:
    """Every key's PTTL, bucketed; the buckets and each batch's figures."""
    options: Options = ctx.options
    jittered = f"±{options.jitter:g}% jitter"

    def queue_pttl(pipe: Any, key: str) -> None:
        pipe.pttl(key)

    with ctx.step(
        "Read back every key's PTTL",
        "PTTL is how many milliseconds a key has left; the expiry time of each key",
    ) as step:
        plain_pttls = [int(v) for v in ctx.pipelined(batches.plain_keys, queue_pttl, chunk=CHUNK)]
        jitter_pttls = [int(v) for v in ctx.pipelined(batches.jitter_keys, queue_pttl, chunk=CHUNK)]
        live = [p for p in plain_pttls + jitter_pttls if p >= 0]
        span = (max(live) - min(live)) if live else 0
        buckets = bucket_counts(
            {
                "same TTL": [p for p in plain_pttls if p >= 0],
                jittered: [p for p in jitter_pttls if p >= 0],
            },
            nice_width(span, 24, minimum=1000),
        )
        figures = {
            "plain": _series_figures(plain_pttls, buckets.peak("same TTL")),
            "jitter": _series_figures(jitter_pttls, buckets.peak(jittered)),
        }
        step.data = {
            "keys": options.keys,
            "base_ms": batches.base_ms,
            "jitter_pct": options.jitter,
            "seed": options.seed,
            "bounds_ms": [batches.low_ms, batches.high_ms],
            "bucket_ms": buckets.width,
            **figures,
        }
        gone = sum(1 for p in plain_pttls + jitter_pttls if p < 0)
        step.outcome = f"{2 * options.keys - gone:,} PTTLs read" + (
            f"; {gone:,} keys already gone" if gone else ""
        )
    yield step
    return buckets, figures


def _cliff(
    options: Options, buckets: Buckets, figures: dict[str, dict[str, Any]]
) -> Iterator[Record]:
    from flightcache.demos.base import Histogram, Table
    from flightcache.measure.duration import human_seconds

    count = options.keys
    yield Histogram(
        f"When the {2 * count:,} keys expire"
        f" (time left, buckets of {human_seconds(buckets.width / 1000)})",
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
                _seconds(series["min_ms"]),
                _seconds(series["max_ms"]),
                f"{series['peak_1s']:,} of {series['keys']:,}",
                f"{series['peak_bucket']:,}",
            ]
            for label, series in (
                (f"{count:,} with the same TTL", figures["plain"]),
                (f"{count:,} with ±{options.jitter:g}% jitter", figures["jitter"]),
            )
        ],
        note="'most in one second' is the busiest one-second window, wherever it starts: "
        "that many readers miss at once and go to the database.",
    )


def _watch(
    ctx: DemoContext, plain_keys: Sequence[str], jitter_keys: Sequence[str], high_ms: int
) -> Iterator[Record]:
    from flightcache.demos.base import Histogram

    series = {"same TTL": plain_keys, f"±{ctx.options.jitter:g}% jitter": jitter_keys}
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


def _alive(ctx: DemoContext, keys: Sequence[str], traced: bool) -> int:
    """How many of ``keys`` still exist (EXISTS also removes a key that is due)."""
    with nullcontext() if traced else ctx.tracer.paused():
        return sum(
            int(v) for v in ctx.pipelined(keys, lambda pipe, key: pipe.exists(key), chunk=CHUNK)
        )


def _pipelines(count: int) -> str:
    pipelines = -(-count // CHUNK)
    if pipelines == 1:
        return "one pipeline"
    return f"{pipelines:,} pipelines of {CHUNK:,} (the first one listed)"


def _given(count: int, ttls_ms: Sequence[int]) -> dict[str, int]:
    """The TTLs as sent (exact, unlike PTTLs read back a few milliseconds later)."""
    peak, _ = densest_window(ttls_ms, 1000)
    return {"keys": count, "min_ms": min(ttls_ms), "max_ms": max(ttls_ms), "peak_1s": peak}


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


def _seconds(ms: int | None) -> str:
    return "-" if ms is None else f"in {ms / 1000:,.3f} s"
