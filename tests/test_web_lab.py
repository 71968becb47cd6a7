"""The cache lab (/lab): runs streamed over HTTP, the key's TTL, expire, flush; a real browser."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from typing import Any

import pytest

from flightcache.keys import Keys
from flightcache.web.lab import RUNS_MAX, SCOPE, TTL_MAX
from tests.conftest import keys_left
from tests.web_helpers import Served, WebClient, wait_for, web_config


def run_lines(web: WebClient, **body: Any) -> list[dict[str, Any]]:
    body.setdefault("query", "flight_search")
    response = web.post("/api/lab/run", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def rounds_of(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["type"] == "round"]


def lab_prefix(prefix: str) -> str:
    return Keys(prefix).scope(SCOPE).prefix


def test_the_page_and_what_it_can_run(web: WebClient) -> None:
    page = web.get("/lab").text
    assert "<title>Cache lab" in page
    for script in ("/static/common.js", "/static/vendor/uplot/uPlot.iife.min.js", "/static/lab.js"):
        assert f'src="{script}"' in page
        assert web.get(script).status_code == 200
    assert "http://" not in page and "https://" not in page
    assert "flightcache/measure/timing.py" in page  # says which code measures
    assert 'href="/lab"' in web.get("/").text

    info = web.get("/api/lab/queries").json()
    names = [q["name"] for q in info["queries"]]
    assert names == [
        "airline_route_analysis",
        "flight_search",
        "passenger_bookings",
        "top_airports_daily",
    ]
    search = next(q for q in info["queries"] if q["name"] == "flight_search")
    defaults = {p["name"]: p["default"] for p in search["params"]}
    assert set(defaults) == {"origin", "destination", "day"}
    assert re.fullmatch(r"[A-Z0-9]{3}", defaults["origin"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", defaults["day"])
    assert info["runs"]["max"] == RUNS_MAX and info["ttl"]["max"] == TTL_MAX
    assert info["scope"] == lab_prefix(web.prefix)


def test_a_run_streams_both_paths_then_the_key(web: WebClient) -> None:
    lines = run_lines(web, runs=6, ttl=60)
    assert [line["type"] for line in lines] == ["start"] + ["round"] * 6 + ["done"]
    start, done, rounds = lines[0], lines[-1], rounds_of(lines)
    key = start["key"]
    assert key.startswith(lab_prefix(web.prefix) + "query:flight_search:")
    assert [r["round"] for r in rounds] == [1, 2, 3, 4, 5, 6]
    assert [r["hit"] for r in rounds] == [False, True, True, True, True, True]
    assert rounds[0]["served_by"] == "database" and rounds[1]["served_by"] == "cache"
    assert all(r["database_ns"] > 0 and r["cache_ns"] > 0 for r in rounds)
    # p50/p99 as runs come in: over the rounds so far, by the CLI's percentile
    assert rounds[0]["database"] == {
        "p50": rounds[0]["database_ns"],
        "p99": rounds[0]["database_ns"],
    }
    samples = sorted(r["cache_ns"] for r in rounds[:3])
    assert rounds[2]["cache"] == {"p50": samples[1], "p99": samples[2]}
    assert done["hits"] == 5 and done["reads"] == 6 and done["hit_ratio"] == pytest.approx(5 / 6)
    assert done["database"]["p50"] == rounds[-1]["database"]["p50"]
    assert done["cache"]["p99"] == rounds[-1]["cache"]["p99"] == max(r["cache_ns"] for r in rounds)
    assert done["database"]["n"] == done["cache"]["n"] == 6
    assert 0 < done["pttl_ms"] <= 60_000
    # what Valkey holds is the cache-aside document of the rows each round returned
    client = web.services.valkey
    cached = json.loads(client.get(key))
    assert len(cached["rows"]) == rounds[0]["rows"] > 0
    assert 0 < client.pttl(key) <= 60_000
    # the key outlives the run: the next run's first read hits
    again = rounds_of(run_lines(web, runs=2, ttl=60))
    assert [r["hit"] for r in again] == [True, True]


def test_parameters_name_the_key(web: WebClient) -> None:
    info = web.get("/api/lab/queries").json()
    passenger = next(q for q in info["queries"] if q["name"] == "passenger_bookings")
    default = passenger["params"][0]["default"]
    first = run_lines(web, query="passenger_bookings", runs=1)
    other = run_lines(web, query="passenger_bookings", params={"passenger_id": "999999999"}, runs=1)
    assert first[0]["params"] == {"passenger_id": default}
    assert other[0]["params"] == {"passenger_id": "999999999"}
    assert first[0]["key"] != other[0]["key"]
    assert rounds_of(other)[0]["rows"] == 0  # no such passenger: an empty answer is cached too


def test_the_ttl_counts_down_and_expire_makes_the_next_run_miss(web: WebClient) -> None:
    key = run_lines(web, runs=2, ttl=30)[0]["key"]
    first = web.get("/api/lab/ttl", params={"key": key}).json()
    assert first["key"] == key and 0 < first["pttl_ms"] <= 30_000
    time.sleep(0.3)
    later = web.get("/api/lab/ttl", params={"key": key}).json()["pttl_ms"]
    assert 0 < later <= first["pttl_ms"] - 250

    expired = web.post("/api/lab/expire", json={"key": key})
    assert expired.status_code == 200 and expired.json() == {"key": key, "expired": True}
    time.sleep(0.01)
    assert web.get("/api/lab/ttl", params={"key": key}).json()["pttl_ms"] == -2
    assert web.post("/api/lab/expire", json={"key": key}).json()["expired"] is False
    after = rounds_of(run_lines(web, runs=3, ttl=30))
    assert [r["hit"] for r in after] == [False, True, True]


@pytest.mark.safety(3)
def test_flush_deletes_the_lab_keys_only(web: WebClient) -> None:
    client = web.services.valkey
    lab = {
        run_lines(web, query=name, runs=1)[0]["key"]
        for name in ("flight_search", "top_airports_daily")
    }
    neighbours = [
        Keys(web.prefix).scope("cache-aside").query("flight_search", {}),  # the CLI demo's scope
        Keys(web.prefix).scope(SCOPE + "x").query("flight_search", {}),  # a scope that starts alike
        web.prefix + SCOPE,  # the scope's name without its colon
        "other:" + lab_prefix(web.prefix) + "query:x",  # another prefix around the lab's
    ]
    for key in neighbours:
        client.set(key, "theirs")
    try:
        answer = web.post("/api/lab/flush")
        assert answer.status_code == 200
        assert answer.json() == {"deleted": 2, "match": lab_prefix(web.prefix) + "*"}
        assert not any(client.exists(key) for key in lab)
        assert [client.get(key) for key in neighbours] == ["theirs"] * 4
        assert web.post("/api/lab/flush").json()["deleted"] == 0
    finally:
        client.delete(*neighbours)


@pytest.mark.safety(8)
def test_bad_input_is_one_clear_line(web: WebClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": "no_such_query"}, "no query named 'no_such_query'"),
        ({"query": "flight_search; DROP TABLE flight"}, "no query named"),
        ({"query": "passenger_bookings", "params": {"passenger_id": "abc"}}, "whole number"),
        ({"query": "top_airports_daily", "params": {"day": "2025-13-40"}}, "must be a date"),
        ({"query": "flight_search", "params": {"seat": "12C"}}, "has no parameter seat"),
        ({"query": "flight_search", "runs": 0}, "runs: Input should be greater than or equal to 1"),
        ({"query": "flight_search", "runs": RUNS_MAX + 1}, f"less than or equal to {RUNS_MAX}"),
        ({"query": "flight_search", "runs": "many"}, "runs: Input should be a valid integer"),
        ({"query": "flight_search", "ttl": 0}, "ttl: Input should be greater than or equal to 1"),
        ({"query": "flight_search", "ttl": TTL_MAX + 1}, "ttl: Input should be less than"),
        ({"query": "flight_search", "params": {"origin": "X" * 101}}, "at most 100 characters"),
        ({"params": {}}, "query: Field required"),
    ]
    for body, message in cases:
        response = web.post("/api/lab/run", json=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert message in error, (body, error)
        assert "\n" not in error and "Traceback" not in error
    not_json = web.post(
        "/api/lab/run", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "JSON" in not_json.json()["error"]
    # the lab reads and expires its own keys only
    theirs = Keys(web.prefix).scope("cache-aside").query("flight_search", {})
    for response in (
        web.get("/api/lab/ttl", params={"key": theirs}),
        web.post("/api/lab/expire", json={"key": theirs}),
        web.post("/api/lab/expire", json={"key": lab_prefix(web.prefix) + "*"}),
    ):
        assert (
            response.status_code == 422 and "not a key of the cache lab" in response.json()["error"]
        )
    assert web.get("/api/lab/ttl").status_code == 422
    assert keys_left(web.services.valkey, web.prefix) == []  # nothing ran, nothing stored


@pytest.mark.safety(7)
def test_valkey_stopped_is_503(loaded: Any, db_url: Any, key_prefix: str) -> None:
    from starlette.testclient import TestClient

    from flightcache.stack.valkey import scratch_valkey
    from flightcache.web.app import create_app

    server = contextlib.ExitStack()  # closes once: stopping the server in the test, or after it
    scratch = server.enter_context(scratch_valkey(prefix="fc-test-lab-down-"))
    try:
        config = web_config(db_url, scratch, key_prefix)  # type: ignore[arg-type]
        with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
            client.get(f"/lab?token={config.token}")
            web = WebClient(client, config.token, key_prefix)
            key = run_lines(web, runs=1)[0]["key"]
            server.close()  # the server is stopped now, for real
            for response in (
                web.post("/api/lab/run", json={"query": "flight_search", "runs": 1}),
                web.get("/api/lab/ttl", params={"key": key}),
                web.post("/api/lab/expire", json={"key": key}),
                web.post("/api/lab/flush"),
            ):
                assert response.status_code == 503, response.text
                assert response.json()["down"] == "Valkey"
                assert "Valkey is unavailable" in response.json()["error"]
            assert web.get("/lab").status_code == 200  # the page itself still loads
    finally:
        server.close()


def test_on_a_valkey_cluster(
    loaded: Any, db_url: Any, valkey_cluster: Any, key_prefix: str
) -> None:
    from starlette.testclient import TestClient

    from flightcache.web.app import create_app

    config = web_config(db_url, valkey_cluster, key_prefix)
    with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
        client.get(f"/?token={config.token}")
        client.get("/api/csrf")
        services = client.app.state.services  # type: ignore[attr-defined]
        web = WebClient(client, config.token, key_prefix, services)
        lab = [run_lines(web, query="flight_search", runs=2)[0]["key"]]
        passenger = 1
        while len({services.valkey.get_node_from_key(key).name for key in lab}) < 3:
            # one key per passenger, until the lab's keys sit on every primary
            params = {"passenger_id": str(passenger)}
            lab.append(run_lines(web, query="passenger_bookings", params=params, runs=1)[0]["key"])
            passenger += 1
            assert passenger < 200
        theirs = Keys(key_prefix).scope("cache-aside").query("flight_search", {})
        services.valkey.set(theirs, "theirs")
        try:
            assert web.post("/api/lab/flush").json()["deleted"] == len(lab)
            assert keys_left(services.valkey, lab_prefix(key_prefix)) == []
            assert services.valkey.get(theirs) == "theirs"
        finally:
            services.valkey.delete(theirs)


# -- a real browser -----------------------------------------------------------------------------
FIGURE = re.compile(r"^\d+(\.\d+)? (ns|µs|ms|s)$")


def _seconds_left(browser: Any) -> float:
    text = browser.find_element("id", "lab-countdown").text
    assert text.endswith(" s"), text
    return float(text[:-2])


def _run_done(browser: Any) -> bool:
    return bool(browser.execute_script("return window.fcLab && window.fcLab.running === null"))


@pytest.mark.slow
def test_in_a_browser(served: Served, browser: Any, key_prefix: str, valkey_server: Any) -> None:
    browser.get(served.url)
    browser.get(served.base + "/lab")
    # the lab runs once when it opens, and draws its chart
    wait_for(lambda: browser.execute_script("return window.fcLab.firstChartMs"), what="first chart")
    wait_for(lambda: browser.find_element("id", "lab-countdown").text.endswith(" s"), what="a TTL")
    wait_for(lambda: _run_done(browser), what="the first run to end")

    runs = browser.find_element("id", "lab-runs")
    runs.clear()
    runs.send_keys("8")
    browser.find_element("id", "lab-run").click()
    wait_for(
        lambda: "8 of 8 rounds" in browser.find_element("id", "lab-progress").text, what="8 rounds"
    )
    wait_for(lambda: _run_done(browser), what="the run to end")
    for figure in ("lab-db-p50", "lab-db-p99", "lab-cache-p50", "lab-cache-p99"):
        text = browser.find_element("id", figure).text
        assert FIGURE.match(text), (figure, text)
    assert browser.find_element("id", "lab-hit-ratio").text == "100 %"
    assert "first read: hit" in browser.find_element("id", "lab-first").text
    shown = browser.execute_script("return [1e8, 1.2e5, 1.05e7, 2e6, 812].map(fc.ns)")
    assert shown == ["100 ms", "120 µs", "10.5 ms", "2 ms", "812 ns"]
    lengths = browser.execute_script("return window.fcLab.chart.data.map((s) => s.length)")
    assert lengths == [8] * 7
    canvas = browser.find_element("css selector", "#lab-chart canvas")
    assert canvas.size["width"] > 300 and canvas.size["height"] > 100
    assert browser.find_element("id", "lab-key").text.startswith(lab_prefix(key_prefix))

    before = _seconds_left(browser)
    time.sleep(1.2)
    after = _seconds_left(browser)
    assert before - 3 < after < before - 0.6, (before, after)  # a loaded machine lags

    browser.find_element("id", "lab-expire").click()
    wait_for(lambda: "expired" in browser.find_element("id", "lab-action").text, what="expire")
    wait_for(
        lambda: browser.find_element("id", "lab-countdown").text in ("expired", "not cached"),
        what="the countdown to stop",
    )
    browser.find_element("id", "lab-run").click()
    wait_for(
        lambda: "8 of 8 rounds" in browser.find_element("id", "lab-progress").text, what="rerun"
    )
    wait_for(lambda: _run_done(browser), what="the rerun to end")
    assert "first read: miss" in browser.find_element("id", "lab-first").text
    assert browser.find_element("id", "lab-hits").text == "7 hits of 8 reads"
    assert browser.find_element("id", "error").text == ""

    # Stop ends a long run where it is
    runs.clear()
    runs.send_keys(str(RUNS_MAX))
    browser.find_element("id", "lab-run").click()
    started = f"return window.fcLab.runs === {RUNS_MAX} && window.fcLab.data[0].length > 2"
    wait_for(lambda: browser.execute_script(started), what="the long run's first rounds")
    browser.find_element("id", "lab-stop").click()
    wait_for(lambda: _run_done(browser), what="the run to stop")
    done = browser.execute_script("return window.fcLab.data[0].length")
    assert 2 < done < RUNS_MAX
    assert browser.find_element("id", "lab-progress").text.endswith("(stopped)")
    # ... on the server too: no GET of the cache path after the batch in flight
    from flightcache.valkey_client import connect

    client = connect(valkey_server.url)
    time.sleep(0.5)
    gets = client.info("commandstats")["cmdstat_get"]["calls"]
    time.sleep(0.6)
    assert client.info("commandstats")["cmdstat_get"]["calls"] == gets
    client.close()
    assert browser.find_element("id", "error").text == ""
    if os.environ.get("FLIGHTCACHE_LAB_SCREENSHOT"):
        browser.save_screenshot(os.environ["FLIGHTCACHE_LAB_SCREENSHOT"])


@pytest.mark.slow
@pytest.mark.safety(7)
def test_database_stopped_is_503(valkey_server: Any, key_prefix: str) -> None:
    """A real PostgreSQL (the embedded one, in a state dir of the test's own) stopped
    between two runs: the next run, and the list of queries, are a 503 naming it."""
    import shutil

    from starlette.testclient import TestClient

    from flightcache.data.load import load_generated
    from flightcache.db import connect
    from flightcache.stack import Stack
    from flightcache.web.app import create_app
    from tests.conftest import public_tempdir

    root = public_tempdir("fc-test-lab-db-down-")
    stack = Stack(root / "state")
    try:
        db_url = stack.up(start_valkey=False).db_url
        assert db_url is not None
        loader = connect(db_url, create=True, loader=True)
        load_generated(loader, "tiny", 1)
        loader.close()
        config = web_config(db_url, valkey_server, key_prefix)
        with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
            client.get(f"/lab?token={config.token}")
            web = WebClient(client, config.token, key_prefix)
            assert rounds_of(run_lines(web, runs=2))[1]["hit"] is True
            stack.postgres.stop()  # the server is stopped now, for real
            for response in (
                web.post("/api/lab/run", json={"query": "flight_search", "runs": 2}),
                web.get("/api/lab/queries"),
            ):
                assert response.status_code == 503, response.text
                assert response.json()["down"] == "the database"
                assert "Traceback" not in response.text
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
