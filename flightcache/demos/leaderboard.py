"""The narrated tour of `flightcache leaderboard demo`: every board of 000 and 001, the
three update paths, the queries, the time windows, and SQL against the sorted set;
`leaderboard compare`; and what `leaderboard live` shows (:class:`LiveBoard`).

The tour works in its own key scope (``leaderboard-demo``), which the demo runner
deletes at the end, and removes from the database the two bookings it creates.

The pattern is :mod:`flightcache.patterns.leaderboard` (periods in ``leaderboard_periods``,
the database side in ``leaderboard_sync``); this module imports it inside
the steps, so that the command can read :class:`Options` without loading the Valkey
client at ``--help`` time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import UsageError
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.patterns.leaderboard import Board, RankedMember
    from flightcache.patterns.leaderboard_periods import Period
    from flightcache.patterns.leaderboard_sync import Booked, Leaderboards

TIERS = [("Platinum", 50_000, None), ("Gold", 20_000, 49_999), ("Silver", 5_000, 19_999),
         ("Blue", 0, 4_999)]  # fmt: skip
"""Loyalty tiers of passenger-points: name, lowest and highest score (None: no cap)."""


@dataclass(frozen=True)
class Options:
    """The options of `leaderboard demo` and `leaderboard compare`."""

    n: int = 10  # members in each top N
    period: str = "all"  # the period compare builds and times


def score_text(score: float | None) -> str:
    if score is None:
        return "-"
    return f"{score:,.0f}" if float(score).is_integer() else f"{score:,.2f}"


def ranked_rows(members: list[RankedMember]) -> list[list[Any]]:
    return [[e.rank, e.member, score_text(e.score)] for e in members]


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.patterns.leaderboard_periods import ALL
    from flightcache.patterns.leaderboard_sync import Leaderboards

    boards = Leaderboards(ctx.db, ctx.valkey, ctx.keys, ctx.tracer)
    n = ctx.options.n
    today = boards.clock().date()
    yield from _rebuild_and_periods(ctx, boards, n, today)
    yield from _other_boards(ctx, boards)
    yield from _rank_and_ties(ctx, boards)
    yield from _update_paths(ctx, boards)
    yield from _windows_and_cleanup(ctx, boards, today)
    yield from _sql_vs_sorted_set(ctx, boards, ALL, n)


def _rebuild_and_periods(
    ctx: DemoContext, boards: Leaderboards, n: int, today: dt.date
) -> Iterator[Record]:
    """1. Periodic rebuild of the all-time board; 2. daily, monthly, yearly keys."""
    from flightcache.patterns.leaderboard_periods import ALL, daily, monthly, yearly
    from flightcache.patterns.leaderboard_sync import SHOWN

    with ctx.step(
        "Build airports-by-bookings from the database (periodic rebuild)",
        "one GROUP BY, ZADD pipelined into a temporary key, RENAME over the board: a reader"
        " sees the old board or the new one, never half of one",
    ) as step:
        built = boards.rebuild("airport-bookings", ALL)
        step.rows = built.members
        step.outcome = (
            f"{built.members} airports on {built.key}: the trace shows the first ZADD of"
            f" {SHOWN}, the others went in the same pipeline (built in {built.temporary})"
        )
    yield step
    with ctx.step("Top airports, all time", "ZREVRANGE 0 N-1 WITHSCORES: O(log N + M)") as step:
        top = boards.top("airport-bookings", ALL, n)
        step.outcome = f"{len(top)} airports; first {top[0].member} with {score_text(top[0].score)}"
    yield step
    yield Table(
        "airports by bookings (all time)", ["rank", "airport", "bookings"], ranked_rows(top)
    )

    periods = [daily(today), monthly(today), yearly(today)]
    with ctx.step(
        f"Daily, monthly and yearly boards for {today}",
        "one key per period, each with its retention as a TTL (7 d, 60 d, 730 d)",
    ) as step:
        rows = []
        for p in periods:
            rebuilt = boards.rebuild("airport-bookings", p)
            first = boards.top("airport-bookings", p, 1)
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


def _other_boards(ctx: DemoContext, boards: Leaderboards) -> Iterator[Record]:
    """3. The other boards of 000 and 001, loyalty tiers as score ranges."""
    from flightcache.patterns.leaderboard import BOARDS
    from flightcache.patterns.leaderboard_periods import ALL

    for name, lowest_too in (("airline-ontime", False), ("airport-delay", True)):
        b = BOARDS[name]
        with ctx.step(f"{b.title.capitalize()}", f"score: {b.score}") as step:
            boards.rebuild(name, ALL)
            best = boards.top(name, ALL, 5)
            worst = boards.top(name, ALL, 5, lowest=True) if lowest_too else []
            step.outcome = f"{boards.count(name, ALL)} members; first {best[0].member}"
        yield step
        yield Table(f"{b.title}: highest first", ["rank", b.member, b.score], ranked_rows(best))
        if worst:
            yield Table(
                f"{b.title}: lowest first (ZRANGE)",
                ["rank", b.member, b.score],
                ranked_rows(worst),
                note="rank counts from the highest delay",
            )

    with ctx.step(
        "Passenger loyalty points, 1-based rank and tiers",
        "ZREVRANGE for the top, ZCOUNT per tier's score range",
    ) as step:
        boards.rebuild("passenger-points", ALL)
        top_points = boards.top("passenger-points", ALL, 5)
        tiers = []
        for tier, low, high in TIERS:
            count = boards.count("passenger-points", ALL, low, high)
            sample = boards.between("passenger-points", ALL, low, high if high else 1e18, 3)
            tiers.append(
                [
                    tier,
                    f"{low:,} - {f'{high:,}' if high else 'up'}",
                    count,
                    ", ".join(e.member for e in sample),
                ]
            )
        step.outcome = f"{boards.count('passenger-points', ALL):,} passengers in {len(TIERS)} tiers"
    yield step
    yield Table("loyalty points: top 5", ["rank", "passenger", "points"], ranked_rows(top_points))
    yield Table("loyalty tiers", ["tier", "points", "passengers", "e.g."], tiers)

    for name in (
        "passenger-flights",
        "airport-passengers",
        "routes-domestic",
        "routes-international",
    ):
        b = BOARDS[name]
        with ctx.step(b.title.capitalize(), f"score: {b.score}") as step:
            boards.rebuild(name, ALL)
            rows5 = boards.top(name, ALL, 5)
            step.outcome = f"{boards.count(name, ALL):,} members"
        yield step
        yield Table(b.title, ["rank", b.member, b.score], ranked_rows(rows5))


def _rank_and_ties(ctx: DemoContext, boards: Leaderboards) -> Iterator[Record]:
    """4. Queries: rank, around-me, percentile, ties, and the same rank in SQL."""
    from flightcache.patterns.leaderboard_periods import ALL

    tied = _tied_member(boards)
    with ctx.step(
        f"Rank, score, percentile and neighbours of passenger {tied}",
        "ZSCORE, ZREVRANK, ZCARD, ZCOUNT (score +inf for the rank, ZCOUNT -inf (score for"
        " the percentile, ZREVRANGE around the member",
    ) as step:
        standing = boards.standing("passenger-flights", ALL, tied)
        near = boards.around("passenger-flights", ALL, tied, 3) or []
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
        ranked_rows(near),
        note="equal scores share a rank: rank = 1 + ZCOUNT key (score +inf",
    )
    with ctx.step("The same rank in SQL", "1 + COUNT(*) of the board with a higher score") as step:
        sql_rank = boards.sql_rank("passenger-flights", ALL, standing.score)
        step.outcome = f"SQL rank {sql_rank}, Valkey rank {standing.rank}: " + (
            "the same" if sql_rank == standing.rank else "DIFFERENT"
        )
        step.ok = sql_rank == standing.rank
    yield step


def _update_paths(ctx: DemoContext, boards: Leaderboards) -> Iterator[Record]:
    """5. Write-through, event-driven, the fallback of a missing board, cancelling."""
    from flightcache.patterns.leaderboard_periods import ALL, daily

    booked: list[Booked] = []

    def recorded(booking_id: int) -> None:  # before the COMMIT: not even a SIGKILL keeps it
        ctx.put_back("booking_remove", {"booking_id": booking_id})

    flight_id = int(ctx.db.fetch(query(ctx.db.dialect, "leaderboard_latest_flight")).rows[0][0])
    passenger_id = int(ctx.db.fetch(query(ctx.db.dialect, "passenger_first")).rows[0][0])
    with ctx.step(
        "Write-through: book a seat, count it at once",
        "INSERT and COMMIT, then one script: ZINCRBY + EXPIRE on each period key that exists;"
        " PUBLISH the new score for live views",
    ) as step:
        b1 = boards.book(flight_id, passenger_id, recorded=recorded)
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
        b2 = boards.book_only(flight_id, passenger_id, recorded=recorded)
        booked.append(b2)
        boards.emit(b2.booking_id, b2.member, b2.departure)
        boards.emit(b2.booking_id, b2.member, b2.departure)
        before = ctx.valkey.zscore(boards.key("airport-bookings", ALL), b2.member)
        waiting = boards.pending_events()
        applied = boards.consume()
        after = ctx.valkey.zscore(boards.key("airport-bookings", ALL), b2.member)
        step.outcome = (
            f"{waiting} events waiting, board still {score_text(before)}; consumer applied"
            f" {applied} (the repeat was acked, not counted), board now {score_text(after)};"
            f" waiting {boards.pending_events()}"
        )
        step.ok = applied == 1 and after == (before or 0) + 1
    yield step

    day = daily(b1.departure.date())
    with ctx.step(
        "A board that is missing: fall back to the database, rebuild",
        "the daily key is deleted (expired, evicted); the next read rebuilds it from SQL,"
        " both new bookings included",
    ) as step:
        ctx.valkey.delete(boards.key("airport-bookings", day))
        source = boards.ensure("airport-bookings", day)
        standing_day = boards.standing("airport-bookings", day, b1.member)
        step.hit = False
        step.outcome = (
            f"{source}; {b1.member} has {score_text(standing_day.score if standing_day else 0)}"
            f" bookings on {day.name}"
        )
    yield step

    with ctx.step("Cancel both bookings", "DELETE, then ZINCRBY -1 the same way") as step:
        for done in booked:
            boards.cancel(done)
        booked.clear()
        step.outcome = "the boards are back to the database's counts"
    yield step


def _windows_and_cleanup(
    ctx: DemoContext, boards: Leaderboards, today: dt.date
) -> Iterator[Record]:
    """6. Rolling windows by ZUNIONSTORE, and SCAN for daily keys past their week."""
    from flightcache.patterns.leaderboard_periods import daily

    with ctx.step(
        "Rolling windows: last 24 h, 3 days, 7 days",
        "ZUNIONSTORE of 24 hourly keys or 3/7 daily keys (004's windows), rebuilt when missing",
    ) as step:
        rows = []
        for name in ("24h", "3d", "7d", "all"):
            window = boards.period(name)
            parts = 1
            if window.kind == "window":
                _, keys = boards.window("airport-bookings", window)
                parts = len(keys)
            first = boards.top("airport-bookings", window, 1)
            rows.append(
                [
                    name,
                    parts,
                    boards.count("airport-bookings", window),
                    first[0].member if first else "-",
                    score_text(first[0].score if first else None),
                ]
            )
        step.outcome = f"windows end at the dataset's clock, {boards.clock():%Y-%m-%d %H:%M}"
    yield step
    yield Table(
        "airport-bookings by window", ["window", "keys", "airports", "first", "bookings"], rows
    )
    with ctx.step(
        "Clean up daily keys older than 7 days with SCAN",
        "TTLs do it on their own; SCAN MATCH ...daily:* is the safety net of 000",
    ) as step:
        for back in range(7, 10):
            boards.rebuild("airport-bookings", daily(today - dt.timedelta(days=back)))
        deleted = boards.cleanup("airport-bookings", 7, today)
        step.outcome = f"deleted {len(deleted)} keys: " + ", ".join(
            k.rsplit(":", 1)[1] for k in deleted
        )
    yield step


def compare_demo(ctx: DemoContext) -> Iterator[Record]:
    """`leaderboard compare`: build the board, check agreement, time both sides."""
    from flightcache.patterns.leaderboard_sync import Leaderboards

    boards = Leaderboards(ctx.db, ctx.valkey, ctx.keys, ctx.tracer)
    period = boards.period(ctx.options.period)
    with ctx.step(
        f"Build airport-bookings ({period.name}) in Valkey",
        "the sorted set the database's GROUP BY is measured against",
    ) as step:
        step.outcome = boards.ensure("airport-bookings", period)
        step.rows = boards.count("airport-bookings", period)
    yield step
    yield from _sql_vs_sorted_set(ctx, boards, period, ctx.options.n)


def _sql_vs_sorted_set(
    ctx: DemoContext, boards: Leaderboards, period: Period, n: int
) -> Iterator[Record]:
    key = boards.key("airport-bookings", period)
    with ctx.step(
        f"The top {n} from SQL and from the sorted set: do they agree?",
        "same scores in order, same members above the cut; tied members at the cut may"
        " differ (SQL orders ties A to Z, ZREVRANGE Z to A)",
    ) as step:
        sql_rows = boards.sql_top(period, n)
        zset_rows = [(m, float(s)) for m, s in ctx.valkey.zrevrange(key, 0, n - 1, withscores=True)]
        ok, why = agreement(sql_rows, zset_rows, dict(boards.from_db("airport-bookings", period)))
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
            "SQL GROUP BY": lambda: boards.sql_top(period, n),
            "ZREVRANGE": lambda: ctx.valkey.zrevrange(key, 0, n - 1, withscores=True),
        },
    )


def agreement(
    sql_rows: Sequence[tuple[str, float]],
    zset_rows: Sequence[tuple[str, float]],
    full: dict[str, float],
) -> tuple[bool, str]:
    """Do the SQL and sorted-set top N agree? Same scores in order; above the cut score the
    same members; at the cut any member of the tied group (SQL breaks ties A to Z, ZREVRANGE
    Z to A). ``full`` is the whole board from the database."""
    if [s for _, s in sql_rows] != [s for _, s in zset_rows]:
        return False, "the scores differ"
    if not sql_rows:
        return True, "both empty"
    cut = sql_rows[-1][1]
    above_sql = {m for m, s in sql_rows if s > cut}
    above_zset = {m for m, s in zset_rows if s > cut}
    if above_sql != above_zset:
        return False, f"members above the cut differ: {sorted(above_sql ^ above_zset)}"
    wrong = [m for m, s in zset_rows if full.get(m) != s]
    if wrong:
        return False, f"Valkey scores differ from the database for {wrong}"
    tied = sorted(m for m, s in full.items() if s == cut)
    if len(tied) > sum(1 for _, s in sql_rows if s == cut):
        picked_sql = [m for m, s in sql_rows if s == cut]
        picked_zset = [m for m, s in zset_rows if s == cut]
        return True, (
            f"agree; {len(tied)} members tie at the cut score {cut:g}: SQL kept"
            f" {picked_sql}, Valkey {picked_zset} (both right: the tie is theirs to break)"
        )
    return True, "agree: same members, same scores, same order of scores"


def _tied_member(boards: Leaderboards) -> str:
    """A passenger near the top of passenger-flights whose score another one shares."""
    from flightcache.patterns.leaderboard_periods import ALL

    rows = boards.top("passenger-flights", ALL, 50)
    for prev, entry in pairwise(rows):
        if prev.score == entry.score:
            return entry.member
    return rows[min(4, len(rows) - 1)].member


# -- the live view: what `leaderboard live` redraws -----------------------------------------
MAX_TOP = 100  # places a live view shows at most
MOVE_SHOWN_S = 3.0  # an arrow stays this long after a move, so that it can be seen


def live_period(text: str) -> Period:
    """``all`` or ``daily:YYYY-MM-DD``: the periods a live view can follow."""
    from flightcache.patterns.leaderboard_periods import parse_period

    try:
        period = parse_period(text)
    except UsageError:
        period = None
    if period is None or period.kind not in ("all", "daily") or text != period.name:
        raise UsageError(
            f"unknown period {text!r}",
            hint="use `all` or `daily:YYYY-MM-DD` (e.g. daily:2026-06-02)",
        )
    return period


@dataclass
class LiveRow:
    rank: int
    member: str
    score: float
    change: int | None  # places moved up (+) or down (-) since the last draw; None: new


@dataclass
class LiveSnapshot:
    rows: list[LiveRow]
    exists: bool
    events: int
    events_per_s: float
    last_update: float | None  # wall-clock time of the last event
    redraws: int


class LiveBoard:
    """What a live view needs: events counted, the top N re-read, rank changes."""

    def __init__(self, board: Board, period: Period, top: int) -> None:
        self.board = board
        self.period = period
        self.top = top
        self.previous: dict[str, int] = {}
        self.moves: dict[str, tuple[int | None, float]] = {}  # member: (change, when)
        self.events = 0
        self.redraws = 0
        self.last_update: float | None = None
        self.recent: list[float] = []  # monotonic times of the events of the last seconds

    def event(self, data: str) -> bool:
        """Count an event; True when it concerns the period on view."""
        try:
            payload = json.loads(data)
        except ValueError:
            return False
        if not isinstance(payload, dict) or payload.get("period") != self.period.name:
            return False
        self.events += 1
        self.last_update = time.time()
        self.recent.append(time.monotonic())
        return True

    def rate(self, window: float = 2.0) -> float:
        cut = time.monotonic() - window
        self.recent = [t for t in self.recent if t >= cut]
        return len(self.recent) / window

    def snapshot(self) -> LiveSnapshot:
        """ZREVRANGE the top N and compare the ranks with the previous snapshot."""
        top = self.board.top(self.period, self.top)
        first = not self.previous and self.redraws == 0  # nothing to compare with yet
        now = time.monotonic()
        rows = []
        for i, (member, score) in enumerate(top):
            before = self.previous.get(member)
            change = 0 if first else (None if before is None else before - (i + 1))
            if change != 0:
                self.moves[member] = (change, now)
            shown, when = self.moves.get(member, (0, 0.0))
            rows.append(LiveRow(i + 1, member, score, shown if now - when < MOVE_SHOWN_S else 0))
        if top:
            self.previous = {r.member: r.rank for r in rows}
        self.redraws += 1
        exists = bool(top) or self.board.exists(self.period)
        return LiveSnapshot(rows, exists, self.events, self.rate(), self.last_update, self.redraws)
