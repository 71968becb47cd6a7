"""What a demo changed on a server, written down before the change so it can be put back.

A demo that changes a Valkey setting (``CONFIG SET``) or a row of the dataset first
records what undoes it in the state directory, in ``undo/`` (a 0700 directory, files
0600):

    valkey-<host>-<port>.json   the node's run_id and the original value of each
                                setting changed, with the process that changed them
    rows-<digest>.json          one database's pending undo statements (a named query
                                from sql/ and its parameters), each with its process

A demo that ends in any way it can notice (its last step, an exception, Ctrl-C,
SIGTERM, SIGHUP) puts the change back itself and drops the record. A SIGKILL leaves
the record behind; once the process that wrote it is gone, the next flightcache
command that connects to that Valkey (or the next demo on that database) puts the
change back and says so. A record for a Valkey whose run_id changed is dropped
unapplied: a restarted server has its own settings again and is not touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from flightcache.config import DbUrl
from flightcache.errors import killed_by

UNDO_DIR = "undo"


# -- the process that wrote a record ---------------------------------------------------
def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" where /proc is absent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "started": _start_time(os.getpid())}


def _alive(owner: Mapping[str, Any]) -> bool:
    """Is the process that wrote a record still running (the same process, not a reuse)?"""
    pid = int(owner.get("pid", 0))
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another account's process: it exists
    started = str(owner.get("started", ""))
    return not started or _start_time(pid) in ("", started)


# -- files ---------------------------------------------------------------------------
def _dir(state_dir: Path) -> Path:
    from flightcache.stack.statedir import claim

    path = claim(state_dir) / UNDO_DIR
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[Path]:
    """The undo directory, locked against other flightcache processes."""
    path = _dir(state_dir)
    fd = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if sys.platform != "win32":  # Windows has no flock: one demo at a time there
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` whole or not at all, 0600, on disk before returning."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, default=_encode)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    raise TypeError(f"cannot record a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind == "datetime":
            return dt.datetime.fromisoformat(text)
        if kind == "date":
            return dt.date.fromisoformat(text)
        if kind == "decimal":
            return Decimal(text)
    return value


# -- Valkey settings -------------------------------------------------------------------
def node_address(node: Any) -> str:
    kwargs = node.connection_pool.connection_kwargs
    return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"


def _settings_file(directory: Path, address: str) -> Path:
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in address)
    return directory / f"valkey-{safe}.json"


def _run_id(node: Any) -> str:
    return str(node.info("server").get("run_id", ""))


@dataclass
class Undo:
    """Records what a demo is about to change, in ``state_dir``, and forgets it once back."""

    state_dir: Path
    db_url: DbUrl | None = None
    dataset: str = ""  # the load the rows belong to (flightcache_meta loaded_at)

    # Valkey ------------------------------------------------------------------------
    def save_settings(self, node: Any, original: Mapping[str, str]) -> None:
        """Record ``original`` (the values before any CONFIG SET) for ``node``; a value
        recorded earlier and not yet put back is the true original, so it is kept."""
        address = node_address(node)
        run_id = _run_id(node)
        with _locked(self.state_dir) as directory:
            path = _settings_file(directory, address)
            record = _read(path)
            if record.get("run_id") != run_id:
                record = {}
            settings = {**original, **record.get("settings", {})}
            _write(
                path,
                {"address": address, "run_id": run_id, "owner": _me(), "settings": settings},
            )

    def settings_back(self, node: Any, names: Iterable[str]) -> None:
        """The node's settings ``names`` are back: forget them (and the record, once empty)."""
        with _locked(self.state_dir) as directory:
            path = _settings_file(directory, node_address(node))
            record = _read(path)
            left = {k: v for k, v in record.get("settings", {}).items() if k not in set(names)}
            if left:
                _write(path, {**record, "settings": left})
            else:
                path.unlink(missing_ok=True)

    # database rows -----------------------------------------------------------------
    def _rows_file(self, directory: Path) -> Path:
        assert self.db_url is not None
        return directory / f"rows-{database_digest(self.db_url)}.json"

    def record(self, query: str, params: Mapping[str, Any]) -> str:
        """Record that the named query with ``params`` undoes a change about to be made;
        returns the entry's id, for :meth:`done`."""
        entry_id = uuid.uuid4().hex
        with _locked(self.state_dir) as directory:
            path = self._rows_file(directory)
            record = _read(path) or {"database": self.db_url.url() if self.db_url else ""}
            entries = list(record.get("entries", []))
            entries.append(
                {
                    "id": entry_id,
                    "owner": _me(),
                    "dataset": self.dataset,
                    "query": query,
                    "params": dict(params),
                }
            )
            _write(path, {**record, "entries": entries})
        return entry_id

    def done(self, entry_id: str) -> None:
        """The change recorded as ``entry_id`` is undone (or never happened): forget it."""
        with _locked(self.state_dir) as directory:
            path = self._rows_file(directory)
            record = _read(path)
            entries = [e for e in record.get("entries", []) if e.get("id") != entry_id]
            if entries:
                _write(path, {**record, "entries": entries})
            else:
                path.unlink(missing_ok=True)


