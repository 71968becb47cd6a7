"""The query catalogue and cache-aside, on both databases, one node and a cluster."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from flightcache.config import DbUrl


@pytest.fixture
def loaded(db_url: DbUrl) -> Iterator[DbUrl]:
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    conn = connect(db_url)
    load_generated(conn, "tiny", 1)
    conn.close()
    yield db_url


def _keys(url: Any, prefix: str) -> list[str]:
    from flightcache.valkey_client import close, connect, primaries

    client = connect(url)
    try:
        return sorted(k for node in primaries(client) for k in node.scan_iter(match=prefix + "*"))
    finally:
        close(client)


def test_a_lookup_says_how_it_was_served_as_data_and_as_text() -> None:
    from flightcache.patterns.cache_aside import Lookup, ServedBy

    def served(how: ServedBy, why: str = "") -> Lookup:
        return Lookup("k", ["a"], [[1]], how, 7, why)

    assert served(ServedBy.CACHE).source == "cache"
    assert served(ServedBy.CACHE).hit and not served(ServedBy.CACHE).stored
    assert served(ServedBy.DATABASE).source == "database"
    assert served(ServedBy.DATABASE).stored and not served(ServedBy.DATABASE).hit
    down = served(ServedBy.VALKEY_DOWN, "Connection refused")
    assert down.source == "database (Valkey unavailable: Connection refused)"
    assert not down.hit and not down.stored
    full = served(ServedBy.NOT_STORED, "OOM command not allowed")
    assert full.source == "database (could not store: OOM command not allowed)"
    assert not full.hit and not full.stored


@pytest.mark.parametrize("where", ["valkey_server", "valkey_cluster"])
def test_miss_then_hit_then_fallback(
    loaded: DbUrl, where: str, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    from flightcache.db import connect
    from flightcache.keys import Keys
    from flightcache.named_queries import bind, get
    from flightcache.patterns.cache_aside import CacheAside, ServedBy
    from flightcache.valkey_client import close, unreachable
    from flightcache.valkey_client import connect as vconnect

    server = request.getfixturevalue(where)
    client = vconnect(server.url)
    db = connect(loaded)
    try:
        q = get("flight_search")
        params = bind(db, q, {})
        pattern = CacheAside(client, db, Keys(key_prefix), ttl=120)
        first = pattern.get(q, params)
        assert not first.hit and first.stored and first.rows
        assert first.served_by is ServedBy.DATABASE and first.source == "database"
        second = pattern.get(q, params)
        assert second.hit and second.source == "cache" and second.rows == first.rows
        assert second.served_by is ServedBy.CACHE
        assert 0 < client.ttl(first.key) <= 120
        # a value that is not ours is a miss, and gets replaced
        client.set(first.key, "not json")
        third = pattern.get(q, params)
        assert not third.hit and third.rows == first.rows
        assert json.loads(client.get(first.key))["rows"] == first.rows
        # other parameters, other key
        other = pattern.get(q, {**params, "origin": "XXX"})
        assert other.key != first.key and other.rows == []
        down = CacheAside(unreachable(), db, Keys(key_prefix)).get(q, params)
        assert not down.hit and down.rows == first.rows
        assert down.source.startswith("database (Valkey unavailable")
        assert down.served_by is ServedBy.VALKEY_DOWN and not down.stored
        for key in (first.key, other.key):
            client.delete(key)
    finally:
        close(client)
        db.close()


def test_a_hit_is_one_get_and_a_decode(loaded: DbUrl, valkey_server: Any, key_prefix: str) -> None:
    """A hit sends one command (GET), runs no SQL and builds its key once: everything
    it costs beyond the GET is the decoding. The value stays JSON text that any JSON
    reader (and `flightcache valkey GET`) reads: UTF-8 as it is, NaN as null."""
    import math

    from flightcache.db import connect
    from flightcache.keys import Keys
    from flightcache.named_queries import bind, get
    from flightcache.patterns import cache_aside
    from flightcache.patterns.cache_aside import CacheAside
    from flightcache.trace import Tracer
    from flightcache.valkey_client import close
    from flightcache.valkey_client import connect as vconnect

    client = vconnect(valkey_server.url)
    db = connect(loaded)
    tracer = Tracer()
    tracer.instrument(client)
    try:
        q = get("passenger_bookings")
        params = bind(db, q, {})
        keys = Keys(key_prefix)
        pattern = CacheAside(client, tracer.database(db), keys, ttl=120)
        first = pattern.get(q, params)
        assert first.stored and first.rows
        commands, statements = tracer.take()
        assert [c[0] for c in commands] == ["GET", "SET"] and len(statements) == 1
        digests = 0
        real_query = keys.query

        def counted(name: str, params: Any = None) -> str:
            nonlocal digests
            digests += 1
            return real_query(name, params)

        keys.query = counted  # type: ignore[method-assign]
        for _ in range(3):
            hit = pattern.get(q, params)
            assert hit.hit and hit.rows == first.rows and hit.bytes == first.bytes
        commands, statements = tracer.take()
        assert commands == [["GET", first.key]] * 3 and statements == []
        assert digests == 0  # the key was named once, on the first read
        stored = client.get(first.key)
        assert json.loads(stored) == {"columns": first.columns, "rows": first.rows}
        assert len(stored.encode()) == first.bytes
    finally:
        close(client)
        db.close()
    text = cache_aside.encode(["name", "x"], [("Zürich", math.nan)])
    assert text == '{"columns":["name","x"],"rows":[["Zürich",null]]}'


def test_cli_demo_json_and_cleanup(
    cli: Any, loaded: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    args = ("--db-url", loaded.url(redact=False), "--valkey-url", str(valkey_server.url))
    result = cli(*args, "--key-prefix", key_prefix, "cache-aside", "--json", "--repeat", "5")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["demo"] == "cache-aside" and doc["key_prefix"] == key_prefix + "cache-aside:"
    steps = [r for r in doc["records"] if r["type"] == "step"]
    assert [s["hit"] for s in steps[:2]] == [False, True]
    assert steps[0]["sql"] and steps[0]["valkey"][0].startswith("GET " + key_prefix)
    assert any(v.startswith("SET ") and v.endswith("EX 3600") for v in steps[0]["valkey"])
    assert steps[1]["sql"] == []  # a hit runs no SQL
    assert any("Valkey unavailable" in s["outcome"] for s in steps)
    speedup, floor = [r for r in doc["records"] if r["type"] == "timing"]
    assert [s["label"] for s in speedup["series"]] == ["database", "cache-aside hit"]
    assert [s["label"] for s in floor["series"]] == ["bare GET", "cache-aside hit"]
    assert all(s["n"] == 5 and s["p50"] > 0 for s in speedup["series"] + floor["series"])
    assert _keys(valkey_server.url, key_prefix) == []  # the demo cleaned up after itself


def test_cli_demo_keep_and_cluster(
    cli: Any, loaded: DbUrl, valkey_cluster: Any, key_prefix: str
) -> None:
    args = ("--db-url", loaded.url(redact=False), "--valkey-url", str(valkey_cluster.url))
    result = cli(*args, "--key-prefix", key_prefix, "cache-aside", "--repeat", "3", "--keep")
    assert result.code == 0, result.err
    assert "HIT" in result.out and "p50" in result.out and "keys kept" in result.out
    kept = _keys(valkey_cluster.url, key_prefix)
    assert len(kept) == 1 and kept[0].startswith(key_prefix + "cache-aside:query:")
    rerun = cli(*args, "--key-prefix", key_prefix, "cache-aside", "--repeat", "3", "--json")
    assert rerun.code == 0, rerun.err
    assert json.loads(rerun.out)["records"][0]["hit"] is False  # leftovers cleared first
    assert _keys(valkey_cluster.url, key_prefix) == []


def test_cli_demo_with_valkey_down(cli: Any, loaded: DbUrl) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli(
        "--db-url",
        loaded.url(redact=False),
        "--valkey-url",
        f"valkey://127.0.0.1:{port}",
        "cache-aside",
        "--json",
    )
    assert result.code == 0, result.err
    assert "Valkey is down" in result.err
    steps = json.loads(result.out)["records"]
    assert steps[0]["outcome"].startswith("Valkey is down") and steps[0]["rows"] > 0
    assert not [r for r in steps if r["type"] == "timing"]


def test_bad_input(cli: Any, loaded: DbUrl, valkey_server: Any, key_prefix: str) -> None:
    args = ("--db-url", loaded.url(redact=False), "--valkey-url", str(valkey_server.url))
    bad = cli(*args, "cache-aside", "--query", "nope")
    assert bad.code == 2 and "no query named 'nope'" in bad.err and "Traceback" not in bad.err
    bad = cli(*args, "cache-aside", "-q", "passenger_bookings", "passenger_id=12x")
    assert bad.code == 2 and "whole number" in bad.err
    bad = cli(*args, "cache-aside", "-q", "flight_search", "day=yesterday")
    assert bad.code == 2 and "date like" in bad.err
    bad = cli(*args, "cache-aside", "-q", "flight_search", "colour=red")
    assert bad.code == 2 and "no parameter colour" in bad.err
    bad = cli(*args, "cache-aside", "-q", "flight_search", "origin")
    assert bad.code == 2 and "NAME=VALUE" in bad.err
    sneaky = cli(
        *args,
        "--key-prefix",
        key_prefix,
        "cache-aside",
        "-q",
        "flight_search",
        "origin=FRA' OR '1'='1",
        "--json",
        "--repeat",
        "2",
    )
    assert sneaky.code == 0, sneaky.err
    assert json.loads(sneaky.out)["records"][0]["rows"] == 0  # a parameter, not SQL


def test_query_commands(cli: Any, loaded: DbUrl) -> None:
    args = ("--db-url", loaded.url(redact=False))
    listing = cli("query", "list")
    for name in (
        "airline_route_analysis",
        "flight_search",
        "passenger_bookings",
        "top_airports_daily",
    ):
        assert name in listing.out
    for dialect in ("mysql", "postgresql"):
        shown = cli("query", "show", "flight_search", "--dialect", dialect)
        assert shown.code == 0 and "%(origin)s" in shown.out
    assert "`from`" in cli("query", "show", "flight_search", "--dialect", "mysql").out
    ran = cli(*args, "query", "run", "airline_route_analysis", "--repeat", "3")
    assert ran.code == 0 and "total_routes" in ran.out and "p50" in ran.out
    ran = cli(*args, "query", "run", "top_airports_daily")
    assert ran.code == 0 and "bookings" in ran.out
    ran = cli(*args, "query", "run", "passenger_bookings", "passenger_id=-5")
    assert ran.code == 0 and "0 rows" in ran.out
    plan = cli(*args, "query", "explain", "flight_search")
    assert plan.code == 0 and plan.out.strip()
    assert cli(*args, "query", "run", "nope").code == 2
    assert cli("query", "show", "flight_search", "--dialect", "oracle").code == 2


def test_valkey_stopped_mid_run_falls_back_then_recovers(loaded: DbUrl, key_prefix: str) -> None:
    """A real Valkey stopped between two reads, then started again on the same port."""
    import shutil

    from flightcache.config import ValkeyUrl
    from flightcache.db import connect
    from flightcache.keys import Keys
    from flightcache.named_queries import bind, get
    from flightcache.patterns.cache_aside import CacheAside
    from flightcache.stack import proc
    from flightcache.stack.valkey import ValkeyNode
    from flightcache.valkey_client import close
    from flightcache.valkey_client import connect as vconnect

    from .conftest import public_tempdir

    root = public_tempdir("fc-test-stop-")
    node = ValkeyNode(root / "node", proc.free_port())
    node.start()
    client = vconnect(ValkeyUrl.parse(f"valkey://127.0.0.1:{node.port}"), timeout=1.0)
    db = connect(loaded)
    try:
        q = get("passenger_bookings")
        params = bind(db, q, {})
        pattern = CacheAside(client, db, Keys(key_prefix))
        assert not pattern.get(q, params).hit and pattern.get(q, params).hit
        node.stop()
        down = pattern.get(q, params)
        assert not down.hit and down.rows and "Valkey unavailable" in down.source
        node.start()  # an empty Valkey (no persistence of the cache): miss, then hit again
        back = pattern.get(q, params)
        assert not back.hit and back.stored and pattern.get(q, params).hit
    finally:
        close(client)
        db.close()
        node.stop()
        shutil.rmtree(root, ignore_errors=True)
