"""flightcache memory-pressure: OOM handled, eviction at work, settings and slow log kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flightcache.config import DbUrl
from tests.conftest import keys_left, own_valkey_server, server_args
from tests.demo_helpers import load_tiny

SETTINGS = ("maxmemory", "maxmemory-policy", "slowlog-log-slower-than")
OOM = "OOM command not allowed when used memory > 'maxmemory'."
MARGIN = 1024 * 1024


def _client(valkey: Any) -> Any:
    from flightcache.valkey_client import connect

    return connect(valkey.url)


def _settings(valkey: Any) -> list[dict[str, str]]:
    from flightcache.valkey_client import close, config_value, primaries

    client = _client(valkey)
    try:
        return [{n: config_value(node, n) for n in SETTINGS} for node in primaries(client)]
    finally:
        close(client)


def _limit(valkey: Any, extra: int) -> int:
    from flightcache.valkey_client import close, info, primaries

    client = _client(valkey)
    try:
        return max(int(info(n, "memory")["used_memory"]) for n in primaries(client)) + extra
    finally:
        close(client)


valkey_server = own_valkey_server("fc-test-mempress-")


@pytest.fixture
def unusual(valkey_server: Any) -> Iterator[list[dict[str, str]]]:
    """Settings that are not the defaults, and one slow log entry of someone else's."""
    client = _client(valkey_server)
    before = _settings(valkey_server)[0]
    client.config_set("slowlog-log-slower-than", "0")
    client.set("someone-else", "1")  # logged: every command is slow at 0 µs
    client.config_set("maxmemory", str(512 * 1024 * 1024))
    client.config_set("maxmemory-policy", "volatile-lfu")
    client.config_set("slowlog-log-slower-than", "25000")
    yield _settings(valkey_server)
    client.delete("someone-else")
    client.config_set("maxmemory", before["maxmemory"])
    client.config_set("maxmemory-policy", before["maxmemory-policy"])
    client.config_set("slowlog-log-slower-than", before["slowlog-log-slower-than"])
    client.close()


def _run(cli: Any, url: Any, valkey: Any, prefix: str, *args: str) -> Any:
    db = url if isinstance(url, DbUrl) else DbUrl.parse(url)
    return cli(*server_args(db, valkey, prefix), "memory-pressure", *args)


def _steps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in document["records"] if r["type"] == "step"}


def _find(steps: dict[str, dict[str, Any]], start: str) -> dict[str, Any]:
    return next(s for t, s in steps.items() if t.startswith(start))


def test_oom_handled_eviction_and_everything_put_back(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str, unusual: Any
) -> None:
    client = _client(valkey_server)
    someone = [e["id"] for e in client.slowlog_get(128) if b"someone-else" in e["command"]]
    assert someone
    result = _run(
        cli,
        tiny_db_url,
        valkey_server,
        key_prefix,
        "--yes",
        "--rows",
        "3000",
        "--maxmemory",
        str(_limit(valkey_server, MARGIN + 200 * 1024)),
        "--slower-than",
        "500",
        "--json",
    )
    assert result.code == 0, result.err
    assert "acts on the whole server" in result.err
    steps = _steps(json.loads(result.out))
    assert all(s["ok"] for s in steps.values()), [t for t, s in steps.items() if not s["ok"]]
    fill = _find(steps, "Fill until Valkey refuses")["data"]
    assert fill["written"] > 0 and fill["oom_errors"] > 0 and fill["first_error"] == OOM
    app = _find(steps, "The application at the limit")["data"]
    assert not app["stored"] and all("could not store" in s for s in app["sources"])
    assert _find(steps, "What still works")["data"]["set_error"] == OOM
    for policy in ("allkeys-lru", "volatile-ttl", "allkeys-lfu"):
        data = _find(steps, policy)["data"]
        assert data["oom_errors"] == 0 and data["evicted_keys"] > 0
        assert data["written"] == fill["written"]
    assert _find(steps, "MEMORY DOCTOR")["data"]["doctor"]
    slow = _find(steps, "SLOWLOG GET")["data"]["entries"]
    assert {e["command"].split()[0] for e in slow} >= {"MSET", "ZUNIONSTORE"}
    assert _find(steps, "SLOWLOG RESET")["data"] == {"reset": False}
    # the user's slow log entry survived, and every setting is as it was
    assert someone[0] in [e["id"] for e in client.slowlog_get(128)]
    assert _settings(valkey_server) == unusual
    assert keys_left(client, key_prefix) == []
    client.close()


@pytest.mark.cluster
def test_every_primary_of_a_cluster_is_set_and_restored(
    cli: Any, mysql_url: DbUrl, valkey_cluster: Any, key_prefix: str
) -> None:
    url = load_tiny(mysql_url)
    before = _settings(valkey_cluster)
    assert len(before) == 3
    result = _run(
        cli,
        url,
        valkey_cluster,
        key_prefix,
        "--yes",
        "--rows",
        "2000",
        "--maxmemory",
        str(_limit(valkey_cluster, MARGIN + 100 * 1024)),
        "--json",
    )
    assert result.code == 0, result.err
    steps = _steps(json.loads(result.out))
    assert all(s["ok"] for s in steps.values()), [t for t, s in steps.items() if not s["ok"]]
    assert len(_find(steps, "Set maxmemory")["data"]["now"]) == 3
    assert _find(steps, "allkeys-lru")["data"]["evicted_keys"] > 0
    assert _settings(valkey_cluster) == before
    client = _client(valkey_cluster)
    assert keys_left(client, key_prefix) == []
    client.close()