def database_digest(url: DbUrl) -> str:
    where = f"{url.kind}://{url.host}:{url.port}/{url.database}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def repair_settings(state_dir: Path, nodes: list[Any]) -> list[str]:
    """Put back the settings a killed demo left changed on any of ``nodes``: one line for
    all the nodes put back, and one per node that could not be (its record stays for the
    next command). A node whose record belongs to a live demo is left to that demo."""
    directory = state_dir / UNDO_DIR
    if not directory.is_dir() or not any(directory.glob("valkey-*.json")):
        return []
    done: list[str] = []
    failed: list[str] = []
    with _locked(state_dir):
        for node in nodes:
            address = node_address(node)
            path = _settings_file(directory, address)
            record = _read(path)
            if not record or _alive(record.get("owner", {})):
                continue
            settings: dict[str, str] = record.get("settings", {})
            args = [x for item in settings.items() for x in item]
            try:
                if record.get("run_id") != _run_id(node):
                    path.unlink(missing_ok=True)  # restarted since: its settings are its own
                    continue
                if args:
                    node.execute_command("CONFIG", "SET", *args)
            except Exception as exc:  # each node on its own
                failed.append(
                    f"could not put back Valkey {address}'s settings ({' '.join(args)}):"
                    f" {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
                )
                continue
            path.unlink(missing_ok=True)
            done.append(f"{address} " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    if not done:
        return failed
    return [f"put back Valkey settings a killed demo had changed: {'; '.join(done)}", *failed]


def pending_rows(state_dir: Path, url: DbUrl, dataset: str) -> list[dict[str, Any]]:
    """The undo entries for ``url`` whose process is gone, of this same load; entries of
    another load (the data was loaded again since) are dropped, as they no longer apply."""
    directory = state_dir / UNDO_DIR
    path = directory / f"rows-{database_digest(url)}.json"
    if not path.exists():
        return []
    with _locked(state_dir):
        record = _read(path)
        entries = record.get("entries", [])
        kept = [e for e in entries if e.get("dataset") == dataset]
        if len(kept) != len(entries):
            _write(path, {**record, "entries": kept})
    return [
        {**e, "params": {k: _decode(v) for k, v in e.get("params", {}).items()}}
        for e in kept
        if not _alive(e.get("owner", {}))
    ]


UNDO_QUERIES = frozenset(
    {
        "airline_rename",
        "bench_passenger_bookings_remove",
        "bench_passenger_remove",
        "bench_sessions_remove",
        "booking_remove",
        "booking_remove_ids",
        "invalidation_flight_move",
        "session_db_delete",
        "write_behind_forget_applied",
        "write_behind_forget_seats",
    }
)
"""The named queries a record may ask for: each puts back one row a demo changed."""


def repair_rows(state_dir: Path, db: Any, dataset: str) -> list[str]:
    """Run the undo statements a killed demo left for ``db``, each on its own (one that
    fails does not stop the rest); one line saying what was put back, or what was not."""
    from flightcache import sqlfiles

    entries = pending_rows(state_dir, db.url, dataset)
    if not entries:
        return []
    undo = Undo(state_dir, db.url, dataset)
    done, failed = 0, []
    for entry in entries:
        name = str(entry.get("query"))
        try:
            if name not in UNDO_QUERIES:
                raise ValueError(f"{name!r} is not an undo query")
            with db.transaction():
                db.execute(sqlfiles.query(db.dialect, name), entry["params"])
        except Exception as exc:  # each on its own: report it and go on
            failed.append(f"{name} {entry.get('params')}: {str(exc).splitlines()[0][:120]}")
            continue
        undo.done(str(entry["id"]))
        done += 1
    lines = []
    if done:
        lines.append(f"put back {done} row change(s) that a killed run had left in {db.url.url()}")
    lines += [f"could not put back {what}" for what in failed]
    return lines


# -- signals -------------------------------------------------------------------------
ENDING_SIGNALS = ("SIGTERM", "SIGHUP")


class Stopped(SystemExit):
    """SIGTERM or SIGHUP, raised where the program was so that every ``finally`` runs;
    the exit status is the shell's for that signal (128 + its number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(killed_by(signum))
        self.signum = signum


@contextlib.contextmanager
def _handling(names: Iterable[str], handler: Callable[[int, Any], None]) -> Iterator[bool]:
    """``handler`` for the named signals while inside, the previous ones after; yields
    False (and changes nothing) outside the main thread, where Python cannot."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    numbers = [getattr(signal, name) for name in names if hasattr(signal, name)]
    before = {n: signal.signal(n, handler) for n in numbers}
    try:
        yield True
    finally:
        for number, previous in before.items():
            signal.signal(number, previous)


@contextlib.contextmanager
def signals_end_here() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise :class:`Stopped` (SIGINT raises
    KeyboardInterrupt as always), so a demo's cleanup runs before the process exits.
    Also a decorator."""

    def stop(signum: int, _frame: Any) -> None:
        raise Stopped(signum)

    with _handling(ENDING_SIGNALS, stop):
        yield


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """While inside (the cleanup), SIGINT, SIGTERM and SIGHUP wait: a second Ctrl-C does
    not cut the putting back short. The first one that came is raised on the way out."""
    import signal

    came: list[int] = []
    with _handling(("SIGINT", *ENDING_SIGNALS), lambda signum, _frame: came.append(signum)):
        yield
    if came:
        if came[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(came[0])
