"""What a check run creates on the servers for the learner's code, and its removal.

Two things live on the servers for the length of one run: a Valkey ACL user (made by
the runner's Guard) and, for the database exercises, a database role with a scratch
area of its own (:class:`DbSandbox`). Each is named with :data:`PREFIX` and the run's
id, and recorded in the state directory (:class:`Records`) before it is created, so
that a run killed with SIGKILL leaves a record that the next run reads to remove
them (:func:`sweep`). Only recorded names are removed: nothing another owner made.

The role may read the dataset and write only its own scratch area:

- MariaDB/MySQL: a user ``flightcache_ex_<run>``@<the host the server sees us from>
  with a random password, SELECT on the dataset's database, ALL on a scratch database
  of the same name, which holds a copy of ``airline`` (the write-through check renames
  it) and a view of every other dataset table, so that the named queries' unqualified
  table names resolve; ``max_statement_time`` bounds its statements.
- PostgreSQL: a LOGIN role with a random password (the machine's trust auth may not
  check it; its privileges are checked all the same), USAGE and SELECT on the
  dataset's schema, a scratch schema it owns first on its ``search_path`` (holding the
  ``airline`` copy), and a ``statement_timeout``.

The DDL is built here rather than in sql/: its identifiers are the run's own names,
quoted by the database's ``quote``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from flightcache.config import DbUrl, ValkeyUrl, register_secret
from flightcache.db import Database, connect
from flightcache.db import literal as _literal
from flightcache.errors import FlightcacheError, QueryError

PREFIX = "flightcache_ex_"
ACL_PREFIX = "flightcache-exercise-"
RECORDS_DIR = "exercise-runs"
SHADOWED = ("airline",)  # copied into the scratch area: the learner's code writes it
_NAME = re.compile(r"^[0-9a-f]{8}$")


@dataclass
class Record:
    """What one run made, written before it is made."""

    run_id: str
    pid: int
    valkey: str  # host:port (or socket path) of the Valkey the ACL user and keys are on
    acl_user: str
    key_prefix: str
    db_kind: str = ""
    db_server: str = ""  # host:port/database
    db_role: str = ""
    db_host: str = ""  # MariaDB: the host part of the user
    sentinels: list[str] = field(default_factory=list)  # keys beside the prefix

    def path(self, folder: Path) -> Path:
        return folder / f"{self.run_id}.json"


class Records:
    """The state directory's record of every run's server-side names (mode 0600, in 0700)."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / RECORDS_DIR

    def write(self, record: Record) -> None:
        from flightcache.stack.statedir import claim

        claim(self.folder.parent)
        try:
            self.folder.mkdir(exist_ok=True, mode=0o700)
            path = record.path(self.folder)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(record), fh)
        except OSError as exc:
            raise FlightcacheError(
                f"cannot record the check run in {self.folder}: {exc.strerror}",
                hint="the state directory must be writable (--state-dir, FLIGHTCACHE_STATE_DIR)",
            ) from None

    def remove(self, record: Record) -> None:
        with contextlib.suppress(FileNotFoundError):
            record.path(self.folder).unlink()

    def left_over(self) -> list[Record]:
        """Records of runs whose process is gone: killed before they cleaned up."""
        found: list[Record] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = Record(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue
            if not _NAME.match(record.run_id) or _alive(record.pid):
                continue
            found.append(record)
        return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def role_name(run_id: str) -> str:
    return PREFIX + run_id


def db_server(url: DbUrl) -> str:
    return f"{url.host}:{url.port}/{url.database}"


class DbSandbox:
    """The run's database role and scratch area; ``conn`` is a connection as that role."""

    def __init__(self, admin: Database, run_id: str, statement_s: float) -> None:
        self.admin = admin
        self.name = role_name(run_id)
        self.password = secrets.token_hex(16)
        register_secret(self.password)
        self.statement_ms = max(1000, int(statement_s * 1000))
        self.host = self.host_part()
        self.conn: Database | None = None
        self._backend = 0

    def host_part(self) -> str:
        """MariaDB: the host the server sees this client come from (the user's host part)."""
        if self.admin.dialect != "mysql":
            return ""
        seen = str(self.admin.fetch("SELECT USER()").rows[0][0])
        return seen.rsplit("@", 1)[-1] or "localhost"

    def create(self) -> Database:
        q = self.admin.quote
        name, pw = self.name, self.password
        dataset = self.admin.url.database
        if self.admin.dialect == "mysql":
            user = f"{_literal(name)}@{_literal(self.host)}"
            self.admin.execute(f"CREATE USER {user} IDENTIFIED BY {_literal(pw)}")
            self.admin.execute(f"GRANT SELECT ON {q(dataset)}.* TO {user}")
            self.admin.execute(f"CREATE DATABASE {q(name)} CHARACTER SET utf8mb4")
            self.admin.execute(f"GRANT ALL ON {q(name)}.* TO {user}")
            url = replace(self.admin.url, user=name, password=pw, database=name)
        else:
            schema = str(self.admin.fetch("SELECT current_schema()").rows[0][0])
            self.admin.execute(f"CREATE ROLE {q(name)} LOGIN PASSWORD {_literal(pw)}")
            self.admin.execute(f"GRANT USAGE ON SCHEMA {q(schema)} TO {q(name)}")
            self.admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {q(schema)} TO {q(name)}")
            self.admin.execute(f"CREATE SCHEMA {q(name)} AUTHORIZATION {q(name)}")
            self.admin.execute(f"ALTER ROLE {q(name)} SET search_path = {q(name)}, {q(schema)}")
            self.admin.execute(f"ALTER ROLE {q(name)} SET statement_timeout = {self.statement_ms}")
            url = replace(self.admin.url, user=name, password=pw)
        conn = connect(url)
        self.conn = conn
        if conn.dialect == "mysql":
            try:  # MariaDB; MySQL bounds its SELECTs with max_execution_time instead
                conn.execute(f"SET SESSION max_statement_time = {self.statement_ms / 1000:.3f}")
            except QueryError:
                conn.execute(f"SET SESSION max_execution_time = {self.statement_ms}")
            conn.execute(f"SET SESSION innodb_lock_wait_timeout = {self.statement_ms // 1000}")
            self._backend = int(conn.fetch("SELECT CONNECTION_ID()").rows[0][0])
            self._fill_mysql(conn, dataset)
        else:
            self._backend = int(conn.fetch("SELECT pg_backend_pid()").rows[0][0])
            schema = str(self.admin.fetch("SELECT current_schema()").rows[0][0])
            for table in SHADOWED:
                conn.execute(
                    f"CREATE TABLE {q(name)}.{q(table)} AS SELECT * FROM {q(schema)}.{q(table)}"
                )
        return conn

    def _fill_mysql(self, conn: Database, dataset: str) -> None:
        q = conn.quote
        found = self.admin.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %(db)s AND table_type = 'BASE TABLE'",
            {"db": dataset},
        )
        for (table,) in found.rows:
            table = str(table)
            if table in SHADOWED:
                conn.execute(f"CREATE TABLE {q(table)} AS SELECT * FROM {q(dataset)}.{q(table)}")
            elif not table.startswith("flightcache_"):
                conn.execute(f"CREATE VIEW {q(table)} AS SELECT * FROM {q(dataset)}.{q(table)}")

    def cancel(self) -> None:
        """Stop the statement the role's connection is running (from the admin connection)."""
        if not self._backend:
            return
        with contextlib.suppress(FlightcacheError):
            if self.admin.dialect == "mysql":
                self.admin.execute(f"KILL QUERY {self._backend}")
            else:
                self.admin.fetch("SELECT pg_cancel_backend(%(pid)s)", {"pid": self._backend})

    def drop(self) -> None:
        """Close the role's connection, then drop its scratch area and the role itself."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        drop_role(self.admin, self.name, self.host)


def drop_role(admin: Database, name: str, host: str) -> None:
    """Drop a recorded role and its scratch area; each step on its own."""
    if not name.startswith(PREFIX) or not _NAME.match(name[len(PREFIX) :]):
        raise QueryError(f"refusing to drop {name!r}: not a name flightcache made")
    q = admin.quote
    if admin.dialect == "mysql":
        user = f"{_literal(name)}@{_literal(host or 'localhost')}"
        steps = [f"DROP DATABASE IF EXISTS {q(name)}", f"DROP USER IF EXISTS {user}"]
        if host:
            _kill_sessions_mysql(admin, name)
    else:
        exists = admin.fetch("SELECT 1 FROM pg_roles WHERE rolname = %(r)s", {"r": name}).rows
        if not exists:
            return
        with contextlib.suppress(FlightcacheError):
            admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %(r)s",
                {"r": name},
            )
        steps = [
            f"DROP SCHEMA IF EXISTS {q(name)} CASCADE",
            f"DROP OWNED BY {q(name)}",
            f"DROP ROLE IF EXISTS {q(name)}",
        ]
    errors: list[str] = []
    for step in steps:
        try:
            admin.execute(step)
        except FlightcacheError as exc:
            errors.append(exc.message)
    if errors:
        raise QueryError(f"could not drop exercise role {name}: {errors[0]}")


def _kill_sessions_mysql(admin: Database, name: str) -> None:
    with contextlib.suppress(FlightcacheError):
        found = admin.fetch(
            "SELECT id FROM information_schema.processlist WHERE user = %(u)s", {"u": name}
        )
        for (session,) in found.rows:
            with contextlib.suppress(FlightcacheError):
                admin.execute(f"KILL {int(session)}")


def valkey_address(url: ValkeyUrl) -> str:
    return url.address


def sweep(
    records: Records,
    *,
    valkey_url: ValkeyUrl,
    admin: Any,
    db: Database | None,
) -> list[str]:
    """Remove what killed runs left on these servers; one line per thing removed."""
    from flightcache.keys import Keys
    from flightcache.valkey_client import delete_matching, primaries

    done: list[str] = []
    for record in records.left_over():
        if record.valkey != valkey_address(valkey_url):
            continue
        complete = True
        if record.acl_user.startswith(ACL_PREFIX):
            for node in primaries(admin):
                try:
                    if node.execute_command("ACL", "DELUSER", record.acl_user):
                        done.append(f"ACL user {record.acl_user}")
                except Exception:  # one node failing must not stop the rest
                    complete = False
        try:
            if record.key_prefix.endswith(f":{record.run_id}:"):  # only a run's own prefix
                delete_matching(admin, Keys(record.key_prefix).match())
            for key in record.sentinels:
                if f"sentinel:{record.run_id}:" in key:
                    admin.delete(key)
        except Exception:  # a record of a server gone away stays
            complete = False
        if record.db_role:
            if db is None or record.db_kind != db.dialect or record.db_server != db_server(db.url):
                continue  # another database: left for a run against it
            try:
                drop_role(db, record.db_role, record.db_host)
                done.append(f"database role {record.db_role}")
            except FlightcacheError:
                complete = False
        if complete:
            records.remove(record)
    return done
