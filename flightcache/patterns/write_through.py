"""Write-through: a change goes to the database and to Valkey in one operation.

Read path: HGETALL the airline's hash; on a miss note the airline's version
(created at 0 if missing), read the row, and HSET it with a TTL only if the
version is still the one noted (one script). Query results that show the
airline are cached as JSON beside it, each key listed in the tag set
``tag:airline:<id>`` of every airline it shows
(:mod:`flightcache.patterns.write_through_tags`).

Write path: (1) BEGIN, UPDATE, SELECT the new row; (2) still inside the
transaction, INCR the version, DEL the hash and every key of the tag set
(Valkey unreachable here: ROLLBACK, the write is refused); (3) COMMIT; (4) INCR
the scope's epoch and drop the tag set once more, for a reader that cached a
result between 2 and 3; then, if the version is still the one INCRed in 2,
INCR it again and HSET the new row (one script); tried a bounded number of times.

Why the version closes the slow reader's race: a reader that read the old row
noted the version before its SELECT, so before the INCR of 4. Its fill runs
either before 4, and 4 overwrites it, or after, and finds the version moved. A
writer whose step 4 comes after a later writer's step 2 finds the version moved
too, and leaves the newer row to that writer. The query results use the epoch
the same way (:mod:`flightcache.patterns.write_through_tags`).

Failure mode: deleting before the commit turns every later failure into a miss,
never a stale hit. A failed database write (1, 3) rolls back with no copy left;
a failed cache write (4) leaves no copy either, and records the airline for
repair: its next read skips Valkey and writes the row through again. What
remains: a reader that noted the version between 2 and 3 while 4 fails too
serves the old name until its TTL ends (a real system records the repair in an
outbox table inside the transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.keys import Keys
from flightcache.lua import script
from flightcache.patterns.common import Pipeline, plain_pipeline, retried
from flightcache.patterns.write_through_airline import check_name, read_airline
from flightcache.patterns.write_through_tags import TaggedResults
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

ROW_TTL = 3600  # seconds, the airline hash
FILL = script("write_through_fill")


@dataclass
class WriteReport:
    """What one write-through write did."""

    airline_id: int
    name: str
    committed: bool = False
    invalidated: list[str] = field(default_factory=list)  # keys deleted before COMMIT
    version: int = 0  # the airline's version, INCRed before COMMIT
    cache_written: bool = False
    superseded: bool = False  # a later write moved the version: its row, not ours, is cached
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
        version = self.version(airline_id)  # before the SELECT
        row = read_airline(self.db, airline_id)
        self.fill(self.valkey, row, version)
        return row, False

    # region: version
    def version(self, airline_id: int) -> str:
        """The airline's version, created at 0 if missing: a counter that vanishes later
        (evicted, flushed) then never matches what a reader noted."""
        pipe = self.pipeline(self.valkey)
        pipe.set(self.keys.airline_version(airline_id), 0, nx=True)
        pipe.get(self.keys.airline_version(airline_id))
        return str(pipe.execute()[-1])

    def fill(self, client: Any, row: dict[str, str], version: str, writer: bool = False) -> bool:
        """HSET the row with its TTL if the version is still ``version``, in one script;
        a ``writer`` INCRs it too. False: the version moved, nothing written."""
        airline_id = int(row["airline_id"])
        keys = [self.keys.airline(airline_id), self.keys.airline_version(airline_id)]
        fields = [part for item in row.items() for part in item]
        return bool(FILL(client, keys, [version, int(writer), ROW_TTL, *fields]))

    # endregion: version

    # -- write path -------------------------------------------------------------------
    # region: invalidate
    def invalidate(self, airline_id: int) -> tuple[int, list[str]]:
        """INCR the version, DEL the airline hash and every key in its tag set:
        (the new version, the keys deleted)."""
        pipe = self.pipeline(self.valkey)
        pipe.incr(self.keys.airline_version(airline_id))  # before the DEL
        pipe.delete(self.keys.airline(airline_id))
        version, _ = pipe.execute()
        dropped = self.results.drop(self.valkey, airline_id)
        return int(version), [self.keys.airline(airline_id), *dropped]

    # endregion: invalidate

    # region: write
    def _write_row(self, client: Any, row: dict[str, str], version: int) -> bool:
        """INCR the epoch, drop what was cached under the airline's tag since the DEL,
        then the committed row through the version check. False: a later write moved
        the version."""
        client.incr(self.keys.invalidation_epoch())  # before the drop: see write_through_tags
        self.results.drop(client, int(row["airline_id"]))
        return self.fill(client, row, str(version), writer=True)

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
            report.version, report.invalidated = self.invalidate(airline_id)
            if inside_transaction is not None:
                inside_transaction()
        report.committed = True
        client = self.valkey if cache is None else cache
        written: list[bool] = []
        report.attempts, report.error = retried(
            lambda: written.append(self._write_row(client, row, report.version)),
            attempts=self.attempts,
            backoff_s=self.backoff_s,
            errors=valkey.exceptions.ValkeyError,
        )
        report.cache_written = not report.error and written[-1]
        report.superseded = not report.error and not written[-1]
        if report.error:
            self.repairs[airline_id] = report.error
        else:
            self.repairs.pop(airline_id, None)
        return report

    # endregion: write

    def repair_one(self, airline_id: int) -> dict[str, str]:
        """Write an airline recorded for repair through again: its invalidation and the
        write after a COMMIT, around a fresh read of the committed row."""
        version, _ = self.invalidate(airline_id)
        row = read_airline(self.db, airline_id)
        self._write_row(self.valkey, row, version)
        self.repairs.pop(airline_id, None)
        return row
