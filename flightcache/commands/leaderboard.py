"""`flightcache leaderboard`: boards on sorted sets, their update paths, SQL side by side.

The boards of ``top``, ``rank``, ``around``, ``range``, ``rebuild``, ``book`` and
``events`` persist under ``<prefix>leaderboard:`` (``fc:leaderboard:{lb:<board>}:<period>``);
``demo`` and ``compare`` work in scopes of their own that they delete at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.commands import leaderboard_live
from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt, RowsYesOpt
from flightcache.commands._options import positive
from flightcache.demos.leaderboard import Options

if TYPE_CHECKING:
    from flightcache.patterns.leaderboard import RankedMember
    from flightcache.patterns.leaderboard_sync import Leaderboards

app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Real-time leaderboards on Valkey sorted sets, rebuilt from FlughafenDB.",
)

BoardArg = Annotated[
    str, typer.Argument(help="Board name (flightcache leaderboard boards lists them).")
]
PeriodOpt = Annotated[
    str,
    typer.Option(
        "--period",
        help="all, daily:2025-06-02 (or 2025-06-02), monthly:2025-06, yearly:2025,"
        " hourly:2025-06-02T13, or a window: 24h, 3d, 7d.",
    ),
]
NOpt = Annotated[int, typer.Option("--n", help="How many members (1 to 10,000).")]


@contextmanager
def _boards(ctx: typer.Context) -> Iterator[Leaderboards]:
    """The persistent boards, with Valkey errors turned into one clear line."""

    from flightcache.patterns.leaderboard import board_keys
    from flightcache.patterns.leaderboard_sync import Leaderboards
    from flightcache.valkey_client import close, valkey_errors

    application = ctx.obj
    db = application.database()
    client = None
    try:
        with valkey_errors(application.valkey_url):
            client = application.valkey()
            yield Leaderboards(db, client, board_keys(application.settings.key_prefix))
    finally:
        if client is not None:
            close(client)
        db.close()


def _print(title: str, columns: list[str], rows: list[list[Any]], note: str = "") -> None:
    from flightcache.console import out, table

    out.print(table(title, columns, rows))
    if note:
        out.print(note, style="dim")


def _ranked(members: list[RankedMember]) -> list[dict[str, Any]]:
    return [{"rank": e.rank, "member": e.member, "score": e.score} for e in members]


def _emit_json(document: dict[str, Any]) -> None:
    from flightcache.console import out

    out.print_json(json.dumps(document, default=str))


def _not_ranked(member: str, name: str, period: str) -> Exception:
    from flightcache.errors import DataError

    return DataError(
        f"{member!r} is not ranked on {name} ({period}): it has no score there",
        hint=f"see who is: flightcache leaderboard top {name} --period {period}",
    )


@app.command("boards")
def boards(as_json: JsonOpt = False) -> None:
    """List the boards: what a member is, what the score means, the SQL that builds it.

    Examples:

    \b
      flightcache leaderboard boards
      flightcache leaderboard boards --json
    """
    from flightcache.patterns.leaderboard import BOARDS

    rows = [[b.name, b.title, b.member, b.score, b.sql] for b in BOARDS.values()]
    if as_json:
        _emit_json(
            {
                "boards": [
                    dict(zip(["name", "title", "member", "score", "sql"], r, strict=True))
                    for r in rows
                ]
            }
        )
        return
    _print("boards", ["board", "title", "member", "score", "SQL (queries.sql)"], rows)


@app.command("demo")
def demo(
    ctx: typer.Context,
    n: NOpt = Options.n,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 50,
    keep: KeepOpt = False,
    yes: RowsYesOpt = False,
) -> None:
    """The narrated tour: every board, the update paths, queries, windows, SQL vs ZSET.

    Builds each board of 000 and 001 from the database (periodic rebuild into a
    temporary key and RENAME), shows daily, monthly and yearly keys with their
    TTLs, ranks with ties, around-me and percentile, books a seat write-through
    and another through a stream consumer, deletes a board and reads it back from
    the database, builds 24 h / 3 d / 7 d windows with ZUNIONSTORE, cleans up old
    keys with SCAN, and times the same top N in SQL and in the sorted set. The two
    bookings it makes are deleted at the end.

    Examples:

    \b
      flightcache leaderboard demo
      flightcache leaderboard demo --n 5 --pause
      flightcache leaderboard demo --json --repeat 200
    """
    from flightcache.commands._demo import run
    from flightcache.demos.leaderboard import demo as tour
    from flightcache.patterns.leaderboard import check_n

    check_n(n, "--n")
    run(
        ctx,
        "leaderboard-demo",
        tour,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        changes_rows=True,
        yes=yes,
        options=Options(n=n),
    )


@app.command("top")
def top(
    ctx: typer.Context,
    name: BoardArg,
    period: PeriodOpt = "all",
    n: NOpt = 10,
    lowest: Annotated[
        bool, typer.Option("--lowest", help="Lowest scores first (ZRANGE), e.g. best delays.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The top N of a board (ZREVRANGE), rebuilt from the database when it is missing.

    Examples:

    \b
      flightcache leaderboard top airport-bookings
      flightcache leaderboard top airport-bookings --period daily:2025-06-02 --n 5
      flightcache leaderboard top airport-delay --lowest
      flightcache leaderboard top airport-bookings --period 24h --json
    """
    from flightcache.demos.leaderboard import score_text
    from flightcache.patterns.leaderboard import check_n, definition

    b = definition(name)
    check_n(n, "--n")
    with _boards(ctx) as boards:
        p = boards.period(period)
        source = boards.ensure(name, p)
        entries = boards.top(name, p, n, lowest=lowest)
        key = boards.key(name, p)
    if as_json:
        _emit_json(
            {
                "board": name,
                "period": p.name,
                "key": key,
                "source": source,
                "entries": _ranked(entries),
            }
        )
        return
    rows = [[e.rank, e.member, score_text(e.score)] for e in entries]
    note = f"{key}  from {source}"
    if lowest:
        note += "; lowest first, ranks still count from the highest score"
    _print(f"{b.title} ({p.name})", ["rank", b.member, b.score], rows, note)


