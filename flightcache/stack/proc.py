"""Process and port helpers shared by the embedded servers."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from flightcache.errors import StackError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(avoid: set[int] | None = None, *, with_bus: bool = False) -> int:
    """A free loopback port; with ``with_bus`` its +10000 cluster-bus port is free too."""
    avoid = avoid or set()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in avoid:
            continue
        if with_bus and (port + 10000 > 65535 or not port_is_free(port + 10000)):
            continue
        return port
    raise StackError("could not find a free loopback port", hint="free some ports and retry")


def check_port(port: int, what: str) -> None:
    """Raise a StackError when ``port`` is taken by someone else."""
    if not 1 <= port <= 65535:
        raise StackError(f"{what} port {port} is not a TCP port", hint="choose 1024-65535")
    if not port_is_free(port):
        raise StackError(
            f"{what} port {port} is already taken on 127.0.0.1",
            hint="choose another port, or leave the option out to pick a free one",
        )


def process_alive(pid: int | None) -> bool:
    """True when ``pid`` runs and is not a zombie (says nothing about whose it is)."""
    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return False


# A process is ours when the pid in its pidfile names a live process that runs our
# executable, under the account we started it as, and began when we recorded it did
# (the record is written right after the start). Working directories and command
# lines are never consulted: anyone can chdir into the state directory.
START_SLACK = 2.0  # seconds: /proc's boot time, and so create_time, can move by one


def record_start(record: Path, pid: int, *, not_before: float) -> None:
    """Write the identity of the server we just started; raise when ``pid`` is not it."""
    try:
        process = psutil.Process(pid)
        exe, started, uid = process.exe(), process.create_time(), process.uids().real
    except (psutil.Error, OSError) as exc:
        raise StackError(
            f"the server we started (pid {pid}) vanished: {exc}",
            hint=f"see the log next to {record}",
        ) from None
    if started < not_before - START_SLACK:
        raise StackError(
            f"pid {pid} in the pidfile near {record} is older than the server we started",
            hint="another program wrote that pidfile; run `flightcache down` and retry",
        )
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "exe": exe, "started": started, "uid": uid}))
    os.replace(tmp, record)


def owned_pid(
    pidfile: Path, record: Path, exes: Callable[[], list[Path]], uids: set[int]
) -> int | None:
    """The pid named by ``pidfile`` when that process is the server we started, else None.

    With a start record (written by :func:`record_start`) pid, executable, account and
    start time must all match it. A server started before records existed must run one
    of ``exes()`` (asked only then: finding them may import a package) under one of
    ``uids`` and be older than its pidfile (a recycled pid belongs to a process started
    after the pidfile was written).
    """
    pid = read_pid(pidfile)
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        exe, started, uid = Path(process.exe()), process.create_time(), process.uids().real
    except (psutil.Error, OSError):
        return None
    try:
        saved = json.loads(record.read_text())
    except FileNotFoundError:
        saved = None
    except (OSError, ValueError):
        return None
    if isinstance(saved, dict):
        same = (
            saved.get("pid") == pid
            and _same_file(exe, Path(str(saved.get("exe"))))
            and saved.get("uid") == uid
            and uid in uids
            and abs(float(saved.get("started", 0)) - started) <= START_SLACK
        )
        return pid if same else None
    try:
        written = pidfile.stat().st_mtime
    except OSError:
        return None
    legacy = uid in uids and any(_same_file(exe, e) for e in exes())
    return pid if legacy and started <= written + START_SLACK else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    """The first line of a pidfile as a number, or None when absent or garbled."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return not process_alive(pid)


def stop(pid: int, sig: signal.Signals, timeout: float) -> None:
    """Send ``sig``, wait up to ``timeout`` for the exit, then :func:`terminate`.

    Only for a pid :func:`owned_pid` vouched for.
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        terminate(pid, timeout=5)


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; children of ``pid`` go too.

    Only for a pid :func:`owned_pid` vouched for.
    """
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in [proc, *children]:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs([proc, *children], timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def memory_of(pid: int) -> int | None:
    """Resident memory of ``pid`` and its children in bytes (PSS where readable)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total = 0
    for p in procs:
        try:
            try:
                total += int(p.memory_full_info().pss)
            except (AttributeError, psutil.AccessDenied):
                total += int(p.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return total


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` or raise a StackError that says why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".flightcache-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = "permission denied" if exc.errno != errno.EROFS else "read-only file system"
        raise StackError(
            f"state directory {path} cannot be written: {reason}",
            hint="choose another with --state-dir or FLIGHTCACHE_STATE_DIR",
        ) from None
