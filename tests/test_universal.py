"""Universal caching: the fake API over real HTTP, the cache with its last good copy,
and `flightcache universal` on both databases, one node and a cluster."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import json_of, keys_left, server_args


def _snapshot() -> Any:
    from flightcache.fakeapi import Airport, ApiSnapshot, ScheduledFlight

    return ApiSnapshot(
        {
            "FRA": Airport("FRA", "Frankfurt", "Frankfurt", "DE", 50.03, 8.56, 40),
            "JFK": Airport("JFK", "Kennedy", "New York", "US", 40.64, -73.78, 30),
        },
        {"LH400": ScheduledFlight("LH400", "LH", "FRA", "JFK", 10 * 60, 13 * 60)},
    )


def _fakeapi_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("flightcache-fakeapi")]


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


@pytest.fixture
def api() -> Iterator[Any]:
    from flightcache.fakeapi import FakeApi

    clock = [1_750_000_000.0]  # 2025-06-15T15:06:40Z
    with FakeApi(_snapshot(), clock=lambda: clock[0]) as server:
        server.test_clock = clock
        yield server
    assert not server.running


def test_fake_api_answers_deterministically_and_fails_on_demand(api: Any) -> None:
    from flightcache.fakeapi import FakeApi
    from flightcache.patterns.universal import OriginDown
    from flightcache.patterns.universal_origins import ApiClient, ApiNotFound

    client = ApiClient(api.url, timeout_s=0.3, name="weather API")
    first = client.get("/weather/FRA")
    assert first == client.get("/weather/fra")  # same request, same 10 minutes
    assert first["airport"] == "FRA" and first["observed_at"] == "2025-06-15T15:00:00Z"
    api.test_clock[0] += 600
    later = client.get("/weather/FRA")
    assert later["observed_at"] == "2025-06-15T15:10:00Z"
    flight = client.get("/flights/LH400")
    assert flight["status"] == "scheduled" and (flight["from"], flight["to"]) == ("FRA", "JFK")
    api.test_clock[0] = 1_750_000_000 - 15 * 3600 - 400 + 11 * 3600  # 11:00 UTC: in the air
    assert client.get("/flights/LH400")["status"] in ("airborne", "landed", "boarding")
    services = client.get("/airports/JFK/services")
    assert services["restaurants"] > 0 and services["wifi"] in ("free", "paid")
    with pytest.raises(ApiNotFound, match="weather API knows no 'XYZ'"):
        client.get("/weather/XYZ")
    assert len(client.take()) == 7 and client.take() == []

    api.configure(failure_rate=1.0)
    with pytest.raises(OriginDown, match="answered 503"):
        client.get("/weather/FRA")
    api.configure(failure_rate=0.0, latency_ms=600)
    start = time.monotonic()
    with pytest.raises(OriginDown, match="did not answer within 300 ms"):
        client.get("/weather/FRA")
    assert time.monotonic() - start < 0.55  # the client gave up; the server still sleeps
    for bad in ({"failure_rate": 1.5}, {"failure_rate": -0.1}, {"latency_ms": -1.0}):
        with pytest.raises(ValueError):
            api.configure(**bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        FakeApi(_snapshot(), failure_rate=2)
    url = api.url
    api.stop()  # wakes the sleeping request and joins every thread
    assert not api.running and _fakeapi_threads() == [] and _refused(url)
    with pytest.raises(OriginDown, match="cannot reach the weather API"):
        client.get("/weather/FRA")


@pytest.mark.parametrize("where", ["valkey_server", "valkey_cluster"])
def test_cache_serves_stale_then_errors_then_recovers(
    api: Any, where: str, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    from flightcache.keys import Keys
    from flightcache.patterns.universal import NothingCached, UniversalCache
    from flightcache.patterns.universal_origins import ApiClient
    from flightcache.valkey_client import close, connect, unreachable

    client = connect(request.getfixturevalue(where).url)
    keys = Keys(key_prefix)
    now = [1000.0]
    cache = UniversalCache(client, keys, retry_after_s=30, clock=lambda: now[0])
    http = ApiClient(api.url, timeout_s=0.3, name="weather API")

    def weather(code: str = "FRA") -> Any:
        return cache.get(
            f"weather:api:{code}",
            lambda: http.get(f"/weather/{code}"),
            ttl=600,
            stale_ttl=3600,
            what="weather API",
        )

    try:
        first = weather()
        assert first.source == "origin" and first.called_origin and first.value["airport"] == "FRA"
        assert 0 < client.ttl(keys.cached_item("weather:api:FRA")) <= 600
        assert 600 < client.ttl(keys.cached_item_good("weather:api:FRA")) <= 3600
        now[0] += 42
        hit = weather()
        assert hit.source == "cache" and hit.value == first.value and hit.age_s == 42

        api.configure(failure_rate=1.0)
        client.delete(keys.cached_item("weather:api:FRA"))  # the fresh copy expired
        asked = api.requests
        stale = weather()
        assert stale.source == "stale" and stale.value == first.value and stale.age_s == 42
        assert "answered 503" in stale.error and api.requests == asked + 1
        assert client.exists(keys.cached_item_hold("weather:api:FRA"))
        held = weather()  # the hold keeps readers off the failing API
        assert held.source == "stale" and not held.called_origin and api.requests == asked + 1

        with pytest.raises(NothingCached, match="the weather API is down and nothing is cached"):
            weather("JFK")
        asked = api.requests
        with pytest.raises(NothingCached) as caught:  # held: not even tried
            weather("JFK")
        assert api.requests == asked and "next call to it is in" in (caught.value.hint or "")

        api.configure(failure_rate=0.0, latency_ms=500)  # slower than the 300 ms timeout
        client.delete(keys.cached_item_hold("weather:api:FRA"))
        slow = weather()
        assert slow.source == "stale" and "did not answer within 300 ms" in slow.error

        api.configure(latency_ms=0)
        client.delete(keys.cached_item_hold("weather:api:FRA"))
        now[0] += 8
        back = weather()
        assert back.source == "origin" and not client.exists(
            keys.cached_item_hold("weather:api:FRA")
        )

        client.set(keys.cached_item("weather:api:FRA"), "not ours")  # a miss, replaced
        assert weather().source == "origin" and weather().source == "cache"

        api.stop()
        client.delete(keys.cached_item("weather:api:FRA"))
        gone = weather()
        assert gone.source == "stale" and "Connection refused" in gone.error

        down = UniversalCache(unreachable(), keys)
        served = down.get("x", lambda: {"v": 1}, ttl=60, stale_ttl=0)
        assert served.source == "origin" and served.note == "Valkey unavailable"
        with pytest.raises(NothingCached, match="Valkey is unreachable"):
            down.get("x", lambda: http.get("/weather/FRA"), ttl=60, stale_ttl=0, what="weather API")
    finally:
        for key in keys_left(client, key_prefix):
            client.delete(key)
        close(client)


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc["records"] if r["type"] == "step"]


def test_demo_on_both_databases_one_node_and_cluster(
    cli: Any, loaded: Any, db_url: Any, valkey_server: Any, valkey_cluster: Any, key_prefix: str
) -> None:
    threads = threading.active_count()
    fast = ["--json", "--repeat", "2", "--api-latency-ms", "1", "--api-timeout-ms", "150"]
    for server in (valkey_server, valkey_cluster):
        doc = json_of(cli(*server_args(db_url, server, key_prefix), "universal", *fast))
        steps = _steps(doc)
        start, firsts, again = steps[0], steps[1:7], steps[7]
        assert start["sql"] and start["data"]["url"].startswith("http://127.0.0.1:")
        assert [s["data"]["source"] for s in firsts] == ["origin"] * 6
        assert all(s["valkey"][1].startswith("MGET ") for s in firsts)
        assert [bool(s["data"]["http"]) for s in firsts] == [True] * 3 + [False] * 3
        assert [bool(s["sql"]) for s in firsts] == [False] * 3 + [True] * 3
        assert any(v.startswith("SET ") and v.endswith("EX 600") for v in firsts[0]["valkey"])
        distance, stats = firsts[3]["data"]["value"], firsts[4]["data"]["value"]
        assert distance["km"] > 0 and distance["miles"] < distance["km"]
        assert stats["total"] == stats["domestic"] + stats["international"] > 0
        assert again["hit"] is True and again["sql"] == [] and again["data"]["http"] == []

        by_title = {s["title"]: s for s in steps}
        failing = by_title["The weather API fails, and the fresh copy has expired"]
        assert failing["data"]["source"] == "stale" and "503" in failing["data"]["error"]
        held = by_title["Read again while the API is down"]
        assert held["data"]["source"] == "stale" and held["data"]["api_requests"] == 0
        slow = by_title["The API answers, but slower than the client's timeout"]
        assert slow["data"]["source"] == "stale" and "within 150 ms" in slow["data"]["error"]
        [never] = [s for s in steps if s["title"].endswith("was never cached")]
        assert never["ok"] is False and never["on_purpose"] is True
        assert "the weather API is down and nothing is cached" in never["outcome"]
        assert by_title["The API recovers"]["data"]["source"] == "origin"
        gone = by_title["The API server is gone"]
        assert gone["data"]["source"] == "stale" and "refused" in gone["data"]["error"]
        assert [s["ok"] for s in steps].count(False) == 1

        timings = [r for r in doc["records"] if r["type"] == "timing"]
        assert len(timings) == 6 and all(t["series"][1]["label"] == "cached read" for t in timings)
        assert all(s["n"] == 2 and s["p50"] > 0 for t in timings for s in t["series"])
        assert keys_left_at(server, key_prefix) == []
        assert _refused(start["data"]["url"])
    assert _fakeapi_threads() == [] and threading.active_count() == threads


def keys_left_at(server: Any, prefix: str) -> list[str]:
    from flightcache.valkey_client import close, connect

    client = connect(server.url)
    try:
        return keys_left(client, prefix)
    finally:
        close(client)


def test_api_down_from_the_start_and_bad_input(
    demo_cli: Any, valkey_server: Any, key_prefix: str
) -> None:
    down = json_of(demo_cli("universal", "--json", "--repeat", "2", "--api-failure-rate", "1"))
    steps = _steps(down)
    for step in steps[1:4]:
        assert step["ok"] is False and "is down and nothing is cached" in step["outcome"]
    assert all(s["data"]["source"] == "origin" for s in steps[4:7])  # SQL sources unaffected
    table = next(r for r in down["records"] if r["title"] == "With and without the cache (p50)")
    assert [row[3].startswith("not timed") for row in table["rows"]] == [True] * 3 + [False] * 3
    assert keys_left_at(valkey_server, key_prefix) == [] and _fakeapi_threads() == []

    for args, fragment in (
        (["--origin", "XYZ"], "no airport with IATA code 'XYZ'"),
        (["--origin", "atl", "--destination", "ATL"], "both ATL"),
        (["--flight", "ZZ0000"], "no scheduled flight 'ZZ0000'"),
        (["--day", "tomorrow"], "date like"),
    ):
        bad = demo_cli("universal", *args)
        assert bad.code == 2 and fragment in bad.err and "Traceback" not in bad.err, bad.err
    assert _fakeapi_threads() == []


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--api-failure-rate", "1.5", "less than or equal to 1"),
        ("--api-failure-rate", "-0.1", "greater than or equal to 0"),
        ("--api-latency-ms", "-5", "greater than or equal to 0"),
        ("--api-timeout-ms", "0", "greater than or equal to 1"),
        ("--api-failure-rate", "often", "valid number"),
    ],
)
def test_option_bounds(cli: Any, option: str, value: str, fragment: str) -> None:
    bad = cli("universal", option, value)
    assert bad.code == 2 and f"Invalid value for '{option}'" in bad.err and fragment in bad.err
    assert _fakeapi_threads() == []
