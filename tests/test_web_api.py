"""Seed 004's leaderboard API: every endpoint on both databases, one Valkey and the
cluster, bad input, unknown names, and real servers stopped under it."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from tests.conftest import ValkeyInstance, public_tempdir
from tests.web_helpers import Served, WebClient, web_config

BOARD = "airport-bookings"


@contextmanager
def _app(db_url: Any, instance: ValkeyInstance, key_prefix: str) -> Iterator[WebClient]:
    """A second app, like the ``web`` fixture's, on another Valkey or database."""
    from starlette.testclient import TestClient

    from flightcache.web.app import create_app

    config = web_config(db_url, instance, key_prefix)
    app = create_app(config)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get(f"/?token={config.token}").status_code == 200
        assert client.get("/api/csrf").status_code == 200
        yield WebClient(client, config.token, key_prefix, app.state.services)


def _expected_top(db_url: Any, n: int) -> list[tuple[str, float]]:
    """The board as the database computes it (ranked by the test, not by the app)."""
    from flightcache.db import connect
    from flightcache.patterns.leaderboard import BOARDS
    from flightcache.sqlfiles import query

    conn = connect(db_url)
    try:
        rows = conn.fetch(query(conn.dialect, BOARDS[BOARD].sql),
                          {"start": "1900-01-01", "end": "2200-01-01"}).rows  # fmt: skip
    finally:
        conn.close()
    return [(str(m), float(s)) for m, s in rows][:n]


def _every_endpoint(web: WebClient, db_url: Any) -> None:
    first = web.get(f"/api/leaderboards/{BOARD}/top?n=10")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["source"] == "database (board was missing, rebuilt)"
    assert body["period"] == "all" and body["window"] == "all"
    entries = body["entries"]
    expected = _expected_top(db_url, 10)
    assert [e["score"] for e in entries] == [s for _, s in expected]
    ranks = [e["rank"] for e in entries]
    assert ranks[0] == 1 and ranks == sorted(ranks)
    for before, after in itertools.pairwise(entries):
        if before["score"] == after["score"]:  # ties share a rank
            assert after["rank"] == before["rank"]
        else:
            assert after["rank"] == entries.index(after) + 1
    assert web.get(f"/api/leaderboards/{BOARD}/top").json()["source"] == "valkey"

    leader, third = entries[0], entries[2]
    rank = web.get(f"/api/leaderboards/{BOARD}/rank/{third['member']}").json()
    assert rank["rank"] == third["rank"] and rank["score"] == third["score"]
    assert 0 <= rank["percentile"] < 100 and rank["count"] >= 10

    around = web.get(f"/api/leaderboards/{BOARD}/around/{third['member']}?span=2").json()
    members = [e["member"] for e in around["entries"]]
    assert third["member"] in members and len(members) == 5
    assert around["entries"][0]["member"] == leader["member"]

    # a score brought level with the leader's shares rank 1
    gap = int(leader["score"] - third["score"])
    posted = web.post("/api/scores", {"board": BOARD, "member": third["member"], "increment": gap})
    assert posted.status_code == 200, posted.text
    scores = posted.json()["scores"]
    assert scores["all"] == leader["score"]
    assert set(scores) >= {"all"} and any(p.startswith("hourly:") for p in scores)
    tied = web.get(f"/api/leaderboards/{BOARD}/rank/{third['member']}").json()
    assert tied["rank"] == 1 and tied["score"] == leader["score"]
    top2 = web.get(f"/api/leaderboards/{BOARD}/top?n=2").json()["entries"]
    assert [e["rank"] for e in top2] == [1, 1]

    window = web.get(f"/api/leaderboards/{BOARD}/top?window=7d&n=3").json()
    assert window["period"] == "window:7d" and window["source"] == "window rebuilt (ZUNIONSTORE)"
    assert 1 <= len(window["entries"]) <= 3

    # another counting board: only its all-time key is counted
    first = web.get("/api/leaderboards/passenger-flights/top?n=1").json()["entries"][0]
    other = web.post("/api/scores", {"board": "passenger-flights", "member": first["member"],
                                     "increment": 2})  # fmt: skip
    assert other.status_code == 200, other.text
    assert other.json()["scores"] == {"all": first["score"] + 2}
    health = web.get("/health")
    assert health.status_code == 200 and health.json()["ok"] is True


def test_every_endpoint_on_one_valkey(web: WebClient, db_url: Any) -> None:
    _every_endpoint(web, db_url)


def test_every_endpoint_on_the_cluster(
    loaded: Any, db_url: Any, valkey_cluster: ValkeyInstance, key_prefix: str
) -> None:
    with _app(db_url, valkey_cluster, key_prefix) as web:
        _every_endpoint(web, db_url)


BAD = [
    ("GET", f"/api/leaderboards/{BOARD}/top?n=0", "n: Input should be greater than or equal to 1"),
    ("GET", f"/api/leaderboards/{BOARD}/top?n=10001", "n: Input should be less than or equal"),
    ("GET", f"/api/leaderboards/{BOARD}/top?n=ten", "n: Input should be a valid integer"),
    ("GET", f"/api/leaderboards/{BOARD}/top?window=1y", "window: Input should be 'all'"),
    ("GET", f"/api/leaderboards/{BOARD}/rank/atl", "member 'atl' is not a member of"),
    ("GET", f"/api/leaderboards/{BOARD}/around/ATL?span=0", "span: Input should be greater"),
    ("POST", {"board": BOARD, "member": "ATL", "increment": 0}, "increment: Input should be"),
    (
        "POST",
        {"board": BOARD, "member": "ATL", "increment": 10**7},
        "less than or equal to 1000000",
    ),
    ("POST", {"board": BOARD, "member": "ATL", "increment": "x"}, "increment: Input should be"),
    ("POST", {"board": BOARD, "member": "ATL"}, "increment: Field required"),
    ("POST", {"board": BOARD, "member": "<b>ATL", "increment": 1}, "expected a 3-character"),
    ("POST", {"board": "airline-ontime", "member": "LH", "increment": 1}, "has no meaning"),
    ("POST", {"board": "airport-delay", "member": "ATL", "increment": 1}, "has no meaning"),
]


