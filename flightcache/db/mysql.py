"""MySQL / MariaDB through PyMySQL: the only module that imports pymysql."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.charset
import pymysql.cursors

from flightcache.config import DbUrl, mysql_ssl_mode, parse_bool, scrub
from flightcache.db.base import Limits, Params, Point, QueryResult, chunked, text_field
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

_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}
_LOCAL_INFILE_OFF = {1148, 2068, 3948, 4166}
_STATEMENT_CUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_UNKNOWN_VARIABLE = 1193
_TLS_FAILED = 2026
_LOAD_CHUNK = 200_000
_DEFAULT_LIMITS = Limits(connect=5.0, read=None, statement=None)


def _wrap(exc: pymysql.err.Error, url: DbUrl, limits: Limits = _DEFAULT_LIMITS) -> FlightcacheError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = scrub(str(exc.args[1] if len(exc.args) > 1 else exc))
    where = f"{url.host}:{url.port}"
    if code in _STATEMENT_CUT:
        return StatementTimeout(
            f"MySQL at {where} cut a statement that ran past the"
            f" {limits.statement or 0:g} s statement timeout",
            hint="a demo or check should not wait this long; to allow more, add"
            " ?statement_timeout=5min (or 0 for none) to the database URL",
        )
    if code == _TLS_FAILED:
        return ConnectionFailed(
            f"no TLS connection to MySQL at {where}: {text}",
            hint="check ssl_mode, ssl_ca, ssl_cert and ssl_key in the database URL",
        )
    if code in _UNREACHABLE:
        return ConnectionFailed(
            f"cannot reach MySQL at {where}: {text}",
            hint="is the server running? check FLIGHTCACHE_DB_URL or --db-url",
        )
    if code == 1045:
        return ConnectionFailed(
            f"MySQL at {where} refused user {url.user!r}: wrong password or no access",
            hint="check the user and password in FLIGHTCACHE_DB_URL or --db-url",
        )
    if code == 1049:
        return DataError(
            f"database {url.database!r} does not exist on MySQL at {where}",
            hint="create and fill it with `flightcache data load`",
        )
    said = f"MySQL error {code}: {text}" if code else f"MySQL error: {text}"
    if isinstance(exc, (pymysql.err.IntegrityError, pymysql.err.DataError)):
        return RejectedValue(said)  # a constraint or a column refused the value: for good
    return QueryError(said)


def _tls(url: DbUrl) -> dict[str, Any]:
    """PyMySQL's TLS arguments from the URL; ``ssl_mode`` (or ``sslmode``) spelled out."""
    out: dict[str, Any] = {}
    for name in ("ssl_ca", "ssl_cert", "ssl_key", "ssl_key_password"):
        if (value := url.param(name)) is not None:
            out[name] = value
    for name in ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"):
        if (value := url.param(name)) is not None:
            out[name] = parse_bool(value)
    mode = url.param("ssl_mode") or url.param("sslmode")
    if mode is None:
        return out
    canonical = mysql_ssl_mode(mode)
    if canonical == "disabled":
        return {"ssl_disabled": True}
    out["ssl_verify_cert"] = canonical != "required"
    out["ssl_verify_identity"] = canonical == "verify_identity"
    if canonical == "required":
        # TLS without checks; PyMySQL builds no context from "no checks" alone
        out["ssl"] = {"check_hostname": False, "verify_mode": False}
    return out


