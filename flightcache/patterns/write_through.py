"""Write-through: a change goes to the database and to Valkey in one operation.

Read path: HGETALL the airline's hash; on a miss, read the row and HSET it with a
TTL. Query results that show the airline are cached as JSON beside it, each key
listed in the tag set ``tag:airline:<id>`` of every airline it shows
(:mod:`flightcache.patterns.write_through_tags`).

Write path: (1) BEGIN, UPDATE, SELECT the new row; (2) still inside the
transaction, DEL the hash and every key of the tag set (Valkey unreachable here:
ROLLBACK, the write is refused); (3) COMMIT; (4) HSET the new row and drop the
tag set once more, for a reader that cached the old row between 2 and 3; tried a
bounded number of times.

Failure mode: deleting before the commit turns every later failure into a miss,
never a stale hit. A failed database write (1, 3) rolls back with no copy left;
a failed cache write (4) leaves no copy either, and records the airline for
repair: its next read skips Valkey and writes the row through again. What
remains: a reader that fills between 2 and 3 while 4 fails too serves the old
name until its TTL ends (a real system records the repair in an outbox table
inside the transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline, retried
from flightcache.patterns.write_through_airline import check_name, read_airline
from flightcache.patterns.write_through_tags import TaggedResults
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

ROW_TTL = 3600  # seconds, the airline hash


@dataclass
class WriteReport:
    """What one write-through write did."""

    airline_id: int
    name: str
    committed: bool = False
    invalidated: list[str] = field(default_factory=list)  # keys deleted before COMMIT
    cache_written: bool = False
    attempts: int = 0
    error: str = ""


class WriteThrough:
    """Airline rows written through to Valkey; the query results that show them dropped."""

    def __init__(
        self,
        db: Database | TracedDatabase,
        client: Any,
        keys: Keys,
        *,
        pipeline: Pipeline = plain_pipeline,
        attempts: int = 3,
        backoff_s: float = 0.05,
    ) -> None:
        self.db = db
        self.valkey = client
        self.keys = keys
        self.pipeline = pipeline
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.results = TaggedResults(db, client, keys, pipeline=pipeline)
        self.repairs: dict[int, str] = {}  # airline id -> why its cache write failed

    # -- read path ------------------------------------------------------------------
    def airline(self, airline_id: int) -> tuple[dict[str, str], bool]:
        """The airline hash: (row, hit). An airline awaiting repair skips Valkey."""
        if airline_id in self.repairs:
            return self.repair_one(airline_id), False
        cached: dict[str, str] = self.valkey.hgetall(self.keys.airline(airline_id))
        if cached:
            return cached, True
        row = read_airline(self.db, airline_id)
        pipe = self.pipeline(self.valkey)
        pipe.hset(self.keys.airline(airline_id), mapping=row)
        pipe.expire(self.keys.airline(airline_id), ROW_TTL)
        pipe.execute()
        return row, False

    # -- write path -------------------------------------------------------------------
    # region: invalidate
    def invalidate(self, airline_id: int) -> list[str]:
        """DEL the airline hash, every key in its tag set, and the set; the keys named."""
        tag = self.results.tag(airline_id)
        pipe = self.pipeline(self.valkey)
        pipe.delete(self.keys.airline(airline_id))
        pipe.smembers(tag)
        _, members = pipe.execute()
        return [self.keys.airline(airline_id), *self.results.drop(self.valkey, tag, members)]

    # endregion: invalidate

    # region: write
    def _write_row(self, client: Any, row: dict[str, str]) -> None:
        """HSET the committed row, then drop whatever was cached under its tag meanwhile."""
        airline_id = int(row["airline_id"])
        tag = self.results.tag(airline_id)
        pipe = self.pipeline(client)
        pipe.hset(self.keys.airline(airline_id), mapping=row)
        pipe.expire(self.keys.airline(airline_id), ROW_TTL)
        pipe.smembers(tag)
        members = pipe.execute()[-1]
        if members:
            self.results.drop(client, tag, members)

    def update_name(
        self,
        airline_id: int,
        name: str,
        *,
        inside_transaction: Callable[[], None] | None = None,
        cache: Any = None,
    ) -> WriteReport:
        """Rename an airline in the database and in Valkey (see the module docstring).

        ``inside_transaction`` runs last before the COMMIT, after the invalidation
        (a test or the demo raises there to make the database write fail);
        ``cache`` is the client for the write after the commit (one that cannot
        connect, say).
        """
        report = WriteReport(airline_id, check_name(name))
        rename = query(self.db.dialect, "airline_rename")
        with self.db.transaction():
            self.db.execute(rename, {"name": name, "airline_id": airline_id})
            row = read_airline(self.db, airline_id)
            report.invalidated = self.invalidate(airline_id)
            if inside_transaction is not None:
                inside_transaction()
        report.committed = True
        client = self.valkey if cache is None else cache
        report.attempts, report.error = retried(
            lambda: self._write_row(client, row),
            attempts=self.attempts,
            backoff_s=self.backoff_s,
            errors=valkey.exceptions.ValkeyError,
        )
        report.cache_written = not report.error
        if report.cache_written:
            self.repairs.pop(airline_id, None)
        else:
            self.repairs[airline_id] = report.error
        return report

    # endregion: write

    def repair_one(self, airline_id: int) -> dict[str, str]:
        """Write an airline recorded for repair through again, from the database."""
        row = read_airline(self.db, airline_id)
        self._write_row(self.valkey, row)
        self.repairs.pop(airline_id, None)
        return row
