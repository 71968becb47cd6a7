"""Cache hit ratio: how often a cache-aside read finds its key, counted by the reader.

Read path: GET the flight's key; on a hit return it; on a miss run the cheap
``flight_by_id`` query and SET the row as JSON with EX ttl. Every read counts
itself as a hit or a miss, so the ratio is this cache's own, where the server's
``keyspace_hits``/``keyspace_misses`` (INFO stats, :func:`server_counters`) count
every lookup of every client.
Write path: none (rows are read-only here; an expired key is simply loaded again).
Failure mode: when Valkey fails, the read falls back to the database and counts
a miss and an error; it never fails the request.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.db import QueryResult
from flightcache.keys import Keys
from flightcache.valkey_client import info_total

SERVER_STATS = ("keyspace_hits", "keyspace_misses")


def row_json(result: QueryResult) -> str | None:
    """The first row of a result as a JSON object, or None when there is none."""
    if not result.rows:
        return None
    return json.dumps(
        dict(zip(result.columns, result.rows[0], strict=True)),
        default=str,
        separators=(",", ":"),
    )


class FlightLookup(NamedTuple):
    value: str | None  # the flight as JSON; None when the id does not exist
    hit: bool
    stored: bool  # a miss that was written back to Valkey


class FlightReader:
    """Cache-aside reads of one flight by id, counting hits and misses itself."""

    def __init__(self, client: Any, db: Any, keys: Keys, ttl: int) -> None:
        self.valkey, self.db, self.keys, self.ttl = client, db, keys, ttl
        self.sql = sqlfiles.query(db.dialect, "flight_by_id")
        self.hits = self.misses = self.errors = 0

    def load(self, flight_id: int) -> str | None:
        return row_json(self.db.fetch(self.sql, {"flight_id": flight_id}))

    # region: read
    def get(self, flight_id: int) -> FlightLookup:
        key = self.keys.flight(flight_id)
        try:
            cached = self.valkey.get(key)
        except valkey.exceptions.ValkeyError:
            self.misses += 1
            self.errors += 1
            return FlightLookup(self.load(flight_id), hit=False, stored=False)
        if cached is not None:
            self.hits += 1
            return FlightLookup(cached, hit=True, stored=False)
        self.misses += 1
        value = self.load(flight_id)
        if value is None:
            return FlightLookup(None, hit=False, stored=False)
        try:
            self.valkey.set(key, value, ex=self.ttl)
        except valkey.exceptions.ValkeyError:
            self.errors += 1
            return FlightLookup(value, hit=False, stored=False)
        return FlightLookup(value, hit=False, stored=True)

    @property
    def ratio(self) -> float:
        """Hits over all reads so far (0 before the first)."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0

    # endregion: read


def server_counters(client: Any) -> dict[str, int]:
    """keyspace_hits and keyspace_misses of INFO stats, summed over every primary.

    They count every key lookup on the server, from every client: only their change
    over a run, on a server no one else uses, compares with a reader's own counts.
    """
    return info_total(client, "stats", SERVER_STATS)