@app.command("rank")
def rank(
    ctx: typer.Context,
    name: BoardArg,
    member: Annotated[str, typer.Argument(help="The member: an IATA code, a passenger_id, ...")],
    period: PeriodOpt = "all",
    as_json: JsonOpt = False,
) -> None:
    """A member's score, rank (ties share it) and percentile on a board.

    Rank = 1 + the members with a strictly higher score (ZCOUNT key (score +inf);
    percentile = the share of members scoring strictly lower.

    Examples:

    \b
      flightcache leaderboard rank airport-bookings ATL
      flightcache leaderboard rank passenger-points 42 --json
    """
    from flightcache.demos.leaderboard import score_text
    from flightcache.patterns.leaderboard import definition

    definition(name)
    with _boards(ctx) as boards:
        p = boards.period(period)
        boards.ensure(name, p)
        standing = boards.standing(name, p, member)
    if standing is None:
        raise _not_ranked(member, name, p.name)
    if as_json:
        _emit_json({"board": name, "period": p.name, **standing.__dict__})
        return
    _print(
        f"{member} on {name} ({p.name})",
        ["score", "rank", "of", "percentile", "ZREVRANK+1"],
        [
            [
                score_text(standing.score),
                standing.rank,
                standing.count,
                f"{standing.percentile}%",
                standing.position,
            ]
        ],
    )


