"""A small database interface over PyMySQL and psycopg 3.

Only ``db/mysql.py`` imports pymysql and only ``db/postgres.py`` imports psycopg.
Both turn driver errors into flightcache errors where they happen, so callers see
:class:`ConnectionFailed`, :class:`DataError` or :class:`QueryError`, never a
driver exception. SQL takes ``%(name)s`` parameters on both.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from flightcache.config import DbUrl
from flightcache.sqlfiles import Dialect

Params = Mapping[str, Any] | Sequence[Any] | None


class Point(NamedTuple):
    """A geographic point as FlughafenDB stores it: x is longitude, y latitude."""

    lon: float
    lat: float


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    rowcount: int = 0
    elapsed_ns: int = 0
    notices: list[str] = field(default_factory=list)


class Database(Protocol):
    """What flightcache needs from a database connection."""

    dialect: Dialect
    url: DbUrl

    def fetch(self, sql: str, params: Params = None) -> QueryResult: ...

    def execute(self, sql: str, params: Params = None) -> int: ...

    def execute_many(self, sql: str, params: Sequence[Params]) -> int:
        """One statement for many parameter sets, in as few round trips as the driver can
        (PyMySQL turns an INSERT into multi-row VALUES, psycopg pipelines)."""
        ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def tables(self) -> set[str]: ...

    def copy_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int: ...

    def reset_identity(self, table: str, column: str) -> None: ...

    def truncate(self, tables: Sequence[str]) -> None: ...

    def drop_tables(self, tables: Sequence[str]) -> None: ...

    def server_version(self) -> str: ...

    def quote(self, identifier: str) -> str: ...

    def bulk_session(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    """How long a connection waits, in seconds; None: no limit.

    Every connection has a connect timeout and a read timeout. Every connection
    but the data loader's has a statement timeout too, so that a demo or check
    never hangs on a query: the server cuts it and flightcache says so.
    """

    connect: float
    read: float | None
    statement: float | None


LOADER_READ_TIMEOUT = 3600.0
"""The loader's statements (a LOAD DATA of a chunk, VACUUM, ANALYZE) may run long."""
READ_MARGIN = 30.0
"""A read waits this much longer than the statement timeout, so the server's cut arrives."""


def limits(url: DbUrl, *, connect_timeout: float, loader: bool) -> Limits:
    """The timeouts of one connection: the URL's ``connect_timeout``, ``read_timeout`` and
    ``statement_timeout`` parameters over flightcache's defaults (the loader has no
    statement timeout, whatever the URL says)."""
    from flightcache.config import DEFAULT_STATEMENT_TIMEOUT_MS, parse_seconds

    ms = url.statement_timeout_ms
    statement = None if loader else (DEFAULT_STATEMENT_TIMEOUT_MS if ms is None else ms) / 1000
    statement = statement or None  # 0: none
    given = url.param("read_timeout")
    if given is not None:
        read = parse_seconds(given)
    elif loader:
        read = LOADER_READ_TIMEOUT
    else:
        read = statement + READ_MARGIN if statement else LOADER_READ_TIMEOUT
    return Limits(connect=url.connect_timeout or connect_timeout, read=read, statement=statement)


def connect(
    url: DbUrl, *, create: bool = False, connect_timeout: float = 5.0, loader: bool = False
) -> Database:
    """Open a connection; with ``create`` the database is created when missing.

    ``loader`` is for the data loader's own connection alone: it may LOAD DATA
    LOCAL on MySQL (every other connection refuses it, so a server cannot ask
    for a client file) and has no statement timeout.
    """
    bounds = limits(url, connect_timeout=connect_timeout, loader=loader)
    if url.kind == "mysql":
        from flightcache.db.mysql import MySQLDatabase

        return MySQLDatabase.open(url, create=create, limits=bounds, loader=loader)
    from flightcache.db.postgres import PostgresDatabase

    return PostgresDatabase.open(url, create=create, limits=bounds)


def drop_database(url: DbUrl) -> None:
    """Drop the database the URL names (tests use it to clean up after themselves)."""
    if url.kind == "mysql":
        from flightcache.db.mysql import drop_database as drop_mysql

        drop_mysql(url)
    else:
        from flightcache.db.postgres import drop_database as drop_pg

        drop_pg(url)


def text_field(value: Any) -> str | None:
    """A value as plain text for a bulk loader; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, (float, decimal.Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return str(value)


def chunked(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
