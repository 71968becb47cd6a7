"""flightcache.lua: every shipped script compiles, and EVALSHA falls back to EVAL."""

from __future__ import annotations

from typing import Any

import pytest

from flightcache.lua import LuaScript, names, script


def test_evalsha_falls_back_to_eval_once_then_finds_the_script(
    valkey_client: Any, key_prefix: str
) -> None:
    from flightcache.valkey_client import primaries

    # a source no other test sends: a node that has never seen it answers NOSCRIPT
    probe = LuaScript("probe", f"-- {key_prefix}\nreturn {{KEYS[1], ARGV[1]}}")
    key = f"{{{key_prefix}}}:probe"
    assert not any(node.script_exists(probe.sha)[0] for node in primaries(valkey_client))
    sent: list[str] = []
    real = valkey_client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return real(*args, **kwargs)

    valkey_client.execute_command = spy
    try:
        assert probe(valkey_client, [key], ["x"]) == [key, "x"]
        assert probe(valkey_client, [key], ["y"]) == [key, "y"]
    finally:
        del valkey_client.execute_command
    assert sent == ["EVALSHA", "EVAL", "EVALSHA"]


def test_load_puts_a_script_on_every_primary_for_pipelines(
    valkey_client: Any, key_prefix: str
) -> None:
    from flightcache.valkey_client import primaries

    probe = LuaScript("probe", f"-- {key_prefix} piped\nreturn ARGV[1]")
    probe.load(valkey_client)
    assert all(node.script_exists(probe.sha)[0] for node in primaries(valkey_client))
    pipe = valkey_client.pipeline(transaction=False)
    probe.queue(pipe, [f"{{{key_prefix}}}:p"], ["z"])
    assert pipe.execute() == ["z"]


@pytest.mark.parametrize("name", names())
def test_every_shipped_script_compiles_on_the_server(valkey_client: Any, name: str) -> None:
    from flightcache.valkey_client import primaries

    lua = script(name)
    assert lua is script(name)  # read once
    lua.load(valkey_client)
    assert all(node.script_exists(lua.sha)[0] for node in primaries(valkey_client))


def test_a_missing_script_is_a_clear_error() -> None:
    from flightcache.errors import FlightcacheError

    with pytest.raises(FlightcacheError, match=r"no-such-script\.lua is missing"):
        script("no-such-script")
