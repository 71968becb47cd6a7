"""TTL management: one TTL per data class, and jitter against the expiry cliff.

Read path: GET the class's key; on a miss run its query and SET the rows as JSON
with the class's TTL (reference 24 h, business 1 h, operational 5 min, real time
60 s), spread by a seeded random jitter of ± a few percent.
Write path: ``SET key value PX ttl_ms``; a batch goes through one pipeline.
Failure mode: keys written together with one TTL also expire together, and every
reader of them misses in the same second and goes to the database (the expiry
cliff). Jitter spreads the expiries out. With Valkey down, reads fall through to
the database: slower, never wrong.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import valkey.exceptions

from flightcache.db import text_field
from flightcache.keys import Keys
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

DOWN = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)
JITTER_MAX_PERCENT = 100


@dataclass(frozen=True)
class DataClass:
    """How volatile some data is, and so how long a cached copy may live."""

    name: str
    ttl_s: int
    what: str
    query: str
    source: str
    why: str
    limit: int | None = 10


DATA_CLASSES = (
    DataClass(
        "reference",
        86_400,
        "airports",
        "ttl_reference_airports",
        "airport, airport_geo",
        "reference data changes a few times a year: keep it a day",
    ),
    DataClass(
        "business",
        3_600,
        "popular-routes",
        "ttl_popular_routes",
        "flight, airport",
        "business figures move with the schedule: an hour old is fine",
    ),
    DataClass(
        "operational",
        300,
        "delays",
        "ttl_recent_delays",
        "flight_log",
        "delays change while the day runs: five minutes at most",
    ),
    DataClass(
        "real-time",
        60,
        "weather",
        "ttl_current_weather",
        "weatherdata",
        "a weather reading is stale within minutes: one minute",
        limit=None,
    ),
)


class Jitter:
    """TTLs spread evenly over base ± ``percent`` percent by a seeded generator.

    The same seed gives the same TTLs in the same order; ``percent`` 0 gives the
    base TTL every time. A TTL never drops below 1 ms (PX 0 is an error).
    """

    def __init__(self, percent: float, seed: int | None = None) -> None:
        if not 0 <= percent <= JITTER_MAX_PERCENT:
            raise ValueError(f"jitter must be between 0 and {JITTER_MAX_PERCENT} percent")
        self.percent = percent
        self._random = random.Random(seed)

    # region: jitter
    def ttl_ms(self, base_s: float) -> int:
        base_ms = round(base_s * 1000)
        if self.percent == 0:
            return base_ms
        spread = base_ms * self.percent / 100
        return max(1, round(base_ms + self._random.uniform(-spread, spread)))

    # endregion: jitter

    def bounds_ms(self, base_s: float) -> tuple[int, int]:
        """The smallest and largest TTL :meth:`ttl_ms` can give."""
        base_ms = round(base_s * 1000)
        spread = base_ms * self.percent / 100
        return max(1, round(base_ms - spread)), round(base_ms + spread)


class Loaded(NamedTuple):
    value: Any
    hit: bool
    ttl_ms: int | None  # the TTL given on a miss; None on a hit or with Valkey down


def plain(value: Any) -> Any:
    """A database value as JSON takes it, the same from both databases."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value.rstrip()  # PostgreSQL pads char(n)
    if type(value).__name__ == "Decimal":
        return float(value)
    return text_field(value)


def rows_as_dicts(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]


class ClassedCache:
    """Cache-aside where every key lives as long as its data class allows."""

    def __init__(self, client: Any, keys: Keys, jitter: Jitter) -> None:
        self.client = client
        self.keys = keys
        self.jitter = jitter

    def key(self, data_class: DataClass) -> str:
        return self.keys.ttl_class(data_class.name, data_class.what)

    # region: read
    def get_or_load(self, data_class: DataClass, load: Callable[[], Any]) -> Loaded:
        key = self.key(data_class)
        try:
            cached = self.client.get(key)
        except DOWN:
            return Loaded(load(), False, None)
        if cached is not None:
            return Loaded(json.loads(cached), True, None)
        value = load()
        ttl_ms = self.jitter.ttl_ms(data_class.ttl_s)
        try:
            self.client.set(key, json.dumps(value, separators=(",", ":")), px=ttl_ms)
        except DOWN:
            return Loaded(value, False, None)
        return Loaded(value, False, ttl_ms)

    # endregion: read


def load(db: Database | TracedDatabase, data_class: DataClass) -> list[dict[str, Any]]:
    """The rows of the data class's query, as the cache stores them."""
    params = {} if data_class.limit is None else {"limit": data_class.limit}
    result = db.fetch(query(db.dialect, data_class.query), params)
    return rows_as_dicts(result.columns, result.rows)
