"""PostgreSQL through psycopg 3: the only module that imports psycopg."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql as pgsql

from flightcache.config import DbUrl, scrub
from flightcache.db.base import Limits, Params, Point, QueryResult
from flightcache.errors import (
    ConfigError,
    ConnectionFailed,
    DataError,
    FlightcacheError,
    QueryError,
    RejectedValue,
    StatementTimeout,
)
from flightcache.sqlfiles import Dialect

_DEFAULT_LIMITS = Limits(connect=5.0, read=None, statement=None)
_KEEPALIVE = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
"""A peer that vanished mid-read is noticed in about a minute (libpq has no read timeout)."""


def _message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return scrub(str(primary))
    lines = str(exc).strip().splitlines()
    return scrub(lines[-1] if lines else repr(exc))


def _wrap(exc: psycopg.Error, limits: Limits, what: str = "PostgreSQL error") -> FlightcacheError:
    """A psycopg error met while running a statement, as a flightcache error:
    StatementTimeout when the server cut it, RejectedValue when a constraint or a
    column refused a value."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StatementTimeout(
            f"PostgreSQL cut a statement that ran past the {limits.statement or 0:g} s"
            f" statement timeout: {_message(exc)}",
            hint="a demo or check should not wait this long; to allow more, add"
            " ?statement_timeout=5min (or 0 for none) to the database URL",
        )
    if isinstance(exc, psycopg.OperationalError):
        return ConnectionFailed(f"lost the PostgreSQL connection: {_message(exc)}")
    said = f"{what}: {_message(exc)}"
    if isinstance(exc, (psycopg.IntegrityError, psycopg.DataError)):
        return RejectedValue(said)
    return QueryError(said)


def _wrap_connect(exc: psycopg.Error, url: DbUrl) -> FlightcacheError:
    text = scrub(str(exc))
    where = f"{url.host}:{url.port}"
    if isinstance(exc, psycopg.ProgrammingError) or ("invalid" in text and "value" in text):
        return ConfigError(
            f"PostgreSQL refused a parameter of the database URL: {text.strip().splitlines()[-1]}",
            hint="check the URL's query parameters (sslmode, sslrootcert, ...)",
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return ConnectionFailed(
            f"PostgreSQL at {where} refused user {url.user!r}: wrong password",
            hint="check the user and password in FLIGHTCACHE_DB_URL or --db-url",
        )
    if f'database "{url.database}" does not exist' in text:
        return DataError(
            f"database {url.database!r} does not exist on PostgreSQL at {where}",
            hint="create and fill it with `flightcache data load`",
        )
    if "role" in text and "does not exist" in text:
        return ConnectionFailed(
            f"PostgreSQL at {where} has no user {url.user!r}",
            hint="check the user in FLIGHTCACHE_DB_URL or --db-url",
        )
    last = text.strip().splitlines()[-1] if text.strip() else "no answer"
    if "SSL" in text or "certificate" in text:
        return ConnectionFailed(
            f"no TLS connection to PostgreSQL at {where}: {last}",
            hint="check sslmode, sslrootcert, sslcert and sslkey in the database URL",
        )
    return ConnectionFailed(
        f"cannot reach PostgreSQL at {where}: {last}",
        hint="is the server running? check FLIGHTCACHE_DB_URL or --db-url",
    )


def _libpq_params(url: DbUrl) -> dict[str, str]:
    """The URL's libpq keywords, each one known to the libpq psycopg runs on."""
    given = {k: v for k, v in url.params if k not in ("statement_timeout", "connect_timeout")}
    known = {d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()}
    for name in given:
        if name not in known:
            raise ConfigError(
                f"database URL parameter {name!r} is not known to the libpq flightcache"
                f" runs on (version {psycopg.pq.version()})",
                hint="drop it, or upgrade psycopg's libpq",
            )
    return {"application_name": "flightcache", **_KEEPALIVE, **given}


def _connect(url: DbUrl, database: str, limits: Limits) -> psycopg.Connection[Any]:
    """A connection with a connect timeout, keepalives and the statement timeout."""
    try:
        conn = psycopg.connect(
            psycopg.conninfo.make_conninfo("", **_libpq_params(url)),
            host=url.host,
            port=url.port,
            user=url.user,
            password=url.password or None,
            dbname=database,
            connect_timeout=max(2, math.ceil(limits.connect)),
            autocommit=True,
        )
    except psycopg.Error as exc:
        raise _wrap_connect(exc, url) from None
    if limits.statement:
        try:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (f"{int(limits.statement * 1000)}ms",),
            )
        except psycopg.Error as exc:
            conn.close()
            raise _wrap(exc, limits) from None
    return conn


