"""The database server's CPU time, read by the bench around every slice.

PostgreSQL serves each connection with a process of its own (a backend): a client's
share of the server is its backend's CPU (``pg_backend_pid()``), and the clients'
shares add up. MariaDB and MySQL serve every connection from one process, a thread
each, and without performance_schema one thread cannot be told from another: client
0 reads the whole server (``@@pid_file``) and the others nothing, so whatever else
that server does meanwhile counts too.

Valkey runs one process too (its commands on one thread): :func:`valkey_meter` reads it
for client 0, beside the database, so that the two servers' CPU per operation compare.

Only a server on this machine can be read; for one elsewhere the meters are None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flightcache.sqlfiles import query

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

Meter = Callable[[], float]
"""CPU seconds (user + system) of what the client accounts for, so far."""


def meter(db: Any, client: int) -> Meter | None:
    """Client ``client``'s meter of the server ``db`` is connected to, or None (the server
    is not on this machine, or its process cannot be read; MariaDB: a client other
    than 0)."""
    host = str(getattr(db.url, "host", ""))
    if host not in LOCAL_HOSTS and not host.startswith("/"):
        return None
    if db.dialect != "postgresql" and client != 0:
        return None
    rows = db.fetch(query(db.dialect, "bench_server_process")).rows
    if not rows or rows[0][0] is None:
        return None
    try:
        pid = int(rows[0][0]) if db.dialect == "postgresql" else _pid_in(str(rows[0][0]))
    except (ValueError, OSError):
        return None
    return _process_meter(pid, ("postgres", "mariadbd", "mysqld"))


def valkey_meter(client: Any, url: Any, index: int) -> Meter | None:
    """Client ``index``'s meter of the valkey-server at ``url``: client 0 reads the whole
    server; the others, a cluster, or a server elsewhere: None."""
    if index != 0 or url.cluster or (url.host not in LOCAL_HOSTS and not url.path):
        return None
    try:
        pid = int(client.info("server")["process_id"])
    except Exception:  # a server that hides INFO, or answers oddly: no figure
        return None
    return _process_meter(pid, ("valkey", "redis"))


def _process_meter(pid: int, names: tuple[str, ...]) -> Meter | None:
    """The CPU seconds of process ``pid`` when its name has one of ``names``, else None
    (the pid is some other program's: the server is not on this machine)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if not any(word in process.name() for word in names):
            return None
        process.cpu_times()
    except psutil.Error:
        return None

    def read() -> float:
        try:
            t = process.cpu_times()
        except psutil.Error:  # the backend ended (the connection closed): its time is gone
            return 0.0
        return float(t.user + t.system)

    return read


def _pid_in(pid_file: str) -> int:
    with open(pid_file, encoding="ascii") as f:
        return int(f.read().split()[0])


def describe(db: Any) -> str | None:
    """What the meters of ``db``'s server cover, in a phrase; None when it cannot be read."""
    if meter(db, 0) is None:
        return None
    if db.dialect == "postgresql":
        return "the clients' own backends (a process per connection), summed"
    return "the whole server process (a thread per connection), whatever else it served"
