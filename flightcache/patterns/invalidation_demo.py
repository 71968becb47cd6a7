"""The narrated `flightcache invalidate` demo: by event, by tag, and by time.

A passenger books a flight (event-driven: the event names the keys it makes
wrong), a flight is delayed (tag-based: the tag sets name them), and a batch of
results expires spread out by jitter. After each invalidation the next read is
checked against a fresh SELECT. Every change to the database is undone when the
demo ends, however it ends.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from flightcache.demos.base import DemoContext, Histogram, Record, Table
from flightcache.measure.histogram import bucket_counts, densest_window, nice_width
from flightcache.patterns.invalidation import (
    Invalidator,
    Read,
    Scene,
    TaggedCache,
    before_commit_only,
    bookings_of,
    flight_row,
    route_tag,
    search,
)
from flightcache.patterns.ttl import Jitter, human_s
from flightcache.sqlfiles import query


def _book(ctx: DemoContext, flight: Mapping[str, Any], passenger: int) -> int:
    """INSERT a booking (inside the caller's transaction); its removal is recorded
    before the COMMIT, so not even a SIGKILL leaves it behind."""
    db = ctx.db
    db.execute(
        query(db.dialect, "booking_add"),
        {"flight_id": int(flight["flight_id"]), "passenger_id": passenger, "price": 99.0},
    )
    booking_id = int(db.fetch(query(db.dialect, "last_insert_id")).rows[0][0])
    ctx.put_back("booking_remove", {"booking_id": booking_id})
    return booking_id


def _unbook(db: Any, booking_id: int) -> None:
    db.execute(query(db.dialect, "booking_remove"), {"booking_id": booking_id})


def _move(db: Any, flight: Mapping[str, Any], minutes: int) -> None:
    shift = dt.timedelta(minutes=minutes)
    db.execute(
        query(db.dialect, "inv_flight_move"),
        {
            "flight_id": int(flight["flight_id"]),
            "departure": flight["departure"] + shift,
            "arrival": flight["arrival"] + shift,
        },
    )


def _existing(ctx: DemoContext, keys: Sequence[str]) -> list[str]:
    pipe = ctx.tracer.pipeline(ctx.valkey)
    for key in keys:
        pipe.exists(key)
    return [k for k, n in zip(keys, pipe.execute(), strict=True) if n]


def _departure(read: Read, flight_id: int) -> str:
    for row in read.rows:
        if int(row[read.columns.index("flight_id")]) == flight_id:
            return str(row[read.columns.index("departure")]).replace("T", " ")[:16]
    return "(not shown)"


def _booked(read: Read, flight_id: int) -> int | None:
    for row in read.rows:
        if int(row[read.columns.index("flight_id")]) == flight_id:
            return int(row[read.columns.index("booked")])
    return None


def run(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.db import connect

    o = ctx.options
    ttl_s: int = o.get("ttl", 3600)
    pct: float = o.get("jitter", 10.0)
    delay: int = o.get("delay", 15)
    warm: int = o.get("warm", 200)
    jitter = Jitter(pct, o.get("seed", 1))
    cache = TaggedCache(
        ctx.valkey, ctx.db, ctx.keys, jitter, ttl_s=ttl_s, pipeline=ctx.tracer.pipeline
    )
    inv = Invalidator(ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
    scene = Scene.find(ctx.db, o.get("flight"), o.get("passenger"))
    flight, other, who = scene.flight, scene.other, scene.booker
    flight_id, other_id = int(flight["flight_id"]), int(other["flight_id"])
    booked: list[int] = []
    ctx.put_back(
        "inv_flight_move",
        {
            "flight_id": flight_id,
            "departure": flight["departure"],
            "arrival": flight["arrival"],
        },
    )
    reader_db = ctx.tracer.database(connect(ctx.db.url))  # a concurrent reader's connection
    ctx.on_exit(reader_db.close)

    def code(f: Mapping[str, Any]) -> str:
        return f"{str(f['flightno']).strip()} {f['origin']}-{f['destination']}"

    watched: dict[str, tuple[str, dict[str, Any]]] = {}
    for p in dict.fromkeys([*scene.on_flight, who, scene.elsewhere]):
        watched[f"bookings of passenger {p}"] = bookings_of(p)
    bystander = next(p for p in scene.on_flight if p != who)  # on the flight, books nothing
    aboard = next(p for p in scene.on_flight if p != bystander)  # read after the delay
    expiring = next(
        (p for p in reversed(scene.on_flight) if p not in (who, bystander)), scene.on_flight[-1]
    )
    searches = {}
    for f in (flight, other):
        searches[int(f["flight_id"])] = f"search {code(f)} {search(f)[1]['day']}"
        watched[searches[int(f["flight_id"])]] = search(f)
        watched[f"flight {f['flight_id']} ({code(f)})"] = flight_row(f)
    label = {cache.key(*spec): name for name, spec in watched.items()}
    keys = list(label)

    def names(ks: Sequence[str]) -> str:
        return ", ".join(label.get(k, k.removeprefix(ctx.keys.prefix)) for k in ks) or "none"

    key_p, key_search_other = cache.key(*bookings_of(who)), cache.key(*search(other))
    done: list[list[Any]] = []

    # -- warm up ------------------------------------------------------------------------
    with ctx.step(
        "Cache the results the demo watches",
        "cache-aside: a miss GETs the epoch, runs the query, SETs the rows with a jittered"
        " TTL (PX), SADDs the key to the tag set of every flight its rows show (a search also"
        " to its route's), and GETs the epoch again",
    ) as step:
        first = {name: cache.get(*spec) for name, spec in watched.items()}
        tags = sorted({t for r in first.values() for t in r.tags})
        step.hit = False
        step.outcome = (
            f"{len(first)} results cached under {len(tags)} tag sets;"
            f" TTLs {min(r.ttl_ms or 0 for r in first.values()):,} to"
            f" {max(r.ttl_ms or 0 for r in first.values()):,} ms"
        )
        step.data = {
            "cached": {
                n: {"key": r.key, "rows": len(r.rows), "ttl_ms": r.ttl_ms, "tags": r.tags}
                for n, r in first.items()
            }
        }
    yield step
    yield Table(
        "What is cached, under which tags",
        ["result", "rows", "PX (ms)", "tags"],
        [[n, len(r.rows), r.ttl_ms, _few(r.tags)] for n, r in first.items()],
        note=f"keys under {ctx.keys.prefix}query:<query>:<digest of the parameters>;"
        f" tag sets under {ctx.keys.prefix}tag:<tag>",
    )

    with ctx.step("Read them again", "every one a hit: no SQL runs") as step:
        again = {name: cache.get(*spec) for name, spec in watched.items()}
        step.hit = all(r.hit for r in again.values())
        step.ok = bool(step.hit)
        step.outcome = f"{sum(r.hit for r in again.values())} of {len(again)} hits"
    yield step

    # -- event-driven ---------------------------------------------------------------------
    with ctx.step(
        f"Event: passenger {who} books flight {code(other)}",
        "BEGIN; INSERT the booking; COMMIT. Valkey has not been told yet: this is the"
        " window between the COMMIT and the invalidation",
    ) as step:
        with ctx.db.transaction():
            booked.append(_book(ctx, other, who))
        stale = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        step.hit = stale.hit
        step.fails_on_purpose(shown=stale.rows != fresh)
        step.outcome = (
            f"booking {booked[-1]} committed; the cache still answers {len(stale.rows)}"
            f" bookings, the database has {len(fresh)}: stale until invalidated"
        )
        step.data = {
            "booking_id": booked[-1],
            "cached_rows": len(stale.rows),
            "database_rows": len(fresh),
            "stale": stale.rows != fresh,
        }
    yield step

    affected = [key_p, key_search_other]
    with ctx.step(
        "Invalidate after COMMIT: exactly the keys the event affects",
        "the event names them: the passenger's bookings (001's DEL user:12345:bookings) and"
        " the search that shows the flight's free seats. INCR the epoch first, then one DEL"
        " per key",
    ) as step:
        report = inv.invalidate(keys=affected)
        others = [k for k in keys if k not in affected]
        kept = _existing(ctx, others)
        step.ok = sorted(report.deleted) == sorted(affected) and kept == others
        step.outcome = f"deleted: {names(report.deleted)}; the other {len(kept)} results stay"
        step.data = {**report.as_dict(), "kept": kept}
    yield step
    done.append(["booking (by name)", len(report.deleted), len(report.absent), len(kept)])

    with ctx.step(
        "The next read is fresh",
        "the deleted keys miss and load what is committed; the others still hit",
    ) as step:
        now = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        seats = cache.get(*search(other))
        untouched = cache.get(*bookings_of(bystander))
        step.hit = now.hit
        step.ok = not now.hit and now.rows == fresh and now.rows != stale.rows and untouched.hit
        step.outcome = (
            f"passenger {who}: miss, {len(now.rows)} bookings, equal to a fresh SELECT:"
            f" {now.rows == fresh} (the stale copy had {len(stale.rows)}); search: flight"
            f" {other_id} booked {_booked(first[searches[other_id]], other_id)} ->"
            f" {_booked(seats, other_id)}; passenger {bystander}: still a hit"
        )
        step.data = {
            "rows": len(now.rows),
            "equal_to_sql": now.rows == fresh,
            "differs_from_stale": now.rows != stale.rows,
            "untouched_hit": untouched.hit,
        }
    done[-1].append(step.ok)
    yield step

    def read_elsewhere(name: str, params: dict[str, Any], into: dict[str, Any]) -> None:
        """A reader on another connection: a miss, the epoch noted, the committed rows read."""
        into["fill"] = fill = cache.begin(name, params)
        into["doc"] = cache.load(fill, reader_db)

    with ctx.step(
        "Why not DEL before the COMMIT?",
        "the tempting order: BEGIN; INSERT a second booking; DEL the keys; a reader on"
        " another connection misses and caches what is committed, the old list; COMMIT",
    ) as step:
        race: dict[str, Any] = {}

        def reader() -> None:
            read_elsewhere(*bookings_of(who), race)
            cache.finish(race["fill"], race["doc"])

        before_commit_only(
            ctx.db,
            ctx.valkey,
            lambda: booked.append(_book(ctx, other, who)),
            affected,
            reader,
        )
        cached = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        step.hit = cached.hit
        step.fails_on_purpose(shown=cached.rows != fresh)
        step.outcome = (
            f"COMMIT done, and Valkey holds {len(cached.rows)} bookings while the database has"
            f" {len(fresh)}: stale until its TTL ends (up to {human_s(cache.tag_ttl_ms / 1000)})"
        )
        step.data = {"cached_rows": len(cached.rows), "database_rows": len(fresh)}
    yield step

    with ctx.step(
        "The fix: invalidate after the COMMIT",
        "whatever a reader cached before the COMMIT is deleted after it",
    ) as step:
        report = inv.invalidate(keys=affected)
        now = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        step.hit = now.hit
        step.ok = not now.hit and now.rows == fresh
        step.outcome = (
            f"deleted: {names(report.deleted)}; next read: miss, {len(now.rows)} bookings,"
            f" equal to a fresh SELECT: {now.rows == fresh}"
        )
        step.data = {**report.as_dict(), "equal_to_sql": now.rows == fresh}
    done.append(
        [
            "second booking (DEL before COMMIT, then after)",
            len(report.deleted),
            len(report.absent),
            None,
            step.ok,
        ]
    )
    yield step

    second = booked[-1]
    with ctx.step(
        f"A reader that straddles the COMMIT: passenger {who} cancels booking {second}",
        "a reader misses on the search, notes the epoch and reads the old seat count before"
        " the COMMIT; the writer COMMITs, INCRs the epoch, DELs; the reader's SET lands after"
        " the DEL, and its second GET of the epoch sees the change: it deletes its own copy",
    ) as step:
        race = {}
        report = inv.after_commit(
            ctx.db,
            lambda: _unbook(ctx.db, second),
            keys=affected,
            inside=lambda: read_elsewhere(*search(other), race),
        )
        booked.remove(second)
        late = cache.finish(race["fill"], race["doc"])
        left = _existing(ctx, [key_search_other])
        now = cache.get(*search(other))
        mine = cache.get(*bookings_of(who))
        equal = now.rows == cache.fresh(*search(other)) and mine.rows == cache.fresh(
            *bookings_of(who)
        )
        step.ok = not late.kept and not left and equal
        step.outcome = (
            f"the reader's copy (booked {_booked(late, other_id)}) was"
            f" {'deleted by the reader itself' if not late.kept else 'KEPT: stale'};"
            f" next reads: booked {_booked(now, other_id)}, passenger {who} has"
            f" {len(mine.rows)} bookings, equal to a fresh SELECT: {equal}"
        )
        step.data = {
            **report.as_dict(),
            "reader_epoch": race["fill"].epoch,
            "reader_kept": late.kept,
            "equal_to_sql": equal,
        }
    done.append(
        ["cancellation, reader in between", len(report.deleted), len(report.absent), None, step.ok]
    )
    yield step

    # -- tag-based ------------------------------------------------------------------------
    tag_names = [f"flight:{flight_id}", route_tag(flight)]
    with ctx.step(
        f"Tag sets: what depends on flight {code(flight)}",
        "001's SADD cache:tags:flight:AA123 ...: every result registered itself when cached",
    ) as step:
        listed = {t: sorted(ctx.valkey.smembers(ctx.keys.tag(t))) for t in tag_names}
        step.outcome = "; ".join(f"{t}: {names(ms)}" for t, ms in listed.items())
        step.data = {"tags": listed}
    yield step

    expiring_key = cache.key(*bookings_of(expiring))
    with ctx.step(
        f"A member expires on its own: bookings of passenger {expiring}",
        "PEXPIRE 1 stands in for its TTL running out; the tag set still lists it",
    ) as step:
        ctx.valkey.pexpire(expiring_key, 1)
        time.sleep(0.01)
        gone = not _existing(ctx, [expiring_key])
        still = bool(ctx.valkey.sismember(ctx.keys.tag(tag_names[0]), expiring_key))
        step.ok = gone and still
        step.outcome = (
            f"the key is gone: {gone}; still listed in tag {tag_names[0]}: {still}."
            " A stale member is harmless: its DEL is a no-op. A tag set gets the longest TTL"
            f" a member can ({cache.tag_ttl_ms:,} ms), so it never expires before its members"
        )
    yield step

    depends = [
        cache.key(*spec)
        for spec in [*(bookings_of(p) for p in scene.on_flight), search(flight), flight_row(flight)]
    ]
    with ctx.step(
        f"Event: flight {code(flight)} is delayed {delay} min; invalidate its tags",
        f"BEGIN; UPDATE flight; COMMIT; INCR the epoch; SPOP each tag set ({', '.join(tag_names)})"
        " to take and remove its members at once; then one DEL per member, since members sit"
        " in other slots of a cluster",
    ) as step:
        present = _existing(ctx, keys)
        report = inv.after_commit(ctx.db, lambda: _move(ctx.db, flight, delay), tags=tag_names)
        others = [k for k in present if k not in depends]
        kept = _existing(ctx, others)
        sets_left = _existing(ctx, [ctx.keys.tag(t) for t in tag_names])
        expected = sorted(k for k in depends if k in present)
        step.ok = (
            sorted(report.deleted) == expected
            and expiring_key in report.absent
            and kept == others
            and not sets_left
        )
        step.outcome = (
            f"deleted: {names(report.deleted)}; already gone: {names(report.absent)};"
            f" tag sets left: {len(sets_left)}; the other {len(kept)} results stay"
        )
        step.data = {**report.as_dict(), "expected": expected, "kept": kept}
    done.append(
        [
            f"flight delayed (tags {', '.join(tag_names)})",
            len(report.deleted),
            len(report.absent),
            len(kept),
        ]
    )
    yield step

    with ctx.step(
        "The next reads are fresh",
        "every copy that showed the flight is rebuilt with its new time",
    ) as step:
        reads = {
            f"bookings of passenger {aboard}": cache.get(*bookings_of(aboard)),
            "search": cache.get(*search(flight)),
            "flight": cache.get(*flight_row(flight)),
        }
        freshes = {
            f"bookings of passenger {aboard}": cache.fresh(*bookings_of(aboard)),
            "search": cache.fresh(*search(flight)),
            "flight": cache.fresh(*flight_row(flight)),
        }
        same = {n: reads[n].rows == freshes[n] for n in reads}
        step.hit = any(r.hit for r in reads.values())
        step.ok = all(same.values()) and not step.hit
        step.outcome = (
            f"departure of flight {flight_id}: was {str(flight['departure'])[:16]}, now "
            + ", ".join(f"{n} {_departure(r, flight_id)}" for n, r in reads.items())
            + f"; equal to a fresh SELECT: {all(same.values())}"
        )
        step.data = {"equal_to_sql": same}
    done[-1].append(step.ok)
    yield step

    racer = bystander
    with ctx.step(
        f"A reader caches during the tag invalidation: flight {code(flight)} back on time",
        f"a reader misses on passenger {racer}'s bookings and reads them (the delayed time)"
        " before the COMMIT; its key is registered only after the SPOP, so the tag misses it;"
        " the epoch does not: the reader deletes its own copy",
    ) as step:
        race = {}
        report = inv.after_commit(
            ctx.db,
            lambda: _move(ctx.db, flight, 0),
            tags=tag_names,
            inside=lambda: read_elsewhere(*bookings_of(racer), race),
        )
        late = cache.finish(race["fill"], race["doc"])
        now = cache.get(*bookings_of(racer))
        fresh = cache.fresh(*bookings_of(racer))
        step.ok = not late.kept and now.rows == fresh and late.rows != fresh
        step.outcome = (
            f"the reader stored the delayed time ({_departure(late, flight_id)}) and then"
            f" {'deleted it' if not late.kept else 'KEPT it: stale'}; next read:"
            f" {_departure(now, flight_id)}, equal to a fresh SELECT: {now.rows == fresh}"
        )
        step.data = {
            **report.as_dict(),
            "reader_kept": late.kept,
            "equal_to_sql": now.rows == fresh,
        }
    done.append(
        [
            "flight back on time, reader in between",
            len(report.deleted),
            len(report.absent),
            None,
            step.ok,
        ]
    )
    yield step

    # -- time-based, with jitter ----------------------------------------------------------
    if warm:
        yield from _jitter(ctx, cache, warm, ttl_s, pct)

    sql = query(ctx.db.dialect, bookings_of(who)[0])
    params = bookings_of(who)[1]
    cache.get(*bookings_of(who))

    def miss() -> Read:
        ctx.valkey.delete(key_p)
        return cache.get(*bookings_of(who))

    yield ctx.compare(
        f"passenger {who}'s bookings: database vs cache",
        {
            "database": lambda: ctx.db.fetch(sql, params),
            "cache hit": lambda: cache.get(*bookings_of(who)),
            "miss, fill with re-check": miss,
        },
        note="interleaved after a warm-up. The miss includes one DEL to make it a miss, then"
        " GET, GET epoch, the SELECT, SET, a SADD and PEXPIRE per flight shown, GET epoch",
    )
    yield Table(
        "What each invalidation did",
        [
            "event",
            "keys deleted",
            "named or listed, already gone",
            "others kept",
            "next read fresh",
        ],
        done,
        note="'others kept' counts the watched results that had to stay; every invalidation"
        " ran after its COMMIT",
    )


def _few(tags: Sequence[str], n: int = 4) -> str:
    return ", ".join(tags[:n]) + (f" (+{len(tags) - n})" if len(tags) > n else "")


def _jitter(
    ctx: DemoContext, cache: TaggedCache, warm: int, ttl_s: int, pct: float
) -> Iterator[Record]:
    found = ctx.db.fetch(query(ctx.db.dialect, "lb_candidate_passengers"), {"limit": warm})
    passengers = [int(r[0]) for r in found.rows]
    low, high = cache.jitter.bounds_ms(ttl_s)
    with ctx.step(
        f"Time-based invalidation: cache {len(passengers):,} passengers' bookings, TTL"
        f" {human_s(ttl_s)} ± {pct:g}%",
        f"001's SETEX $((3600 + RANDOM % 600)); here PX drawn evenly from {low:,} to"
        f" {high:,} ms (flightcache ttl's Jitter). The first read is listed",
    ) as step:
        reads: list[Read] = []
        written: list[int] = []
        for n, p in enumerate(passengers):
            with ctx.tracer.paused() if n else nullcontext():
                written.append(time.time_ns() // 1_000_000)
                reads.append(cache.get(*bookings_of(p)))
        pipe = ctx.tracer.pipeline(ctx.valkey)
        for r in reads:
            pipe.pexpiretime(r.key)
        with ctx.tracer.paused():
            expiry = [int(t) for t in pipe.execute()]
        now_ms = time.time_ns() // 1_000_000
        live = [t - now_ms for t in expiry if t > 0]
        peak, _ = densest_window(live, 1000)
        flat = [w + ttl_s * 1000 - now_ms for w in written]
        flat_peak, _ = densest_window(flat, 1000)
        step.rows = len(reads)
        step.outcome = (
            f"{len(live):,} keys expire from {min(live, default=0) / 1000:,.1f} s to"
            f" {max(live, default=0) / 1000:,.1f} s from now; the busiest second holds {peak:,};"
            f" with one TTL for all it would hold {flat_peak:,}"
        )
        step.data = {
            "keys": len(reads),
            "min_ms": min(live, default=None),
            "max_ms": max(live, default=None),
            "peak_1s": peak,
            "peak_1s_without_jitter": flat_peak,
            "bounds_ms": [low, high],
        }
    yield step
    buckets = bucket_counts(
        {f"±{pct:g}% jitter": live, "one TTL (computed)": flat},
        nice_width(max(live + flat) - min(live + flat), 24, minimum=1000) if live else 1000,
    )
    yield Histogram(
        f"When the {len(reads):,} cached booking lists expire (time left)",
        "ms",
        buckets.edges,
        buckets.counts,
        note="'one TTL' is computed: each key's write time plus the base TTL, what SETEX 3600"
        " would give; the keys were written within a second or so of each other",
    )

    with ctx.step(
        "Tag sets outlive their members",
        "PEXPIRETIME (the absolute expiry, in ms) of every tag set against every key it lists",
    ) as step:
        tags = sorted({t for r in reads for t in r.tags})
        pipe = ctx.tracer.pipeline(ctx.valkey)
        for t in tags:
            pipe.pexpiretime(cache.keys.tag(t))
        with ctx.tracer.paused():
            tag_expiry = dict(zip(tags, (int(x) for x in pipe.execute()), strict=True))
        member_expiry = dict(zip((r.key for r in reads), expiry, strict=True))
        early = [
            (t, r.key)
            for r in reads
            for t in r.tags
            if tag_expiry[t] < member_expiry[r.key] and member_expiry[r.key] > 0
        ]
        step.ok = not early
        step.outcome = (
            f"{len(tags):,} tag sets; pairs where a set expires before a member it lists:"
            f" {len(early)}. A set gets PEXPIRE {cache.tag_ttl_ms:,} (the longest TTL the jitter"
            " gives) each time a key registers"
        )
        step.data = {"tag_sets": len(tags), "expires_before_member": len(early)}
    yield step
