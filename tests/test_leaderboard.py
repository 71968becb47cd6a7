"""Leaderboards: boards equal to their SQL, ranks with ties, the update paths, the CLI."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from flightcache.demos.leaderboard import agreement
from flightcache.errors import DataError, UsageError
from flightcache.keys import Keys
from flightcache.patterns.leaderboard import (
    BOARDS,
    check_n,
    check_score,
    definition,
    ranked_from_top,
)
from flightcache.patterns.leaderboard_periods import ALL, daily, parse_period
from flightcache.patterns.leaderboard_sync import Leaderboards
from tests.conftest import json_of, keys_left, server_args


@pytest.fixture
def boards(loaded: Any, valkey_client: Any, key_prefix: str) -> Iterator[Leaderboards]:
    from flightcache.valkey_client import delete_matching

    keys = Keys(key_prefix).scope("leaderboard")
    yield Leaderboards(loaded, valkey_client, keys)
    delete_matching(valkey_client, keys.match())


# -- pure functions ---------------------------------------------------------------------
def test_periods_parse_and_bad_ones_say_how() -> None:
    assert parse_period("2025-06-02") == daily(dt.date(2025, 6, 2))
    assert parse_period("monthly:2025-12").end == dt.datetime(2026, 1, 1)
    assert parse_period("yearly:2025").name == "yearly:2025"
    assert parse_period("hourly:2025-06-02T13").start == dt.datetime(2025, 6, 2, 13)
    clock = dt.datetime(2025, 6, 29, 22, 55)
    day24 = parse_period("24h", clock)
    assert (day24.start, day24.end) == (dt.datetime(2025, 6, 28, 23), dt.datetime(2025, 6, 29, 23))
    assert len(day24.parts()) == 24 and day24.parts()[-1].name == "hourly:2025-06-29T22"
    assert [p.name for p in parse_period("3d", clock).parts()] == [
        "daily:2025-06-27",
        "daily:2025-06-28",
        "daily:2025-06-29",
    ]
    for bad in ("daily:2025-13-40", "weekly:2025-W3", "yesterday", "2025-6-2"):
        with pytest.raises(UsageError, match="does not parse"):
            parse_period(bad)


def test_bad_n_scores_and_boards() -> None:
    for n in (0, -1, 10_001):
        with pytest.raises(UsageError, match="between 1 and 10,000"):
            check_n(n)
    assert check_n(10_000) == 10_000
    with pytest.raises(UsageError, match="negative"):
        check_score(BOARDS["airport-bookings"], -5, "--min")
    assert check_score(BOARDS["airport-delay"], -5, "--min") == -5
    with pytest.raises(UsageError, match="not a number"):
        check_score(BOARDS["airport-delay"], float("nan"), "--min")
    with pytest.raises(UsageError, match="unknown board"):
        definition("airports; DROP TABLE booking")


def test_competition_rank_shares_ties() -> None:
    rows = [("a", 9.0), ("b", 7.0), ("c", 7.0), ("d", 5.0)]
    assert [e.rank for e in ranked_from_top(rows, 0)] == [1, 2, 2, 4]
    # a window that starts inside a tie: the first rank comes from ZCOUNT
    assert [e.rank for e in ranked_from_top(rows[2:], 2, first_rank=2)] == [2, 4]


def test_agreement_tolerates_ties_at_the_cut_only() -> None:
    full = {"A": 5.0, "B": 3.0, "C": 3.0, "D": 1.0}
    ok, why = agreement([("A", 5.0), ("B", 3.0)], [("A", 5.0), ("C", 3.0)], full)
    assert ok and "tie at the cut" in why
    assert not agreement([("A", 5.0), ("B", 3.0)], [("B", 5.0), ("A", 3.0)], full)[0]
    assert not agreement([("A", 5.0)], [("A", 4.0)], full)[0]


def test_apply_script_counts_once_and_never_creates_a_board(
    valkey_client: Any, key_prefix: str
) -> None:
    from flightcache.lua import script

    keys = Keys(key_prefix).scope("leaderboard")
    applied = keys.board_applied("airport-bookings")
    present, missing = (keys.board("airport-bookings", p) for p in ("all", "daily:2025-06-02"))
    valkey_client.zadd(present, {"FRA": 2, "MUC": 1})
    apply = script("leaderboard_apply")
    try:
        assert apply(valkey_client, [applied, present, missing], ["FRA", 1, "7:+1", 0, 60]) == [
            "3",
            None,
        ]
        assert not valkey_client.exists(missing)  # an increment alone builds no board
        assert apply(valkey_client, [applied, present, missing], ["FRA", 1, "7:+1", 0, 60]) is None
        assert valkey_client.zscore(present, "FRA") == 3  # a redelivered event counts once
        assert apply(valkey_client, [applied, present], ["FRA", -3, "", 0]) == ["0"]
        assert valkey_client.zscore(present, "FRA") is None  # at 0: off the board
        assert valkey_client.ttl(present) == -1 and 0 < valkey_client.ttl(applied) <= 604_800
    finally:
        valkey_client.delete(applied, present, missing)


def test_demo_and_compare_take_their_defaults_from_the_demos_options() -> None:
    import dataclasses
    import inspect

    from flightcache.commands.leaderboard import compare, demo
    from flightcache.demos.leaderboard import Options

    assert inspect.signature(demo).parameters["n"].default == Options.n
    parameters = inspect.signature(compare).parameters
    for option in dataclasses.fields(Options):
        assert parameters[option.name].default == getattr(Options, option.name), option.name


def test_live_follows_all_and_days_only() -> None:
    from flightcache.demos.leaderboard import live_period

    assert live_period("all") == ALL
    assert live_period("daily:2026-06-02") == daily(dt.date(2026, 6, 2))
    for bad in ("weekly", "2026-06-02", "daily:2026-13-40", "monthly:2026-06", " all", "24h"):
        with pytest.raises(UsageError, match="unknown period"):
            live_period(bad)


# -- the pattern on real servers (both databases, one node and a cluster) --------------------
def test_boards_equal_their_sql_and_ranks_match_sql(boards: Leaderboards) -> None:
    for name in BOARDS:
        assert boards.ensure(name, ALL).startswith("database")
        assert boards.ensure(name, ALL) == "valkey"
        expected = boards.from_db(name, ALL)
        got = boards.valkey.zrevrange(boards.key(name, ALL), 0, -1, withscores=True)
        assert sorted(got) == sorted(expected), name
        assert boards.valkey.ttl(boards.key(name, ALL)) == -1
    # a tied member: Valkey's competition rank equals the SQL rank, ZREVRANK does not
    top = boards.top("passenger-flights", ALL, 200)
    tied = next(b for a, b in itertools.pairwise(top) if a.score == b.score)
    standing = boards.standing("passenger-flights", ALL, tied.member)
    assert standing is not None
    assert standing.rank == boards.sql_rank("passenger-flights", ALL, standing.score) == tied.rank
    assert standing.position > standing.rank
    assert 0 <= standing.percentile < 100
    assert boards.standing("passenger-flights", ALL, "no-such-passenger") is None
    near = boards.around("passenger-flights", ALL, tied.member, 2)
    assert near is not None and tied.member in [e.member for e in near] and len(near) <= 5
    assert boards.around("airport-bookings", ALL, "ZZZ", 2) is None
    # no temporary key is left behind by the rebuilds
    assert not [k for k in keys_left(boards.valkey, boards.keys.prefix) if ":building:" in k]


def test_write_through_event_and_fallback(boards: Leaderboards) -> None:
    flight_id = int(boards.db.fetch("SELECT MIN(flight_id) FROM flight").rows[0][0])
    passenger_id = int(boards.db.fetch("SELECT MIN(passenger_id) FROM passenger").rows[0][0])
    departure, member = boards._flight(flight_id)
    day = daily(departure.date())
    boards.rebuild("airport-bookings", ALL)
    boards.rebuild("airport-bookings", day)
    before_all = boards.valkey.zscore(boards.key("airport-bookings", ALL), member) or 0
    booked = boards.book(flight_id, passenger_id)
    try:
        assert booked.scores["all"] == before_all + 1
        assert booked.scores[day.name] is not None
        # a period key that did not exist is not created by the increment
        assert booked.scores["monthly:" + departure.strftime("%Y-%m")] is None
        assert not boards.valkey.exists(
            boards.keys.board("airport-bookings", "monthly:" + departure.strftime("%Y-%m"))
        )
        assert 0 < boards.valkey.ttl(boards.key("airport-bookings", day)) <= 7 * 86_400
        # event-driven: nothing changes until the consumer runs
        second = boards.book_only(flight_id, passenger_id)
        boards.emit(second.booking_id, second.member, second.departure)
        boards.emit(second.booking_id, second.member, second.departure)  # a producer's retry
        assert boards.pending_events() == 2
        assert boards.valkey.zscore(boards.key("airport-bookings", ALL), member) == before_all + 1
        assert boards.consume() == 1  # the repeat is acked, not applied
        assert boards.pending_events() == 0
        assert boards.consume() == 0
        assert boards.valkey.zscore(boards.key("airport-bookings", ALL), member) == before_all + 2
        # a missing board falls back to the database, both bookings included
        boards.valkey.delete(boards.key("airport-bookings", day))
        assert boards.ensure("airport-bookings", day).startswith("database")
        assert dict(boards.from_db("airport-bookings", day))[member] == boards.valkey.zscore(
            boards.key("airport-bookings", day), member
        )
        boards.cancel(second)
    finally:
        boards.cancel(booked)
    assert sorted(
        boards.valkey.zrevrange(boards.key("airport-bookings", ALL), 0, -1, withscores=True)
    ) == sorted(boards.from_db("airport-bookings", ALL))
    with pytest.raises(DataError, match="does not exist"):
        boards.book(10**9, passenger_id)
    with pytest.raises(DataError, match="does not exist"):
        boards.book(flight_id, 10**9)


def test_windows_union_and_cleanup(boards: Leaderboards) -> None:
    for name in ("24h", "3d", "7d"):
        window = boards.period(name)
        assert boards.ensure("airport-bookings", window).startswith("window")
        got = boards.valkey.zrevrange(
            boards.key("airport-bookings", window), 0, -1, withscores=True
        )
        assert sorted(got) == sorted(boards.from_db("airport-bookings", window)), name
        assert 0 < boards.valkey.ttl(boards.key("airport-bookings", window)) <= 300
    today = boards.clock().date()
    for back in range(10):
        boards.rebuild("airport-bookings", daily(today - dt.timedelta(days=back)))
    deleted = boards.cleanup("airport-bookings", 7, today)
    assert [k.rsplit(":", 1)[1] for k in deleted] == [
        str(today - dt.timedelta(days=back)) for back in (9, 8, 7)
    ]
    assert boards.valkey.exists(boards.key("airport-bookings", daily(today - dt.timedelta(days=6))))


# -- the CLI -----------------------------------------------------------------------------
@pytest.fixture
def leaderboard_cli(cli, loaded, db_url, valkey_server, key_prefix):  # type: ignore[no-untyped-def]
    def run(*args: str) -> Any:
        return cli(*server_args(db_url, valkey_server, key_prefix), "leaderboard", *args)

    yield run
    from flightcache.valkey_client import close, connect, delete_matching

    client = connect(valkey_server.url)
    delete_matching(client, key_prefix + "*")
    close(client)


def test_cli_reads_and_bad_input(leaderboard_cli: Any, valkey_server: Any, key_prefix: str) -> None:
    top = json_of(leaderboard_cli("top", "airport-bookings", "--n", "3", "--json"))
    assert top["source"].startswith("database") and len(top["entries"]) == 3
    assert top["key"] == f"{key_prefix}leaderboard:{{lb:airport-bookings}}:all"
    first = top["entries"][0]
    rank = json_of(leaderboard_cli("rank", "airport-bookings", first["member"], "--json"))
    assert (rank["rank"], rank["score"]) == (1, first["score"])
    around = json_of(leaderboard_cli("around", "airport-bookings", first["member"], "--json"))
    assert around["entries"][0]["member"] == first["member"]
    rng = json_of(
        leaderboard_cli("range", "airport-bookings", "--min", "1", "--max", "1e9", "--json")
    )
    assert rng["count"] >= len(rng["entries"]) > 0
    assert json_of(leaderboard_cli("top", "airport-bookings", "--period", "24h", "--json"))[
        "period"
    ] == ("window:24h")
    names = [b["name"] for b in json_of(leaderboard_cli("boards", "--json"))["boards"]]
    assert names[0] == "airport-bookings" and len(names) == len(BOARDS)
    for args, code, text in [
        (("top", "no-board"), 2, "unknown board"),
        (("top", "airport-bookings", "--n", "0"), 2, "between 1 and 10,000"),
        (("top", "airport-bookings", "--n", "-3"), 2, "between 1 and 10,000"),
        (("top", "airport-bookings", "--n", "10001"), 2, "between 1 and 10,000"),
        (("top", "airport-bookings", "--period", "daily:2025-02-30"), 2, "does not parse"),
        (("rank", "airport-bookings", "' OR 1=1 --"), 6, "not ranked"),
        (("around", "airport-bookings", "ZZZ"), 6, "not ranked"),
        (("range", "airport-bookings", "--min", "-1", "--max", "5"), 2, "negative"),
        (("range", "airport-bookings", "--min", "9", "--max", "5"), 2, "above --max"),
        (("book", "--flight", "999999999", "--passenger", "1"), 6, "does not exist"),
    ]:
        result = leaderboard_cli(*args)
        assert result.code == code, (args, result.err)
        assert text in result.err and "Traceback" not in result.err, args
    assert leaderboard_cli("range", "airport-bookings", "--min", "x", "--max", "5").code == 2


def test_cli_demo_and_compare(leaderboard_cli: Any, valkey_server: Any, key_prefix: str) -> None:
    from flightcache.valkey_client import close, connect

    doc = json_of(leaderboard_cli("demo", "--json", "--repeat", "3", "--n", "5"))
    steps = [r for r in doc["records"] if r["type"] == "step"]
    assert all(s["ok"] for s in steps), [s["outcome"] for s in steps if not s["ok"]]
    titles = " ".join(s["title"] for s in steps)
    for what in ("Write-through", "Event-driven", "missing", "windows", "SCAN", "agree"):
        assert what in titles
    timing = next(r for r in doc["records"] if r["type"] == "timing")
    assert [s["label"] for s in timing["series"]] == ["SQL GROUP BY", "ZREVRANGE"]
    client = connect(valkey_server.url)
    try:
        assert keys_left(client, f"{key_prefix}leaderboard-demo:") == []
    finally:
        close(client)
    cmp = json_of(leaderboard_cli("compare", "--json", "--repeat", "3"))
    check = next(r for r in cmp["records"] if r["type"] == "step" and "agree" in r["title"])
    assert check["data"]["agree"] is True


def test_cli_book_write_through_and_stream(leaderboard_cli: Any, loaded: Any) -> None:
    flight_id = int(loaded.fetch("SELECT MIN(flight_id) FROM flight").rows[0][0])
    top = json_of(leaderboard_cli("top", "airport-bookings", "--n", "500", "--json"))
    scores = {e["member"]: e["score"] for e in top["entries"]}
    booked = json_of(
        leaderboard_cli("book", "--flight", str(flight_id), "--passenger", "1", "--json")
    )
    assert booked["scores"]["all"] == scores.get(booked["airport"], 0) + 1
    streamed = json_of(
        leaderboard_cli(
            "book", "--flight", str(flight_id), "--passenger", "1", "--via-stream", "--json"
        )
    )
    assert streamed["event"] and streamed["scores"] == {}
    assert json_of(leaderboard_cli("events", "--json")) == {"applied": 1, "pending": 0}
    rank = json_of(leaderboard_cli("rank", "airport-bookings", booked["airport"], "--json"))
    assert rank["score"] == scores.get(booked["airport"], 0) + 2
    for doc in (booked, streamed):
        loaded.execute("DELETE FROM booking WHERE booking_id = %(b)s", {"b": doc["booking_id"]})


def test_valkey_down_after_commit_says_the_booking_is_kept(loaded: Any, key_prefix: str) -> None:
    from flightcache.patterns.leaderboard_sync import BoardsMissed
    from flightcache.valkey_client import unreachable

    boards = Leaderboards(loaded, unreachable(), Keys(key_prefix).scope("leaderboard"))
    flight_id = int(loaded.fetch("SELECT MIN(flight_id) FROM flight").rows[0][0])
    before = int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0])
    with pytest.raises(BoardsMissed, match="is committed, but the boards missed it") as caught:
        boards.book(flight_id, 1)
    assert "rebuild" in (caught.value.hint or "")
    assert int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0]) == before + 1


def test_cli_demo_on_a_cluster(cli: Any, loaded: Any, db_url: Any, valkey_cluster: Any) -> None:
    from flightcache.valkey_client import close, connect

    prefix = "fctest:lbcluster:"
    args = server_args(db_url, valkey_cluster, prefix)
    doc = json_of(cli(*args, "leaderboard", "demo", "--json", "--repeat", "2", "--n", "3"))
    steps = [r for r in doc["records"] if r["type"] == "step"]
    assert all(s["ok"] for s in steps), [s["outcome"] for s in steps if not s["ok"]]
    client = connect(valkey_cluster.url)
    try:
        assert keys_left(client, prefix) == []
    finally:
        close(client)