def _connect(
    url: DbUrl, database: str | None, limits: Limits, *, loader: bool = False
) -> pymysql.connections.Connection:
    """A connection with timeouts; LOAD DATA LOCAL only on the loader's own."""
    charset = url.param("charset") or "utf8mb4"
    if pymysql.charset.charset_by_name(charset) is None:
        raise ConfigError(
            f"database URL parameter 'charset' is {charset!r}, which PyMySQL does not know",
            hint="e.g. charset=utf8mb4 (the default) or charset=latin1",
        )
    write = url.param("write_timeout")
    handshake = limits.connect  # PyMySQL reads the greeting with the read timeout
    try:
        conn = pymysql.connect(
            host=url.host,
            port=url.port,
            user=url.user,
            password=url.password,
            database=database,
            charset=charset,
            autocommit=True,
            local_infile=loader,
            connect_timeout=limits.connect,
            read_timeout=handshake,
            write_timeout=handshake,
            program_name=url.param("program_name") or "flightcache",
            **_tls(url),
        )
    except pymysql.err.Error as exc:
        raise _wrap(exc, url, limits) from None
    except (OSError, ValueError) as exc:  # a TLS file that cannot be read or used
        files = [f"{n}={v}" for n in ("ssl_ca", "ssl_cert", "ssl_key") if (v := url.param(n))]
        what = f"{exc.strerror or exc} ({', '.join(files)})" if isinstance(exc, OSError) else exc
        raise ConnectionFailed(
            f"cannot open a TLS connection to MySQL at {url.host}:{url.port}: {scrub(str(what))}",
            hint="check ssl_ca, ssl_cert and ssl_key in the database URL",
        ) from None
    # connected: from now on a read may wait as long as a statement may run
    conn._read_timeout = limits.read
    conn._write_timeout = float(write) if write else limits.read
    if limits.statement:
        _limit_statements(conn, url, limits)
    return conn


def _limit_statements(conn: pymysql.connections.Connection, url: DbUrl, limits: Limits) -> None:
    """MariaDB's max_statement_time (seconds), else MySQL's max_execution_time (ms)."""
    seconds = limits.statement or 0
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SET SESSION max_statement_time = %s", (seconds,))
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != _UNKNOWN_VARIABLE:
                    raise
                cur.execute("SET SESSION max_execution_time = %s", (int(seconds * 1000),))
    except pymysql.err.Error as exc:
        conn.close()
        raise _wrap(exc, url, limits) from None


def drop_database(url: DbUrl) -> None:
    conn = _connect(url, None, Limits(connect=5, read=60, statement=None))
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
    finally:
        conn.close()


def _tsv(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Point):
        return f"POINT({value.lon!r} {value.lat!r})"
    text = text_field(value) or ""
    if any(c in text for c in "\\\t\n\r\0"):
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\0", "\\0")
        )
    return text


