"""The live leaderboard page: HTTP, the websocket over a real booking, a real browser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import ScratchUrl, server_args
from tests.test_leaderboard_live import Listener
from tests.web_helpers import Served, wait_for, web_config

BOARD = "airport-bookings"


def _boards(db: Any, client: Any, prefix: str) -> Any:
    from flightcache.patterns.leaderboard import board_keys
    from flightcache.patterns.leaderboard_sync import Leaderboards

    return Leaderboards(db, client, board_keys(prefix))


def _a_flight_and_passenger(db: Any) -> tuple[int, int]:
    flight = db.fetch(
        "SELECT f.flight_id FROM flight f JOIN airport a ON a.airport_id = f."
        + db.quote("from")
        + " WHERE a.iata IS NOT NULL ORDER BY f.flight_id LIMIT 1"
    ).rows[0][0]
    passenger = db.fetch("SELECT MIN(passenger_id) FROM passenger").rows[0][0]
    return int(flight), int(passenger)


def test_the_page_and_its_first_frame(web: Any) -> None:
    page = web.get("/board")
    assert page.status_code == 200
    assert 'id="board-rows"' in page.text or "id=board-rows" in page.text
    assert "/static/board.js" in page.text
    assert "Live leaderboard" in web.get("/").text  # listed on the index
    top = web.get("/board/top", params={"board": BOARD, "window": "all"})
    assert top.status_code == 200, top.text
    doc = top.json()
    rows = doc["rows"]
    assert len(rows) == 10 and rows[0]["rank"] == 1
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert doc["key"] == f"{web.prefix}leaderboard:{{lb:{BOARD}}}:all"
    # the database agrees with the leader the board shows
    boards = _boards(None, web.services.valkey, web.prefix)
    assert boards.valkey.zscore(doc["key"], rows[0]["member"]) == scores[0]
    for window in ("24h", "3d", "7d"):
        doc = web.get("/board/top", params={"board": BOARD, "window": window}).json()
        assert doc["key"].endswith(f"window:{window}")
        assert all(r["score"] > 0 for r in doc["rows"])


@pytest.mark.safety(8)
def test_unknown_board_or_window_is_422(web: Any) -> None:

    bad = web.get("/board/top", params={"board": "nope", "window": "all"})
    assert bad.status_code == 422 and "unknown board 'nope'" in bad.json()["error"]
    bad = web.get("/board/top", params={"board": BOARD, "window": "2w"})
    assert bad.status_code == 422 and "unknown window '2w'" in bad.json()["error"]
    closed = _close_reason(web.client, f"/ws/board?board={BOARD}&window=2w&token={web.token}")
    assert closed.code == 1008 and "unknown window" in closed.reason
    bad = web.post("/board/simulate/start", json={"rate": 1e9, "seconds": 1})
    assert bad.status_code == 422 and "rate" in bad.json()["error"]


def test_a_booking_shows_up_on_the_socket(
    loaded: Any, db_url: Any, any_valkey: Any, key_prefix: str
) -> None:
    """A booking through the real write path (INSERT, COMMIT, ZINCRBY, PUBLISH) is pushed,
    on one Valkey and on a cluster."""
    from starlette.testclient import TestClient

    from flightcache.web.app import create_app

    config = web_config(db_url, any_valkey, key_prefix)
    flight, passenger = _a_flight_and_passenger(loaded)
    path = f"/ws/board?board={BOARD}&window=all&token={config.token}"
    with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
        boards = _boards(loaded, client.app.state.services.valkey, key_prefix)
        with client.websocket_connect(path) as ws:
            first = ws.receive_json()
            assert first["rows"] and first["updates"] == []
            booked = boards.book(flight, passenger)
            try:
                snap = _until_pushed(ws, booked.member)
            finally:
                boards.cancel(booked)
            assert _subscribers(boards.valkey, key_prefix) == 1
        # the socket closed: its subscription is gone
        wait_for(lambda: _subscribers(boards.valkey, key_prefix) == 0, what="no subscriber")
    update = next(u for u in snap["updates"] if u["member"] == booked.member)
    assert update == {"member": booked.member, "score": booked.scores["all"], "period": "all"}
    assert snap["events"] >= 1 and snap["events_per_s"] > 0
    shown = {r["member"]: r["score"] for r in snap["rows"]}
    if booked.member in shown:
        assert shown[booked.member] == booked.scores["all"]


def _subscribers(client: Any, prefix: str) -> int:
    """Subscribers of the board's channel over every primary (plain pub/sub is per node)."""
    from flightcache.patterns.leaderboard import board_keys
    from flightcache.valkey_client import primaries

    channel = board_keys(prefix).board_updates(BOARD)
    return sum(int(node.pubsub_numsub(channel)[0][1]) for node in primaries(client))


