"""flightcache near-cache: tracking on, three reads, a write's push, the modes, a kill,
the memory; both databases, one node and the cluster; keys gone unless --keep."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import json_of, keys_left, server_args


def _steps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in document["records"] if r["type"] == "step"}


def _one(steps: dict[str, dict[str, Any]], start: str) -> dict[str, Any]:
    found = [s for title, s in steps.items() if title.startswith(start)]
    assert len(found) == 1, (start, list(steps))
    return found[0]


def test_demo_on_both_databases_one_node_and_cluster(
    cli: Any, loaded: Any, db_url: Any, any_valkey: Any, key_prefix: str
) -> None:
    from flightcache.valkey_client import close, connect

    document = json_of(
        cli(
            *server_args(db_url, any_valkey, key_prefix),
            "near-cache",
            "--repeat",
            "50",
            "--entries",
            "200",
            "--json",
        )
    )
    steps = _steps(document)
    for step in steps.values():
        assert step["ok"], (step["title"], step["outcome"])

    on = _one(steps, "Turn client tracking on")
    lines = on["valkey"]
    assert any(line.startswith("CLIENT TRACKING on REDIRECT ") for line in lines), lines
    assert "CLIENT TRACKINGINFO" in lines
    trackers = on["data"]["trackers"]
    assert len(trackers) == (3 if "cluster" in str(any_valkey.url) or len(trackers) > 1 else 1)
    for t in trackers.values():
        assert f"CLIENT TRACKING on REDIRECT {t['sink_id']}" in lines
        assert int(t["info"]["redirect"]) == t["sink_id"] and "on" in t["info"]["flags"]

    first = _one(steps, "First read")
    assert first["sql"] and any(line.startswith("GET ") for line in first["valkey"])
    assert any("invalidate " in p for p in first["data"]["pushes"])
    assert _one(steps, "Third read")["valkey"] == []  # from memory: no command at all

    timing = next(r for r in document["records"] if r["type"] == "timing")
    series = {s["label"]: s for s in timing["series"]}
    assert series["near-cache hit (memory)"]["p50"] < series["bare GET"]["p50"]

    write = _one(steps, "A second client changes the key")
    assert any(line.startswith("SET ") for line in write["valkey"])
    assert any("invalidate " in p for p in write["data"]["pushes"])
    assert _one(steps, "The first client's next read")["ok"]

    default, bcast = _one(steps, "default tracking")["data"], _one(steps, "bcast tracking")["data"]
    assert default["invalidations"] == 5 and bcast["invalidations"] == 20
    assert default["tracking_total_keys"] >= 5 and default["tracking_total_prefixes"] == 0
    assert bcast["tracking_total_prefixes"] >= 1 and bcast["tracking_total_keys"] == 0
    assert "bcast" in bcast["trackinginfo"]["flags"]
    assert "CLIENT TRACKINGINFO" in _one(steps, "bcast tracking")["valkey"]

    kill = _one(steps, "Kill the tracking connection")
    assert any(line.startswith("CLIENT KILL ID ") for line in kill["valkey"])
    assert any("store flushed" in p for p in kill["data"]["pushes"])
    back = _one(steps, "Tracking comes back")["data"]
    assert back["new_sink"] != back["old_sink"] and back["connects"] >= 2

    weighed = _one(steps, "Memory:")["data"]
    assert weighed["kept"] == weighed["results"] == 200
    assert weighed["python_bytes"] > weighed["json_bytes"] > 0 and weighed["valkey_bytes"] > 0

    client = connect(any_valkey.url)
    try:
        assert keys_left(client, key_prefix) == []
    finally:
        close(client)


@pytest.mark.parametrize("mode", ["bcast", "optin"])
def test_the_other_modes_and_keep(
    demo_cli: Any, valkey_server: Any, key_prefix: str, mode: str
) -> None:
    from flightcache.valkey_client import close, connect

    document = json_of(
        demo_cli(
            "near-cache", "--mode", mode, "--entries", "0", "--repeat", "5", "--keep", "--json"
        )
    )
    steps = _steps(document)
    for step in steps.values():
        assert step["ok"], (step["title"], step["outcome"])
    on = _one(steps, "Turn client tracking on")
    assert any(mode.upper() in line for line in on["valkey"] if "REDIRECT" in line)
    if mode == "optin":
        assert "CLIENT CACHING yes" in _one(steps, "Second read")["valkey"]
    assert not any(title.startswith("Memory:") for title in steps)
    client = connect(valkey_server.url)
    try:
        assert keys_left(client, key_prefix)  # --keep leaves them
    finally:
        close(client)


@pytest.mark.safety(8)
def test_an_unknown_mode_is_refused_before_any_server(cli: Any) -> None:
    result = cli("near-cache", "--mode", "sometimes")
    assert result.code != 0 and "--mode must be one of" in result.err