@pytest.mark.parametrize(
    ("where", "failure"),
    [
        ("fill", RuntimeError("boom")),
        ("fill", KeyboardInterrupt()),
        ("slowlog", RuntimeError("boom")),
    ],
)
def test_settings_restored_when_the_demo_fails_midway(
    cli: Any,
    mysql_url: DbUrl,
    valkey_server: Any,
    key_prefix: str,
    unusual: Any,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    failure: BaseException,
) -> None:
    from flightcache.demos import memory_pressure as demo_module
    from flightcache.patterns import memory_pressure as pattern_module

    url = load_tiny(mysql_url)
    seen: list[dict[str, str]] = []

    def fail(*args: Any, **kwargs: Any) -> Any:
        seen.extend(_settings(valkey_server))  # the demo's settings are in force here
        raise failure

    target = "until_full" if where == "fill" else "entries"
    owner = demo_module.Filler if where == "fill" else pattern_module.SlowLog
    monkeypatch.setattr(owner, target, fail)
    result = _run(cli, url, valkey_server, key_prefix, "--yes", "--rows", "500")
    assert result.code == (130 if isinstance(failure, KeyboardInterrupt) else 70), result.err
    changed = "maxmemory-policy" if where == "fill" else "slowlog-log-slower-than"
    assert seen and seen[0][changed] != unusual[0][changed]
    assert _settings(valkey_server) == unusual


def test_refuses_a_valkey_it_did_not_start_without_yes(
    cli: Any, valkey_server: Any, key_prefix: str
) -> None:
    before = _settings(valkey_server)
    result = cli("--valkey-url", str(valkey_server.url), "memory-pressure")
    assert result.code == 1
    assert "did not start" in result.err and "--yes" in result.err and "hint:" in result.err
    assert "slowlog-log-slower-than" in result.err and "Traceback" not in result.err
    assert _settings(valkey_server) == before


@pytest.mark.parametrize("own", [True, False])
def test_slowlog_reset_only_on_flightcaches_own_valkey(
    valkey_server: Any, key_prefix: str, own: bool
) -> None:
    from flightcache.demos.base import DemoContext
    from flightcache.demos.memory_pressure import slowlog
    from flightcache.keys import Keys
    from flightcache.trace import Tracer
    from flightcache.valkey_client import delete_matching

    client = _client(valkey_server)
    before = _settings(valkey_server)
    client.config_set("slowlog-log-slower-than", "0")
    client.set(key_prefix + "marker", "1")
    client.config_set("slowlog-log-slower-than", before[0]["slowlog-log-slower-than"])
    ctx = DemoContext(db=None, valkey=client, keys=Keys(key_prefix), tracer=Tracer())  # type: ignore[arg-type]
    records = list(slowlog(ctx, [client], 0, own))
    assert all(r.ok for r in records if hasattr(r, "ok"))
    marker = [
        e for e in client.slowlog_get(128) if (key_prefix + "marker").encode() in e["command"]
    ]
    assert bool(marker) is not own
    assert _settings(valkey_server) == before
    delete_matching(client, key_prefix + "*")
    client.close()


def test_a_hash_layout_fills_and_is_refused_too(valkey_server: Any, key_prefix: str) -> None:
    from flightcache.demos.memory_pressure import Filler, FillResult
    from flightcache.keys import Keys
    from flightcache.patterns.eviction import MemoryLimits
    from flightcache.valkey_client import delete_matching

    client = _client(valkey_server)
    limits = MemoryLimits([client], None)
    record = {"booking_id": 1, "seat": None, "price": "99.00", "lastname": "Proell"}
    try:
        limits.apply([_limit(valkey_server, MARGIN + 100 * 1024)], "noeviction")
        result = FillResult("hash", "hash")
        assert Filler(client, Keys(key_prefix), [record], layout="hash").until_full(result)
        assert result.written > 100 and result.oom > 0 and result.first_error == OOM
        assert client.hgetall(Keys(key_prefix).pressure_row_hash(0))["seat"] == ""
    finally:
        limits.restore()
        delete_matching(client, key_prefix + "*")
        client.close()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--maxmemory", "lots"], "not a size"),
        (["--rows", "0"], "--rows"),
        (["--slower-than", "-1"], "--slower-than"),
    ],
)
def test_bad_input_is_a_usage_error(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "memory-pressure", "--yes", *args)
    assert result.code == 2, (result.out, result.err)
    assert fragment in result.err and "Traceback" not in result.err


def test_the_command_takes_its_defaults_and_limits_from_the_demos_options() -> None:
    import typer.main

    from flightcache.cli import app
    from flightcache.demos import memory_pressure

    Options = memory_pressure.Options
    command = typer.main.get_command(app).commands["memory-pressure"]  # type: ignore[attr-defined]
    params = {p.name: p for p in command.params}
    for name in ("rows", "slower_than", "maxmemory"):
        assert params[name].default == getattr(Options, name), name
    assert (params["rows"].min, params["rows"].max) == (
        memory_pressure.ROWS_MIN,
        memory_pressure.ROWS_MAX,
    )
    assert (params["slower_than"].min, params["slower_than"].max) == (
        memory_pressure.SLOWER_THAN_MIN,
        memory_pressure.SLOWER_THAN_MAX,
    )
    assert Options.own_server is False  # SLOWLOG RESET only when the command says so
