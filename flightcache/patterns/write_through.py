"""Write-through: a change goes to the database and to Valkey in one operation.

Read path: HGETALL the airline's hash; on a miss, read the row and HSET it with a
TTL. Query results that show the airline (001's route analysis, the airline's
detail) are cached as JSON strings, and each key is added (SADD) to the tag set
``tag:airline:<id>`` of every airline it shows, before the value is SET.

Write path, in this order:
  1. BEGIN; UPDATE airline; SELECT the new row (the transaction sees it).
  2. Still inside the transaction: DEL the airline's hash, SMEMBERS its tag set,
     DEL every member and the set. If Valkey cannot be reached here the
     transaction rolls back: the write is refused rather than leaving a copy
     behind that nobody can delete.
  3. COMMIT.
  4. HSET the new row (with its TTL), and invalidate the tag set once more: a
     reader that ran between 2 and 3 saw the old committed row and may have
     cached it again. Tried a bounded number of times.

Why delete before the commit and write after it: deleting first turns every
failure that follows into a cache miss, never a stale hit. If the database write
fails (1 or 3), the transaction rolls back and Valkey holds no copy, so the next
read loads the committed name. If the cache write fails (4), Valkey still holds
no copy, so the next read misses and loads the new name; the airline is also
recorded for repair, and a read of a recorded airline skips Valkey and writes
the row through again. What remains: a reader that fills between 2 and 3 while
step 4 fails as well serves the old name until its TTL ends (in a real system,
record the repair in an outbox table inside the transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.errors import DataError, FlightcacheError
from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline, retried
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.demos.base import DemoContext, Record
    from flightcache.trace import TracedDatabase

NAME_MAX = 30  # airline.airlinename is varchar(30) in both schemas
ROW_TTL = 3600  # seconds, the airline hash
QUERY_TTL = 3600  # seconds, cached query results and their tag sets
ROUTES = "airline_route_analysis"
DETAIL = "airline_detail"


class InjectedFault(FlightcacheError):
    """A failure a demo or a test causes on purpose."""


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


def _text(value: Any) -> str:
    return "" if value is None else str(value)


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

    # -- looking airlines up ------------------------------------------------------
    def find_airline(self, code_or_id: str) -> dict[str, str]:
        """The airline a person named by IATA code or id; DataError when none matches."""
        text = code_or_id.strip()
        if text.isdecimal():
            found = self.db.fetch(self._sql("airline_by_id"), {"airline_id": int(text)})
            what = f"id {text}"
        else:
            found = self.db.fetch(self._sql("airline_by_iata"), {"iata": text.upper()})
            what = f"IATA code {text!r}"
        if not found.rows:
            codes = [str(r[0]) for r in self.db.fetch(self._sql("airline_some_codes")).rows]
            raise DataError(
                f"no airline with {what}",
                hint=f"pass an IATA code such as {', '.join(codes) or 'LH'}, or an airline id",
            )
        return self._row_dict(found.columns, found.rows[0])

    def read_row(self, airline_id: int) -> dict[str, str]:
        """The airline row from the database (the read a cache hit saves)."""
        found = self.db.fetch(self._sql("airline_by_id"), {"airline_id": airline_id})
        if not found.rows:
            raise DataError(f"no airline with id {airline_id}")
        return self._row_dict(found.columns, found.rows[0])

    @staticmethod
    def _row_dict(columns: list[str], row: tuple[Any, ...]) -> dict[str, str]:
        return {c: _text(v) for c, v in zip(columns, row, strict=True)}

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
    def invalidate(self, airline_id: int, client: Any = None) -> list[str]:
        """DEL the airline hash, every key in its tag set, and the set; the keys named."""
        client = self.valkey if client is None else client
        tag = self.keys.tag(f"airline:{airline_id}")
        pipe = self.pipeline(client)
        pipe.delete(self.keys.airline(airline_id))
        pipe.smembers(tag)
        _, members = pipe.execute()
        return [self.keys.airline(airline_id), *self._drop(client, tag, members)]

    def _drop(self, client: Any, tag: str, members: set[str]) -> list[str]:
        """One DEL per key (they sit in different slots on a cluster), the tag last."""
        pipe = self.pipeline(client)
        for member in sorted(members):
            pipe.delete(member)
        pipe.delete(tag)
        pipe.execute()
        return [*sorted(members), tag]

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

    def repair(self) -> list[int]:
        """Repair every recorded airline; the ids repaired."""
        done = sorted(self.repairs)
        for airline_id in done:
            self.repair_one(airline_id)
        return done

    def cached_names(self, airline_id: int, keys: list[str]) -> dict[str, str | None]:
        """The name each cached copy shows for the airline; None where there is no copy.

        ``keys`` are query keys (e.g. those its tag set listed); the airline hash
        comes first.
        """
        code = self.read_row(airline_id)["iata"]
        pipe = self.pipeline(self.valkey)
        pipe.hget(self.keys.airline(airline_id), "airlinename")
        for key in keys:
            pipe.get(key)
        hashed, *texts = pipe.execute()
        names: dict[str, str | None] = {self.keys.airline(airline_id): hashed}
        for key, text in zip(keys, texts, strict=True):
            rows = json.loads(text) if text is not None else []
            shown = [
                r.get("airlinename", r.get("airline_name"))
                for r in rows
                if code in (r.get("iata"), r.get("airline_code"))
            ]
            names[key] = str(shown[0]) if shown else None
        return names


# -- the demo ------------------------------------------------------------------------
def renamed(name: str, mark: str) -> str:
    """``name`` with ``mark`` appended, cut so that it fits the column."""
    suffix = f" ({mark})"
    return name[: NAME_MAX - len(suffix)].rstrip() + suffix


def _names(rows: list[dict[str, Any]], code: str) -> str:
    for rank, row in enumerate(rows, 1):
        if row.get("airline_code") == code:
            return f"#{rank} {row['airline_name']!r}"
    return f"{code} is not in the top {len(rows)}"


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.demos.base import Table

    wt = WriteThrough(ctx.db, ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
    wanted = ctx.options.get("airline")
    new_name = ctx.options.get("name")
    if new_name is not None:
        check_name(new_name)
    airline = wt.find_airline(str(wanted)) if wanted is not None else None

    with ctx.step(
        "Warm the cache: the airline route analysis",
        "001's expensive query, cached as JSON for an hour; every airline it lists"
        " gets the key in its tag set (SADD), before the value is SET",
    ) as step:
        routes, step.hit = wt.route_analysis()
        if airline is None:
            airline = wt.find_airline(str(routes[0]["airline_code"]) if routes else "1")
        step.rows = len(routes)
        step.outcome = f"miss: {len(routes)} rows from the database, cached and tagged"
    yield step

    airline_id, code, original = int(airline["airline_id"]), airline["iata"], airline["airlinename"]
    new_name = new_name or renamed(original, "new")
    lost_name, late_name = renamed(original, "rolled back"), renamed(original, "cache down")
    ctx.put_back(
        "airline_rename",
        {"name": original, "airline_id": airline_id},
        how=lambda: _restore(wt, airline_id, original),
    )

    with ctx.step(
        f"Warm the cache: airline {code} and its detail query",
        "the row as a hash (HSET, EXPIRE); the detail query as JSON, tagged with the airline",
    ) as step:
        row, hit_row = wt.airline(airline_id)
        detail, hit_detail = wt.airline_detail(airline_id)
        step.hit = hit_row and hit_detail
        step.outcome = f"miss, now cached: {code} is {row['airlinename']!r}"
    yield step

    with ctx.step(
        "Read from the cache: the old name, and the tag set",
        f"SMEMBERS shows what a change of {code} must invalidate",
    ) as step:
        row, hit_row = wt.airline(airline_id)
        routes, hit_routes = wt.route_analysis()
        tagged = wt.tagged(airline_id)
        step.hit = hit_row and hit_routes
        step.data = {"name": row["airlinename"], "tagged": tagged}
        step.outcome = (
            f"hit: {code} is {row['airlinename']!r}; route analysis: {_names(routes, code)};"
            f" tag set lists {len(tagged)} keys"
        )
    yield step

    with ctx.step(
        f"Write through: rename {code} to {new_name!r}",
        "order: BEGIN, UPDATE, SELECT the row, then (still in the transaction) DEL the hash"
        " and every tagged key, COMMIT, then HSET the new row and invalidate the tag again",
    ) as step:
        report = wt.update_name(airline_id, new_name)
        step.data = _report(report)
        step.outcome = (
            f"committed; {len(report.invalidated)} keys deleted before COMMIT;"
            f" the hash now holds {new_name!r}"
        )
    yield step

    with ctx.step(
        "Read after the write: fresh everywhere",
        "the hash was written through (hit); the tagged results were deleted and are rebuilt",
    ) as step:
        row, hit_row = wt.airline(airline_id)
        detail, hit_detail = wt.airline_detail(airline_id)
        routes, hit_routes = wt.route_analysis()
        step.data = {
            "name": row["airlinename"],
            "detail_name": detail[0]["airlinename"] if detail else None,
            "hits": {"airline": hit_row, "detail": hit_detail, "route_analysis": hit_routes},
        }
        step.outcome = (
            f"airline hash {'hit' if hit_row else 'miss'}: {row['airlinename']!r};"
            f" detail {'hit' if hit_detail else 'rebuilt'}; route analysis"
            f" {'hit' if hit_routes else 'rebuilt'}: {_names(routes, code)}"
        )
    yield step

    def fail() -> None:
        raise InjectedFault("injected: the database write fails just before COMMIT")

    with ctx.step(
        f"Fault (a): the database write fails (rename to {lost_name!r})",
        "an error injected inside the transaction, after the invalidation: ROLLBACK",
    ) as step:
        step.ok = False
        try:
            wt.update_name(airline_id, lost_name, inside_transaction=fail)
        except InjectedFault as exc:
            step.fails_on_purpose()
            step.data["error"] = exc.message
        stored = wt.read_row(airline_id)["airlinename"]
        copies = wt.cached_names(airline_id, tagged)
        step.data.update(database_name=stored, cached_names=copies)
        step.outcome = f"rolled back: the database keeps {stored!r}; " + _verdict(
            wt, copies, stored
        )
    yield step

    with ctx.step(
        "Read after fault (a)",
        "the copies were deleted before the failed COMMIT: misses load the committed name",
    ) as step:
        row, step.hit = wt.airline(airline_id)
        routes, _ = wt.route_analysis()
        step.data = {"name": row["airlinename"]}
        step.outcome = (
            f"{'hit' if step.hit else 'miss'}: {row['airlinename']!r};"
            f" route analysis rebuilt: {_names(routes, code)}"
        )
    yield step

    broken, address = _unreachable_client()
    ctx.tracer.instrument(broken)
    ctx.on_exit(broken.close)
    with ctx.step(
        f"Fault (b): the cache write fails after COMMIT (rename to {late_name!r})",
        f"the HSET, EXPIRE, SMEMBERS after COMMIT go to {address}, where nothing listens;"
        f" {wt.attempts} tries, then the airline is recorded for repair",
    ) as step:
        step.ok = False
        report = wt.update_name(airline_id, late_name, cache=broken)
        if report.error:
            step.fails_on_purpose()
        stored = wt.read_row(airline_id)["airlinename"]
        copies = wt.cached_names(airline_id, tagged)
        step.data = {
            **_report(report),
            "database_name": stored,
            "cached_names": copies,
            "repairs": dict(wt.repairs),
        }
        step.outcome = (
            f"committed {stored!r}; the cache write failed {report.attempts} times"
            f" ({report.error}); " + _verdict(wt, copies, stored)
        )
    yield step

    with ctx.step(
        "Read after fault (b): fresh, and repaired",
        "the airline is recorded for repair: the read skips Valkey and writes the row through",
    ) as step:
        row, step.hit = wt.airline(airline_id)
        routes, _ = wt.route_analysis()
        again, hit_again = wt.airline(airline_id)
        step.data = {"name": row["airlinename"], "repairs": dict(wt.repairs)}
        step.outcome = (
            f"{row['airlinename']!r} from the database, route analysis: {_names(routes, code)};"
            f" next read {'hit' if hit_again else 'miss'}: {again['airlinename']!r}"
        )
    yield step

    yield ctx.compare(
        "write: database only vs write-through",
        {
            "database only": lambda: wt.plain_update(airline_id, new_name),
            "write-through": lambda: wt.update_name(airline_id, new_name),
        },
        note="write-through = the same transaction + DEL/SMEMBERS before COMMIT"
        " + HSET/EXPIRE/SMEMBERS after it",
    )
    yield ctx.compare(
        "read after the write: database vs cache hit",
        {
            "database": lambda: wt.read_row(airline_id),
            "cache hit": lambda: wt.airline(airline_id),
        },
        note="database = SELECT the airline row; cache hit = HGETALL of the written-through hash",
    )
    yield Table(
        "names along the way",
        ["when", "name"],
        [
            ["before", original],
            ["after the write", new_name],
            ["fault (a), rolled back", lost_name],
            ["fault (b), committed", late_name],
            ["restored when the demo ends", original],
        ],
    )


def _report(report: WriteReport) -> dict[str, Any]:
    return {
        "committed": report.committed,
        "cache_written": report.cache_written,
        "attempts": report.attempts,
        "invalidated": report.invalidated,
        "error": report.error,
    }


def _verdict(wt: WriteThrough, copies: dict[str, str | None], stored: str) -> str:
    """What Valkey holds for the airline, compared with the database."""
    shown = ", ".join(
        f"{key.removeprefix(wt.keys.prefix)} {'no copy' if name is None else repr(name)}"
        for key, name in copies.items()
    )
    stale = [k for k, name in copies.items() if name is not None and name != stored]
    return f"Valkey: {shown}; " + (
        f"STALE: {len(stale)} copies differ from the database" if stale else "nothing stale"
    )


def _unreachable_client() -> tuple[Any, str]:
    """A Valkey client for a port nobody listens on, and that address."""
    import socket

    from flightcache.config import ValkeyUrl
    from flightcache.valkey_client import unchecked

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    return unchecked(ValkeyUrl.parse(f"valkey://{address}"), timeout=0.25), address


def _restore(wt: WriteThrough, airline_id: int, name: str) -> None:
    """Put the original name back, through the cache when Valkey lets us."""
    try:
        wt.update_name(airline_id, name)
    except (valkey.exceptions.ValkeyError, FlightcacheError):
        wt.plain_update(airline_id, name)
