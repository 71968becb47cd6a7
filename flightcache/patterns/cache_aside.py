"""Cache-aside (lazy loading): the application asks Valkey first, the database on a miss.

Read path: GET the query's key; on a hit decode the JSON and return it. On a
miss run the query, then SET the result as JSON with EX ttl, so the next reader
hits. The key names the query and a digest of its parameters. The JSON is read
and written with orjson: a hit's decoding is most of what it costs beyond the GET,
and orjson decodes in half the time of the standard library's json. The value stays
JSON text (UTF-8 rather than escapes); NaN and infinities are stored as null.

Write path: none here; writers invalidate (see write-through).

Failure mode: Valkey unreachable or timing out is not an error for a reader.
The read falls back to the database and says so (``source``), and the failed
SET is skipped: the cache is an optimisation, never a dependency. So is a SET
that Valkey refuses because its memory is full (OOM under noeviction). A value that
is not valid JSON (written by something else) is treated as a miss and replaced.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import valkey.exceptions

from flightcache.db import Database
from flightcache.keys import Keys
from flightcache.named_queries import Query
from flightcache.patterns.common import first_line

UNAVAILABLE = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)
NOT_STORED = (*UNAVAILABLE, valkey.exceptions.OutOfMemoryError)


def _plain(value: Any) -> Any:
    """What orjson cannot write itself (dates and times it writes in ISO 8601)."""
    if isinstance(value, decimal.Decimal):
        whole = value == value.to_integral_value() and abs(value) < 2**63  # orjson: 64 bits
        return int(value) if whole else float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def encode(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """Query rows as the JSON document that is cached."""
    return orjson.dumps({"columns": columns, "rows": rows}, default=_plain).decode()


class ServedBy(enum.Enum):
    """How a read was served."""

    CACHE = "cache"  # a hit
    DATABASE = "database"  # a miss: the query ran and its result was stored
    VALKEY_DOWN = "Valkey unavailable"  # the GET failed: the database answered, nothing stored
    NOT_STORED = "could not store"  # a miss whose SET failed (Valkey gone, or out of memory)


@dataclass
class Lookup:
    """The answer to one read, and how it was served (``why``: the error, if one)."""

    key: str
    columns: list[str]
    rows: list[list[Any]]
    served_by: ServedBy
    bytes: int
    why: str = ""

    @property
    def hit(self) -> bool:
        return self.served_by is ServedBy.CACHE

    @property
    def stored(self) -> bool:
        """The read put a fresh copy in Valkey."""
        return self.served_by is ServedBy.DATABASE

    @property
    def source(self) -> str:
        """Who answered, as people read it: "cache", "database (could not store: ...)"."""
        if self.served_by in (ServedBy.CACHE, ServedBy.DATABASE):
            return str(self.served_by.value)
        return f"database ({self.served_by.value}: {self.why})"


class CacheAside:
    """Named queries read through Valkey."""

    def __init__(self, client: Any, db: Database, keys: Keys, *, ttl: int = 3600) -> None:
        self.client = client
        self.db = db
        self.keys = keys
        self.ttl = ttl
        self._names: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}

    def key(self, query: Query, params: Mapping[str, Any]) -> str:
        # the digest costs as much as a third of a GET's round trip: name each key once
        ident = (query.name, tuple(sorted(params.items())))
        key = self._names.get(ident)
        if key is None:
            if len(self._names) >= 10_000:
                self._names.clear()
            key = self._names[ident] = self.keys.query(query.name, dict(params))
        return key

    # region: read
    def get(self, query: Query, params: Mapping[str, Any]) -> Lookup:
        key = self.key(query, params)
        try:
            cached = self.client.get(key)
        except UNAVAILABLE as exc:
            return self._from_database(query, params, key, store=False, why=first_line(exc, 120))
        if cached is not None:
            try:
                doc = orjson.loads(cached)
                size = len(cached.encode())
                return Lookup(key, doc["columns"], doc["rows"], ServedBy.CACHE, size)
            except (ValueError, KeyError, TypeError):
                pass  # not ours or damaged: a miss, and the SET below replaces it
        return self._from_database(query, params, key, store=True)

    def _from_database(
        self, query: Query, params: Mapping[str, Any], key: str, *, store: bool, why: str = ""
    ) -> Lookup:
        result = self.db.fetch(query.sql(self.db.dialect), dict(params))
        value = encode(result.columns, result.rows)
        rows = orjson.loads(value)["rows"]
        lookup = Lookup(key, result.columns, rows, ServedBy.DATABASE, len(value.encode()))
        if not store:
            lookup.served_by, lookup.why = ServedBy.VALKEY_DOWN, why
            return lookup
        try:
            self.client.set(key, value, ex=self.ttl)
        except NOT_STORED as exc:
            lookup.served_by, lookup.why = ServedBy.NOT_STORED, first_line(exc, 120)
        return lookup

    # endregion: read
