"""`flightcache ttl`: class TTLs in their ranges, jitter spreads expiries, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightcache.config import DbUrl
from flightcache.measure.histogram import bucket_counts, densest_window, nice_width
from flightcache.patterns.ttl import DATA_CLASSES, Jitter
from tests.demo_helpers import leftover_keys, load_tiny


def _run(cli: Any, db: str, valkey: Any, prefix: str, *args: str) -> dict[str, Any]:
    result = cli(
        "--db-url",
        db,
        "--valkey-url",
        str(valkey.url),
        "--key-prefix",
        prefix,
        "ttl",
        "--json",
        *args,
    )
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


def _given(doc: dict[str, Any]) -> dict[str, Any]:
    steps = [r["data"] for r in doc["records"] if "given" in r.get("data", {})]
    return {s["series"]: s["given"] for s in steps}


def _check_document(doc: dict[str, Any], keys: int, percent: float) -> None:
    assert doc["demo"] == "ttl"
    records = doc["records"]
    assert {r["type"] for r in records} == {"step", "table", "histogram"}
    classes = [r["data"] for r in records if r["type"] == "step" and "class" in r["data"]]
    assert [c["class"] for c in classes] == [data_class.name for data_class in DATA_CLASSES]
    for c, data_class in zip(classes, DATA_CLASSES, strict=True):
        base = data_class.ttl_s * 1000
        assert c["min_ms"] == round(base * (1 - percent / 100))
        assert c["max_ms"] == round(base * (1 + percent / 100))
        assert c["min_ms"] <= c["given_ms"] <= c["max_ms"]
        # PTTL counts down from the TTL given a moment ago
        assert c["given_ms"] - 5000 <= c["pttl_ms"] <= c["given_ms"]
        assert abs(c["ttl_s"] * 1000 - c["pttl_ms"]) <= 1000
    batch = next(r["data"] for r in records if r["type"] == "step" and "bounds_ms" in r["data"])
    low, high = batch["bounds_ms"]
    plain, jittered = batch["plain"], batch["jitter"]
    assert plain["with_ttl"] == jittered["with_ttl"] == keys
    assert plain["max_ms"] <= batch["base_ms"] and plain["min_ms"] > batch["base_ms"] - 5000
    assert plain["peak_1s"] == keys  # the cliff: every key in the same second
    assert low - 5000 < jittered["min_ms"] and jittered["max_ms"] <= high
    assert jittered["peak_1s"] < plain["peak_1s"] / 3
    assert jittered["peak_bucket"] < plain["peak_bucket"]
    histogram = next(r for r in records if r["type"] == "histogram")
    for counts in histogram["series"].values():
        assert len(counts) == len(histogram["edges"]) - 1
        assert sum(counts) == keys


def test_ttl_demo(cli: Any, db_url: DbUrl, valkey_server: Any, key_prefix: str) -> None:
    db = load_tiny(db_url)
    doc = _run(cli, db, valkey_server, key_prefix, "--keys", "1500", "--seed", "7")
    _check_document(doc, 1500, 10.0)
    assert doc["database"] == db_url.kind
    assert leftover_keys(valkey_server.url, key_prefix) == []
    again = _run(cli, db, valkey_server, key_prefix, "--keys", "1500", "--seed", "7")
    # the same seed gives the same TTLs: the same spread and the same peak
    given, given2 = (_given(d) for d in (doc, again))
    assert given == given2
    assert given["plain"]["peak_1s"] == 1500
    assert 0 < given["jitter"]["peak_1s"] < 1500 / 3
    assert 54_000 <= given["jitter"]["min_ms"] < given["jitter"]["max_ms"] <= 66_000
    kept = cli(
        "--db-url",
        db,
        "--valkey-url",
        str(valkey_server.url),
        "--key-prefix",
        key_prefix,
        "ttl",
        "--keys",
        "10",
        "--keep",
    )
    assert kept.code == 0 and "expiry cliff" in kept.out and "█" in kept.out
    left = leftover_keys(valkey_server.url, key_prefix)
    assert len(left) == 4 + 2 * 10
    from flightcache.valkey_client import connect, delete_matching

    delete_matching(connect(valkey_server.url), key_prefix + "*")


@pytest.mark.cluster
def test_ttl_demo_on_a_cluster(
    cli: Any, db_url: DbUrl, valkey_cluster: Any, key_prefix: str
) -> None:
    db = load_tiny(db_url)
    doc = _run(cli, db, valkey_cluster, key_prefix, "--keys", "1200", "--jitter", "20")
    _check_document(doc, 1200, 20.0)
    assert leftover_keys(valkey_cluster.url, key_prefix) == []


def test_watch_counts_real_expiries(
    cli: Any, mysql_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    db = load_tiny(mysql_url)  # the watch only talks to Valkey: one database is enough
    doc = _run(
        cli,
        db,
        valkey_server,
        key_prefix,
        "--keys",
        "200",
        "--ttl",
        "2",
        "--jitter",
        "50",
        "--watch",
    )
    watch = next(r["data"] for r in doc["records"] if "peak_per_second" in r.get("data", {}))
    assert all(v == 0 for v in watch["left"].values())
    assert [sum(v) for v in watch["expired"].values()] == [200, 200]
    peaks = list(watch["peak_per_second"].values())
    assert peaks[0] == 200 and peaks[1] < 200


def test_class_cache_hits_and_survives_valkey_down(
    db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    from flightcache.db import connect as connect_db
    from flightcache.keys import Keys
    from flightcache.patterns.ttl import ClassedCache
    from flightcache.valkey_client import connect, delete_matching, unchecked

    load_tiny(db_url)
    conn = connect_db(db_url)
    loads: list[int] = []

    def load() -> list[int]:
        loads.append(1)
        return [int(conn.fetch("SELECT COUNT(*) FROM airport").rows[0][0])]

    keys = Keys(key_prefix).scope("ttl")
    client = connect(valkey_server.url)
    cache = ClassedCache(client, keys, Jitter(10, seed=3))
    first = cache.get_or_load(DATA_CLASSES[2], load)
    second = cache.get_or_load(DATA_CLASSES[2], load)
    assert not first.hit and second.hit and second.value == first.value and len(loads) == 1
    assert 270_000 <= (first.ttl_ms or 0) <= 330_000
    assert 0 < client.pttl(cache.key(DATA_CLASSES[2])) <= first.ttl_ms
    delete_matching(client, key_prefix + "*")
    from flightcache.config import ValkeyUrl

    down = ClassedCache(unchecked(ValkeyUrl.parse("valkey://127.0.0.1:1")), keys, Jitter(10))
    fallback = down.get_or_load(DATA_CLASSES[0], load)
    assert fallback.value == first.value and not fallback.hit and fallback.ttl_ms is None
    conn.close()


def test_jitter_is_seeded_and_bounded() -> None:
    a = [Jitter(10, seed=5).ttl_ms(60) for _ in range(1)]
    first, second = Jitter(10, seed=5), Jitter(10, seed=5)
    xs = [first.ttl_ms(60) for _ in range(2000)]
    assert xs == [second.ttl_ms(60) for _ in range(2000)]
    assert a[0] == xs[0]
    assert min(xs) >= 54_000 and max(xs) <= 66_000 and len(set(xs)) > 1000
    assert Jitter(0, seed=5).ttl_ms(60) == 60_000
    assert Jitter(100, seed=1).bounds_ms(1) == (1, 2000)
    with pytest.raises(ValueError):
        Jitter(101)


def test_histogram_helpers() -> None:
    assert nice_width(12_000, 24, minimum=1000) == 1000
    assert nice_width(720_000, 24, minimum=1000) == 50_000
    buckets = bucket_counts({"a": [0, 999, 1000, 2500], "b": [1999]}, 1000)
    assert buckets.edges == [0, 1000, 2000, 3000]
    assert buckets.counts == {"a": [2, 1, 1], "b": [0, 1, 0]}
    assert buckets.peak("a") == 2
    # a window that straddles a bucket edge still counts every value in it
    assert densest_window([990, 1000, 1010, 5000], 1000) == (3, 990)
    assert densest_window([], 1000) == (0, 0)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--keys", "0"], "--keys 0 is out of range"),
        (["--keys", "1000001"], "--keys 1000001 is out of range"),
        (["--ttl", "-5"], "--ttl -5 is out of range"),
        (["--ttl", "0"], "--ttl 0 is out of range"),
        (["--jitter", "101"], "--jitter 101 is out of range"),
        (["--jitter", "-1"], "--jitter -1 is out of range"),
        (["--ttl", "600", "--watch"], "--watch waits"),
    ],
)
def test_bad_input(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "ttl", *args)
    assert result.code == 3, result.err
    assert result.err.startswith("error: ") and fragment in result.err
    assert "hint:" in result.err and "Traceback" not in result.err


def test_non_numeric_keys_is_a_usage_error(cli: Any) -> None:
    result = cli("ttl", "--keys", "many")
    assert result.code == 2 and "--keys" in result.err and "integer" in result.err
