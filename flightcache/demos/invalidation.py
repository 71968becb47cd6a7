"""The narrated `flightcache invalidation` demo: by event, by tag, and by time.

A passenger books a flight (event-driven: the event names the keys it makes
wrong), a flight is delayed (tag-based: the tag sets name them), and a batch of
results expires spread out by jitter. After each invalidation the next read is
checked against a fresh SELECT. Every change to the database is undone when the
demo ends, however it ends.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from flightcache.demos.base import DemoContext, Histogram, Record, Step, Table
from flightcache.errors import DataError
from flightcache.measure.histogram import bucket_counts, densest_window, nice_width
from flightcache.patterns.invalidation import (
    Invalidation,
    Invalidator,
    Read,
    TaggedCache,
    bookings_of,
    flight_row,
    route_tag,
    search,
)
from flightcache.sqlfiles import query

# patterns.ttl (Jitter) is imported inside the functions that use it: it loads
# valkey-py, and `flightcache --help` imports this module for its Options.

DELAY_MAX = 720  # minutes
TTL_MAX = 30 * 86_400  # seconds
JITTER_MAX = 50.0  # percent either way
WARM_MAX = 100_000  # passengers


@dataclass(frozen=True)
class Options:
    """What `flightcache invalidation` takes; the command's defaults are these."""

    flight: int | None = None  # the flight delayed; None: the first with three passengers
    passenger: int | None = None  # the passenger who books; None: one on the flight
    delay: int = 15  # minutes
    ttl: int = 3600  # base TTL of cached results, seconds
    jitter: float = 10.0  # percent either way
    warm: int = 200  # passengers' bookings cached to show the jitter
    seed: int = 1  # of the jitter


@dataclass
class Scene:
    """The rows the demo changes and the results it watches."""

    flight: dict[str, Any]  # the flight that is delayed
    other: dict[str, Any]  # the flight a passenger books (another route)
    on_flight: list[int]  # passengers booked on ``flight`` (up to 3)
    booker: int  # the passenger who books ``other`` (on ``flight`` unless chosen)
    elsewhere: int  # a passenger with no booking on ``flight``

    @staticmethod
    def find(db: Any, flight: int | None, passenger: int | None) -> Scene:
        def one(name: str, **params: Any) -> dict[str, Any] | None:
            found = db.fetch(query(db.dialect, name), params)
            return dict(zip(found.columns, found.rows[0], strict=True)) if found.rows else None

        if flight is None:
            busy = one("invalidation_busy_flight")
            if busy is None:
                raise DataError(
                    "no flight has three passengers", hint="load data: `flightcache data load`"
                )
            flight = int(busy["flight_id"])
        row = one("invalidation_flight", flight_id=flight)
        if row is None:
            raise DataError(
                f"no flight with id {flight} between airports with IATA codes",
                hint="leave --flight out to pick a flight with passengers",
            )
        found = db.fetch(
            query(db.dialect, "invalidation_flight_passengers"), {"flight_id": flight, "limit": 3}
        )
        on_flight = [int(r[0]) for r in found.rows]
        if len(on_flight) < 2:
            raise DataError(
                f"flight {flight} has {len(on_flight)} passenger(s); the demo needs two",
                hint="leave --flight out to pick a flight with passengers",
            )
        if passenger is not None and one("passenger_by_id", passenger_id=passenger) is None:
            raise DataError(f"no passenger with id {passenger}", hint="leave --passenger out")
        other = one("invalidation_other_flight", from_id=row["from_id"], to_id=row["to_id"])
        elsewhere = one("invalidation_other_passenger", flight_id=flight)
        if other is None or elsewhere is None or elsewhere["passenger_id"] is None:
            raise DataError("the dataset is too small for the demo", hint="`flightcache data load`")
        other_row = one("invalidation_flight", flight_id=int(other["flight_id"]))
        assert other_row is not None
        booker = on_flight[0] if passenger is None else passenger
        return Scene(row, other_row, on_flight, booker, int(elsewhere["passenger_id"]))


