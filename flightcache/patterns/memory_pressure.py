"""Memory pressure: what an application and an operator see when Valkey's memory is full.

Read path: cache-aside (GET; on a miss the database, then SET EX). At the limit
under ``noeviction`` Valkey refuses the SET with
``-OOM command not allowed when used memory > 'maxmemory'.``; the reader catches
it (valkey-py's OutOfMemoryError, :class:`~flightcache.patterns.cache_aside.CacheAside`
does), serves the rows it read from the database and goes on. Reads and DELs still
work at the limit; only commands that may grow memory are refused.
Write path: none of its own; an operator looks with INFO memory, MEMORY DOCTOR and
the slow log, whose threshold :class:`SlowLog` lowers for a while.
Failure mode: every setting changed (slowlog-log-slower-than here, maxmemory and
the policy through :class:`~flightcache.patterns.eviction.MemoryLimits`) is saved
first and put back on every primary. The slow log is a shared record: only the
entries newer than the ones found are read, and SLOWLOG RESET, which empties it
for everyone, is the caller's decision (flightcache resets only its own Valkey).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flightcache.patterns.eviction import ServerSettings
from flightcache.undo import Undo, node_address
from flightcache.valkey_client import info

INFO_FIELDS = (
    "used_memory_human",
    "used_memory_peak_human",
    "maxmemory_human",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
    "used_memory_dataset_perc",
    "mem_allocator",
)
"""The INFO memory fields an operator looks at first."""


def oom_text(exc: Exception) -> str:
    """The reply as the server sent it: valkey-py keeps the text after the error code."""
    return f"OOM {exc}"


def memory_report(nodes: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """INFO memory's chosen fields: one column per primary (its address), one row per field."""
    replies = [info(node, "memory") for node in nodes]
    return [node_address(n) for n in nodes], [
        [f, *(r.get(f, "") for r in replies)] for f in INFO_FIELDS
    ]


def memory_doctor(nodes: Sequence[Any]) -> list[str]:
    """MEMORY DOCTOR of every primary, as the server words it."""
    return [text(node.execute_command("MEMORY", "DOCTOR")) for node in nodes]


# region: slowlog
class SlowLog:
    """A window on every primary's SLOWLOG: only entries newer than those found at the start."""

    def __init__(self, nodes: Sequence[Any], undo: Undo | None) -> None:
        self.nodes = list(nodes)
        self.settings = ServerSettings(nodes, ("slowlog-log-slower-than", "slowlog-max-len"), undo)
        self.last = [self._newest(node) for node in self.nodes]

    @staticmethod
    def _newest(node: Any) -> int:
        entries = node.slowlog_get(1)
        return int(entries[0]["id"]) if entries else -1

    def lower(self, micros: int) -> None:
        self.settings.set_all(slowlog_log_slower_than=micros)

    def entries(self) -> list[dict[str, Any]]:
        """Entries logged since the start, every primary, with the node's address."""
        found: list[dict[str, Any]] = []
        for node, last in zip(self.nodes, self.last, strict=True):
            length = int(node.slowlog_len())
            for entry in node.slowlog_get(max(length, 1)):
                if int(entry["id"]) <= last:
                    continue
                found.append(
                    {
                        "node": node_address(node),
                        "id": int(entry["id"]),
                        "duration_us": int(entry["duration"]),
                        "command": text(entry.get("command", "")),
                        "client_name": text(entry.get("client_name", "")),
                    }
                )
        return sorted(found, key=lambda e: (e["node"], e["id"]))

    # endregion: slowlog

    def reset(self) -> None:
        """SLOWLOG RESET on every primary: it empties the log for every client."""
        for node in self.nodes:
            node.slowlog_reset()


def text(value: Any) -> str:
    """A reply that may be bytes, as text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
