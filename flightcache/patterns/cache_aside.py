"""Cache-aside (lazy loading): the application asks Valkey first, the database on a miss.

Read path: GET the query's key; on a hit decode the JSON and return it. On a
miss run the query, then SET the result as JSON with EX ttl, so the next reader
hits. The key names the query and a digest of its parameters.

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
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import valkey.exceptions

from flightcache.db import Database
from flightcache.demos.base import DemoContext, Record, Table
from flightcache.keys import Keys
from flightcache.named_queries import Query, bind
from flightcache.named_queries import get as get_query
from flightcache.patterns.common import first_line
from flightcache.valkey_client import unreachable

UNAVAILABLE = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)
NOT_STORED = (*UNAVAILABLE, valkey.exceptions.OutOfMemoryError)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, (dt.date, dt.time, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def encode(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """Query rows as the JSON document that is cached."""
    return json.dumps({"columns": columns, "rows": rows}, default=_plain, separators=(",", ":"))


@dataclass
class Lookup:
    """The answer to one read, and how it was served."""

    key: str
    columns: list[str]
    rows: list[list[Any]]
    hit: bool
    source: str  # "cache", "database", or "database (Valkey unavailable: ...)"
    bytes: int
    stored: bool = False


class CacheAside:
    """Named queries read through Valkey."""

    def __init__(self, client: Any, db: Database, keys: Keys, *, ttl: int = 3600) -> None:
        self.client = client
        self.db = db
        self.keys = keys
        self.ttl = ttl
        self._names: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}

    def key(self, q: Query, params: Mapping[str, Any]) -> str:
        # the digest costs as much as a third of a GET's round trip: name each key once
        ident = (q.name, tuple(sorted(params.items())))
        key = self._names.get(ident)
        if key is None:
            if len(self._names) >= 10_000:
                self._names.clear()
            key = self._names[ident] = self.keys.query(q.name, dict(params))
        return key

    # region: read
    def get(self, q: Query, params: Mapping[str, Any]) -> Lookup:
        key = self.key(q, params)
        try:
            cached = self.client.get(key)
        except UNAVAILABLE as exc:
            return self._from_database(q, params, key, store=False, why=first_line(exc, 120))
        if cached is not None:
            try:
                doc = json.loads(cached)
                return Lookup(key, doc["columns"], doc["rows"], True, "cache", len(cached.encode()))
            except (ValueError, KeyError, TypeError):
                pass  # not ours or damaged: a miss, and the SET below replaces it
        return self._from_database(q, params, key, store=True)

    def _from_database(
        self, q: Query, params: Mapping[str, Any], key: str, *, store: bool, why: str = ""
    ) -> Lookup:
        result = self.db.fetch(q.sql(self.db.dialect), dict(params))
        value = encode(result.columns, result.rows)
        rows = json.loads(value)["rows"]
        lookup = Lookup(key, result.columns, rows, False, "database", len(value.encode()))
        if not store:
            lookup.source = f"database (Valkey unavailable: {why})"
            return lookup
        try:
            self.client.set(key, value, ex=self.ttl)
            lookup.stored = True
        except NOT_STORED as exc:
            lookup.source = f"database (could not store: {first_line(exc, 120)})"
        return lookup

    # endregion: read


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Miss, database, SET with TTL, hit; expiry; Valkey down; then the timings."""
    q = get_query(ctx.options.get("query", "airline_route_analysis"))
    ttl = int(ctx.options.get("ttl", 3600))
    params = bind(ctx.db, q, ctx.options.get("params", {}))
    pattern = CacheAside(ctx.valkey, ctx.db, ctx.keys, ttl=ttl)
    key = pattern.key(q, params)
    valkey_up = ctx.options.get("valkey_up", True)

    with ctx.step(
        "Look in Valkey first",
        "cache-aside always asks the cache before the database; the key names the query "
        "and a digest of its parameters",
    ) as step:
        first = pattern.get(q, params)
        step.hit, step.rows, step.bytes = first.hit, len(first.rows), first.bytes
        if first.source.startswith("database (Valkey"):
            step.ok = False
            step.outcome = f"Valkey is down: served from the {first.source}"
        else:
            step.outcome = (
                f"miss, so the query ran on {ctx.db.dialect} and its {len(first.rows)} rows "
                f"({first.bytes:,} bytes of JSON) were stored with a {ttl} s TTL"
            )
    yield step
    served = [("first", first)]

    if valkey_up:
        with ctx.step("Read it again", "the same key now answers from memory; no SQL runs") as step:
            again = pattern.get(q, params)
            step.hit, step.rows, step.bytes = again.hit, len(again.rows), again.bytes
            step.ok = again.rows == first.rows
            step.outcome = f"hit: {len(again.rows)} rows, identical: {again.rows == first.rows}"
        yield step
        served.append(("second", again))

        with ctx.step(
            "How long will it live?", "the TTL bounds how stale a cached answer can be"
        ) as step:
            remaining = ctx.valkey.ttl(key)
            step.outcome = f"{remaining} s left of {ttl} s"
            step.data["ttl"] = remaining
        yield step

        with ctx.step(
            "Let the key expire",
            "PEXPIRE shortens the TTL to 50 ms so the demo need not wait an hour",
        ) as step:
            ctx.valkey.pexpire(key, 50)
            time.sleep(0.1)
            after = pattern.get(q, params)
            step.hit, step.rows = after.hit, len(after.rows)
            step.outcome = (
                "expired: the next read missed, ran the query again and stored a fresh copy"
                if not after.hit
                else "still cached (the key did not expire)"
            )
        yield step
        served.append(("after expiry", after))

    down = CacheAside(unreachable(), ctx.db, ctx.keys, ttl=ttl)
    with ctx.step(
        "Valkey goes away",
        "a client to a port nobody listens on stands in for a Valkey that crashed: "
        "readers must still get answers",
    ) as step:
        fallback = down.get(q, params)
        step.hit, step.rows = fallback.hit, len(fallback.rows)
        step.ok = fallback.rows == first.rows
        step.outcome = f"{len(fallback.rows)} rows from the {fallback.source}; no error raised"
        step.data["source"] = fallback.source
    yield step
    served.append(("Valkey down", fallback))

    if not valkey_up:
        yield _served_table(served)
        return
    sql = q.sql(ctx.db.dialect)
    cached = pattern.get(q, params)  # cached again for the hit contenders
    yield ctx.compare(
        f"{q.name}: database vs cache",
        {
            "database": lambda: ctx.db.fetch(sql, params),
            "cache-aside hit": lambda: pattern.get(q, params),
            "bare GET": lambda: ctx.valkey.get(key),
        },
        note=(
            "interleaved in one run after a warm-up. 'cache-aside hit' is the whole read: "
            "GET, JSON decode, rows; 'bare GET' is valkey-py's GET of the same "
            f"{cached.bytes:,}-byte value, the floor for any cache read"
        ),
    )
    yield _served_table(served)


def _served_table(served: list[tuple[str, Lookup]]) -> Table:
    return Table(
        "what each read did",
        ["read", "hit", "served by", "rows", "bytes"],
        [
            [label, "yes" if lk.hit else "no", lk.source, len(lk.rows), lk.bytes]
            for label, lk in served
        ],
    )