def drop_database(url: DbUrl) -> None:
    conn = _connect(url, "postgres", Limits(connect=5, read=None, statement=None))
    try:
        conn.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                pgsql.Identifier(url.database)
            )
        )
    finally:
        conn.close()


class PostgresDatabase:
    dialect: Dialect = "postgresql"

    def __init__(
        self, url: DbUrl, conn: psycopg.Connection[Any], limits: Limits = _DEFAULT_LIMITS
    ) -> None:
        self.url = url
        self._conn = conn
        self._limits = limits

    @classmethod
    def open(cls, url: DbUrl, *, create: bool, limits: Limits) -> PostgresDatabase:
        try:
            conn = _connect(url, url.database, limits)
        except DataError:
            if not create:
                raise
            server = _connect(url, "postgres", limits)
            try:
                server.execute(
                    pgsql.SQL("CREATE DATABASE {} ENCODING 'UTF8'").format(
                        pgsql.Identifier(url.database)
                    )
                )
            except psycopg.errors.DuplicateDatabase:
                pass
            except psycopg.Error as exc:
                raise QueryError(
                    f"cannot create database {url.database!r}: {_message(exc)}"
                ) from None
            finally:
                server.close()
            conn = _connect(url, url.database, limits)
        return cls(url, conn, limits)

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def fetch(self, sql: str, params: Params = None) -> QueryResult:
        start = time.perf_counter_ns()
        try:
            cur = self._conn.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            columns = [d.name for d in cur.description or ()]
            count = cur.rowcount
        except psycopg.Error as exc:
            raise _wrap(exc, self._limits) from None
        return QueryResult(columns, list(rows), count, time.perf_counter_ns() - start)

    def execute(self, sql: str, params: Params = None) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except psycopg.Error as exc:
            raise _wrap(exc, self._limits) from None

    def execute_many(self, sql: str, params: Sequence[Params]) -> int:
        if not params:
            return 0
        try:
            with self._conn.cursor() as cur:
                cur.executemany(sql, [p if p is not None else () for p in params])
                return cur.rowcount
        except psycopg.Error as exc:
            raise _wrap(exc, self._limits) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as exc:
            raise _wrap(exc, self._limits) from None

    @contextmanager
    def bulk_session(self) -> Iterator[None]:
        """As a superuser, skip FK triggers while loading data flightcache made."""
        superuser = self.fetch("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        replica = bool(superuser.rows and superuser.rows[0][0])
        if replica:
            self.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            if replica:
                try:
                    self.execute("SET session_replication_role = DEFAULT")
                except FlightcacheError:
                    pass

    def tables(self) -> set[str]:
        # views too, as MySQL's information_schema.tables lists them: a room account's
        # schema reads the shared dataset through views (flightcache.room.accounts)
        result = self.fetch(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p', 'v')"
            " AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        )
        return {str(r[0]) for r in result.rows}

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        )
        count = 0
        points: list[int] | None = None
        try:
            with self._conn.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    if points is None:
                        points = [i for i, v in enumerate(row) if isinstance(v, Point)]
                    if points:
                        row = list(row)
                        for i in points:
                            p = row[i]
                            row[i] = f"({p.lon!r},{p.lat!r})" if p is not None else None
                    copy.write_row(row)
                    count += 1
        except psycopg.Error as exc:
            raise _wrap(exc, self._limits, f"loading {table} failed") from None
        return count

    def reset_identity(self, table: str, column: str) -> None:
        self.execute(
            pgsql.SQL(
                "SELECT setval(pg_get_serial_sequence({t}, {c}), COALESCE(MAX({ci}), 0) + 1, false)"
                " FROM {ti}"
            )
            .format(
                t=pgsql.Literal(table),
                c=pgsql.Literal(column),
                ci=pgsql.Identifier(column),
                ti=pgsql.Identifier(table),
            )
            .as_string(self._conn)
        )

    def truncate(self, tables: Sequence[str]) -> None:
        if tables:
            self.execute(f"TRUNCATE {', '.join(map(self.quote, tables))} RESTART IDENTITY")

    def drop_tables(self, tables: Sequence[str]) -> None:
        if tables:
            self.execute(f"DROP TABLE IF EXISTS {', '.join(map(self.quote, tables))}")

    def server_version(self) -> str:
        return str(self.fetch("SHOW server_version").rows[0][0])

    def close(self) -> None:
        try:
            self._conn.close()
        except psycopg.Error:
            pass
