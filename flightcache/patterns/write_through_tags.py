"""Tagged query results: cached queries that show an airline, found again through its tag.

Read path: GET the query's key; on a miss GET the scope's epoch, run the query,
then in one pipeline SADD the key to the tag set ``tag:airline:<id>`` of every
airline the rows show (with EXPIRE), and SET the rows as JSON with EX. The tag
comes first, so no cached result exists without its tag. Then GET the epoch
again: if it moved, a rename committed while the query ran, and the fill
deletes its own copy (the rows may predate the rename).

Write path: a change to an airline takes its tag set's members (SPOP, which
removes what it returns, so a key registered meanwhile stays listed) and DELs
each (:meth:`TaggedResults.drop`); write-through does this inside its
transaction and, after INCRing the epoch, once more after the commit.

Failure mode: a tag set holds the key before the key exists, so a reader that
dies between SADD and SET leaves a tag that points at nothing, and a DEL of
nothing is harmless. A drop that fails leaves its copies as they are: write-through
runs it before its COMMIT, so that failure refuses the write rather than leave
a stale copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

QUERY_TTL = 3600  # seconds, cached query results and their tag sets
SPOP_COUNT = 1000  # members taken per SPOP
ROUTES = "airline_route_analysis"
DETAIL = "airline_detail"

Rows = list[dict[str, Any]]


@dataclass
class TaggedResults:
    """Query results that show airlines, each cached key listed in its airlines' tag sets."""

    db: Database | TracedDatabase
    valkey: Any
    keys: Keys
    pipeline: Pipeline = plain_pipeline

    def tag(self, airline_id: int) -> str:
        """The key of the airline's tag set."""
        return self.keys.tag(f"airline:{airline_id}")

    def route_analysis(self) -> tuple[Rows, bool]:
        """001's expensive query, tagged with every airline it lists: (rows, hit)."""
        return self._cached(ROUTES, {}, self._route_tags)

    def airline_detail(self, airline_id: int) -> tuple[Rows, bool]:
        """The airline with its base airport and fleet size, tagged: (rows, hit)."""
        return self._cached(DETAIL, {"airline_id": airline_id}, lambda _rows: [airline_id])

    def tagged(self, airline_id: int) -> list[str]:
        """The cached query keys registered under the airline's tag."""
        return sorted(self.valkey.smembers(self.tag(airline_id)))

    def _route_tags(self, rows: Rows) -> list[int]:
        codes = sorted({str(r["airline_code"]) for r in rows})
        if not codes:
            return []
        found = self.db.fetch(query(self.db.dialect, "airline_ids_by_iata"), {"codes": codes})
        return sorted(int(r[0]) for r in found.rows)

    # region: tagged-read
    def _cached(
        self, name: str, params: dict[str, Any], tags_of: Callable[[Rows], list[int]]
    ) -> tuple[Rows, bool]:
        key = self.keys.query(name, params)
        cached = self.valkey.get(key)
        if cached is not None:
            return list(json.loads(cached)), True
        epoch = self.valkey.get(self.keys.invalidation_epoch())  # before the query
        result = self.db.fetch(query(self.db.dialect, name), params)
        text = json.dumps(
            [dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str
        )
        rows: Rows = json.loads(text)  # a miss returns what a hit would
        pipe = self.pipeline(self.valkey)
        for airline_id in tags_of(rows):  # the tag first: no cached key without its tag
            pipe.sadd(self.tag(airline_id), key)
            pipe.expire(self.tag(airline_id), QUERY_TTL)
        pipe.set(key, text, ex=QUERY_TTL)
        pipe.execute()
        if self.valkey.get(self.keys.invalidation_epoch()) != epoch:
            self.valkey.delete(key)  # a rename committed meanwhile: the rows may predate it
        return rows, False

    # endregion: tagged-read

    # region: drop
    def drop(self, client: Any, airline_id: int) -> list[str]:
        """SPOP the airline's tag set empty, then one DEL per key it held (they sit in
        different slots on a cluster); the keys taken."""
        taken: list[str] = []
        while True:  # SPOP takes and removes in one step: a key registered later stays
            popped = client.spop(self.tag(airline_id), SPOP_COUNT) or []
            taken += sorted(popped)
            if len(popped) < SPOP_COUNT:
                break
        pipe = self.pipeline(client)
        for member in taken:
            pipe.delete(member)
        pipe.execute()
        return taken

    # endregion: drop
