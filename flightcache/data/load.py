"""Create the schema, load a dataset, and tell what is loaded.

Bookkeeping lives in ``flightcache_meta`` (name/value rows):

    owner        "flightcache" once flightcache created the FlughafenDB tables here
    state        "loading" while a load runs, "complete" when it finished
    source       "generated" or "import:<file name>"
    scale, seed  of a generated dataset
    rows.<t>     rows loaded into table t
    loaded_at, load_seconds

A load marks ``state=loading`` before it touches a table and ``complete`` after
the last row, so an interrupted load (Ctrl-C, a killed process) can never look
complete: the next ``data load`` sees the mark and loads again. On PostgreSQL the
whole load is also one transaction, so an interruption leaves the previous data.

flightcache empties and refills only the FlughafenDB tables it created itself
(``owner``); tables with FlughafenDB's names that another owner made stop a load
and are never dropped. Rows the database skips without an error (MySQL's
``LOAD DATA`` drops duplicate keys with only a warning) are counted per table,
from what is stored, not from what the server says it loaded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from flightcache import sqlfiles
from flightcache.data.tables import COLUMNS, IDENTITY, LOAD_ORDER, META_TABLE, OWN_PREFIX, TABLES
from flightcache.db import Database
from flightcache.errors import DataError

LoadProgress = Callable[[str, int, int | None], None]
"""progress(table, rows done so far, rows expected or None)."""


@dataclass
class DatasetInfo:
    """What ``data info`` reports."""

    present: bool
    state: str | None
    owner: str | None
    source: str | None
    scale: str | None
    seed: int | None
    rows: dict[str, int] = field(default_factory=dict)
    loaded_at: str | None = None
    load_seconds: float | None = None
    foreign_tables: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.present and self.state == "complete" and not self.missing_tables


@dataclass
class LoadReport:
    tables: list[tuple[str, int, float]] = field(default_factory=list)  # name, rows, seconds
    skipped: dict[str, int] = field(default_factory=dict)  # rows given but not stored
    seconds: float = 0.0
    repaired: bool = False
    created_schema: bool = False


def read_meta(db: Database) -> dict[str, str]:
    if META_TABLE not in db.tables():
        return {}
    result = db.fetch(sqlfiles.query(db.dialect, "meta_get"))
    return {str(k): str(v) for k, v in result.rows}


def write_meta(db: Database, **values: object) -> None:
    statement = sqlfiles.query(db.dialect, "meta_set")
    for name, value in values.items():
        db.execute(statement, {"name": name.replace("__", "."), "value": str(value)})


def info(db: Database, *, exact: bool = False) -> DatasetInfo:
    """The dataset in ``db``; ``exact`` counts rows instead of trusting the load's record."""
    tables = db.tables()
    meta = read_meta(db)
    present = bool(tables & TABLES)
    rows: dict[str, int] = {}
    for table in LOAD_ORDER:
        if table not in tables:
            continue
        recorded = meta.get(f"rows.{table}")
        if exact or recorded is None:
            rows[table] = int(db.fetch(f"SELECT COUNT(*) FROM {db.quote(table)}").rows[0][0])
        else:
            rows[table] = int(recorded)
    seed = meta.get("seed")
    seconds = meta.get("load_seconds")
    return DatasetInfo(
        present=present,
        state=meta.get("state"),
        owner=meta.get("owner"),
        source=meta.get("source"),
        scale=meta.get("scale"),
        seed=int(seed) if seed and seed.isdigit() else None,
        rows=rows,
        loaded_at=meta.get("loaded_at"),
        load_seconds=float(seconds) if seconds else None,
        foreign_tables=sorted(t for t in tables - TABLES if not t.startswith(OWN_PREFIX)),
        missing_tables=[t for t in LOAD_ORDER if present and t not in tables],
    )


def require_dataset(db: Database) -> DatasetInfo:
    """Raise a DataError unless a complete dataset is loaded."""
    found = info(db)
    where = db.url.url()
    if not found.present:
        raise DataError(
            f"no FlughafenDB data in {where}",
            hint="load it with `flightcache data load` (or `flightcache up` on the embedded stack)",
        )
    if found.state == "loading":
        raise DataError(
            f"the last data load into {where} did not finish",
            hint="run `flightcache data load` again; it repairs the interrupted load",
        )
    if found.missing_tables:
        raise DataError(
            f"{where} lacks FlughafenDB tables: {', '.join(found.missing_tables)}",
            hint="run `flightcache data load` to create and fill them",
        )
    return found


