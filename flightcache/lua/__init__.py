"""The Lua flightcache runs on Valkey: one ``.lua`` file each, run by its SHA.

Every script flightcache runs lives in this folder as ``<name>.lua``, read once
(:func:`script` caches it) and run with EVALSHA, the SHA-1 of its text, computed
here. A node that has not seen the script (restarted, SCRIPT FLUSHed, a new
cluster primary) answers NOSCRIPT; the call then sends EVAL with the source,
which runs it and caches it there, so the next EVALSHA finds it. On a cluster
the client sends both to the primary that owns the keys (all of one script's keys
share a hash tag). A pipeline cannot fall back command by command, so a pattern
that pipelines its scripts calls :meth:`LuaScript.load` first (SCRIPT LOAD on
every primary).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import valkey.exceptions

from flightcache.errors import FlightcacheError
from flightcache.resources import resource_dir
from flightcache.valkey_client import primaries


@dataclass(frozen=True)
class LuaScript:
    """A script's name, source and SHA-1; call it with a client, keys and arguments."""

    name: str
    source: str

    @functools.cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """EVALSHA; on NOSCRIPT, EVAL (which caches the script on that node)."""
        try:
            return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except valkey.exceptions.NoScriptError:
            return client.execute_command("EVAL", self.source, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> None:
        """Add an EVALSHA to a pipeline; :meth:`load` must have run on the client first."""
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    def load(self, client: Any) -> None:
        """SCRIPT LOAD on every primary, for pipelines, which cannot fall back to EVAL."""
        for node in primaries(client):
            node.script_load(self.source)


@functools.cache
def script(name: str) -> LuaScript:
    """The script ``flightcache/lua/<name>.lua``, read once."""
    try:
        source = (resource_dir("lua") / f"{name}.lua").read_text("utf-8")
    except FileNotFoundError:
        raise FlightcacheError(
            f"flightcache's Lua script {name}.lua is missing from this installation",
            hint="reinstall flightcache",
        ) from None
    return LuaScript(name, source)


def names() -> list[str]:
    """Every script the package ships, by name."""
    return sorted(
        entry.name.removesuffix(".lua")
        for entry in resource_dir("lua").iterdir()
        if entry.name.endswith(".lua")
    )