@app.command("around")
def around(
    ctx: typer.Context,
    name: BoardArg,
    member: Annotated[str, typer.Argument(help="The member in the middle.")],
    span: Annotated[int, typer.Option("--span", help="Members shown either side.")] = 3,
    period: PeriodOpt = "all",
    as_json: JsonOpt = False,
) -> None:
    """The members just above and below one member (ZREVRANK, then ZREVRANGE).

    Examples:

    \b
      flightcache leaderboard around passenger-flights 42
      flightcache leaderboard around airport-bookings FRA --span 5 --json
    """
    from flightcache.demos.leaderboard import score_text
    from flightcache.patterns.leaderboard import check_n, definition

    b = definition(name)
    check_n(span, "--span")
    with _boards(ctx) as boards:
        p = boards.period(period)
        boards.ensure(name, p)
        entries = boards.around(name, p, member, span)
    if entries is None:
        raise _not_ranked(member, name, p.name)
    if as_json:
        _emit_json({"board": name, "period": p.name, "member": member, "entries": _ranked(entries)})
        return
    rows = [
        [e.rank, f"> {e.member}" if e.member == member else e.member, score_text(e.score)]
        for e in entries
    ]
    _print(f"around {member} on {name} ({p.name})", ["rank", b.member, b.score], rows)


@app.command("range")
def score_range(
    ctx: typer.Context,
    name: BoardArg,
    low: Annotated[float, typer.Option("--min", help="Lowest score, inclusive.")],
    high: Annotated[float, typer.Option("--max", help="Highest score, inclusive.")],
    period: PeriodOpt = "all",
    n: NOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """Members whose score lies in a range (ZREVRANGEBYSCORE), with the count (ZCOUNT).

    Loyalty tiers are score ranges: Gold is 20,000 to 49,999 points.

    Examples:

    \b
      flightcache leaderboard range passenger-points --min 20000 --max 49999
      flightcache leaderboard range airport-bookings --min 1000 --max 5000 --json
    """
    from flightcache.demos.leaderboard import score_text
    from flightcache.patterns.leaderboard import check_n, check_score, definition

    b = definition(name)
    check_n(n, "--n")
    check_score(b, low, "--min")
    check_score(b, high, "--max")
    with _boards(ctx) as boards:
        p = boards.period(period)
        boards.ensure(name, p)
        entries = boards.between(name, p, low, high, n)
        total = boards.count(name, p, low, high)
    if as_json:
        _emit_json(
            {
                "board": name,
                "period": p.name,
                "min": low,
                "max": high,
                "count": total,
                "entries": _ranked(entries),
            }
        )
        return
    rows = [[e.rank, e.member, score_text(e.score)] for e in entries]
    _print(
        f"{name} ({p.name}): {low:g} to {high:g}",
        ["rank", b.member, b.score],
        rows,
        f"{total:,} members in the range, {len(entries):,} shown",
    )


@app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Board name; every board when left out.")
    ] = None,
    period: PeriodOpt = "all",
    as_json: JsonOpt = False,
) -> None:
    """Rebuild boards from the database: ZADD into a temporary key, then RENAME.

    Run it periodically (cron) or after Valkey lost its data; readers never see
    a half-built board.

    Examples:

    \b
      flightcache leaderboard rebuild
      flightcache leaderboard rebuild airport-bookings --period monthly:2025-06
    """
    from flightcache.patterns.leaderboard import BOARDS, definition

    names = [definition(name).name] if name else list(BOARDS)
    results = []
    with _boards(ctx) as boards:
        p = boards.period(period)
        for each in names:
            if p.kind == "window":
                key, parts = boards.window(each, p)
                results.append([each, key, boards.count(each, p), f"ZUNIONSTORE of {len(parts)}"])
            else:
                built = boards.rebuild(each, p)
                results.append([each, built.key, built.members, "RENAME"])
    if as_json:
        _emit_json(
            {
                "period": p.name,
                "boards": [
                    dict(zip(["board", "key", "members", "how"], r, strict=True)) for r in results
                ],
            }
        )
        return
    _print(f"rebuilt ({p.name})", ["board", "key", "members", "how"], results)