def check_owner(db: Database) -> None:
    """Refuse a database whose FlughafenDB tables another owner created: never touched."""
    existing = db.tables() & TABLES
    if existing and read_meta(db).get("owner") != "flightcache":
        raise DataError(
            f"{db.url.url()} already holds FlughafenDB tables flightcache did not create: "
            f"{', '.join(sorted(existing))}",
            hint="name another database in the URL; flightcache never drops tables it did not"
            " create (drop them yourself if they are yours to drop)",
        )


def create_schema(db: Database) -> list[str]:
    """Create the FlughafenDB tables that are missing; return the ones created.

    Tables with FlughafenDB names that flightcache did not create are left alone,
    and make this fail (see :func:`check_owner`).
    """
    check_owner(db)
    for statement in sqlfiles.statements(db.dialect, "flightcache.sql"):
        db.execute(statement)
    existing = db.tables() & TABLES
    write_meta(db, owner="flightcache")
    created: list[str] = []
    for statement in sqlfiles.statements(db.dialect, "schema.sql"):
        table = _created_table(statement)
        if table is not None and table in existing:
            continue
        if table is None and _index_table(statement) in existing:
            continue
        db.execute(statement)
        if table is not None:
            created.append(table)
    return created


def drop_schema(db: Database) -> list[str]:
    """Drop the FlughafenDB tables flightcache created, and its bookkeeping."""
    meta = read_meta(db)
    if meta.get("owner") != "flightcache":
        raise DataError(
            f"flightcache did not create the tables in {db.url.url()}; it drops nothing there"
        )
    tables = db.tables()
    present = [t for t in reversed(LOAD_ORDER) if t in tables]
    own = sorted(t for t in tables if t.startswith(OWN_PREFIX) and t != META_TABLE)
    db.drop_tables([*present, *own, META_TABLE])
    return present


def _created_table(statement: str) -> str | None:
    words = statement.split()
    if len(words) > 2 and words[0].upper() == "CREATE" and words[1].upper() == "TABLE":
        return words[2].strip('`"')
    return None


def _index_table(statement: str) -> str | None:
    words = statement.split()
    upper = [w.upper() for w in words]
    if upper[:1] == ["CREATE"] and "INDEX" in upper and "ON" in upper:
        return words[upper.index("ON") + 1].strip('`"')
    return None


def check_target(db: Database, *, force: bool) -> DatasetInfo:
    """Refuse a database that holds tables flightcache did not make, unless ``force``."""
    found = info(db)
    if found.foreign_tables and not force:
        shown = ", ".join(found.foreign_tables[:5]) + (
            f" and {len(found.foreign_tables) - 5} more" if len(found.foreign_tables) > 5 else ""
        )
        raise DataError(
            f"{db.url.url()} holds tables that are not FlughafenDB's: {shown}",
            hint="load into an empty database (name another one in the URL), "
            "or pass --beside to load beside them (they stay untouched)",
        )
    return found


