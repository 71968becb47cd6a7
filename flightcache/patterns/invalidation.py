"""Invalidation: when data changes, delete exactly the cached copies it makes wrong.

Read path: cache-aside with a re-check. A miss GETs the scope's invalidation
counter (the epoch), runs the query, SETs the rows as JSON with a jittered TTL
(``PX``), then SADDs the key to the tag set of every entity its rows show
(``flight:<id>``; a flight search also ``route:<from>:<to>``, the results a
flight could move into), then GETs the epoch again. If it moved, an
invalidation ran during the fill and the rows may predate the change: the fill
deletes its own copy (the caller still gets the rows it read, as any reader
that raced a writer would).

Write path: the change COMMITs first; then the epoch is INCRed; then, by name
(event-driven: the event says which keys it affects) each key is DELeted, or by
tag, ``SPOP tag <count>`` takes the tag set's members and removes them in one
step, and each member is DELeted on its own (members sit in other slots of a
cluster: never one multi-key DEL).

Why this closes the race: a reader that read the old rows did so before the
COMMIT, so before the INCR. If its second GET of the epoch comes after the INCR,
it deletes its copy; if before, its SET and SADD came before the INCR, so before
the DELs, which remove it. Deleting only before the COMMIT leaves a window: a
reader between the DEL and the COMMIT stores the old rows, and they stay until
their TTL (the demo shows it). SET comes before SADD, so a key whose
registration an SPOP took is always deleted after; a key registered after the
SPOP lands in a new set.

Failure mode: Valkey unreachable after the COMMIT: the change stands, the
invalidation is retried a few times, and what could not be deleted is reported
(it lives at most until its TTL). A tag set outlives its members (its TTL is the
longest a member can get); a member that expired on its own stays listed, and
its DEL is a harmless no-op.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline, retried
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.patterns.ttl import Jitter

# valkey-py is imported where it is used: `flightcache --help` imports this module
# (the command's defaults are the demo's), and must not load the client library.

BOOKINGS = "invalidation_passenger_bookings"  # 001's user:12345:bookings
SEARCH = "flight_search"
FLIGHT = "flight_by_id"
SPOP_COUNT = 1000  # members taken per SPOP


def tags_of(name: str, params: Mapping[str, Any], doc: Mapping[str, Any]) -> list[str]:
    """The entities a cached result shows: the tags it registers under."""
    columns: list[str] = doc["columns"]
    flights = (
        sorted({int(row[columns.index("flight_id")]) for row in doc["rows"]})
        if "flight_id" in columns
        else []
    )
    tags = [f"flight:{f}" for f in flights]
    if name == SEARCH:
        tags.insert(0, f"route:{params['origin']}:{params['destination']}")
    if name == FLIGHT:
        tags = [f"flight:{params['flight_id']}"]
    return tags


def bookings_of(passenger: int) -> tuple[str, dict[str, Any]]:
    """The named query and parameters of a passenger's bookings (001's user:12345:bookings)."""
    return BOOKINGS, {"passenger_id": passenger}


def search(flight: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The search (route and day) whose results show ``flight``."""
    day = flight["departure"]
    day = day.date() if isinstance(day, dt.datetime) else day
    return SEARCH, {"origin": flight["origin"], "destination": flight["destination"], "day": day}


