"""The servers behind the pages: one Valkey client, one database connection per thread.

FastAPI runs plain ``def`` endpoints in a thread pool. A valkey-py client is safe to
share between threads (it has a connection pool); a pymysql or psycopg connection is
not, so each thread opens its own on first use and opens it again after a failure.
Whatever fails is reported as :class:`Unavailable`, naming the server that is down,
which the app turns into a 503 with that text and never a stack trace.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.config import DbUrl, ValkeyUrl, scrub
from flightcache.errors import ConnectionFailed
from flightcache.keys import Keys
from flightcache.web.config import WebConfig

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.valkey_client import Client


class Unavailable(Exception):
    """A server the request needs is down: ``which`` is "Valkey" or "the database"."""

    def __init__(self, which: str, detail: str) -> None:
        super().__init__(f"{which} is unavailable: {detail}")
        self.which = which
        self.detail = detail


def _database_down(exc: BaseException) -> bool:
    """Did the database connection itself fail (as opposed to one query)?"""
    if isinstance(exc, ConnectionFailed):
        return True
    name = type(exc).__name__
    module = type(exc).__module__
    return name in {"OperationalError", "InterfaceError"} and module.startswith(
        ("pymysql", "psycopg")
    )


class Services:
    """The servers of one web app; created once per worker process."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.db_url = DbUrl.parse(config.db_url)
        self.valkey_url = ValkeyUrl.parse(config.valkey_url)
        self.keys = Keys(config.key_prefix)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Database] = []

    @cached_property
    def valkey(self) -> Client:
        """The shared client (connecting lazily: a Valkey that is down fails per request)."""
        from flightcache.valkey_client import connect

        try:
            return connect(self.valkey_url, timeout=2.0)
        except ConnectionFailed as exc:
            raise Unavailable("Valkey", str(exc)) from None

    @contextmanager
    def database(self) -> Iterator[Database]:
        """This thread's connection; a connection that failed is closed and reopened next time."""
        from flightcache.db import connect

        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = connect(self.db_url, connect_timeout=3.0)
            except Exception as exc:
                if _database_down(exc):
                    raise Unavailable("the database", scrub(str(exc))) from None
                raise
            self._local.db = db
            with self._lock:
                self._opened.append(db)
        try:
            yield db
        except Exception as exc:
            if _database_down(exc):
                self._forget(db)
                raise Unavailable("the database", scrub(str(exc))) from None
            raise

    def _forget(self, db: Database) -> None:
        self._local.db = None
        with self._lock:
            if db in self._opened:
                self._opened.remove(db)
        try:
            db.close()
        except Exception:
            pass

    @contextmanager
    def valkey_errors(self) -> Iterator[None]:
        """Valkey's connection errors inside the block become :class:`Unavailable`."""
        try:
            yield
        except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError) as exc:
            raise Unavailable("Valkey", scrub(str(exc)) or type(exc).__name__) from None

    def health(self) -> dict[str, Any]:
        """Each server reachable or not, with the reason; nothing raised."""
        status: dict[str, Any] = {}
        try:
            with self.valkey_errors():
                self.valkey.ping()
            status["valkey"] = {"ok": True}
        except Unavailable as exc:
            status["valkey"] = {"ok": False, "error": exc.detail}
        try:
            with self.database() as db:
                db.fetch("SELECT 1")
            status["database"] = {"ok": True, "kind": self.db_url.kind}
        except Unavailable as exc:
            status["database"] = {"ok": False, "error": exc.detail}
        status["ok"] = status["valkey"]["ok"] and status["database"]["ok"]
        return status

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for db in opened:
            try:
                db.close()
            except Exception:
                pass
        if "valkey" in self.__dict__:
            from flightcache.valkey_client import close

            close(self.__dict__["valkey"])
