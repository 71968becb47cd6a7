"""flightcache eviction: policies under a small maxmemory, and the settings put back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flightcache.config import DbUrl, Settings
from tests.conftest import own_valkey_server

MARGIN = 1024 * 1024


def _nodes(valkey: Any) -> tuple[Any, list[Any]]:
    from flightcache.valkey_client import connect, primaries

    client = connect(valkey.url)
    return client, primaries(client)


def _settings(valkey: Any) -> list[dict[str, str]]:
    from flightcache.valkey_client import close, config_value

    client, nodes = _nodes(valkey)
    try:
        return [
            {name: config_value(n, name) for name in ("maxmemory", "maxmemory-policy")}
            for n in nodes
        ]
    finally:
        close(client)


def _limit(valkey: Any, extra: int) -> int:
    """A maxmemory just above what the busiest primary uses now."""
    from flightcache.valkey_client import close, info

    client, nodes = _nodes(valkey)
    try:
        return max(int(info(n, "memory")["used_memory"]) for n in nodes) + extra
    finally:
        close(client)


valkey_server = own_valkey_server("fc-test-evict-")


@pytest.fixture
def unusual_settings(valkey_server: Any) -> Iterator[list[dict[str, str]]]:
    """Start from settings that are not the defaults, so that restoring them shows."""
    client, _ = _nodes(valkey_server)
    before = _settings(valkey_server)
    client.config_set("maxmemory", str(512 * 1024 * 1024))
    client.config_set("maxmemory-policy", "volatile-lfu")
    yield _settings(valkey_server)
    client.config_set("maxmemory", before[0]["maxmemory"])
    client.config_set("maxmemory-policy", before[0]["maxmemory-policy"])
    client.close()


def _args(db_url: DbUrl, valkey: Any, key_prefix: str) -> list[str]:
    return [
        "--db-url",
        db_url.url(redact=False),
        "--valkey-url",
        str(valkey.url),
        "--key-prefix",
        key_prefix,
        "eviction",
    ]


def _policy_steps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["data"]["policy"]: r["data"]
        for r in document["records"]
        if r["type"] == "step" and "policy" in r["data"]
    }


def test_policies_side_by_side_and_settings_restored(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str, unusual_settings: Any
) -> None:
    limit = _limit(valkey_server, MARGIN + 100 * 1024)
    result = cli(
        *_args(tiny_db_url, valkey_server, key_prefix),
        "--yes",
        "--maxmemory",
        str(limit),
        "--keys",
        "6000",
        "--requests",
        "500",
        "--policies",
        "noeviction,allkeys-lru,allkeys-lfu",
        "--repeat",
        "40",
        "--json",
    )
    assert result.code == 0, result.err
    assert "acts on the whole server" in result.err
    document = json.loads(result.out)
    assert document["demo"] == "eviction"
    steps = _policy_steps(document)
    assert list(steps) == ["noeviction", "allkeys-lru", "allkeys-lfu"]
    noevict, lru = steps["noeviction"], steps["allkeys-lru"]
    assert noevict["oom_errors"] > 0 and noevict["evicted_keys"] == 0
    assert noevict["written"] + noevict["oom_errors"] >= 6000  # the fill, refused in part
    assert lru["evicted_keys"] > 0 and lru["oom_errors"] == 0 and lru["written"] == 6000
    for data in steps.values():
        assert data["hits"] + data["misses"] == 500
        assert 0 < data["keys_kept"] < 6000
        assert 0.0 < data["hit_ratio"] < 1.0
    # Which policy hits more depends on how much of the random fill fits beside the
    # shared server's other keys, so no order of hit ratios is asserted: what holds by
    # construction (noeviction refuses and evicts nothing, LRU evicts and refuses
    # nothing) is checked above.
    table = next(r for r in document["records"] if r["type"] == "table")
    assert table["columns"][:4] == ["policy", "hit ratio %", "evicted_keys", "OOM errors"]
    assert [row[0] for row in table["rows"]] == list(steps)
    timing = next(r for r in document["records"] if r["type"] == "timing")
    assert [(s["label"], s["n"]) for s in timing["series"]] == [(p, 40) for p in steps]
    assert _settings(valkey_server) == unusual_settings
    # and the demo's keys are gone
    client, _ = _nodes(valkey_server)
    assert list(client.scan_iter(match=key_prefix + "*")) == []
    client.close()


@pytest.mark.cluster
def test_every_primary_of_a_cluster_is_set_and_restored(
    cli: Any, tiny_db_url: DbUrl, valkey_cluster: Any, key_prefix: str
) -> None:
    before = _settings(valkey_cluster)
    assert len(before) == 3
    result = cli(
        *_args(tiny_db_url, valkey_cluster, key_prefix),
        "--yes",
        "--maxmemory",
        str(_limit(valkey_cluster, MARGIN + 50 * 1024)),
        "--keys",
        "15000",
        "--requests",
        "300",
        "--policies",
        "allkeys-lru",
        "--json",
    )
    assert result.code == 0, result.err
    lru = _policy_steps(json.loads(result.out))["allkeys-lru"]
    assert lru["evicted_keys"] > 0 and lru["hits"] + lru["misses"] == 300
    assert _settings(valkey_cluster) == before


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_settings_restored_when_the_demo_fails_midway(
    cli: Any,
    tiny_db_url: DbUrl,
    valkey_server: Any,
    key_prefix: str,
    unusual_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
) -> None:
    from flightcache.demos import eviction

    seen: list[dict[str, str]] = []

    def fail(self: Any, stream: Any, result: Any) -> None:
        seen.extend(_settings(valkey_server))  # the demo's settings are in force here
        raise failure

    monkeypatch.setattr(eviction.EvictionReplay, "replay", fail)
    result = cli(
        *_args(tiny_db_url, valkey_server, key_prefix),
        "--yes",
        "--keys",
        "300",
        "--policies",
        "allkeys-lru",
    )
    assert result.code == (130 if isinstance(failure, KeyboardInterrupt) else 70)
    assert seen and seen[0]["maxmemory-policy"] == "allkeys-lru"
    assert _settings(valkey_server) == unusual_settings


def test_refuses_a_valkey_it_did_not_start_without_yes(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    before = _settings(valkey_server)
    result = cli(*_args(tiny_db_url, valkey_server, key_prefix))
    assert result.code == 1
    assert "did not start" in result.err and "--yes" in result.err and "hint:" in result.err
    assert "Traceback" not in result.err
    assert _settings(valkey_server) == before


def test_consent_is_needed_only_for_a_configured_url(tmp_path: Any) -> None:
    from flightcache.commands.eviction import require_consent
    from flightcache.config import ValkeyUrl
    from flightcache.errors import FlightcacheError

    embedded = Settings(db_url=None, valkey_url=None, state_dir=tmp_path)
    require_consent(embedded, yes=False)  # flightcache's own Valkey: no question
    configured = Settings(
        db_url=None, valkey_url=ValkeyUrl.parse("valkey://127.0.0.1:6380"), state_dir=tmp_path
    )
    require_consent(configured, yes=True)
    with pytest.raises(FlightcacheError, match="did not start"):
        require_consent(configured, yes=False)


def test_maxmemory_below_used_memory_is_refused(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    before = _settings(valkey_server)
    result = cli(*_args(tiny_db_url, valkey_server, key_prefix), "--yes", "--maxmemory", "512kb")
    assert result.code == 3, result.err
    assert "below what Valkey" in result.err and "hint:" in result.err
    assert _settings(valkey_server) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--policies", "allkeys-lru,most-hated"], "unknown policy most-hated"),
        (["--policies", ","], "unknown policy"),
        (["--maxmemory", "four megabytes"], "not a size"),
        (["--maxmemory", "4tb"], "not a size"),
        (["--maxmemory", "-4mb"], "not a size"),
        (["--keys", "0"], "greater than 0"),
        (["--requests", "0"], "greater than 0"),
        (["--skew", "0"], "greater than 0"),
    ],
)
def test_bad_input_is_a_usage_error(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "eviction", "--yes", *args)
    assert result.code == 2, (result.out, result.err)
    assert fragment in result.err and "Traceback" not in result.err


def test_sizes_parse_like_valkey_conf() -> None:
    from flightcache.patterns.eviction import parse_policies, parse_size

    assert parse_size("4194304") == 4 * 1024 * 1024
    assert parse_size("4mb") == parse_size("4MB") == 4 * 1024 * 1024
    assert parse_size("512kb") == 512 * 1024 and parse_size("1k") == 1000
    assert parse_size("1gb") == 1024**3 and parse_size("2m") == 2_000_000
    assert parse_policies("allkeys-lru, ALLKEYS-LFU,allkeys-lru") == ["allkeys-lru", "allkeys-lfu"]


def test_the_command_takes_its_defaults_and_limits_from_the_demos_options() -> None:
    import typer.main

    from flightcache.cli import app
    from flightcache.demos.eviction import KEYS_MAX, REQUESTS_MAX, Options
    from flightcache.patterns.eviction import parse_policies

    params = {p.name: p for p in typer.main.get_command(app).commands["eviction"].params}  # type: ignore[attr-defined]
    for name in ("keys", "requests", "skew", "seed", "maxmemory"):
        assert params[name].default == getattr(Options, name), name
    assert tuple(parse_policies(params["policies"].default)) == Options.policies
    assert (params["keys"].max, params["requests"].max) == (KEYS_MAX, REQUESTS_MAX)