# -- the database changes, each put back when the demo ends ----------------------------------
def book(ctx: DemoContext, flight: Mapping[str, Any], passenger: int) -> int:
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


def unbook(db: Any, booking_id: int) -> None:
    db.execute(query(db.dialect, "booking_remove"), {"booking_id": booking_id})


def move_flight(db: Any, flight: Mapping[str, Any], minutes: int) -> None:
    """Set the flight's departure and arrival ``minutes`` after the times in ``flight``."""
    shift = dt.timedelta(minutes=minutes)
    db.execute(
        query(db.dialect, "invalidation_flight_move"),
        {
            "flight_id": int(flight["flight_id"]),
            "departure": flight["departure"] + shift,
            "arrival": flight["arrival"] + shift,
        },
    )


def before_commit_only(
    db: Any, client: Any, change: Callable[[], Any], keys: Sequence[str], inside: Callable[[], None]
) -> None:
    """The tempting order, shown to fail: BEGIN, change, DEL, (a reader), COMMIT."""
    with db.transaction():
        change()
        for key in keys:
            client.delete(key)
        inside()


# -- what the steps share --------------------------------------------------------------------
def code(flight: Mapping[str, Any]) -> str:
    """A flight as a person reads it: number and route."""
    return f"{str(flight['flightno']).strip()} {flight['origin']}-{flight['destination']}"


@dataclass
class Watch:
    """The cache, the invalidator, the rows, and the results the demo watches."""

    ctx: DemoContext
    cache: TaggedCache
    invalidator: Invalidator
    scene: Scene
    reader_db: Any  # a concurrent reader's connection
    watched: dict[str, tuple[str, dict[str, Any]]]  # name shown -> (query, params)
    searches: dict[int, str]  # flight id -> the name of its search in ``watched``
    bystander: int  # on the flight, books nothing
    aboard: int  # on the flight, read after the delay
    expiring: int  # on the flight, whose bookings expire on their own
    label: dict[str, str] = field(default_factory=dict)  # key -> name shown
    first: dict[str, Read] = field(default_factory=dict)  # the first reads
    booked: list[int] = field(default_factory=list)  # bookings the demo made
    done: list[list[Any]] = field(default_factory=list)  # the summary table's rows

    @property
    def who(self) -> int:
        return self.scene.booker

    @property
    def keys(self) -> list[str]:
        return list(self.label)

    @property
    def affected(self) -> list[str]:
        """The keys a booking by ``who`` on the other flight makes wrong."""
        return [
            self.cache.key(*bookings_of(self.who)),
            self.cache.key(*search(self.scene.other)),
        ]

    def names(self, keys: Sequence[str]) -> str:
        prefix = self.ctx.keys.prefix
        return ", ".join(self.label.get(k, k.removeprefix(prefix)) for k in keys) or "none"

    def existing(self, keys: Sequence[str]) -> list[str]:
        pipe = self.ctx.tracer.pipeline(self.ctx.valkey)
        for key in keys:
            pipe.exists(key)
        return [k for k, n in zip(keys, pipe.execute(), strict=True) if n]

    def read_elsewhere(self, spec: tuple[str, dict[str, Any]], into: dict[str, Any]) -> None:
        """A reader on another connection: a miss, the epoch noted, the committed rows read."""
        into["fill"] = fill = self.cache.begin(*spec)
        into["doc"] = self.cache.load(fill, self.reader_db)

    def tally(self, event: str, report: Invalidation, kept: int | None, fresh: bool) -> None:
        self.done.append([event, len(report.deleted), len(report.absent), kept, fresh])