def flight_row(flight: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The flight's own row."""
    return FLIGHT, {"flight_id": int(flight["flight_id"])}


def route_tag(flight: Mapping[str, Any]) -> str:
    """The tag of every search on the flight's route."""
    return f"route:{flight['origin']}:{flight['destination']}"


@dataclass
class Read:
    """One read through the cache, and what it stored."""

    key: str
    columns: list[str]
    rows: list[list[Any]]
    hit: bool
    tags: list[str] = field(default_factory=list)
    ttl_ms: int | None = None  # the PX given on a miss
    kept: bool = True  # False: an invalidation ran during the fill, which deleted its copy


@dataclass
class Fill:
    """A miss under way: what it reads, and the epoch it saw before reading."""

    key: str
    name: str
    params: dict[str, Any]
    epoch: str | None


class TaggedCache:
    """Named query results read through Valkey, each registered in its entities' tag sets."""

    def __init__(
        self,
        client: Any,
        db: Any,
        keys: Keys,
        jitter: Jitter,
        *,
        ttl_s: int = 3600,
        pipeline: Pipeline = plain_pipeline,
    ) -> None:
        from valkey.cluster import ValkeyCluster

        self.valkey, self.db, self.keys, self.jitter = client, db, keys, jitter
        self.ttl_s = ttl_s
        self.pipeline = pipeline
        self.cluster = isinstance(client, ValkeyCluster)

    @property
    def tag_ttl_ms(self) -> int:
        """A tag set's TTL: the longest a member can be given, so it never expires first."""
        return self.jitter.bounds_ms(self.ttl_s)[1]

    def key(self, name: str, params: Mapping[str, Any]) -> str:
        return self.keys.query(name, dict(params))

    def get(self, name: str, params: Mapping[str, Any]) -> Read:
        key = self.key(name, params)
        cached = self.valkey.get(key)
        if cached is not None:
            doc = json.loads(cached)
            return Read(key, doc["columns"], doc["rows"], True)
        fill = self.begin(name, params)
        return self.finish(fill, self.load(fill))

    def begin(self, name: str, params: Mapping[str, Any]) -> Fill:
        """A miss: note the epoch before the database is read."""
        epoch = self.valkey.get(self.keys.invalidation_epoch())
        return Fill(self.key(name, params), name, dict(params), epoch)

    def load(self, fill: Fill, db: Any = None) -> dict[str, Any]:
        """The rows from the database (``db``: another connection, a concurrent reader)."""
        from flightcache.patterns.cache_aside import encode

        source = self.db if db is None else db
        result = source.fetch(query(source.dialect, fill.name), fill.params)
        doc: dict[str, Any] = json.loads(encode(result.columns, result.rows))
        return doc

    # region: fill
    def finish(self, fill: Fill, doc: dict[str, Any]) -> Read:
        """SET, SADD to the tags, GET the epoch again; delete the copy if it moved."""
        tags = tags_of(fill.name, fill.params, doc)
        ttl_ms = self.jitter.ttl_ms(self.ttl_s)
        text = json.dumps(doc, separators=(",", ":"))
        registered = [self.keys.tag(t) for t in tags]
        # one connection keeps order; on a cluster the SET, the SADDs and the second
        # GET go to different nodes, so each waits for the one before it
        pipe = self.pipeline(self.valkey)
        pipe.set(fill.key, text, px=ttl_ms)
        if self.cluster:
            pipe.execute()
            pipe = self.pipeline(self.valkey)
        for tag in registered:
            pipe.sadd(tag, fill.key)
            pipe.pexpire(tag, self.tag_ttl_ms)
        if self.cluster:
            pipe.execute()
            pipe = self.pipeline(self.valkey)
        pipe.get(self.keys.invalidation_epoch())
        epoch = pipe.execute()[-1]
        read = Read(fill.key, doc["columns"], doc["rows"], False, tags, ttl_ms)
        if epoch != fill.epoch:
            self.valkey.delete(fill.key)
            read.kept = False
        return read

    # endregion: fill

    def fresh(self, name: str, params: Mapping[str, Any]) -> list[list[Any]]:
        """The rows as the database has them now, shaped as a cached copy is."""
        rows: list[list[Any]] = self.load(Fill("", name, dict(params), None))["rows"]
        return rows


@dataclass
class Invalidation:
    """What one invalidation deleted."""

    keys: list[str]  # named by the event
    tags: list[str]
    listed: dict[str, list[str]] = field(default_factory=dict)  # tag -> members taken
    deleted: list[str] = field(default_factory=list)  # existed, and went
    absent: list[str] = field(default_factory=list)  # named or listed, already gone
    epoch: int = 0
    attempts: int = 0
    error: str = ""

    @property
    def targets(self) -> list[str]:
        members = [m for ms in self.listed.values() for m in ms]
        return sorted(set(self.keys) | set(members))

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "tags": self.tags,
            "listed": self.listed,
            "deleted": self.deleted,
            "absent": self.absent,
            "epoch": self.epoch,
            "attempts": self.attempts,
            "error": self.error,
        }


class Invalidator:
    """Deletes cached copies after a change committed: by name, or by tag."""

    def __init__(
        self,
        client: Any,
        keys: Keys,
        *,
        pipeline: Pipeline = plain_pipeline,
        attempts: int = 3,
        backoff_s: float = 0.05,
    ) -> None:
        self.valkey, self.keys, self.pipeline = client, keys, pipeline
        self.attempts, self.backoff_s = attempts, backoff_s

    def invalidate(self, keys: Iterable[str] = (), tags: Iterable[str] = ()) -> Invalidation:
        """INCR the epoch, take the tag sets' members, DEL each key; retried on failure."""
        import valkey.exceptions

        report = Invalidation(list(keys), list(tags))
        report.attempts, error = retried(
            lambda: self._attempt(report),
            attempts=self.attempts,
            backoff_s=self.backoff_s,
            errors=(valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError),
        )
        report.error = error.split("\n", 1)[0]
        return report

    # region: invalidate
    def after_commit(
        self,
        db: Any,
        change: Callable[[], Any],
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        inside: Callable[[], None] | None = None,
    ) -> Invalidation:
        """BEGIN, ``change()``, COMMIT; then invalidate. ``inside()``, when given, runs
        last before the COMMIT (a reader racing the change)."""
        with db.transaction():
            change()
            if inside is not None:
                inside()
        return self.invalidate(keys, tags)

    def _attempt(self, report: Invalidation) -> None:
        """One try: INCR the epoch, SPOP every tag set, one DEL per key."""
        report.epoch = int(self.valkey.incr(self.keys.invalidation_epoch()))  # before any DEL
        for tag in report.tags:
            taken = report.listed.setdefault(tag, [])
            while True:  # SPOP takes and removes atomically: no registration slips between
                popped = self.valkey.spop(self.keys.tag(tag), SPOP_COUNT)
                taken += sorted(popped or [])
                if not popped or len(popped) < SPOP_COUNT:
                    break
        targets = report.targets
        pipe = self.pipeline(self.valkey)
        for key in targets:  # one DEL per key: they sit in different slots on a cluster
            pipe.delete(key)
        gone = pipe.execute()
        report.deleted = [k for k, n in zip(targets, gone, strict=True) if n]
        report.absent = [k for k, n in zip(targets, gone, strict=True) if not n]

    # endregion: invalidate
