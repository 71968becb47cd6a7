"""`flightcache leaderboard simulate`, `live` and `bench` on real servers."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.conftest import json_of, keys_left, server_args

BOARD = "airport-bookings"


def _keys(prefix: str) -> Any:
    from flightcache.patterns.leaderboard import board_keys

    return board_keys(prefix)


def _bookings(conn: Any) -> int:
    return int(conn.fetch("SELECT COUNT(*) FROM booking").rows[0][0])


def _first_departure_day(conn: Any) -> str:
    """The day of the dataset's first departure: a day that has flights to book."""
    from flightcache.patterns.leaderboard_periods import as_datetime

    return f"{as_datetime(conn.fetch('SELECT MIN(departure) FROM flight').rows[0][0]).date()}"


def _board(client: Any, key: str) -> dict[str, float]:
    return {m: float(s) for m, s in client.zrange(key, 0, -1, withscores=True)}


class Listener:
    """Subscribes to a channel in a thread of its own and keeps every message."""

    def __init__(self, client: Any, channel: str) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        while self.pubsub.get_message(timeout=0.5) is not None:  # the confirmation
            pass
        self.messages: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                self.messages.append(json.loads(message["data"]))

    def close(self, expect: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 5
        while len(self.messages) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        self.thread.join()
        self.pubsub.close()
        return self.messages


def test_simulate_writes_rows_boards_and_events(
    cli: Any, loaded: Any, db_url: Any, any_valkey: Any, valkey_client: Any, key_prefix: str
) -> None:
    keys = _keys(key_prefix)
    before = _bookings(loaded)
    max_id = int(loaded.fetch("SELECT MAX(booking_id) FROM booking").rows[0][0])
    day = _first_departure_day(loaded)
    # both boards exist before the run (an increment never creates a board): each holds
    # a member of its own that the simulator must leave as it is
    daily = keys.board(BOARD, f"daily:{day}")
    for key in (daily, keys.board(BOARD, "all")):
        valkey_client.zadd(key, {"ZZZ": 5})
    valkey_client.expire(daily, 60)
    listener = Listener(valkey_client, keys.board_updates(BOARD))
    result = cli(
        *server_args(db_url, any_valkey, key_prefix),
        "leaderboard",
        "simulate",
        "--rate",
        "400",
        "--batch",
        "25",
        "--seconds",
        "0.5",
        "--date",
        day,
        "--seed",
        "7",
        "--json",
    )
    doc = json_of(result)
    written = doc["bookings"]
    assert written >= 25 and written % 25 == 0 and doc["valkey_failures"] == 0
    assert doc["stayed_in_database"] == written
    # the database holds exactly the new rows, with a NULL seat and a price
    assert _bookings(loaded) == before + written
    rows = loaded.fetch(
        "SELECT b.booking_id, b.seat, b.price, a.iata FROM booking b"
        " JOIN flight f ON f.flight_id = b.flight_id"
        " JOIN airport a ON a.airport_id = f."
        + loaded.quote("from")
        + " JOIN passenger p ON p.passenger_id = b.passenger_id"
        " WHERE b.booking_id > %(id)s",
        {"id": max_id},
    ).rows
    assert len(rows) == written
    assert all(seat is None and float(price) > 0 for _, seat, price, _ in rows)
    per_airport: dict[str, int] = {}
    for *_, iata in rows:
        per_airport[iata] = per_airport.get(iata, 0) + 1
    # both boards hold the same increments, by departure airport; the daily one expires
    for key in (daily, keys.board(BOARD, "all")):
        expected = {a: float(n) for a, n in per_airport.items()} | {"ZZZ": 5.0}
        assert _board(valkey_client, key) == expected
    assert 0 < valkey_client.ttl(daily) <= 7 * 86_400
    assert valkey_client.ttl(keys.board(BOARD, "all")) == -1
    # every change was published, as a JSON event naming its period
    events = listener.close(doc["events_published"])
    assert len(events) == doc["events_published"] > 0
    assert {e["period"] for e in events} == {f"daily:{day}", "all"}
    last: dict[tuple[str, str], float] = {}
    for e in events:
        assert set(e) == {"member", "score", "period"}
        last[(e["period"], e["member"])] = e["score"]
    assert {m: s for (p, m), s in last.items() if p == "all"} | {"ZZZ": 5.0} == _board(
        valkey_client, keys.board(BOARD, "all")
    )
    for key in keys_left(valkey_client, key_prefix):
        valkey_client.delete(key)


def test_simulate_on_a_fresh_valkey_leaves_top_to_the_database(
    cli: Any, loaded: Any, db_url: Any, any_valkey: Any, valkey_client: Any, key_prefix: str
) -> None:
    """The simulator counts like the write-through path: a board that does not exist is
    not created by an increment (it would hold only the simulated bookings), so `top`
    rebuilds it from the database and serves the real ranking, the new bookings included."""
    keys = _keys(key_prefix)
    args = server_args(db_url, any_valkey, key_prefix)
    day = _first_departure_day(loaded)
    simulate = f"leaderboard simulate --rate 400 --batch 25 --seconds 0.3 --date {day}"
    doc = json_of(cli(*args, *simulate.split(), "--seed", "3", "--json"))
    assert doc["bookings"] > 0 and doc["valkey_failures"] == 0
    assert doc["events_published"] == 0  # no board existed, none was created
    assert not valkey_client.exists(keys.board(BOARD, "all"))
    assert not valkey_client.exists(keys.board(BOARD, f"daily:{day}"))
    top = json_of(cli(*args, "leaderboard", "top", BOARD, "--n", "10", "--json"))
    assert top["source"].startswith("database")
    from flightcache.patterns.leaderboard_periods import ALL
    from flightcache.patterns.leaderboard_sync import Leaderboards

    sql = Leaderboards(loaded, valkey_client, keys).sql_top(ALL, 10)
    served = [(e["member"], float(e["score"])) for e in top["entries"]]
    assert [s for _, s in served] == [s for _, s in sql] and sql  # the same scores
    cut = sql[-1][1]  # members tied at the cut may differ; every one above it may not
    assert {m for m, s in served if s > cut} == {m for m, s in sql if s > cut}
    for key in keys_left(valkey_client, key_prefix):
        valkey_client.delete(key)


def test_cleanup_removes_its_bookings_and_increments(
    demo_cli: Any, loaded: Any, valkey_server: Any, key_prefix: str
) -> None:
    from flightcache.valkey_client import close, connect

    client: Any = connect(valkey_server.url)
    keys = _keys(key_prefix)
    other = keys.board(BOARD, "all")
    client.zadd(other, {"ZZZ": 5})  # a score someone else put there stays
    before = _bookings(loaded)
    doc = json_of(
        demo_cli(
            "leaderboard",
            "simulate",
            "--rate",
            "500",
            "--batch",
            "10",
            "--seconds",
            "0.3",
            "--cleanup",
            "--json",
        )
    )
    assert doc["bookings"] > 0 and doc["cleaned_up"] == doc["bookings"]
    assert doc["stayed_in_database"] == 0
    assert _bookings(loaded) == before
    assert _board(client, other) == {"ZZZ": 5.0}
    client.delete(other)
    close(client)


def _zincr_and_publish(client: Any, keys: Any, plan: list[tuple[str, int]]) -> None:
    time.sleep(0.8)
    for member, amount in plan:
        score = client.zincrby(keys.board(BOARD, "all"), amount, member)
        event = {"member": member, "score": float(score), "period": "all"}
        client.publish(keys.board_updates(BOARD), json.dumps(event))
        time.sleep(0.05)


def test_live_shows_updates_pushed_by_pub_sub(
    cli: Any, any_valkey: Any, valkey_client: Any, key_prefix: str
) -> None:
    keys = _keys(key_prefix)
    valkey_client.zadd(keys.board(BOARD, "all"), {"FRA": 10, "MUC": 9, "HAM": 8})
    plan = [("HAM", 5), ("CGN", 1), ("CGN", 30), ("XXX", 1)]
    writer = threading.Thread(target=_zincr_and_publish, args=(valkey_client, keys, plan))
    writer.start()
    result = cli(
        "--valkey-url", str(any_valkey.url), "--key-prefix", key_prefix,
        "leaderboard", "live", "--top", "3", "--seconds", "2.5",
    )  # fmt: skip
    writer.join()
    assert result.code == 0, result.err
    body = result.out
    # the final table: CGN jumped in at the top, HAM climbed, XXX is below the top 3
    table = body[: body.index("events ")]
    assert table.index("CGN") < table.index("HAM") < table.index("FRA")
    assert "MUC" not in table and "XXX" not in table
    assert "31" in table and "13" in table
    assert "▲" in table or "new" in table
    assert "events 4 " in body  # every event on the period on view was counted
    valkey_client.delete(keys.board(BOARD, "all"))


def test_live_waits_for_a_missing_board(cli: Any, valkey_server: Any, key_prefix: str) -> None:
    result = cli(
        "--valkey-url", str(valkey_server.url), "--key-prefix", key_prefix,
        "leaderboard", "live", "--seconds", "0.3",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "is missing" in result.out and "waiting" in result.out


def test_bench_json_and_no_keys_left(
    cli: Any, any_valkey: Any, valkey_client: Any, key_prefix: str
) -> None:
    result = cli(
        "--valkey-url", str(any_valkey.url), "--key-prefix", key_prefix,
        "leaderboard", "bench", "--seconds", "0.2", "--clients", "1", "--json",
    )  # fmt: skip
    doc = json_of(result)
    assert set(doc["separate"]) == {"writes", "top10", "rank"}
    for figure in doc["separate"].values():
        assert figure["flightcache_per_s"] > 0 and figure["bare_per_s"] > 0
        assert figure["fraction_of_bare"] > 0 and figure["ops"] > 0
    assert set(doc["concurrent"]) == {"writes", "top10"}
    assert all(f["ops"] > 0 for f in doc["concurrent"].values())
    assert doc["published_004"]["writes_separate"] == 25_000
    assert set(doc["targets_met"]) == {"writes", "top10"}
    assert "processes" in doc["concurrency"]
    assert keys_left(valkey_client, key_prefix) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["live", "--board", "airline-delays"], "unknown board"),
        (["live", "--period", "weekly"], "unknown period"),
        (["live", "--period", "daily:2026-13-40"], "unknown period"),
        (["live", "--top", "0"], "--top 0 must be above zero"),
        (["live", "--top", "100000"], "more than this command accepts"),
        (["live", "--seconds", "-1"], "must be above zero"),
        (["simulate", "--rate", "0"], "--rate 0 must be above zero"),
        (["simulate", "--rate", "1e9"], "more than this command accepts"),
        (["simulate", "--batch", "-5"], "--batch -5 must be above zero"),
        (["simulate", "--batch", "1000000"], "more than this command accepts"),
        (["simulate", "--seconds", "0"], "--seconds 0 must be above zero"),
        (["simulate", "--date", "2026-02-30"], "is not a date"),
        (["simulate", "--date", "'; DROP TABLE booking; --"], "is not a date"),
        (["bench", "--clients", "0"], "--clients 0 must be above zero"),
        (["bench", "--clients", "500"], "more than this command accepts"),
        (["bench", "--seconds", "-2"], "must be above zero"),
    ],
)
def test_bad_input_is_one_line(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("leaderboard", *args)
    assert result.code == 2, (result.out, result.err)
    assert result.err.startswith("error: ") and fragment in result.err
    assert "hint:" in result.err and "Traceback" not in result.err


def test_board_reads_survive_a_dropped_connection(valkey_client: Any, key_prefix: str) -> None:
    from flightcache.patterns.leaderboard import Board
    from flightcache.patterns.leaderboard_periods import ALL

    board = Board(valkey_client, _keys(key_prefix), "bench")
    board.add_scores(ALL, [("a", 3), ("b", 5), ("a", 4)])
    assert board.top(ALL, 10) == [("a", 7.0), ("b", 5.0)]
    assert board.rank("b") == 1 and board.rank("nobody") is None
    board.connection._conn.disconnect()  # the pinned connection goes away under the board
    assert board.top(ALL, 1) == [("a", 7.0)]
    board.close()
    valkey_client.delete(board.key(ALL))


def test_simulate_counts_valkey_failures_after_the_commit(loaded: Any, key_prefix: str) -> None:
    import datetime as dt

    from flightcache.bench.leaderboard import Simulator
    from flightcache.valkey_client import unreachable

    before = _bookings(loaded)
    day = dt.date.fromisoformat(_first_departure_day(loaded))
    sim = Simulator(loaded, unreachable(), _keys(key_prefix), day, seed=1)
    sim.batch(5)
    sim.batch(3)
    # the database took every booking; the boards missed them, and that was counted
    assert _bookings(loaded) == before + 8
    assert sim.report.valkey_failures == 8 and sim.report.events == 0
    assert sim.cleanup() == 8
    assert _bookings(loaded) == before and sim.report.cleanup_valkey_failed


def test_live_on_a_valkey_gone_is_one_line(cli: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("--valkey-url", f"valkey://127.0.0.1:{port}", "leaderboard", "live")
    assert result.code == 4 and result.err.startswith("error: cannot reach Valkey")


def test_simulate_ctrl_c_finishes_the_batch_and_cleans_up(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str
) -> None:
    import signal
    import subprocess
    import sys

    from flightcache.valkey_client import connect

    before = _bookings(loaded)
    args = ["--rate", "300", "--batch", "10", "--seconds", "20", "--cleanup", "--json"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flightcache",
            *server_args(db_url, valkey_server, key_prefix),
            "leaderboard",
            "simulate",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the first progress line: bookings are being written
        if "bookings" in line and "/s" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["interrupted"] and doc["bookings"] > 0 and doc["cleaned_up"] == doc["bookings"]
    assert _bookings(loaded) == before
    client = connect(valkey_server.url)
    assert keys_left(client, key_prefix) == []  # every member went back to 0 and off
    client.close()