def prepare(ctx: DemoContext, options: Options) -> Watch:
    """Find the rows, open the reader's connection, name the results to watch."""
    from flightcache.db import connect
    from flightcache.patterns.ttl import Jitter

    jitter = Jitter(options.jitter, options.seed)
    cache = TaggedCache(
        ctx.valkey, ctx.db, ctx.keys, jitter, ttl_s=options.ttl, pipeline=ctx.tracer.pipeline
    )
    invalidator = Invalidator(ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
    scene = Scene.find(ctx.db, options.flight, options.passenger)
    flight, who = scene.flight, scene.booker
    ctx.put_back(
        "invalidation_flight_move",
        {
            "flight_id": int(flight["flight_id"]),
            "departure": flight["departure"],
            "arrival": flight["arrival"],
        },
    )
    reader_db = ctx.tracer.database(connect(ctx.db.url))
    ctx.on_exit(reader_db.close)
    watched: dict[str, tuple[str, dict[str, Any]]] = {}
    for p in dict.fromkeys([*scene.on_flight, who, scene.elsewhere]):
        watched[f"bookings of passenger {p}"] = bookings_of(p)
    bystander = next(p for p in scene.on_flight if p != who)
    aboard = next(p for p in scene.on_flight if p != bystander)
    expiring = next(
        (p for p in reversed(scene.on_flight) if p not in (who, bystander)), scene.on_flight[-1]
    )
    searches = {}
    for f in (flight, scene.other):
        searches[int(f["flight_id"])] = f"search {code(f)} {search(f)[1]['day']}"
        watched[searches[int(f["flight_id"])]] = search(f)
        watched[f"flight {f['flight_id']} ({code(f)})"] = flight_row(f)
    found = Watch(
        ctx, cache, invalidator, scene, reader_db, watched, searches, bystander, aboard, expiring
    )
    found.label = {cache.key(*spec): name for name, spec in watched.items()}
    return found


def demo(ctx: DemoContext) -> Iterator[Record]:
    """The steps in order: warm up, by event, by tag, by time, then the timings."""
    options: Options = ctx.options
    w = prepare(ctx, options)
    yield from warm_up(w)
    yield from by_event(w)
    yield from delete_before_commit(w)
    yield from reader_straddles_commit(w)
    yield from by_tag(w, options.delay)
    yield from reader_during_tag_invalidation(w)
    if options.warm:
        yield from by_time(w, options.warm, options.ttl, options.jitter)
    yield from timings(w)


# -- the steps -------------------------------------------------------------------------------
def warm_up(w: Watch) -> Iterator[Record]:
    ctx, cache = w.ctx, w.cache
    with ctx.step(
        "Cache the results the demo watches",
        "cache-aside: a miss GETs the epoch, runs the query, SETs the rows with a jittered"
        " TTL (PX), SADDs the key to the tag set of every flight its rows show (a search also"
        " to its route's), and GETs the epoch again",
    ) as step:
        w.first = first = {name: cache.get(*spec) for name, spec in w.watched.items()}
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
        again = {name: cache.get(*spec) for name, spec in w.watched.items()}
        step.hit = all(r.hit for r in again.values())
        step.ok = bool(step.hit)
        step.outcome = f"{sum(r.hit for r in again.values())} of {len(again)} hits"
    yield step


def by_event(w: Watch) -> Iterator[Record]:
    """A booking, its stale window, the invalidation after the COMMIT, the fresh read."""
    ctx, cache, who, other = w.ctx, w.cache, w.who, w.scene.other
    other_id = int(other["flight_id"])
    with ctx.step(
        f"Event: passenger {who} books flight {code(other)}",
        "BEGIN; INSERT the booking; COMMIT. Valkey has not been told yet: this is the"
        " window between the COMMIT and the invalidation",
    ) as step:
        with ctx.db.transaction():
            w.booked.append(book(ctx, other, who))
        stale = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        step.hit = stale.hit
        step.fails_on_purpose(shown=stale.rows != fresh)
        step.outcome = (
            f"booking {w.booked[-1]} committed; the cache still answers {len(stale.rows)}"
            f" bookings, the database has {len(fresh)}: stale until invalidated"
        )
        step.data = {
            "booking_id": w.booked[-1],
            "cached_rows": len(stale.rows),
            "database_rows": len(fresh),
            "stale": stale.rows != fresh,
        }
    yield step

    affected = w.affected
    with ctx.step(
        "Invalidate after COMMIT: exactly the keys the event affects",
        "the event names them: the passenger's bookings (001's DEL user:12345:bookings) and"
        " the search that shows the flight's free seats. INCR the epoch first, then one DEL"
        " per key",
    ) as step:
        report = w.invalidator.invalidate(keys=affected)
        others = [k for k in w.keys if k not in affected]
        kept = w.existing(others)
        step.ok = sorted(report.deleted) == sorted(affected) and kept == others
        step.outcome = f"deleted: {w.names(report.deleted)}; the other {len(kept)} results stay"
        step.data = {**report.as_dict(), "kept": kept}
    yield step

    with ctx.step(
        "The next read is fresh",
        "the deleted keys miss and load what is committed; the others still hit",
    ) as step:
        now = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        seats = cache.get(*search(other))
        untouched = cache.get(*bookings_of(w.bystander))
        step.hit = now.hit
        step.ok = not now.hit and now.rows == fresh and now.rows != stale.rows and untouched.hit
        step.outcome = (
            f"passenger {who}: miss, {len(now.rows)} bookings, equal to a fresh SELECT:"
            f" {now.rows == fresh} (the stale copy had {len(stale.rows)}); search: flight"
            f" {other_id} booked {_booked(w.first[w.searches[other_id]], other_id)} ->"
            f" {_booked(seats, other_id)}; passenger {w.bystander}: still a hit"
        )
        step.data = {
            "rows": len(now.rows),
            "equal_to_sql": now.rows == fresh,
            "differs_from_stale": now.rows != stale.rows,
            "untouched_hit": untouched.hit,
        }
    w.tally("booking (by name)", report, len(kept), step.ok)
    yield step


def delete_before_commit(w: Watch) -> Iterator[Record]:
    """The tempting order (DEL, then COMMIT) leaves a stale copy; after the COMMIT fixes it."""
    from flightcache.measure.duration import human_seconds

    ctx, cache, who = w.ctx, w.cache, w.who
    with ctx.step(
        "Why not DEL before the COMMIT?",
        "the tempting order: BEGIN; INSERT a second booking; DEL the keys; a reader on"
        " another connection misses and caches what is committed, the old list; COMMIT",
    ) as step:
        race: dict[str, Any] = {}
        before_commit_only(
            ctx.db,
            ctx.valkey,
            lambda: w.booked.append(book(ctx, w.scene.other, who)),
            w.affected,
            lambda: _read_and_store(w, bookings_of(who), race),
        )
        cached = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        step.hit = cached.hit
        step.fails_on_purpose(shown=cached.rows != fresh)
        step.outcome = (
            f"COMMIT done, and Valkey holds {len(cached.rows)} bookings while the database has"
            f" {len(fresh)}: stale until its TTL ends"
            f" (up to {human_seconds(cache.tag_ttl_ms / 1000)})"
        )
        step.data = {"cached_rows": len(cached.rows), "database_rows": len(fresh)}
    yield step

    with ctx.step(
        "The fix: invalidate after the COMMIT",
        "whatever a reader cached before the COMMIT is deleted after it",
    ) as step:
        report = w.invalidator.invalidate(keys=w.affected)
        now = cache.get(*bookings_of(who))
        fresh = cache.fresh(*bookings_of(who))
        step.hit = now.hit
        step.ok = not now.hit and now.rows == fresh
        step.outcome = (
            f"deleted: {w.names(report.deleted)}; next read: miss, {len(now.rows)} bookings,"
            f" equal to a fresh SELECT: {now.rows == fresh}"
        )
        step.data = {**report.as_dict(), "equal_to_sql": now.rows == fresh}
    w.tally("second booking (DEL before COMMIT, then after)", report, None, step.ok)
    yield step


def _read_and_store(w: Watch, spec: tuple[str, dict[str, Any]], race: dict[str, Any]) -> None:
    """A reader on another connection that misses, reads and stores at once."""
    w.read_elsewhere(spec, race)
    w.cache.finish(race["fill"], race["doc"])


def reader_straddles_commit(w: Watch) -> Iterator[Record]:
    """A reader reads before the COMMIT and stores after the DEL: the epoch catches it."""
    ctx, cache, who, other = w.ctx, w.cache, w.who, w.scene.other
    other_id = int(other["flight_id"])
    key_search_other = cache.key(*search(other))
    second = w.booked[-1]
    with ctx.step(
        f"A reader that straddles the COMMIT: passenger {who} cancels booking {second}",
        "a reader misses on the search, notes the epoch and reads the old seat count before"
        " the COMMIT; the writer COMMITs, INCRs the epoch, DELs; the reader's SET lands after"
        " the DEL, and its second GET of the epoch sees the change: it deletes its own copy",
    ) as step:
        race: dict[str, Any] = {}
        report = w.invalidator.after_commit(
            ctx.db,
            lambda: unbook(ctx.db, second),
            keys=w.affected,
            inside=lambda: w.read_elsewhere(search(other), race),
        )
        w.booked.remove(second)
        late = cache.finish(race["fill"], race["doc"])
        left = w.existing([key_search_other])
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
    w.tally("cancellation, reader in between", report, None, step.ok)
    yield step


def _tag_names(flight: Mapping[str, Any]) -> list[str]:
    return [f"flight:{int(flight['flight_id'])}", route_tag(flight)]


def by_tag(w: Watch, delay: int) -> Iterator[Record]:
    """The tag sets of a flight, a member that expired, the delay, the fresh reads."""
    ctx, cache, flight = w.ctx, w.cache, w.scene.flight
    tag_names = _tag_names(flight)
    with ctx.step(
        f"Tag sets: what depends on flight {code(flight)}",
        "001's SADD cache:tags:flight:AA123 ...: every result registered itself when cached",
    ) as step:
        listed = {t: sorted(ctx.valkey.smembers(ctx.keys.tag(t))) for t in tag_names}
        step.outcome = "; ".join(f"{t}: {w.names(ms)}" for t, ms in listed.items())
        step.data = {"tags": listed}
    yield step

    expiring_key = cache.key(*bookings_of(w.expiring))
    with ctx.step(
        f"A member expires on its own: bookings of passenger {w.expiring}",
        "PEXPIRE 1 stands in for its TTL running out; the tag set still lists it",
    ) as step:
        ctx.valkey.pexpire(expiring_key, 1)
        time.sleep(0.01)
        gone = not w.existing([expiring_key])
        still = bool(ctx.valkey.sismember(ctx.keys.tag(tag_names[0]), expiring_key))
        step.ok = gone and still
        step.outcome = (
            f"the key is gone: {gone}; still listed in tag {tag_names[0]}: {still}."
            " A stale member is harmless: its DEL is a no-op. A tag set gets the longest TTL"
            f" a member can ({cache.tag_ttl_ms:,} ms), so it never expires before its members"
        )
    yield step

    specs = [*(bookings_of(p) for p in w.scene.on_flight), search(flight), flight_row(flight)]
    depends = [cache.key(*spec) for spec in specs]
    with ctx.step(
        f"Event: flight {code(flight)} is delayed {delay} min; invalidate its tags",
        f"BEGIN; UPDATE flight; COMMIT; INCR the epoch; SPOP each tag set ({', '.join(tag_names)})"
        " to take and remove its members at once; then one DEL per member, since members sit"
        " in other slots of a cluster",
    ) as step:
        present = w.existing(w.keys)
        report = w.invalidator.after_commit(
            ctx.db, lambda: move_flight(ctx.db, flight, delay), tags=tag_names
        )
        others = [k for k in present if k not in depends]
        kept = w.existing(others)
        sets_left = w.existing([ctx.keys.tag(t) for t in tag_names])
        expected = sorted(k for k in depends if k in present)
        step.ok = (
            sorted(report.deleted) == expected
            and expiring_key in report.absent
            and kept == others
            and not sets_left
        )
        step.outcome = (
            f"deleted: {w.names(report.deleted)}; already gone: {w.names(report.absent)};"
            f" tag sets left: {len(sets_left)}; the other {len(kept)} results stay"
        )
        step.data = {**report.as_dict(), "expected": expected, "kept": kept}
    yield step

    fresh_step = _fresh_after_delay(w)
    w.tally(f"flight delayed (tags {', '.join(tag_names)})", report, len(kept), fresh_step.ok)
    yield fresh_step


def _fresh_after_delay(w: Watch) -> Step:
    """The step that reads every copy that showed the delayed flight again."""
    ctx, cache, flight, aboard = w.ctx, w.cache, w.scene.flight, w.aboard
    flight_id = int(flight["flight_id"])
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
    return step


def reader_during_tag_invalidation(w: Watch) -> Iterator[Record]:
    """A key registered after the SPOP escapes the tag, not the epoch."""
    ctx, cache, flight, racer = w.ctx, w.cache, w.scene.flight, w.bystander
    flight_id = int(flight["flight_id"])
    with ctx.step(
        f"A reader caches during the tag invalidation: flight {code(flight)} back on time",
        f"a reader misses on passenger {racer}'s bookings and reads them (the delayed time)"
        " before the COMMIT; its key is registered only after the SPOP, so the tag misses it;"
        " the epoch does not: the reader deletes its own copy",
    ) as step:
        race: dict[str, Any] = {}
        report = w.invalidator.after_commit(
            ctx.db,
            lambda: move_flight(ctx.db, flight, 0),
            tags=_tag_names(flight),
            inside=lambda: w.read_elsewhere(bookings_of(racer), race),
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
    w.tally("flight back on time, reader in between", report, None, step.ok)
    yield step


def by_time(w: Watch, warm: int, ttl_s: int, percent: float) -> Iterator[Record]:
    """Many results cached at once, their expiries spread by the jitter."""
    from flightcache.measure.duration import human_seconds

    ctx, cache = w.ctx, w.cache
    found = ctx.db.fetch(query(ctx.db.dialect, "candidate_passengers"), {"limit": warm})
    passengers = [int(r[0]) for r in found.rows]
    low, high = cache.jitter.bounds_ms(ttl_s)
    with ctx.step(
        f"Time-based invalidation: cache {len(passengers):,} passengers' bookings, TTL"
        f" {human_seconds(ttl_s)} ± {percent:g}%",
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
        flat = [at + ttl_s * 1000 - now_ms for at in written]
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
        {f"±{percent:g}% jitter": live, "one TTL (computed)": flat},
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
    yield from tag_sets_outlive_members(w, reads, expiry)


def tag_sets_outlive_members(
    w: Watch, reads: Sequence[Read], expiry: Sequence[int]
) -> Iterator[Record]:
    """Every tag set's PEXPIRETIME against those of the keys it lists."""
    ctx, cache = w.ctx, w.cache
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


def timings(w: Watch) -> Iterator[Record]:
    """The database, a hit and a re-checking miss side by side; then the summary."""
    ctx, cache, who = w.ctx, w.cache, w.who
    name, params = bookings_of(who)
    sql = query(ctx.db.dialect, name)
    cache.get(name, params)
    yield ctx.compare(
        f"passenger {who}'s bookings: database vs cache",
        {
            "database": lambda: ctx.db.fetch(sql, params),
            "cache hit": lambda: cache.get(name, params),
            "miss, fill with re-check": lambda: _miss(w),
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
        w.done,
        note="'others kept' counts the watched results that had to stay; every invalidation"
        " ran after its COMMIT",
    )


def _miss(w: Watch) -> Read:
    """DEL the passenger's bookings, then read them: a miss every time."""
    w.ctx.valkey.delete(w.cache.key(*bookings_of(w.who)))
    return w.cache.get(*bookings_of(w.who))


def _few(tags: Sequence[str], n: int = 4) -> str:
    return ", ".join(tags[:n]) + (f" (+{len(tags) - n})" if len(tags) > n else "")


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
