"""flightcache hit-ratio: the Zipf sampler, the counting cache-aside reader, the CLI."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from flightcache.config import DbUrl
from flightcache.measure.zipf import top_share, zipf_cdf, zipf_ranks


def test_zipf_is_deterministic_and_skewed() -> None:
    first = zipf_ranks(200, 1.1, 5000, seed=7)
    assert first == zipf_ranks(200, 1.1, 5000, seed=7)
    assert first != zipf_ranks(200, 1.1, 5000, seed=8)
    assert all(0 <= r < 200 for r in first)
    counts = Counter(first)
    assert counts[0] > counts[1] > counts[4] > counts[50]
    expected = 1 / zipf_cdf(200, 1.1)[-1]  # P(rank 0)
    assert abs(counts[0] / 5000 - expected) < 0.03
    # more skew, more of the stream on the head
    shares = [top_share(zipf_ranks(200, s, 5000, seed=7), 10) for s in (0.0, 0.6, 1.1, 1.5)]
    assert shares == sorted(shares) and shares[0] < 0.1 < 0.8 < shares[-1]


def test_zipf_rejects_what_it_cannot_sample() -> None:
    with pytest.raises(ValueError):
        zipf_ranks(0, 1.0, 10, seed=1)
    with pytest.raises(ValueError):
        zipf_ranks(10, -0.5, 10, seed=1)
    assert zipf_ranks(1, 1.1, 3, seed=1) == [0, 0, 0]


def _run(cli: Any, db_url: DbUrl, valkey: Any, key_prefix: str, *extra: str) -> dict[str, Any]:
    servers = [f"--db-url={db_url.url(redact=False)}", f"--valkey-url={valkey.url}"]
    options = ["--requests=400", "--repeat=5", "--json", *extra]
    result = cli(*servers, f"--key-prefix={key_prefix}", "hit-ratio", *options)
    assert result.code == 0, result.err
    document: dict[str, Any] = json.loads(result.out)
    return document


def _replay(document: dict[str, Any]) -> dict[str, Any]:
    steps = [r for r in document["records"] if r["type"] == "step"]
    data: dict[str, Any] = steps[3]["data"]
    return data


def _check_run(document: dict[str, Any], valkey: Any, key_prefix: str) -> None:
    from flightcache.valkey_client import connect, primaries

    records = document["records"]
    steps = [r for r in records if r["type"] == "step"]
    assert [s["hit"] for s in steps[1:3]] == [False, True]
    miss = steps[1]
    assert any(line.startswith("GET ") for line in miss["valkey"])
    assert any(line.startswith("SET ") and line.endswith("EX 30") for line in miss["valkey"])
    assert any("FROM flight" in line for line in miss["sql"])
    assert not steps[2]["sql"]  # a hit runs no SQL

    run = steps[3]["data"]
    assert run["requests"] == 400 and run["hits"] + run["misses"] == 400
    assert run["errors"] == 0
    # this test's Valkey serves no one else: the server saw exactly our lookups
    assert run["server"] == {"keyspace_hits": run["hits"], "keyspace_misses": run["misses"]}
    assert sum(s["requests"] for s in run["slices"]) == 400
    assert sum(s["hits"] for s in run["slices"]) == run["hits"]

    tables = {r["title"]: r for r in records if r["type"] == "table"}
    timeline = tables["Hit ratio over time"]
    assert [row[1] for row in timeline["rows"]] == [s["hits"] for s in run["slices"]]
    grid = tables["How skew and TTL move the hit ratio"]
    assert grid["columns"][0] == "skew" and grid["columns"][-1] == "hit ratio %"
    ratio = {(row[0], row[1]): row[-1] for row in grid["rows"]}
    for ttl in (3, 30):
        assert ratio[0.6, ttl] < ratio[1.1, ttl] < ratio[1.5, ttl]
    for skew in (0.6, 1.1, 1.5):
        assert ratio[skew, 3] <= ratio[skew, 30]
    assert ratio[1.1, 30] == round(100 * run["hits"] / 400, 1)  # the same stream, reused

    client = connect(valkey.url)
    left = [k for node in primaries(client) for k in node.scan_iter(match=key_prefix + "*")]
    client.close()
    assert left == []


def test_hit_ratio_counts_match_the_server(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    document = _run(cli, tiny_db_url, valkey_server, key_prefix)
    assert document["demo"] == "hit-ratio" and document["key_prefix"] == key_prefix + "hit-ratio:"
    _check_run(document, valkey_server, key_prefix)


@pytest.mark.cluster
def test_hit_ratio_on_a_cluster_sums_every_primary(
    cli: Any, tiny_db_url: DbUrl, valkey_cluster: Any, key_prefix: str
) -> None:
    document = _run(cli, tiny_db_url, valkey_cluster, key_prefix)
    _check_run(document, valkey_cluster, key_prefix)
    assert _replay(document)["primaries"] == 3


def test_the_same_seed_gives_the_same_run(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    one = _run(cli, tiny_db_url, valkey_server, key_prefix, "--seed", "5", "--skew", "0.9")
    two = _run(cli, tiny_db_url, valkey_server, key_prefix, "--seed", "5", "--skew", "0.9")
    assert _replay(one) == _replay(two)
    assert _replay(one)["hits"] > 0


def test_reader_falls_back_to_the_database_when_valkey_is_down(tiny_db_url: DbUrl) -> None:
    from flightcache.config import ValkeyUrl
    from flightcache.db import connect
    from flightcache.keys import Keys
    from flightcache.patterns.hit_ratio import FlightReader
    from flightcache.valkey_client import unchecked

    conn = connect(tiny_db_url)
    try:
        flight_id = int(conn.fetch("SELECT MIN(flight_id) FROM flight").rows[0][0])
        down = unchecked(ValkeyUrl.parse("valkey://127.0.0.1:1"), timeout=0.2)
        reader = FlightReader(down, conn, Keys("fctest:down:"), ttl=30)
        lookup = reader.get(flight_id)
        assert lookup.value is not None and json.loads(lookup.value)["flight_id"] == flight_id
        assert (lookup.hit, lookup.stored) == (False, False)
        assert (reader.hits, reader.misses, reader.errors) == (0, 1, 1)
        missing = reader.get(-1)  # an id that does not exist: nothing to cache
        assert missing.value is None and reader.misses == 2
    finally:
        conn.close()


def test_reader_counts_its_own_ratio(
    tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    from flightcache.db import connect
    from flightcache.keys import Keys
    from flightcache.patterns.hit_ratio import FlightReader
    from flightcache.valkey_client import close, delete_matching
    from flightcache.valkey_client import connect as connect_valkey

    conn = connect(tiny_db_url)
    client = connect_valkey(valkey_server.url)
    try:
        flight_id = int(conn.fetch("SELECT MIN(flight_id) FROM flight").rows[0][0])
        reader = FlightReader(client, conn, Keys(key_prefix), ttl=30)
        assert reader.ratio == 0.0  # nothing read yet
        first, second = reader.get(flight_id), reader.get(flight_id)
        assert (first.hit, first.stored, second.hit) == (False, True, True)
        assert second.value == first.value
        assert (reader.hits, reader.misses, reader.errors) == (1, 1, 0)
        assert reader.ratio == 0.5
        assert 0 < client.ttl(Keys(key_prefix).flight(flight_id)) <= 30
    finally:
        delete_matching(client, key_prefix + "*")
        close(client)
        conn.close()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--requests", "0"),
        ("--requests", "-5"),
        ("--skew", "0"),
        ("--skew", "-1.5"),
        ("--ttl", "0"),
    ],
)
def test_bad_input_is_a_usage_error(cli: Any, option: str, value: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "hit-ratio", option, value)
    assert result.code == 2, (result.out, result.err)
    assert option in result.err and "greater than 0" in result.err
    assert "Traceback" not in result.err


def test_non_numeric_input_is_a_usage_error(cli: Any) -> None:
    result = cli("hit-ratio", "--skew", "steep")
    assert result.code == 2 and "--skew" in result.err


def test_the_command_takes_its_defaults_and_limits_from_the_demos_options() -> None:
    import typer.main

    from flightcache.cli import app
    from flightcache.demos.hit_ratio import REQUESTS_MAX, Options

    params = {p.name: p for p in typer.main.get_command(app).commands["hit-ratio"].params}  # type: ignore[attr-defined]
    for name in ("requests", "skew", "ttl", "seed"):
        assert params[name].default == getattr(Options, name), name
    assert params["requests"].max == REQUESTS_MAX
    assert Options.bars is False  # bars only in text output, set by the command