def _until_pushed(ws: Any, member: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap: dict[str, Any] = ws.receive_json()
        if any(u["member"] == member for u in snap["updates"]):
            return snap
    raise AssertionError(f"no push about {member} within {timeout} s")


@pytest.mark.safety(7)
def test_valkey_down_is_503(loaded: Any, db_url: Any, key_prefix: str) -> None:
    """A Valkey stopped under an open board socket closes it with the reason; after,
    every endpoint of the page answers 503 naming Valkey."""
    from contextlib import ExitStack

    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from flightcache.stack.valkey import scratch_valkey
    from flightcache.web.app import create_app
    from tests.conftest import ValkeyInstance

    with ExitStack() as stack:
        server = ExitStack()  # the Valkey, stopped mid-test
        stack.callback(server.close)
        scratch = server.enter_context(scratch_valkey(1, prefix="fc-test-board-down-"))
        instance = ValkeyInstance(ScratchUrl.parse(scratch.url.url(redact=False)), scratch.ports)
        config = web_config(db_url, instance, key_prefix)
        client = stack.enter_context(TestClient(create_app(config), base_url="http://127.0.0.1"))
        assert client.get(f"/?token={config.token}").status_code == 200
        assert client.get("/board/top").status_code == 200
        path = f"/ws/board?board={BOARD}&token={config.token}"
        with client.websocket_connect(path) as ws:
            assert ws.receive_json()["rows"]
            server.close()  # the server stops under the open socket
            with pytest.raises(WebSocketDisconnect) as closed:
                for _ in range(20):  # idle pushes come every second until the failure
                    ws.receive_json()
        assert closed.value.code == 1011 and "Valkey is unavailable" in closed.value.reason
        down = client.get("/board/top")
        assert down.status_code == 503 and down.json()["down"] == "Valkey", down.text
        closed = _close_reason(client, path)
        assert closed.code == 1011 and "Valkey is unavailable" in closed.reason
        start = client.post(
            "/board/simulate/start",
            json={"rate": 10, "seconds": 1},
            headers={"X-CSRF-Token": client.cookies.get("fc_csrf", "")},
        )
        assert start.status_code == 503 and start.json()["down"] == "Valkey"
        assert client.get("/board/simulate").status_code == 503


def test_start_and_stop_the_simulator(web: Any, loaded: Any) -> None:
    from flightcache.sqlfiles import query

    before = int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0])
    assert web.get("/board/top").status_code == 200  # the all-time board exists
    started = web.post("/board/simulate/start", json={"rate": 100, "seconds": 30})
    assert started.status_code == 200, started.text
    try:
        again = web.post("/board/simulate/start", json={"rate": 100, "seconds": 30})
        assert again.status_code == 409 and "running already" in again.json()["error"]
        wait_for(lambda: web.get("/board/simulate").json().get("bookings", 0) >= 10,
                 what="the simulator to book")  # fmt: skip
        assert web.get("/board/simulate").json()["running"] is True
    finally:
        stopped = web.post("/board/simulate/stop")
    assert stopped.status_code == 200 and stopped.json() == {"stopped": True}
    status = web.get("/board/simulate").json()
    assert status["running"] is False and status["error"] is None
    report = web.client.app.state.board_simulator.report
    assert report.valkey_failures == 0 and report.events >= 1
    after = int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0])
    assert after == before + report.bookings  # nothing runs on after the stop
    time.sleep(0.3)
    assert int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0]) == after
    with loaded.transaction():
        sql = query(loaded.dialect, "booking_remove")
        loaded.execute_many(sql, [{"booking_id": i} for i in report.booking_ids])
    assert web.post("/board/simulate/stop").json() == {"stopped": False}


def test_the_simulator_stops_with_the_app(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str
) -> None:
    from starlette.testclient import TestClient

    from flightcache.keys import Keys
    from flightcache.sqlfiles import query
    from flightcache.web.app import create_app

    config = web_config(db_url, valkey_server, key_prefix)
    app = create_app(config)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.get(f"/?token={config.token}")
        client.get("/api/csrf")
        headers = {"X-CSRF-Token": client.cookies.get("fc_csrf", "")}
        assert client.get("/board/top").status_code == 200
        started = client.post("/board/simulate/start", json={"rate": 50, "seconds": 60},
                              headers=headers)  # fmt: skip
        assert started.status_code == 200, started.text
        runner = app.state.board_simulator
        wait_for(lambda: runner.report.bookings > 0, what="bookings")
        assert runner.thread.is_alive()
    # the app stopped (lifespan shutdown): the thread ended, the run's key is gone
    assert not runner.thread.is_alive()
    assert app.state.services.valkey.get(Keys(key_prefix).board_simulator()) is None
    ids = runner.report.booking_ids
    count = "SELECT COUNT(*) FROM booking WHERE booking_id >= %(id)s"
    assert int(loaded.fetch(count, {"id": ids[0]}).rows[0][0]) == runner.report.bookings
    with loaded.transaction():
        loaded.execute_many(query(loaded.dialect, "booking_remove"),
                            [{"booking_id": i} for i in runner.report.booking_ids])  # fmt: skip