class MySQLDatabase:
    dialect: Dialect = "mysql"

    def __init__(
        self,
        url: DbUrl,
        conn: pymysql.connections.Connection,
        limits: Limits = _DEFAULT_LIMITS,
        *,
        loader: bool = False,
    ) -> None:
        self.url = url
        self._conn = conn
        self._limits = limits
        self._local_infile = loader

    @classmethod
    def open(cls, url: DbUrl, *, create: bool, limits: Limits, loader: bool) -> MySQLDatabase:
        try:
            conn = _connect(url, url.database, limits, loader=loader)
        except DataError:
            if not create:
                raise
            server = _connect(url, None, limits)
            try:
                with server.cursor() as cur:
                    cur.execute(
                        f"CREATE DATABASE IF NOT EXISTS `{url.database}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
            except pymysql.err.Error as exc:
                raise _wrap(exc, url, limits) from None
            finally:
                server.close()
            conn = _connect(url, url.database, limits, loader=loader)
        return cls(url, conn, limits, loader=loader)

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def fetch(self, sql: str, params: Params = None) -> QueryResult:
        start = time.perf_counter_ns()
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, params)
                rows = list(cur.fetchall())
                columns = [d[0] for d in cur.description or ()]
                count = cur.rowcount
        except pymysql.err.Error as exc:
            raise _wrap(exc, self.url, self._limits) from None
        return QueryResult(columns, rows, count, time.perf_counter_ns() - start)

    def execute(self, sql: str, params: Params = None) -> int:
        try:
            with self._conn.cursor() as cur:
                return int(cur.execute(sql, params))
        except pymysql.err.Error as exc:
            raise _wrap(exc, self.url, self._limits) from None

    def execute_many(self, sql: str, params: Sequence[Params]) -> int:
        if not params:
            return 0
        try:
            with self._conn.cursor() as cur:
                return int(cur.executemany(sql, params) or 0)
        except pymysql.err.Error as exc:
            raise _wrap(exc, self.url, self._limits) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            self._conn.begin()
        except pymysql.err.Error as exc:
            raise _wrap(exc, self.url, self._limits) from None
        try:
            yield
        except BaseException:
            try:
                self._conn.rollback()
            except pymysql.err.Error:
                pass
            raise
        try:
            self._conn.commit()
        except pymysql.err.Error as exc:
            raise _wrap(exc, self.url, self._limits) from None

    @contextmanager
    def bulk_session(self) -> Iterator[None]:
        """Skip per-row FK and unique checks while flightcache loads data it made."""
        self.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        try:
            yield
        finally:
            try:
                self.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
            except FlightcacheError:
                pass

    def tables(self) -> set[str]:
        result = self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
        return {str(r[0]) for r in result.rows}

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        total = 0
        for batch in chunked(rows, _LOAD_CHUNK):
            if self._local_infile:
                try:
                    total += self._load_data(table, columns, batch)
                    continue
                except QueryError as exc:
                    if not any(str(code) in exc.message for code in _LOCAL_INFILE_OFF):
                        raise
                    self._local_infile = False
            total += self._insert_many(table, columns, batch)
        return total

    def _load_data(self, table: str, columns: Sequence[str], batch: list[Sequence[Any]]) -> int:
        geo = [i for i, v in enumerate(batch[0]) if isinstance(v, Point)]
        targets = [f"@c{i}" if i in geo else self.quote(c) for i, c in enumerate(columns)]
        sets = ", ".join(f"{self.quote(columns[i])} = ST_GeomFromText(@c{i})" for i in geo)
        fd, path = tempfile.mkstemp(prefix="flightcache-", suffix=".tsv")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines("\t".join(map(_tsv, row)) + "\n" for row in batch)
            sql = (
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {self.quote(table)} "
                "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
                f"LINES TERMINATED BY '\\n' ({', '.join(targets)})"
                + (f" SET {sets}" if sets else "")
            )
            return self.execute(sql, (path,))
        finally:
            os.unlink(path)

    def _insert_many(self, table: str, columns: Sequence[str], batch: list[Sequence[Any]]) -> int:
        marks = ", ".join("ST_GeomFromText(%s)" if isinstance(v, Point) else "%s" for v in batch[0])
        sql = (
            f"INSERT INTO {self.quote(table)} ({', '.join(map(self.quote, columns))}) "
            f"VALUES ({marks})"
        )
        values = [
            tuple(f"POINT({v.lon!r} {v.lat!r})" if isinstance(v, Point) else v for v in row)
            for row in batch
        ]
        try:
            with self._conn.cursor() as cur:
                for part in chunked(values, 5000):
                    cur.executemany(sql, part)
        except pymysql.err.Error as exc:
            raise _wrap(exc, self.url, self._limits) from None
        return len(batch)

    def reset_identity(self, table: str, column: str) -> None:
        top = self.fetch(
            f"SELECT COALESCE(MAX({self.quote(column)}), 0) + 1 FROM {self.quote(table)}"
        )
        self.execute(f"ALTER TABLE {self.quote(table)} AUTO_INCREMENT = {int(top.rows[0][0])}")

    def truncate(self, tables: Sequence[str]) -> None:
        with self.bulk_session():
            for table in tables:
                self.execute(f"TRUNCATE TABLE {self.quote(table)}")

    def drop_tables(self, tables: Sequence[str]) -> None:
        if not tables:
            return
        with self.bulk_session():
            self.execute(f"DROP TABLE IF EXISTS {', '.join(map(self.quote, tables))}")

    def server_version(self) -> str:
        return str(self.fetch("SELECT VERSION()").rows[0][0])

    def close(self) -> None:
        try:
            self._conn.close()
        except pymysql.err.Error:
            pass
