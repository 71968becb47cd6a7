"""Process and port helpers shared by the embedded servers."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
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


def process_alive(pid: int | None, *, cwd: Path | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, works in directory ``cwd``.

    Valkey and PostgreSQL both chdir into their data directory, which is unique to
    one server, so the working directory tells a live server from a recycled pid.
    """
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if cwd is None:
            return True
        return Path(process.cwd()).resolve() == cwd.resolve()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
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


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; children of ``pid`` go too."""
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


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes that work in, or name a file below, ``path`` (our servers)."""
    root = str(path.resolve())
    found: list[psutil.Process] = []
    me = os.getpid()
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        try:
            if process.pid == me or process.info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            cwd = process.info.get("cwd") or ""
            cmd = process.info.get("cmdline") or []
            if cwd == root or cwd.startswith(root + os.sep) or any(root in c for c in cmd):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


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