class _Stamped(list[tuple[float, Any]]):
    """A Listener's message list that notes the wall-clock time each message came."""

    def append(self, item: Any) -> None:
        super().append((time.time(), item))


def _close_reason(client: Any, path: str) -> Any:
    """How the server closes a websocket it refuses: the WebSocketDisconnect."""
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(path) as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value


@pytest.mark.slow
def test_the_board_moves_in_a_real_browser(
    served: Served, browser: Any, loaded: Any, db_url: Any, valkey_server: Any,
    key_prefix: str,
) -> None:  # fmt: skip
    """`leaderboard simulate` in a terminal; the page shows each booking within 1 s."""
    from flightcache.patterns.leaderboard import board_keys
    from flightcache.valkey_client import close, connect

    browser.get(served.url)
    browser.get(served.base + "/board")
    wait_for(lambda: len(browser.find_elements("css selector", "#board-rows tr")) == 10,
             what="the top 10")  # fmt: skip
    before = browser.find_element("id", "board-rows").text
    client = connect(valkey_server.url)
    published = Listener(client, board_keys(key_prefix).board_updates(BOARD))
    published.messages = stamped = _Stamped()  # before the simulator runs
    max_id = int(loaded.fetch("SELECT MAX(booking_id) FROM booking").rows[0][0])
    command = [sys.executable, "-m", "flightcache", *server_args(db_url, valkey_server, key_prefix),
               "leaderboard", "simulate", "--rate", "40", "--batch", "2", "--seconds", "2",
               "--cleanup", "--json"]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: browser.execute_script("return board.received.length") > 0,
                 what="an update on the page")  # fmt: skip
    finally:
        published.close(expect=0)
        close(client)
    received = browser.execute_script("return board.received")
    assert stamped, "the simulator published nothing"
    # a score can come back (the cleanup takes the increments off): first sightings only
    shown: dict[tuple[str, float], float] = {}
    for r in received:
        if r["period"] == "all":
            shown.setdefault((r["member"], r["score"]), r["at"] / 1000)
    sent: dict[tuple[str, float], float] = {}
    for at, e in stamped:
        if e["period"] == "all":
            sent.setdefault((e["member"], e["score"]), at)
    delays = [shown[k] - at for k, at in sent.items() if k in shown]
    assert delays and max(delays) < 1.0, delays
    assert len(delays) >= len(sent) // 2
    assert (
        browser.find_element("id", "board-rows").text != before
        or int(browser.find_element("id", "board-events").text.replace(",", "")) > 0
    )
    left = int(loaded.fetch(f"SELECT COUNT(*) FROM booking WHERE booking_id > {max_id}").rows[0][0])
    assert left == 0  # --cleanup took the bookings back


@pytest.mark.slow
def test_start_and_stop_buttons_in_a_real_browser(
    served: Served, browser: Any, loaded: Any
) -> None:
    from flightcache.sqlfiles import query

    max_id = int(loaded.fetch("SELECT MAX(booking_id) FROM booking").rows[0][0])
    browser.get(served.url)
    browser.get(served.base + "/board?board=airport-bookings&window=all")
    wait_for(lambda: len(browser.find_elements("css selector", "#board-rows tr")) == 10,
             what="the top 10")  # fmt: skip
    browser.find_element("id", "board-rate").clear()
    browser.find_element("id", "board-rate").send_keys("100")
    browser.find_element("id", "board-start").click()
    wait_for(lambda: browser.find_element("id", "board-sim").text.startswith("running"),
             what="the simulator to run")  # fmt: skip
    wait_for(lambda: int(browser.find_element("id", "board-events").text.replace(",", "")) > 5,
             what="events on the board")  # fmt: skip
    wait_for(lambda: float(browser.find_element("id", "board-rate-now").text) > 0, what="events/s")
    if os.environ.get("FLIGHTCACHE_BOARD_SCREENSHOT"):
        browser.save_screenshot(os.environ["FLIGHTCACHE_BOARD_SCREENSHOT"])
    browser.find_element("id", "board-stop").click()
    wait_for(lambda: browser.find_element("id", "board-sim").text.startswith("idle"),
             what="the simulator to stop")  # fmt: skip
    assert browser.find_element("id", "error").text == ""
    new = "SELECT booking_id FROM booking WHERE booking_id > %(id)s"
    ids = [int(r[0]) for r in loaded.fetch(new, {"id": max_id}).rows]
    assert ids  # the simulator booked, through the page's POST with its CSRF header
    with loaded.transaction():
        loaded.execute_many(query(loaded.dialect, "booking_remove"),
                            [{"booking_id": i} for i in ids])  # fmt: skip
