"""Write-through: a change goes to the database and to Valkey in one operation.

Read path: HGETALL the airline's hash; on a miss, read the row and HSET it with a
TTL. Query results that show the airline (001's route analysis, the airline's
detail) are cached as JSON, each key first added (SADD) to the tag set
``tag:airline:<id>`` of every airline it shows, then SET.

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

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline, retried
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

NAME_MAX = 30  # airline.airlinename is varchar(30) in both schemas
ROW_TTL = 3600  # seconds, the airline hash
QUERY_TTL = 3600  # seconds, cached query results and their tag sets
ROUTES = "airline_route_analysis"
DETAIL = "airline_detail"


def check_name(name: str) -> str:
    """The name as the column will hold it, or a DataError that says why not."""
    if not name.strip():
        raise DataError("an airline name cannot be empty", hint="give a name of 1 to 30 characters")
    if len(name) > NAME_MAX:
        raise DataError(
            f"the airline name {name!r} has {len(name)} characters;"
            f" airline.airlinename holds at most {NAME_MAX}",
            hint=f"give a name of at most {NAME_MAX} characters",
        )
    return name


def renamed(name: str, mark: str) -> str:
    """``name`` with ``mark`` appended, cut so that it fits the column."""
    suffix = f" ({mark})"
    return name[: NAME_MAX - len(suffix)].rstrip() + suffix


def row_dict(columns: list[str], row: tuple[Any, ...]) -> dict[str, str]:
    """A database row as the hash holds it: every field a string, NULL as ""."""
    return {c: "" if v is None else str(v) for c, v in zip(columns, row, strict=True)}


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
    """Airline rows written through to Valkey, dependent query results tagged."""

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
        self.repairs: dict[int, str] = {}  # airline id -> why its cache write failed

    def _sql(self, name: str) -> str:
        return query(self.db.dialect, name)

    def read_row(self, airline_id: int) -> dict[str, str]:
        """The airline row from the database (the read a cache hit saves)."""
        found = self.db.fetch(self._sql("airline_by_id"), {"airline_id": airline_id})
        if not found.rows:
            raise DataError(f"no airline with id {airline_id}")
        return row_dict(found.columns, found.rows[0])

    # -- read path ------------------------------------------------------------------
    def airline(self, airline_id: int) -> tuple[dict[str, str], bool]:
        """The airline hash: (row, hit). An airline awaiting repair skips Valkey."""
        if airline_id in self.repairs:
            return self.repair_one(airline_id), False
        cached: dict[str, str] = self.valkey.hgetall(self.keys.airline(airline_id))
        if cached:
            return cached, True
        row = self.read_row(airline_id)
        pipe = self.pipeline(self.valkey)
        pipe.hset(self.keys.airline(airline_id), mapping=row)
        pipe.expire(self.keys.airline(airline_id), ROW_TTL)
        pipe.execute()
        return row, False

    def route_analysis(self) -> tuple[list[dict[str, Any]], bool]:
        """001's expensive query, tagged with every airline it lists: (rows, hit)."""
        return self._cached(ROUTES, {}, self._route_tags)

    def airline_detail(self, airline_id: int) -> tuple[list[dict[str, Any]], bool]:
        """The airline with its base airport and fleet size, tagged: (rows, hit)."""
        return self._cached(DETAIL, {"airline_id": airline_id}, lambda _rows: [airline_id])

    def _route_tags(self, rows: list[dict[str, Any]]) -> list[int]:
        codes = sorted({str(r["airline_code"]) for r in rows})
        if not codes:
            return []
        found = self.db.fetch(self._sql("airline_ids_by_iata"), {"codes": codes})
        return sorted(int(r[0]) for r in found.rows)

    def _cached(
        self,
        name: str,
        params: dict[str, Any],
        tags_of: Callable[[list[dict[str, Any]]], list[int]],
    ) -> tuple[list[dict[str, Any]], bool]:
        key = self.keys.query(name, params)
        cached = self.valkey.get(key)
        if cached is not None:
            return list(json.loads(cached)), True
        result = self.db.fetch(self._sql(name), params)
        text = json.dumps(
            [dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str
        )
        rows: list[dict[str, Any]] = json.loads(text)  # a miss returns what a hit would
        pipe = self.pipeline(self.valkey)
        for airline_id in tags_of(rows):  # the tag first: no cached key without its tag
            pipe.sadd(self.keys.tag(f"airline:{airline_id}"), key)
            pipe.expire(self.keys.tag(f"airline:{airline_id}"), QUERY_TTL)
        pipe.set(key, text, ex=QUERY_TTL)
        pipe.execute()
        return rows, False

    def tagged(self, airline_id: int) -> list[str]:
        """The cached query keys registered under the airline's tag."""
        return sorted(self.valkey.smembers(self.keys.tag(f"airline:{airline_id}")))

    # -- write path -------------------------------------------------------------------
    # region: invalidate
    def invalidate(self, airline_id: int) -> list[str]:
        """DEL the airline hash, every key in its tag set, and the set; the keys named."""
        tag = self.keys.tag(f"airline:{airline_id}")
        pipe = self.pipeline(self.valkey)
        pipe.delete(self.keys.airline(airline_id))
        pipe.smembers(tag)
        _, members = pipe.execute()
        return [self.keys.airline(airline_id), *self._drop(self.valkey, tag, members)]

    def _drop(self, client: Any, tag: str, members: set[str]) -> list[str]:
        """One DEL per key (they sit in different slots on a cluster), the tag last."""
        pipe = self.pipeline(client)
        for member in sorted(members):
            pipe.delete(member)
        pipe.delete(tag)
        pipe.execute()
        return [*sorted(members), tag]

    # endregion: invalidate

    # region: write
    def _write_row(self, client: Any, row: dict[str, str]) -> None:
        """HSET the committed row, then drop whatever was cached under its tag meanwhile."""
        airline_id = int(row["airline_id"])
        tag = self.keys.tag(f"airline:{airline_id}")
        pipe = self.pipeline(client)
        pipe.hset(self.keys.airline(airline_id), mapping=row)
        pipe.expire(self.keys.airline(airline_id), ROW_TTL)
        pipe.smembers(tag)
        members = pipe.execute()[-1]
        if members:
            self._drop(client, tag, members)

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
        with self.db.transaction():
            self.db.execute(self._sql("airline_rename"), {"name": name, "airline_id": airline_id})
            row = self.read_row(airline_id)
            report.invalidated = self.invalidate(airline_id)
            if inside_transaction is not None:
                inside_transaction()
        report.committed = True
        self._write_after_commit(report, row, self.valkey if cache is None else cache)
        return report

    def _write_after_commit(self, report: WriteReport, row: dict[str, str], client: Any) -> None:
        report.attempts, report.error = retried(
            lambda: self._write_row(client, row),
            attempts=self.attempts,
            backoff_s=self.backoff_s,
            errors=valkey.exceptions.ValkeyError,
        )
        report.cache_written = not report.error
        if report.cache_written:
            self.repairs.pop(report.airline_id, None)
        else:
            self.repairs[report.airline_id] = report.error

    # endregion: write

    def plain_update(self, airline_id: int, name: str) -> None:
        """The same UPDATE with no cache at all: the baseline a write-through write pays on."""
        with self.db.transaction():
            self.db.execute(
                self._sql("airline_rename"), {"name": check_name(name), "airline_id": airline_id}
            )

    def repair_one(self, airline_id: int) -> dict[str, str]:
        """Write an airline recorded for repair through again, from the database."""
        row = self.read_row(airline_id)
        self._write_row(self.valkey, row)
        self.repairs.pop(airline_id, None)
        return row