@app.command("book")
def book(
    ctx: typer.Context,
    flight: Annotated[
        int, typer.Option("--flight", callback=positive, help="flight_id to book on.")
    ],
    passenger: Annotated[
        int, typer.Option("--passenger", callback=positive, help="passenger_id who flies.")
    ],
    via_stream: Annotated[
        bool,
        typer.Option(
            "--via-stream",
            help="Do not update the boards now: XADD an event for `leaderboard events`.",
        ),
    ] = False,
    yes: RowsYesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Book a seat (a real INSERT into booking) and count it on airport-bookings.

    Write-through by default: after COMMIT one script runs ZINCRBY and EXPIRE on
    the hourly, daily, monthly, yearly and all-time keys that exist, and each new
    score is PUBLISHed for `leaderboard live`. With --via-stream the booking is
    XADDed to the event stream instead. The booking stays in the database; a
    database flightcache did not load is refused unless --yes.

    Examples:

    \b
      flightcache leaderboard book --flight 42 --passenger 7
      flightcache leaderboard book --flight 42 --passenger 7 --via-stream
    """
    from flightcache.commands._demo import require_ours
    from flightcache.data.load import require_dataset

    with _boards(ctx) as boards:
        require_ours(require_dataset(boards.db), boards.db, "leaderboard book", yes)
        if via_stream:
            booked = boards.book_only(flight, passenger)
            event = boards.emit(booked.booking_id, booked.member, booked.departure)
        else:
            booked = boards.book(flight, passenger)
            event = None
    document = {
        "booking_id": booked.booking_id,
        "flight_id": flight,
        "airport": booked.member,
        "departure": booked.departure,
        "scores": booked.scores,
        "event": event,
    }
    if as_json:
        _emit_json(document)
        return
    rows = [[p, "-" if s is None else f"{s:,.0f}"] for p, s in booked.scores.items()]
    if event:
        rows = [["stream entry", event]]
    _print(
        f"booking {booked.booking_id}: flight {flight} from {booked.member}",
        ["period", "score"],
        rows,
        "run `flightcache leaderboard events` to count it"
        if event
        else "- : that board is not in Valkey (the next read builds it, this booking included)",
    )


@app.command("events")
def events(
    ctx: typer.Context,
    consumer: Annotated[str, typer.Option("--consumer", help="Name in the group.")] = "boards-1",
    batch: Annotated[int, typer.Option("--batch", help="Events per XREADGROUP.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Consume the booking event stream into the boards (XREADGROUP, apply, XACK).

    Reads its own pending entries first (a crashed run's), then new ones, until the
    stream is drained.

    Examples:

    \b
      flightcache leaderboard events
      flightcache leaderboard events --batch 500 --json
    """
    from flightcache.patterns.leaderboard import check_n

    check_n(batch, "--batch")
    with _boards(ctx) as boards:
        applied = boards.consume(consumer, batch)
        pending = boards.pending_events()
    if as_json:
        _emit_json({"applied": applied, "pending": pending})
        return
    _print("booking events", ["applied", "still pending"], [[applied, pending]])


@app.command("compare")
def compare(
    ctx: typer.Context,
    n: NOpt = Options.n,
    period: PeriodOpt = Options.period,
    as_json: JsonOpt = False,
    repeat: RepeatOpt = 50,
) -> None:
    """The same top N airports from SQL (GROUP BY over bookings) and from the sorted set.

    Checks that both agree (same scores; at the cut, tied members may differ: SQL
    breaks ties A to Z, ZREVRANGE Z to A), then times them (p50, p95, p99).

    Examples:

    \b
      flightcache leaderboard compare
      flightcache leaderboard compare --n 100 --repeat 200 --json
    """
    from flightcache.commands._demo import run
    from flightcache.demos.leaderboard import compare_demo
    from flightcache.patterns.leaderboard import check_n

    check_n(n, "--n")
    run(
        ctx,
        "leaderboard-compare",
        compare_demo,
        as_json=as_json,
        pause=False,
        repeat=repeat,
        options=Options(n=n, period=period),
    )


# `live`, `simulate` and `bench` live in a module of their own
leaderboard_live.register(app)