def load_tables(
    db: Database,
    sources: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Any]], int | None]],
    *,
    meta: dict[str, object],
    progress: LoadProgress | None = None,
) -> LoadReport:
    """Empty the FlughafenDB tables and fill them from ``sources``, bookkept in meta.

    ``sources`` yields (table, columns, rows, expected row count or None). A table
    may come more than once (a dump's INSERT batches); its counts add up.
    """
    report = LoadReport()
    check_owner(db)
    started = time.perf_counter()
    outer = db.transaction() if db.dialect == "postgresql" else nullcontext()
    counts: dict[str, int] = {}
    fed: dict[str, int] = {}  # rows given, per table
    with outer:
        # MySQL commits this mark at once; on PostgreSQL it shares the load's fate
        write_meta(db, state="loading")
        if db.dialect == "postgresql":
            db.execute("SET CONSTRAINTS ALL DEFERRED")
        db.truncate([t for t in reversed(LOAD_ORDER)])
        with db.bulk_session():
            for table, columns, rows, expected in sources:
                t0 = time.perf_counter()
                done = counts.get(table, 0)
                given = [0]

                def counted(
                    rows: Iterable[Sequence[Any]] = rows,
                    table: str = table,
                    expected: int | None = expected,
                    base: int = done,
                    given: list[int] = given,
                ) -> Iterator[Sequence[Any]]:
                    n = 0
                    for n, row in enumerate(rows, start=1):
                        if progress is not None and n % 20_000 == 0:
                            progress(table, base + n, expected)
                        yield row
                    given[0] = n
                    if progress is not None:
                        progress(table, base + n, expected)

                loaded = db.copy_rows(table, columns, counted())
                counts[table] = done + loaded
                fed[table] = fed.get(table, 0) + given[0]
                report.tables.append((table, loaded, time.perf_counter() - t0))
        if db.dialect == "mysql":
            # LOAD DATA skips a row with a duplicate key with only a warning, and
            # MariaDB's bulk load into an empty table then drops the whole batch
            # while reporting every row as loaded: count what is stored.
            for table, given_rows in fed.items():
                stored = int(db.fetch(f"SELECT COUNT(*) FROM {db.quote(table)}").rows[0][0])
                if stored < given_rows:
                    report.skipped[table] = given_rows - stored
                counts[table] = stored
        for table, column in IDENTITY.items():
            db.reset_identity(table, column)
        report.seconds = time.perf_counter() - started
        write_meta(
            db,
            **meta,
            **{f"rows__{t}": counts.get(t, 0) for t in LOAD_ORDER},
            **{f"skipped__{t}": report.skipped.get(t, 0) for t in LOAD_ORDER},
            loaded_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            load_seconds=f"{report.seconds:.1f}",
            state="complete",
        )
    settle(db)
    return report


SETTLE = {"postgresql": "VACUUM (ANALYZE)", "mysql": "ANALYZE TABLE"}


def settle(db: Database) -> str:
    """Leave the dataset's tables as the database's background workers would in time.

    Fresh planner statistics on both databases (ANALYZE); on PostgreSQL a VACUUM
    too, which sets the visibility map and hint bits a fresh COPY or a demo's
    inserts and deletes leave unset, work autovacuum and the first readers would
    otherwise do at a moment nobody chose. Returns the statement run.
    """
    statement = f"{SETTLE[db.dialect]} {', '.join(db.quote(t) for t in LOAD_ORDER)}"
    if db.dialect == "postgresql":
        db.execute(statement)
    else:
        db.fetch(statement)  # ANALYZE TABLE answers with a result set
    return statement


def preflight(db: Database, *, replace: bool, force: bool) -> DatasetInfo:
    """Refuse a load that would mix with other tables, overwrite a dataset unasked, or
    touch FlughafenDB tables flightcache did not create (never, whatever the flags)."""
    before = check_target(db, force=force)
    check_owner(db)
    if before.complete and not replace:
        what = (
            f"scale {before.scale}, seed {before.seed}"
            if before.source == "generated"
            else str(before.source)
        )
        raise DataError(
            f"a dataset is already loaded in {db.url.url()} ({what})",
            hint="pass --replace to load another over it",
        )
    return before


def replaced_tables(db: Database) -> list[tuple[str, int]]:
    """The FlughafenDB tables a load would empty here, with their rows now."""
    found = info(db, exact=True)
    return [(table, found.rows[table]) for table in LOAD_ORDER if table in found.rows]


def load_generated(
    db: Database,
    scale: str,
    seed: int,
    *,
    replace: bool = False,
    force: bool = False,
    progress: LoadProgress | None = None,
) -> LoadReport:
    """Generate a dataset and load it; see the module docstring for the guarantees."""
    from flightcache.data.generate import generate

    before = preflight(db, replace=replace, force=force)
    created = create_schema(db)
    dataset = generate(scale, seed)

    def sources() -> Iterator[tuple[str, Sequence[str], Iterable[Sequence[Any]], int | None]]:
        for table in LOAD_ORDER:
            expected = dataset.counts.get(table)
            yield (
                table,
                COLUMNS[table],
                dataset.rows(table),
                (expected if expected and expected >= 0 else None),
            )

    report = load_tables(
        db,
        sources(),
        meta={"source": "generated", "scale": scale, "seed": seed},
        progress=progress,
    )
    report.repaired = before.state == "loading"
    report.created_schema = bool(created)
    return report