@pytest.mark.safety(8)
@pytest.mark.parametrize(("method", "what", "message"), BAD)
def test_bad_input_is_a_clear_422(web: WebClient, method: str, what: Any, message: str) -> None:
    response = web.get(what) if method == "GET" else web.post("/api/scores", what)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert message in error and "Traceback" not in error and "\n" not in error


@pytest.mark.safety(8)
def test_unknown_board_or_member_is_404_and_a_post_needs_csrf(web: WebClient) -> None:
    for path in ("/api/leaderboards/nope/top", "/api/leaderboards/nope/rank/ATL",
                 "/api/leaderboards/nope/around/ATL"):  # fmt: skip
        response = web.get(path)
        assert response.status_code == 404 and "unknown board 'nope'" in response.json()["error"]
    for path in (f"/api/leaderboards/{BOARD}/rank/ZZZ", f"/api/leaderboards/{BOARD}/around/ZZZ"):
        response = web.get(path)
        assert response.status_code == 404
        assert (
            response.json()["error"]
            == "'ZZZ' is not on airport-bookings (all): it has no score there"
        )
    missing = web.post("/api/scores", {"board": BOARD, "member": "ZZZ", "increment": 1})
    assert missing.status_code == 404 and "'ZZZ' is not on" in missing.json()["error"]
    unknown = web.post("/api/scores", {"board": "nope", "member": "ATL", "increment": 1})
    assert unknown.status_code == 404
    # no header: refused before anything is written, and nothing was
    refused = web.client.post("/api/scores", json={"board": BOARD, "member": "ATL", "increment": 5})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]


@pytest.mark.safety(7)
def test_valkey_stopped_is_503_naming_valkey(loaded: Any, db_url: Any, key_prefix: str) -> None:
    from flightcache.stack.valkey import scratch_valkey
    from tests.conftest import ScratchUrl

    with ExitStack() as app_open:
        with scratch_valkey(1, prefix="fc-test-api-") as scratch:
            url = ScratchUrl.parse(scratch.url.url(redact=False))
            web = app_open.enter_context(_app(db_url, ValkeyInstance(url, scratch.ports),
                                              key_prefix))  # fmt: skip
            assert web.get(f"/api/leaderboards/{BOARD}/top").status_code == 200
        # the scratch Valkey is stopped now: the same app, the same requests
        for response in (
            web.get(f"/api/leaderboards/{BOARD}/top"),
            web.get(f"/api/leaderboards/{BOARD}/rank/ATL"),
            web.post("/api/scores", {"board": BOARD, "member": "ATL", "increment": 1}),
            web.get("/health"),
        ):
            assert response.status_code == 503, response.text
            assert "Traceback" not in response.text
            body = response.json()
            if "down" in body:
                assert body["down"] == "Valkey"
                assert body["error"].startswith("Valkey is unavailable")
            else:  # /health says each server
                assert body["valkey"]["ok"] is False and body["database"]["ok"] is True


@pytest.fixture
def embedded_postgres() -> Iterator[Any]:
    """The embedded PostgreSQL in a state dir of its own (no Valkey), the tiny data loaded."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect
    from flightcache.stack import Stack

    root = public_tempdir("fc-test-api-pg-")
    stack = Stack(root / "state")
    try:
        stack.up(start_valkey=False)
        url = stack.db_url()
        loader = connect(url, loader=True, create=True)
        load_generated(loader, "tiny", 1)
        loader.close()
        yield stack, url
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.safety(7)
def test_database_stopped_is_503_naming_the_database(
    embedded_postgres: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    stack, url = embedded_postgres
    with _app(url, valkey_server, key_prefix) as web:
        assert web.get(f"/api/leaderboards/{BOARD}/top").status_code == 200  # rebuilt, held
        stack.postgres.stop()
        assert not stack.postgres_running()
        # what Valkey holds is still served; what needs the database is a 503 naming it
        held = web.get(f"/api/leaderboards/{BOARD}/top?n=3")
        assert held.status_code == 200 and held.json()["source"] == "valkey"
        for response in (
            web.get("/api/leaderboards/passenger-points/top"),  # absent: rebuilt from the db
            web.post("/api/scores", {"board": "passenger-flights", "member": "1", "increment": 1}),
        ):
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["down"] == "the database"
            assert body["error"].startswith("the database is unavailable")
            assert "Traceback" not in response.text
        health = web.get("/health")
        assert health.status_code == 503
        assert health.json()["database"]["ok"] is False and health.json()["valkey"]["ok"]


@pytest.mark.slow
def test_docs_render_offline_in_a_browser(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from tests.web_helpers import wait_for

    browser.get(served.url)
    browser.get(served.base + "/docs")
    paths = wait_for(
        lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")],
        timeout=15,
        what="the endpoints listed on /docs",
    )
    shown = " ".join(paths)
    for path in ("/health", "/api/scores", "/api/leaderboards/{board}/top",
                 "/api/leaderboards/{board}/rank/{member}",
                 "/api/leaderboards/{board}/around/{member}"):  # fmt: skip
        assert path in shown, shown
    schemas = browser.find_element(By.CSS_SELECTOR, ".models").text
    assert "ScoreIn" in schemas and "RankOut" in schemas
    requested = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert requested and all(r.startswith(served.base) for r in requested), requested
