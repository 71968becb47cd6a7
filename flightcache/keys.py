"""Every Valkey key flightcache writes, one method each, its type in the docstring.

All keys share one prefix (``fc:`` unless ``--key-prefix`` or
``FLIGHTCACHE_KEY_PREFIX`` says otherwise), and each demo works in a scope of
its own, ``fc:<demo>:``, so that it can delete exactly its own keys and nothing
else. Keys that one command or one Lua script touches together carry the same
hash tag (``{...}``), so that they land in one slot and everything runs on a
Valkey Cluster unchanged.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DEFAULT_PREFIX = "fc:"


def digest(params: Any) -> str:
    """A short, stable name for a set of query parameters."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class Keys:
    """Key names under one prefix; ``scope("cache-aside")`` narrows it to one demo."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def scope(self, name: str) -> Keys:
        return Keys(f"{self.prefix}{name}:")

    def match(self) -> str:
        """The SCAN pattern for every key of this scope."""
        return _glob_escape(self.prefix) + "*"

    # -- query results (cache-aside, write-through) ------------------------------
    def query(self, name: str, params: Any = None) -> str:
        """string: a named query's rows as JSON, one key per parameter set."""
        return f"{self.prefix}query:{name}:{digest(params)}"

    def tag(self, tag: str) -> str:
        """set: the cached query keys that depend on ``tag`` (e.g. ``airline:7``)."""
        return f"{self.prefix}tag:{tag}"

    def airline(self, airline_id: int) -> str:
        """hash: one airline row (airline_id, iata, airlinename, base_airport)."""
        return f"{self.prefix}airline:{airline_id}"

    def lock(self, name: str) -> str:
        """string: a rebuild lock, SET NX PX, holding its owner's token."""
        return f"{self.prefix}lock:{name}"

    # -- write-behind ----------------------------------------------------------
    # One Lua script updates a flight's counter and appends to its shard's queue,
    # so both carry the shard's hash tag {wbN}: one slot per shard, and the
    # shards spread over the cluster's nodes.
    def wb_bookings(self, shard: int, flight_id: int) -> str:
        """hash: seats booked on one flight through the queue (field ``seats``)."""
        return f"{self.prefix}{{wb{shard}}}:flight:{flight_id}:bookings"

    def wb_queue(self, shard: int) -> str:
        """stream: one shard's queue of bookings (fields ``flight``, ``seats``),
        drained by the consumer group ``db-writer``."""
        return f"{self.prefix}{{wb{shard}}}:queue"

    def wb_direct(self, flight_id: int) -> str:
        """hash: the write-through comparison's counter of one flight (field ``seats``)."""
        return f"{self.prefix}direct:flight:{flight_id}:bookings"


def _glob_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)
