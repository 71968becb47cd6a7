"""Attendee accounts on the instructor's servers: what ``room add``, ``room remove`` and
``room list`` do, run with the instructor's URLs (a database holding the loaded dataset,
and a Valkey user that may run ACL SETUSER).

Per attendee (names from :class:`flightcache.room.Attendee`):

* PostgreSQL: a LOGIN role with a generated password and a schema it owns, first and
  only on its ``search_path`` in this database. Tables flightcache never writes are
  views owned by the instructor, of which the attendee may only SELECT (a view reads
  with its owner's rights, so the attendee needs none on the shared tables); the tables
  the demos and exercises write (:data:`COPIED`) are copies the attendee owns, with
  their keys and indexes (built after the rows) and an identity continuing past the
  shared rows. One transaction: a killed add leaves nothing in the database.
* MySQL/MariaDB: a database and a user ``'fcroom_<name>'@'%'`` with privileges on it
  only; views ``ALGORITHM=TEMPTABLE SQL SECURITY DEFINER`` (read with the instructor's
  rights, and never updatable, so nobody writes shared rows through them), copies as
  above.
* Valkey: an ACL user on every primary, keys ``~room:<name>:*``, channels
  ``&room:<name>:*``, every command but @admin and @dangerous, with back the few the
  demos need and that harm nobody (:data:`ALSO_ALLOWED`).
* A config file (TOML, 0600) with the four settings an attendee's flightcache needs.

Each attendee is registered (:mod:`flightcache.room.registry`) before anything of
theirs is made and marked ready after; while an add works on an attendee it holds a
lock named after them on its database connection, so a row that is not ready and
whose lock is free belongs to an add that was killed: the next ``add`` completes it,
the next ``remove`` removes it.

The DDL is built here rather than in sql/: its identifiers are the attendee's own
names (checked by :func:`flightcache.room.check_name`), quoted by the database's
``quote``; passwords are hex.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flightcache.config import DbUrl, ValkeyUrl, register_secret
from flightcache.data.tables import IDENTITY, META_TABLE, TABLES
from flightcache.db import Database, connect
from flightcache.db import literal as _literal
from flightcache.errors import DataError, FlightcacheError, NotPermitted, QueryError, UsageError
from flightcache.keys import Keys
from flightcache.room import OBJECT_PREFIX, Attendee, registry
from flightcache.valkey_client import valkey_errors

COPIED = ("airline", "flight", "passenger", "booking", META_TABLE)
"""The tables an attendee's flightcache writes (grep INSERT/UPDATE/DELETE in
sql/*/queries.sql): write-through renames an airline, invalidation moves a flight, the
session and leaderboard demos book seats, the benchmark adds passengers; and the load's
record, which ``data info`` and every demo read to see the dataset as loaded."""

ALSO_ALLOWED = ("+client|list",)  # an exercise check reads its reader's tracking flags
"""What an attendee may run on the shared Valkey beyond a confined user's
(:data:`flightcache.valkey_client.CONFINED`). Out: CONFIG (the eviction and
memory-pressure demos' maxmemory), FLUSHALL/FLUSHDB, KEYS, SORT, DEBUG, SLOWLOG, CLIENT
KILL/PAUSE, MONITOR, SHUTDOWN, ACL, another database (SELECT), FUNCTION (global
libraries) and SCRIPT FLUSH/KILL. SCAN, RANDOMKEY and DBSIZE are allowed and still show
every attendee's key *names* (not their values); INFO and CLIENT LIST show server-wide
figures and connections."""

DEFAULT_JOBS = 2
CONFIG_DIR = "room"  # under the state directory: the config files of the attendees


@dataclass
class Account:
    """One attendee made by ``add``: what the card shows and the config file holds."""

    attendee: Attendee
    db_url: DbUrl
    valkey_url: ValkeyUrl
    config_file: Path | None = None
    repaired: bool = False  # an earlier add of theirs was killed: done again

    def settings(self) -> dict[str, str]:
        return {
            "db_url": self.db_url.url(redact=False),
            "valkey_url": self.valkey_url.url(redact=False),
            "key_prefix": self.attendee.key_prefix,
            "room": self.attendee.name,
        }


class NotAdded(FlightcacheError):
    """Some attendees could not be made; ``accounts`` are those that were."""

    def __init__(self, accounts: list[Account], skipped: list[str], failed: list[str]) -> None:
        super().__init__(
            f"{len(failed)} attendee(s) not added: {failed[0]}",
            hint="they stay half-added; run `flightcache room add` again once the cause is"
            " fixed: it completes them",
        )
        self.accounts = accounts
        self.skipped = skipped
        self.failed = failed


@dataclass
class Listed:
    """One row of ``room list``."""

    name: str
    registered: bool
    ready: bool
    adding: bool  # an add is working on them right now
    created_at: Any
    db_object: bool
    db_user: bool
    valkey_users: int  # primaries with their ACL user
    primaries: int
    config_file: Path | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        if self.registered and self.ready:
            return "ready"
        if self.adding:
            return "being added"
        if self.registered:
            return "half-added"
        return "not registered"


def password() -> str:
    return secrets.token_hex(16)


def admin_url(url: DbUrl) -> DbUrl:
    """The instructor's URL without a statement timeout: a copy may run for minutes."""
    return replace(
        url, params=(*url.without("statement_timeout").params, ("statement_timeout", "0"))
    )


# -- the databases -----------------------------------------------------------------
class _Dialect:
    """What differs between PostgreSQL and MySQL/MariaDB, on one admin connection."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.q = db.quote

    # a lock per attendee, held by the connection of the add working on them
    def lock(self, attendee: Attendee) -> bool:
        raise NotImplementedError

    def unlock(self, attendee: Attendee) -> None:
        raise NotImplementedError

    def busy(self, attendee: Attendee) -> bool:
        """Another connection holds the attendee's lock: an add is working on them."""
        if not self.lock(attendee):
            return True
        self.unlock(attendee)
        return False

    def shared_tables(self) -> list[str]:
        raise NotImplementedError

    def create(self, attendee: Attendee, secret: str, tables: Sequence[str]) -> None:
        """Their account, a view of each shared table, a copy of each written one."""
        with self.atomic():
            self.account(attendee, secret)
            for table in tables:
                if table not in COPIED:
                    self.view(attendee, table)
            for table in tables:
                if table in COPIED:
                    self.copy(attendee, table)

    def atomic(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def account(self, attendee: Attendee, secret: str) -> None:
        raise NotImplementedError

    def view(self, attendee: Attendee, table: str) -> None:
        raise NotImplementedError

    def copy(self, attendee: Attendee, table: str) -> None:
        raise NotImplementedError

    def drop(self, attendee: Attendee) -> None:
        raise NotImplementedError

    def exists(self, attendee: Attendee) -> tuple[bool, bool]:
        """(their schema or database exists, their role or user exists)."""
        raise NotImplementedError

    def leftovers(self) -> set[str]:
        """Names of attendees whose schema (in this database) or database exists: an
        attendee's whose registry row is gone. Roles are not asked: on PostgreSQL they
        belong to the whole server, which may hold other rooms."""
        raise NotImplementedError

    def url_for(self, attendee: Attendee, secret: str) -> DbUrl:
        raise NotImplementedError


class _Postgres(_Dialect):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.schema = str(db.fetch("SELECT current_schema()").rows[0][0])
        self.database = db.url.database
        found = db.fetch("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").rows
        self.superuser = bool(found and found[0][0])

    def _key(self, attendee: Attendee) -> str:
        return f"flightcache room {attendee.name}"

    def lock(self, attendee: Attendee) -> bool:
        got = self.db.fetch(
            "SELECT pg_try_advisory_lock(hashtext(%(k)s))", {"k": self._key(attendee)}
        )
        return bool(got.rows[0][0])

    def unlock(self, attendee: Attendee) -> None:
        self.db.fetch("SELECT pg_advisory_unlock(hashtext(%(k)s))", {"k": self._key(attendee)})

    def shared_tables(self) -> list[str]:
        found = self.db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = %(s)s", {"s": self.schema}
        )
        return sorted(str(r[0]) for r in found.rows)

    def atomic(self) -> contextlib.AbstractContextManager[None]:
        return self.db.transaction()  # a killed add leaves nothing in the database

    def account(self, attendee: Attendee, secret: str) -> None:
        q, db = self.q, self.db
        name, mine = q(attendee.db_user), q(attendee.db_object)
        db.execute(f"CREATE ROLE {name} LOGIN PASSWORD {_literal(secret)}")
        if not self.superuser:  # CREATEROLE alone: a member, to hand them their schema
            db.execute(f"GRANT {name} TO CURRENT_USER")
        db.execute(f"CREATE SCHEMA {mine} AUTHORIZATION {name}")
        db.execute(f"ALTER ROLE {name} IN DATABASE {q(self.database)} SET search_path = {mine}")

    def view(self, attendee: Attendee, table: str) -> None:
        q = self.q
        view = f"{q(attendee.db_object)}.{q(table)}"
        self.db.execute(f"CREATE VIEW {view} AS SELECT * FROM {q(self.schema)}.{q(table)}")
        self.db.execute(f"GRANT SELECT ON {view} TO {q(attendee.db_user)}")

    def copy(self, attendee: Attendee, table: str) -> None:
        """The shared table's rows, keys and indexes (built after the rows), and an
        identity that continues past the shared rows, in the attendee's schema, theirs."""
        q, db = self.q, self.db
        source = f"{q(self.schema)}.{q(table)}"
        target = f"{q(attendee.db_object)}.{q(table)}"
        db.execute(
            f"CREATE TABLE {target} (LIKE {source} INCLUDING DEFAULTS INCLUDING IDENTITY"
            " INCLUDING CONSTRAINTS INCLUDING GENERATED)"
        )
        db.execute(f"INSERT INTO {target} SELECT * FROM {source}")
        keys = db.fetch(
            "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE conrelid = %(t)s::regclass AND contype IN ('p', 'u') ORDER BY contype",
            {"t": source},
        )
        for constraint, definition in keys.rows:
            db.execute(f"ALTER TABLE {target} ADD CONSTRAINT {q(str(constraint))} {definition}")
        indexes = db.fetch(
            "SELECT i.indexdef, format('%%I.%%I', i.schemaname, i.tablename) FROM pg_indexes i"
            " WHERE i.schemaname = %(s)s AND i.tablename = %(t)s AND NOT EXISTS ("
            "  SELECT 1 FROM pg_constraint c WHERE c.conindid ="
            "   format('%%I.%%I', i.schemaname, i.indexname)::regclass)",
            {"s": self.schema, "t": table},
        )
        for definition, qualified in indexes.rows:
            on = f" ON {qualified} "
            if on not in str(definition):
                raise QueryError(f"cannot copy an index of {table}: {definition}")
            db.execute(str(definition).replace(on, f" ON {target} ", 1))
        column = IDENTITY.get(table)
        if column:
            db.execute(
                f"SELECT setval(pg_get_serial_sequence(%(t)s, %(c)s),"
                f" COALESCE(MAX({q(column)}), 0) + 1, false) FROM {target}",
                {"t": target, "c": column},
            )
        db.execute(f"ALTER TABLE {target} OWNER TO {q(attendee.db_user)}")
        db.execute(f"ANALYZE {target}")

    def drop(self, attendee: Attendee) -> None:
        q, db = self.q, self.db
        role = attendee.db_user
        with contextlib.suppress(FlightcacheError):
            db.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE usename = %(r)s AND pid <> pg_backend_pid()",
                {"r": role},
            )
        db.execute(f"DROP SCHEMA IF EXISTS {q(attendee.db_object)} CASCADE")
        if db.fetch("SELECT 1 FROM pg_roles WHERE rolname = %(r)s", {"r": role}).rows:
            db.execute(f"DROP OWNED BY {q(role)}")
            db.execute(f"DROP ROLE {q(role)}")

    def exists(self, attendee: Attendee) -> tuple[bool, bool]:
        schema = self.db.fetch(
            "SELECT 1 FROM pg_namespace WHERE nspname = %(n)s", {"n": attendee.db_object}
        ).rows
        role = self.db.fetch(
            "SELECT 1 FROM pg_roles WHERE rolname = %(n)s", {"n": attendee.db_user}
        ).rows
        return bool(schema), bool(role)

    def leftovers(self) -> set[str]:
        found = self.db.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %(p)s)",
            {"p": OBJECT_PREFIX},
        )
        return {str(r[0])[len(OBJECT_PREFIX) :] for r in found.rows}

    def url_for(self, attendee: Attendee, secret: str) -> DbUrl:
        return replace(
            self.db.url.without("password", "statement_timeout"),
            user=attendee.db_user,
            password=secret,
        )


class _MySQL(_Dialect):
    HOST = "%"  # attendees connect from their own laptops

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.database = db.url.database

    def _user(self, attendee: Attendee) -> str:
        return f"{_literal(attendee.db_user)}@{_literal(self.HOST)}"

    def _key(self, attendee: Attendee) -> str:
        return f"flightcache room {attendee.name}"

    def lock(self, attendee: Attendee) -> bool:
        got = self.db.fetch("SELECT GET_LOCK(%(k)s, 0)", {"k": self._key(attendee)})
        return bool(got.rows[0][0])

    def unlock(self, attendee: Attendee) -> None:
        self.db.fetch("SELECT RELEASE_LOCK(%(k)s)", {"k": self._key(attendee)})

    def shared_tables(self) -> list[str]:
        found = self.db.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %(d)s AND table_type = 'BASE TABLE'",
            {"d": self.database},
        )
        return sorted(str(r[0]) for r in found.rows)

    def account(self, attendee: Attendee, secret: str) -> None:
        user, mine = self._user(attendee), self.q(attendee.db_object)
        self.db.execute(f"CREATE USER {user} IDENTIFIED BY {_literal(secret)}")
        self.db.execute(f"CREATE DATABASE {mine} CHARACTER SET utf8mb4")
        self.db.execute(f"GRANT ALL ON {mine}.* TO {user}")

    def view(self, attendee: Attendee, table: str) -> None:
        q = self.q
        self.db.execute(
            f"CREATE ALGORITHM=TEMPTABLE SQL SECURITY DEFINER VIEW {q(attendee.db_object)}."
            f"{q(table)} AS SELECT * FROM {q(self.database)}.{q(table)}"
        )

    def copy(self, attendee: Attendee, table: str) -> None:
        """The shared table with its keys: the rows first, the secondary indexes after;
        InnoDB's AUTO_INCREMENT continues past the copied ids by itself."""
        q, db = self.q, self.db
        source = f"{q(self.database)}.{q(table)}"
        target = f"{q(attendee.db_object)}.{q(table)}"
        db.execute(f"CREATE TABLE {target} LIKE {source}")
        found = db.fetch(
            "SELECT index_name, non_unique, index_type, column_name, sub_part"
            " FROM information_schema.statistics"
            " WHERE table_schema = %(d)s AND table_name = %(t)s AND index_name <> 'PRIMARY'"
            " ORDER BY index_name, seq_in_index",
            {"d": attendee.db_object, "t": table},
        )
        indexes: dict[str, tuple[str, list[str]]] = {}
        for index, non_unique, kind, column, part in found.rows:
            if kind in ("FULLTEXT", "SPATIAL"):
                prefix = f"{kind} INDEX"
            else:
                prefix = "INDEX" if int(non_unique) else "UNIQUE INDEX"
            column_sql = q(str(column)) + (f"({int(part)})" if part else "")
            indexes.setdefault(str(index), (prefix, []))[1].append(column_sql)
        if indexes:
            db.execute(f"ALTER TABLE {target} " + ", ".join(f"DROP INDEX {q(i)}" for i in indexes))
        db.execute(f"INSERT INTO {target} SELECT * FROM {source}")
        if indexes:
            db.execute(
                f"ALTER TABLE {target} "
                + ", ".join(
                    f"ADD {kind} {q(i)} ({', '.join(cols)})" for i, (kind, cols) in indexes.items()
                )
            )

    def drop(self, attendee: Attendee) -> None:
        q, db = self.q, self.db
        with contextlib.suppress(FlightcacheError):
            found = db.fetch(
                "SELECT id FROM information_schema.processlist WHERE user = %(u)s",
                {"u": attendee.db_user},
            )
            for (session,) in found.rows:
                with contextlib.suppress(FlightcacheError):
                    db.execute(f"KILL {int(session)}")
        db.execute(f"DROP DATABASE IF EXISTS {q(attendee.db_object)}")
        db.execute(f"DROP USER IF EXISTS {self._user(attendee)}")

    def exists(self, attendee: Attendee) -> tuple[bool, bool]:
        schema = self.db.fetch(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %(n)s",
            {"n": attendee.db_object},
        ).rows
        user = self.db.fetch(
            "SELECT 1 FROM mysql.user WHERE user = %(n)s AND host = %(h)s",
            {"n": attendee.db_user, "h": self.HOST},
        ).rows
        return bool(schema), bool(user)

    def leftovers(self) -> set[str]:
        # a MySQL server's databases are every room's on it: only the registry says
        # which are this room's (and a row goes only after everything of theirs)
        return set()

    def url_for(self, attendee: Attendee, secret: str) -> DbUrl:
        base = self.db.url.without("password", "statement_timeout")
        return replace(base, user=attendee.db_user, password=secret, database=attendee.db_object)


def _dialect(db: Database) -> _Dialect:
    return _Postgres(db) if db.dialect == "postgresql" else _MySQL(db)


# -- Valkey ------------------------------------------------------------------------
def acl_rules(attendee: Attendee, secret: str, db: int = 0) -> list[str]:
    from flightcache.valkey_client import confined_rules

    return confined_rules(secret, attendee.key_prefix, channels=True, db=db, also=ALSO_ALLOWED)


def _nodes(client: Any) -> list[Any]:
    """Every node an ACL user must be on: the one, or each of a cluster's primaries and
    replicas (ACL users are not replicated)."""
    from valkey.cluster import ValkeyCluster

    if isinstance(client, ValkeyCluster):
        return [client.get_valkey_connection(node) for node in client.get_nodes()]
    return [client]


def _acl_users(valkey: Any) -> list[set[str]]:
    return [{str(u) for u in node.execute_command("ACL", "USERS")} for node in _nodes(valkey)]


# -- the room ----------------------------------------------------------------------
@dataclass
class Room:
    """The instructor's servers, and where the attendees' config files go."""

    db_url: DbUrl
    valkey_url: ValkeyUrl
    out_dir: Path
    host: str | None = None  # the host the cards name; default: the instructor's URLs'
    jobs: int = DEFAULT_JOBS
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def open_db(self) -> Database:
        return connect(admin_url(self.db_url))

    def open_valkey(self) -> Any:
        from flightcache.valkey_client import connect as connect_valkey

        return connect_valkey(self.valkey_url)

    def config_path(self, attendee: Attendee) -> Path:
        return self.out_dir / f"{attendee.name}.toml"

    # -- add -----------------------------------------------------------------------
    def add(
        self,
        attendees: Sequence[Attendee],
        *,
        progress: Callable[[str, Attendee], None] | None = None,
        planned: Callable[[int], None] | None = None,
    ) -> tuple[list[Account], list[str]]:
        """Make every attendee, and complete any add that was killed; return the
        accounts made (in order) and one line per attendee skipped. When some could not
        be made, :class:`NotAdded` is raised after the rest were, carrying those."""
        step = progress or (lambda _what, _who: None)
        admin = self.open_db()
        valkey = self.open_valkey()
        try:
            require_admin(admin)
            registry.ensure_table(admin)
            dialect = _dialect(admin)
            known = {r.attendee.name: r for r in registry.attendees(admin)}
            work: list[tuple[Attendee, bool]] = []
            skipped: list[str] = []
            for attendee in attendees:
                found = known.get(attendee.name)
                if found is not None and found.ready:
                    skipped.append(
                        f"{attendee.name} is already in the room (config file"
                        f" {self.config_path(attendee)}); `room remove {attendee.name}` first"
                        " to give them new credentials"
                    )
                    continue
                if any(a.name == attendee.name for a, _ in work):
                    continue
                if found is not None and dialect.busy(attendee):
                    skipped.append(f"{attendee.name} is being added by another `room add`")
                    continue
                if found is None and any(dialect.exists(attendee)):
                    skipped.append(
                        f"{attendee.db_object} already exists on this database server, and is"
                        " not this room's (another room's?): choose another name"
                    )
                    continue
                work.append((attendee, found is not None))
            for found in known.values():  # half-added ones not named: completed too
                if found.ready or any(a.name == found.attendee.name for a, _ in work):
                    continue
                if not dialect.busy(found.attendee):
                    work.append((found.attendee, True))
            tables = [t for t in dialect.shared_tables() if t in TABLES or t == META_TABLE]
            for attendee, _ in work:
                registry.register(admin, attendee)  # before anything of theirs exists
            if planned:
                planned(len(work))
            if not work:
                return [], skipped
            accounts: list[Account | None] = [None] * len(work)
            failed: list[str] = []

            def one(index: int) -> None:
                attendee, repaired = work[index]
                try:
                    accounts[index] = self._add_one(attendee, repaired, tables, valkey, step)
                except FlightcacheError as exc:  # the others go on; this one stays half-added
                    failed.append(f"{attendee.name}: {exc.message}")

            jobs = max(1, min(self.jobs, len(work)))
            if jobs == 1:
                for i in range(len(work)):
                    one(i)
            else:
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    for future in [pool.submit(one, i) for i in range(len(work))]:
                        future.result()
            made = [a for a in accounts if a is not None]
            if failed:
                raise NotAdded(made, skipped, failed)
            return made, skipped
        finally:
            _close(valkey)
            admin.close()

    def _add_one(
        self,
        attendee: Attendee,
        repaired: bool,
        tables: Sequence[str],
        valkey: Any,
        step: Callable[[str, Attendee], None],
    ) -> Account:
        db = self.open_db()
        try:
            dialect = _dialect(db)
            if not dialect.lock(attendee):
                raise FlightcacheError(f"{attendee.name} is being added by another `room add`")
            try:
                if repaired:  # what the killed add made, registered here: theirs
                    self._drop_everything(dialect, attendee, valkey)
                secret = password()
                register_secret(secret)  # out of every line printed but the card's own
                dialect.create(attendee, secret, tables)
                step("database", attendee)
                self._acl_user(valkey, attendee, secret)
                step("valkey", attendee)
                account = Account(
                    attendee,
                    self._public(dialect.url_for(attendee, secret)),
                    self._public_valkey(attendee, secret),
                    repaired=repaired,
                )
                account.config_file = self._write_config(account)
                registry.mark_ready(db, attendee)
                step("ready", attendee)
                return account
            finally:
                with contextlib.suppress(FlightcacheError):
                    dialect.unlock(attendee)
        finally:
            db.close()

    def _acl_user(self, valkey: Any, attendee: Attendee, secret: str) -> None:
        rules = acl_rules(attendee, secret, self.valkey_url.db)
        try:
            with valkey_errors(self.valkey_url):
                for node in _nodes(valkey):
                    node.execute_command("ACL", "SETUSER", attendee.valkey_user, *rules)
        except NotPermitted as exc:
            raise NotPermitted(
                f"your Valkey user may not make the attendees' users: {exc.message}",
                hint="run `room` commands with a Valkey URL whose user may run ACL SETUSER"
                " and ACL DELUSER (the default user, or one with +acl)",
            ) from None

    def _public(self, url: DbUrl) -> DbUrl:
        return replace(url, host=self.host) if self.host else url

    def _public_valkey(self, attendee: Attendee, secret: str) -> ValkeyUrl:
        url = replace(self.valkey_url, username=attendee.valkey_user, password=secret)
        if self.host and url.scheme != "unix":
            url = replace(url, host=self.host)
        return url

    def _write_config(self, account: Account) -> Path:
        with self._lock:
            self.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.config_path(account.attendee)
        text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in account.settings().items())
        head = (
            f"# flightcache room account of {account.attendee.name}:"
            f" FLIGHTCACHE_CONFIG={path.name} flightcache ...\n"
        )
        tmp = path.with_suffix(".toml.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(head + text)
        os.replace(tmp, path)
        return path

    # -- remove --------------------------------------------------------------------
    def _drop_everything(self, dialect: _Dialect, attendee: Attendee, valkey: Any) -> None:
        """Everything of theirs, each kind on its own; the first failure raised after."""
        from flightcache.valkey_client import delete_matching

        failed: list[str] = []
        try:
            dialect.drop(attendee)
        except FlightcacheError as exc:
            failed.append(exc.message)
        for node in _nodes(valkey):
            try:
                node.execute_command("ACL", "DELUSER", attendee.valkey_user)
            except Exception as exc:  # one node failing must not stop the rest
                failed.append(f"ACL DELUSER on a node: {exc}")
        try:
            delete_matching(valkey, Keys(attendee.key_prefix).match())
        except Exception as exc:
            failed.append(f"deleting their keys: {exc}")
        with contextlib.suppress(FileNotFoundError):
            self.config_path(attendee).unlink()
        if failed:
            raise FlightcacheError(
                f"could not remove everything of {attendee.name}: {failed[0]}",
                hint="run `flightcache room remove` again; what is gone stays gone",
            )

    def next_number(self) -> int:
        """The number after the highest attendeeNN registered here (``--count``)."""
        admin = self.open_db()
        try:
            numbers = [
                int(r.attendee.name[len("attendee") :])
                for r in registry.attendees(admin)
                if re.fullmatch(r"attendee\d+", r.attendee.name)
            ]
        finally:
            admin.close()
        return max(numbers, default=0) + 1

    def half_added(self) -> list[Attendee]:
        admin = self.open_db()
        try:
            return [r.attendee for r in registry.attendees(admin) if not r.ready]
        finally:
            admin.close()

    def removable(self, names: Iterable[str] | None) -> list[Attendee]:
        """The attendees ``remove`` would remove: ``names``, or everyone (None)."""
        admin = self.open_db()
        try:
            dialect = _dialect(admin)
            listed = {r.attendee.name for r in registry.attendees(admin)}
            if names is None:  # everyone registered here: never another room's
                return [Attendee(n) for n in sorted(listed)]
            out: list[Attendee] = []
            mine = listed | dialect.leftovers()
            for name in names:
                attendee = Attendee(name)
                if name not in mine:
                    raise UsageError(
                        f"{name} is not in the room", hint="`flightcache room list` shows who is"
                    )
                out.append(attendee)
            return out
        finally:
            admin.close()

    def remove(
        self, attendees: Sequence[Attendee], *, progress: Callable[[Attendee], None] | None = None
    ) -> list[Attendee]:
        """Remove each attendee and everything of theirs; the half-added ones too."""
        admin = self.open_db()
        valkey = self.open_valkey()
        try:
            dialect = _dialect(admin)
            half = [r.attendee for r in registry.attendees(admin) if not r.ready]
            todo = list(attendees) + [a for a in half if a not in attendees]
            done: list[Attendee] = []
            for attendee in todo:
                if not dialect.lock(attendee):
                    if attendee in attendees:
                        raise FlightcacheError(
                            f"{attendee.name} is being added by another `room add`",
                            hint="wait for it to end, then remove them",
                        )
                    continue
                try:
                    self._drop_everything(dialect, attendee, valkey)
                    registry.unregister(admin, attendee)  # after everything of theirs is gone
                finally:
                    dialect.unlock(attendee)
                done.append(attendee)
                if progress:
                    progress(attendee)
            return done
        finally:
            _close(valkey)
            admin.close()

    # -- list ----------------------------------------------------------------------
    def list(self) -> list[Listed]:
        admin = self.open_db()
        valkey = self.open_valkey()
        try:
            dialect = _dialect(admin)
            registered = {r.attendee.name: r for r in registry.attendees(admin)}
            with valkey_errors(self.valkey_url):
                users = _acl_users(valkey)
            names = sorted(set(registered) | dialect.leftovers())
            rows: list[Listed] = []
            for name in names:
                attendee = Attendee(name)
                found = registered.get(name)
                schema, role = dialect.exists(attendee)
                path = self.config_path(attendee)
                rows.append(
                    Listed(
                        name=name,
                        registered=found is not None,
                        ready=bool(found and found.ready),
                        adding=bool(found and not found.ready and dialect.busy(attendee)),
                        created_at=found.created_at if found else None,
                        db_object=schema,
                        db_user=role,
                        valkey_users=sum(attendee.valkey_user in node for node in users),
                        primaries=len(users),
                        config_file=path if path.exists() else None,
                    )
                )
            return rows
        finally:
            _close(valkey)
            admin.close()


def _close(valkey: Any) -> None:
    from flightcache.valkey_client import close

    with contextlib.suppress(Exception):
        close(valkey)


def require_admin(db: Database) -> None:
    """A DataError unless the instructor's database holds a loaded dataset."""
    from flightcache.data.load import require_dataset

    try:
        require_dataset(db)
    except DataError as exc:
        raise DataError(
            f"the room's attendees read the instructor's dataset: {exc.message}",
            hint=exc.hint,
        ) from None
