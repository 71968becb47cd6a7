"""Eviction policies: what Valkey does when the memory it may use is full.

Read path: GET a booking's key; on a miss SET it again with EX (cache-aside), which
at the limit makes Valkey evict a key first, or, under ``noeviction``, refuse the
write with an OOM error that the reader reports and survives.
Write path: CONFIG SET maxmemory and maxmemory-policy on every primary, after the
values in force are saved (to the state directory too, so a killed process's
settings are put back by the next command).
Failure mode: under ``noeviction`` (or a volatile-* policy with nothing left to
evict) every write that may grow memory is refused; reads and DELs go on. A
setting changed here is put back however the run ends, on every primary, and a
node that refuses is named with the CONFIG SET to run by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import valkey.exceptions

from flightcache.errors import ConfigError, FlightcacheError
from flightcache.keys import Keys
from flightcache.undo import Undo, node_address
from flightcache.valkey_client import config_value, info

ALL_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "volatile-lru",
    "volatile-ttl",
    "allkeys-random",
    "volatile-lfu",
    "volatile-random",
)
SETTINGS = ("maxmemory", "maxmemory-policy")
HEADROOM = 4 * 1024 * 1024
"""The default maxmemory: this much above what each primary uses now."""
MARGIN = 1024 * 1024
"""A maxmemory must leave at least this much above used_memory."""
KEY_TTL = 3600
"""Every booking key gets EX this, so that the volatile-* policies may evict it."""

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|m|mb|g|gb)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def parse_size(text: str) -> int:
    """A memory size as valkey.conf writes it: bytes, 512kb, 4mb, 1gb (k/m/g are powers of 1000)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write bytes or e.g. 512kb, 4mb, 1gb")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _UNITS[unit]


def parse_policies(text: str) -> list[str]:
    """A comma-separated list of maxmemory policies, each known to Valkey."""
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in ALL_POLICIES]
    if unknown or not names:
        raise ValueError(
            f"unknown policy {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ALL_POLICIES)}"
        )
    return list(dict.fromkeys(names))


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


def total(nodes: Sequence[Any], section: str, name: str) -> int:
    """One INFO field, summed over ``nodes``."""
    return sum(int(info(node, section).get(name, 0)) for node in nodes)


# region: settings
class ServerSettings:
    """CONFIG settings of every primary: changed for a demo, always put back."""

    def __init__(self, nodes: Sequence[Any], names: Sequence[str], undo: Undo | None) -> None:
        """``undo`` records the saved values in the state directory before the first
        CONFIG SET, so a killed demo's settings are put back by the next command
        (None: nowhere to record, for a test's own server)."""
        self.nodes = list(nodes)
        self.names = tuple(names)
        self.undo = undo
        self.saved = [{name: config_value(node, name) for name in names} for node in self.nodes]
        self.changed = False

    def set(self, values: Sequence[Mapping[str, Any]]) -> None:
        """CONFIG SET ``values[i]`` on node ``i`` (only names given at creation)."""
        for wanted in values:
            unknown = set(wanted) - set(self.names)
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not saved, so could not be restored")
        if len(values) != len(self.nodes):
            raise ValueError(f"{len(values)} sets of values for {len(self.nodes)} nodes")
        if self.undo is not None and not self.changed:
            for node, saved in zip(self.nodes, self.saved, strict=True):
                self.undo.save_settings(node, saved)
        self.changed = True
        for node, wanted in zip(self.nodes, values, strict=True):
            node.execute_command("CONFIG", "SET", *(x for item in wanted.items() for x in item))

    # endregion: settings

    def set_all(self, **values: Any) -> None:
        """The same values on every node; ``slowlog_log_slower_than=100`` names a setting."""
        named = {name.replace("_", "-"): value for name, value in values.items()}
        self.set([named] * len(self.nodes))

    def current(self) -> list[dict[str, str]]:
        return [{name: config_value(node, name) for name in self.names} for node in self.nodes]

    # region: restore
    def restore(self) -> None:
        """Put every node's settings back; try them all, then report what failed."""
        if not self.changed:
            return
        failed: list[str] = []
        for node, saved in zip(self.nodes, self.saved, strict=True):
            args = [x for item in saved.items() for x in item]
            try:
                node.execute_command("CONFIG", "SET", *args)
                if self.undo is not None:
                    self.undo.settings_back(node, self.names)
            except (valkey.exceptions.ValkeyError, OSError) as exc:
                failed.append(f"{node_address(node)} ({exc}): CONFIG SET {' '.join(args)}")
        if failed:
            raise FlightcacheError(
                f"could not restore {', '.join(self.names)} on " + "; ".join(failed),
                hint="run the CONFIG SET shown on that node yourself",
            )
        self.changed = False

    # endregion: restore


class MemoryLimits(ServerSettings):
    """The maxmemory settings of every primary: changed for the demo, always put back."""

    def __init__(self, nodes: Sequence[Any], undo: Undo | None) -> None:
        super().__init__(nodes, SETTINGS, undo)

    def apply(self, maxmemory: Sequence[int], policy: str) -> None:
        self.set([{"maxmemory": limit, "maxmemory-policy": policy} for limit in maxmemory])


def limits_for(nodes: Sequence[Any], maxmemory: int | None) -> list[int]:
    """Each primary's maxmemory: the one given, or used_memory + HEADROOM; checked."""
    used = [int(info(node, "memory")["used_memory"]) for node in nodes]
    if maxmemory is None:
        return [u + HEADROOM for u in used]
    for node, u in zip(nodes, used, strict=True):
        if maxmemory < u + MARGIN:
            raise ConfigError(
                f"--maxmemory {maxmemory:,} bytes is below what Valkey at "
                f"{node_address(node)} already uses ({u:,} bytes) "
                f"plus a {mib(MARGIN)} safety margin",
                hint=f"give at least {u + MARGIN:,} bytes, or leave --maxmemory out "
                f"for used_memory + {mib(HEADROOM)}",
            )
    return [maxmemory] * len(nodes)


Read = Literal["hit", "miss", "refused"]
"""A cache-aside read at the limit: found; missed and stored (maybe evicting); or
missed and refused for lack of memory (the value is served all the same)."""


class BookingCache:
    """Bookings cached as JSON strings, each with EX :data:`KEY_TTL`."""

    def __init__(self, client: Any, keys: Keys, records: Mapping[int, str]) -> None:
        self.valkey, self.keys, self.records = client, keys, records

    def queue(self, pipe: Any, booking_id: int) -> None:
        """Add the SET of one booking to a pipeline."""
        pipe.set(self.keys.booking(booking_id), self.records[booking_id], ex=KEY_TTL)

    # region: read
    def store(self, booking_id: int) -> bool:
        """SET one booking; False when Valkey refuses it for lack of memory."""
        try:
            self.valkey.set(self.keys.booking(booking_id), self.records[booking_id], ex=KEY_TTL)
        except valkey.exceptions.OutOfMemoryError:
            return False
        return True

    def read(self, booking_id: int) -> Read:
        """GET, and on a miss SET (which may make Valkey evict, or refuse)."""
        if self.valkey.get(self.keys.booking(booking_id)) is not None:
            return "hit"
        return "miss" if self.store(booking_id) else "refused"

    # endregion: read
