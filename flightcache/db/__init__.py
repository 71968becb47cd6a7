"""A small database interface over PyMySQL and psycopg 3.

Only ``db/mysql.py`` imports pymysql and only ``db/postgres.py`` imports psycopg.
Both turn driver errors into flightcache errors where they happen, so callers see
:class:`ConnectionFailed`, :class:`DataError` or :class:`QueryError`, never a
driver exception. SQL takes ``%(name)s`` parameters on both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from flightcache.config import DbUrl
from flightcache.db.base import (
    Limits,
    Params,
    Point,
    QueryResult,
    chunked,
    text_field,
)
from flightcache.errors import QueryError
from flightcache.sqlfiles import Dialect


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


__all__ = [
    "Database",
    "Limits",
    "Params",
    "Point",
    "QueryResult",
    "chunked",
    "connect",
    "drop_database",
    "limits",
    "text_field",
]


def literal(text: str) -> str:
    """A SQL string literal of flightcache's own names and hex passwords, for the DDL
    that takes no parameters (CREATE USER ... IDENTIFIED BY, ALTER ROLE ... PASSWORD):
    checked against a narrow alphabet, never escaped; anything else is refused."""
    if not re.fullmatch(r"[A-Za-z0-9_.:%-]*", text):
        raise QueryError(f"refusing to quote {text!r} as a literal")
    return f"'{text}'"
