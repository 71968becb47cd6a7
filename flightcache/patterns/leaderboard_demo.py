"""The narrated tour of `flightcache leaderboard demo`: every board of 000 and 001, the
three update paths, the queries, the time windows, and SQL against the sorted set.

It works in its own key scope (``leaderboard-demo``), which the demo runner deletes at
the end, and removes from the database the two bookings it creates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from flightcache.demos.base import DemoContext, Record, Table
from flightcache.patterns.leaderboard import (
    BOARDS,
    SHOWN,
    TIERS,
    Booked,
    Entry,
    Leaderboards,
    agreement,
)
from flightcache.patterns.leaderboard_periods import ALL, Period, daily, monthly, yearly
from flightcache.sqlfiles import query


def score_text(score: float | None) -> str:
    if score is None:
        return "-"
    return f"{score:,.0f}" if float(score).is_integer() else f"{score:,.2f}"


def entry_rows(entries: list[Entry]) -> list[list[Any]]:
    return [[e.rank, e.member, score_text(e.score)] for e in entries]


def demo(ctx: DemoContext) -> Iterator[Record]:
    lb = Leaderboards(ctx.db, ctx.valkey, ctx.keys, ctx.tracer)
    n = int(ctx.options.get("n") or 10)
    clock = lb.clock()
    today = clock.date()

    # -- 1. periodic rebuild: the all-time board of airports by bookings ---------------
    with ctx.step(
        "Build airports-by-bookings from the database (periodic rebuild)",
        "one GROUP BY, ZADD pipelined into a temporary key, RENAME over the board: a reader"
        " sees the old board or the new one, never half of one",
    ) as step:
        built = lb.rebuild("airport-bookings", ALL)
        step.rows = built.members
        step.outcome = (
            f"{built.members} airports on {built.key}: the trace shows the first ZADD of"
            f" {SHOWN}, the others went in the same pipeline (built in {built.temporary})"
        )
    yield step
    with ctx.step("Top airports, all time", "ZREVRANGE 0 N-1 WITHSCORES: O(log N + M)") as step:
        top = lb.top("airport-bookings", ALL, n)
        step.outcome = f"{len(top)} airports; first {top[0].member} with {score_text(top[0].score)}"
    yield step
    yield Table("airports by bookings (all time)", ["rank", "airport", "bookings"], entry_rows(top))

    # -- 2. daily, monthly, yearly keys with their TTLs ---------------------------------
    periods = [daily(today), monthly(today), yearly(today)]
    with ctx.step(
        f"Daily, monthly and yearly boards for {today}",
        "one key per period, each with its retention as a TTL (7 d, 60 d, 730 d)",
    ) as step:
        rows = []
        for p in periods:
            rebuilt = lb.rebuild("airport-bookings", p)
            first = lb.top("airport-bookings", p, 1)
            rows.append(
                [
                    p.name,
                    rebuilt.members,
                    first[0].member if first else "-",
                    score_text(first[0].score if first else None),
                    ctx.valkey.ttl(rebuilt.key),
                ]
            )
        step.outcome = "TTL 604800 / 5184000 / 63072000 s: old periods expire on their own"
    yield step
    yield Table(
        "airport-bookings by period", ["period", "airports", "first", "bookings", "TTL s"], rows
    )

    # -- 3. the other boards of 000 and 001 -------------------------------------------------
    for name, lowest_too in (("airline-ontime", False), ("airport-delay", True)):
        b = BOARDS[name]
        with ctx.step(f"{b.title.capitalize()}", f"score: {b.score}") as step:
            lb.rebuild(name, ALL)
            best = lb.top(name, ALL, 5)
            worst = lb.top(name, ALL, 5, lowest=True) if lowest_too else []
            step.outcome = f"{lb.count(name, ALL)} members; first {best[0].member}"
        yield step
        yield Table(f"{b.title}: highest first", ["rank", b.member, b.score], entry_rows(best))
        if worst:
            yield Table(
                f"{b.title}: lowest first (ZRANGE)",
                ["rank", b.member, b.score],
                entry_rows(worst),
                note="rank counts from the highest delay",
            )

    with ctx.step(
        "Passenger loyalty points, 1-based rank and tiers",
        "ZREVRANGE for the top, ZCOUNT per tier's score range",
    ) as step:
        lb.rebuild("passenger-points", ALL)
        top_points = lb.top("passenger-points", ALL, 5)
        tiers = []
        for tier, low, high in TIERS:
            count = lb.count("passenger-points", ALL, low, high)
            sample = lb.between("passenger-points", ALL, low, high if high else 1e18, 3)
            tiers.append(
                [
                    tier,
                    f"{low:,} - {f'{high:,}' if high else 'up'}",
                    count,
                    ", ".join(e.member for e in sample),
                ]
            )
        step.outcome = f"{lb.count('passenger-points', ALL):,} passengers in {len(TIERS)} tiers"
    yield step
    yield Table("loyalty points: top 5", ["rank", "passenger", "points"], entry_rows(top_points))
    yield Table("loyalty tiers", ["tier", "points", "passengers", "e.g."], tiers)

    for name in (
        "passenger-flights",
        "airport-passengers",
        "routes-domestic",
        "routes-international",
    ):
        b = BOARDS[name]
        with ctx.step(b.title.capitalize(), f"score: {b.score}") as step:
            lb.rebuild(name, ALL)
            rows5 = lb.top(name, ALL, 5)
            step.outcome = f"{lb.count(name, ALL):,} members"
        yield step
        yield Table(b.title, ["rank", b.member, b.score], entry_rows(rows5))

    # -- 4. queries: rank, around-me, percentile, ties ------------------------------------
    tied = _tied_member(lb)
    with ctx.step(
        f"Rank, score, percentile and neighbours of passenger {tied}",
        "ZSCORE, ZREVRANK, ZCARD, ZCOUNT (score +inf for the rank, ZCOUNT -inf (score for"
        " the percentile, ZREVRANGE around the member",
    ) as step:
        standing = lb.standing("passenger-flights", ALL, tied)
        near = lb.around("passenger-flights", ALL, tied, 3) or []
        assert standing is not None
        step.outcome = (
            f"score {score_text(standing.score)}, rank {standing.rank} of {standing.count:,},"
            f" ahead of {standing.percentile}% of passengers; ZREVRANK+1 says"
            f" {standing.position}: equal scores sit in member order there"
        )
    yield step
    yield Table(
        "around the passenger",
        ["rank", "passenger", "flights"],
        entry_rows(near),
        note="equal scores share a rank: rank = 1 + ZCOUNT key (score +inf",
    )
    with ctx.step("The same rank in SQL", "1 + COUNT(*) of the board with a higher score") as step:
        sql_rank = lb.sql_rank("passenger-flights", ALL, standing.score)
        step.outcome = f"SQL rank {sql_rank}, Valkey rank {standing.rank}: " + (
            "the same" if sql_rank == standing.rank else "DIFFERENT"
        )
        step.ok = sql_rank == standing.rank
    yield step

    # -- 5. update paths: write-through, event-driven, fallback ------------------------------
    booked: list[Booked] = []

    def recorded(booking_id: int) -> None:  # before the COMMIT: not even a SIGKILL keeps it
        ctx.put_back("booking_remove", {"booking_id": booking_id})

    flight_id = int(ctx.db.fetch(query(ctx.db.dialect, "lb_latest_flight")).rows[0][0])
    passenger_id = int(ctx.db.fetch(query(ctx.db.dialect, "passenger_first")).rows[0][0])
    with ctx.step(
        "Write-through: book a seat, count it at once",
        "INSERT and COMMIT, then one script: ZINCRBY + EXPIRE on each period key that exists;"
        " PUBLISH the new score for live views",
    ) as step:
        b1 = lb.book(flight_id, passenger_id, recorded=recorded)
        booked.append(b1)
        step.outcome = f"booking {b1.booking_id} from {b1.member}: " + ", ".join(
            f"{p} {score_text(s)}" for p, s in b1.scores.items()
        )
    yield step

    with ctx.step(
        "Event-driven: the booking goes to a stream, a consumer counts it once",
        "XADD after COMMIT (twice: a producer's retry); the consumer group reads with"
        " XREADGROUP, applies with the same script, which SADDs the booking's event id"
        " first and skips an id it has seen, then XACKs",
    ) as step:
        b2 = lb.book_only(flight_id, passenger_id, recorded=recorded)
        booked.append(b2)
        lb.emit(b2.booking_id, b2.member, b2.departure)
        lb.emit(b2.booking_id, b2.member, b2.departure)
        before = ctx.valkey.zscore(lb.key("airport-bookings", ALL), b2.member)
        waiting = lb.pending_events()
        applied = lb.consume()
        after = ctx.valkey.zscore(lb.key("airport-bookings", ALL), b2.member)
        step.outcome = (
            f"{waiting} events waiting, board still {score_text(before)}; consumer applied"
            f" {applied} (the repeat was acked, not counted), board now {score_text(after)};"
            f" waiting {lb.pending_events()}"
        )
        step.ok = applied == 1 and after == (before or 0) + 1
    yield step

    day = daily(b1.departure.date())
    with ctx.step(
        "A board that is missing: fall back to the database, rebuild",
        "the daily key is deleted (expired, evicted); the next read rebuilds it from SQL,"
        " both new bookings included",
    ) as step:
        ctx.valkey.delete(lb.key("airport-bookings", day))
        source = lb.ensure("airport-bookings", day)
        standing_day = lb.standing("airport-bookings", day, b1.member)
        step.hit = False
        step.outcome = (
            f"{source}; {b1.member} has {score_text(standing_day.score if standing_day else 0)}"
            f" bookings on {day.name}"
        )
    yield step

    with ctx.step("Cancel both bookings", "DELETE, then ZINCRBY -1 the same way") as step:
        for done in booked:
            lb.cancel(done)
        booked.clear()
        step.outcome = "the boards are back to the database's counts"
    yield step

    # -- 6. time windows and cleanup ------------------------------------------------------
    with ctx.step(
        "Rolling windows: last 24 h, 3 days, 7 days",
        "ZUNIONSTORE of 24 hourly keys or 3/7 daily keys (004's windows), rebuilt when missing",
    ) as step:
        rows = []
        for name in ("24h", "3d", "7d", "all"):
            window = lb.period(name)
            parts = 1
            if window.kind == "window":
                _, keys = lb.window("airport-bookings", window)
                parts = len(keys)
            first = lb.top("airport-bookings", window, 1)
            rows.append(
                [
                    name,
                    parts,
                    lb.count("airport-bookings", window),
                    first[0].member if first else "-",
                    score_text(first[0].score if first else None),
                ]
            )
        step.outcome = f"windows end at the dataset's clock, {clock:%Y-%m-%d %H:%M}"
    yield step
    yield Table(
        "airport-bookings by window", ["window", "keys", "airports", "first", "bookings"], rows
    )
    with ctx.step(
        "Clean up daily keys older than 7 days with SCAN",
        "TTLs do it on their own; SCAN MATCH ...daily:* is the safety net of 000",
    ) as step:
        for back in range(7, 10):
            lb.rebuild("airport-bookings", daily(today - _days(back)))
        deleted = lb.cleanup("airport-bookings", 7, today)
        step.outcome = f"deleted {len(deleted)} keys: " + ", ".join(
            k.rsplit(":", 1)[1] for k in deleted
        )
    yield step

    # -- 7. SQL against the sorted set --------------------------------------------------
    yield from _sql_vs_zset(ctx, lb, ALL, n)


def compare_demo(ctx: DemoContext) -> Iterator[Record]:
    """`leaderboard compare`: build the board, check agreement, time both sides."""
    lb = Leaderboards(ctx.db, ctx.valkey, ctx.keys, ctx.tracer)
    period = lb.period(str(ctx.options.get("period") or "all"))
    with ctx.step(
        f"Build airport-bookings ({period.name}) in Valkey",
        "the sorted set the database's GROUP BY is measured against",
    ) as step:
        step.outcome = lb.ensure("airport-bookings", period)
        step.rows = lb.count("airport-bookings", period)
    yield step
    yield from _sql_vs_zset(ctx, lb, period, int(ctx.options.get("n") or 10))


def _sql_vs_zset(ctx: DemoContext, lb: Leaderboards, period: Period, n: int) -> Iterator[Record]:
    key = lb.key("airport-bookings", period)
    with ctx.step(
        f"The top {n} from SQL and from the sorted set: do they agree?",
        "same scores in order, same members above the cut; tied members at the cut may"
        " differ (SQL orders ties A to Z, ZREVRANGE Z to A)",
    ) as step:
        sql_rows = lb.sql_top(period, n)
        zset_rows = [(m, float(s)) for m, s in ctx.valkey.zrevrange(key, 0, n - 1, withscores=True)]
        ok, why = agreement(sql_rows, zset_rows, dict(lb.from_db("airport-bookings", period)))
        step.ok = ok
        step.outcome = why
        step.data = {"agree": ok, "sql": sql_rows, "valkey": zset_rows}
    yield step
    yield Table(
        f"top {n}: SQL | Valkey",
        ["#", "SQL member", "SQL score", "Valkey member", "Valkey score"],
        [
            [i + 1, a[0], score_text(a[1]), b[0], score_text(b[1])]
            for i, (a, b) in enumerate(zip(sql_rows, zset_rows, strict=False))
        ],
    )
    yield ctx.compare(
        f"top {n} airports ({period.name}): SQL GROUP BY vs ZREVRANGE",
        {
            "SQL GROUP BY": lambda: lb.sql_top(period, n),
            "ZREVRANGE": lambda: ctx.valkey.zrevrange(key, 0, n - 1, withscores=True),
        },
    )


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def _tied_member(lb: Leaderboards) -> str:
    """A passenger near the top of passenger-flights whose score another one shares."""
    rows = lb.top("passenger-flights", ALL, 50)
    for prev, entry in pairwise(rows):
        if prev.score == entry.score:
            return entry.member
    return rows[min(4, len(rows) - 1)].member
