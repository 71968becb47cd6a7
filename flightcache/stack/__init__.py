"""The embedded stack: a Valkey (one node or a cluster) and a PostgreSQL of our own.

Everything lives in the state directory::

    stack.json              mode, ports; the ports are reused on the next start
    stack.lock              held while up/down run, so two commands do not race
    valkey/standalone/      one node: valkey.conf, valkey.pid, valkey.log
    valkey/cluster/node-N/  the nodes of a cluster (nodes.conf keeps its shape)
    postgres/data           the PostgreSQL cluster; postgres/postgres.log

The servers daemonize and outlive the command. ``up`` and ``down`` are idempotent;
a pidfile whose process is gone (or is some other program) is treated as stale.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightcache.config import DEFAULT_DATABASE, DbUrl, ValkeyUrl
from flightcache.errors import StackError, StackNotRunning
from flightcache.stack import proc
from flightcache.stack.postgres import SUPERUSER, EmbeddedPostgres
from flightcache.stack.valkey import ValkeyNode, form_cluster
from flightcache.stack.valkey import server_version as valkey_version

MAX_CLUSTER_NODES = 16


@dataclass
class ServerStatus:
    """What ``flightcache status`` shows for one server process."""

    name: str
    running: bool
    pid: int | None
    port: int | None
    version: str
    data_dir: Path
    memory: int | None = None
    note: str = ""


@dataclass
class UpReport:
    """What ``up`` did, step by step, with the time each took."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    initdb: bool = False
    db_url: DbUrl | None = None
    valkey_url: ValkeyUrl | None = None


class Stack:
    """The embedded servers of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.postgres = EmbeddedPostgres(state_dir / "postgres")

    # -- state file -------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        proc.ensure_writable_dir(self.state_dir)
        with (self.state_dir / "stack.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- nodes ------------------------------------------------------------------
    def valkey_nodes(self, state: dict[str, Any] | None = None) -> list[ValkeyNode]:
        state = self._state() if state is None else state
        mode = state.get("valkey_mode", "standalone")
        ports = [int(p) for p in state.get("valkey_ports", [])]
        if mode == "cluster":
            base = self.state_dir / "valkey" / "cluster"
            return [ValkeyNode(base / f"node-{i}", p, cluster=True) for i, p in enumerate(ports)]
        if ports:
            return [ValkeyNode(self.state_dir / "valkey" / "standalone", ports[0])]
        return []

    # -- up / down --------------------------------------------------------------
    def up(
        self,
        *,
        cluster: int | None = None,
        valkey_port: int | None = None,
        pg_port: int | None = None,
        start_valkey: bool = True,
        start_postgres: bool = True,
    ) -> UpReport:
        """Start what is not running; return what was done.

        ``cluster``: None keeps the Valkey's current shape, 0 asks for one node,
        N for an N-node cluster (a running Valkey of another shape is replaced).
        """
        if cluster is not None and not 0 <= cluster <= MAX_CLUSTER_NODES:
            raise StackError(
                f"--cluster {cluster} is out of range",
                hint=f"a local cluster has 1 to {MAX_CLUSTER_NODES} nodes; 3 is usual",
            )
        report = UpReport()
        with self._locked():
            state = self._state()
            if start_valkey:
                self._up_valkey(state, cluster, valkey_port, report)
            if start_postgres:
                self._up_postgres(state, pg_port, report)
            self._save(state)
        report.db_url = self.db_url() if start_postgres else None
        report.valkey_url = self.valkey_url() if start_valkey else None
        return report

    def _up_valkey(
        self, state: dict[str, Any], cluster: int | None, port: int | None, report: UpReport
    ) -> None:
        t0 = time.perf_counter()
        old_mode = state.get("valkey_mode", "standalone")
        old_nodes = self.valkey_nodes(state)
        if cluster is None:  # keep whatever shape the stack already has
            cluster = len(old_nodes) if old_mode == "cluster" and old_nodes else 0
        want_mode = "cluster" if cluster else "standalone"
        reshape = bool(old_nodes) and (
            old_mode != want_mode or (want_mode == "cluster" and len(old_nodes) != cluster)
        )
        if reshape:
            running = [node for node in old_nodes if node.pid() is not None]
            for node in running:
                node.stop()
            if old_mode == "cluster":
                shutil.rmtree(self.state_dir / "valkey" / "cluster", ignore_errors=True)
            state["valkey_ports"] = []
            if running:
                report.steps.append((f"stopped the {old_mode} Valkey to reshape it", 0.0))
        count = cluster or 1
        is_cluster = want_mode == "cluster"
        old_ports = [int(p) for p in state.get("valkey_ports", [])]
        if len(old_ports) != count:
            old_ports = []
        chosen: list[int] = []
        for i in range(count):
            old = old_ports[i] if old_ports else None
            node = ValkeyNode(self._node_dir(want_mode, i), old or 0, cluster=is_cluster)
            if old is not None and node.pid() is not None:
                if port is not None and old != port + i:
                    raise StackError(
                        f"the embedded Valkey already runs on port {old}, not {port + i}",
                        hint="run `flightcache down` first to move it",
                    )
                chosen.append(old)
            elif port is not None:
                proc.check_port(port + i, "Valkey")
                chosen.append(port + i)
            elif (
                old is not None
                and proc.port_is_free(old)
                and (not is_cluster or proc.port_is_free(old + 10000))
            ):
                chosen.append(old)
            else:
                chosen.append(proc.free_port(set(chosen), with_bus=is_cluster))
        state["valkey_mode"] = want_mode
        state["valkey_ports"] = chosen
        nodes = self.valkey_nodes(state)
        started = 0
        for node in nodes:
            if node.pid() is None:
                node.start()
                started += 1
        if want_mode == "cluster":
            form_cluster(nodes)
        what = f"{len(nodes)}-node Valkey cluster" if want_mode == "cluster" else "Valkey"
        verb = "started" if started else "already running:"
        report.steps.append((f"{verb} {what} on port {nodes[0].port}", time.perf_counter() - t0))

    def _node_dir(self, mode: str, index: int) -> Path:
        if mode == "cluster":
            return self.state_dir / "valkey" / "cluster" / f"node-{index}"
        return self.state_dir / "valkey" / "standalone"

    def _up_postgres(self, state: dict[str, Any], port: int | None, report: UpReport) -> None:
        t0 = time.perf_counter()
        if self.postgres.pid() is not None:
            running = self.postgres.running_port()
            if port is not None and running != port:
                raise StackError(
                    f"the embedded PostgreSQL already runs on port {running}, not {port}",
                    hint="run `flightcache down` first to move it",
                )
            state["pg_port"] = running
            report.steps.append(
                (f"already running: PostgreSQL on port {running}", time.perf_counter() - t0)
            )
            return
        if self.postgres.ensure_initdb():
            report.initdb = True
            report.steps.append(
                ("initdb: created the PostgreSQL cluster", time.perf_counter() - t0)
            )
        if port is None:
            saved = state.get("pg_port")
            port = (
                saved if isinstance(saved, int) and proc.port_is_free(saved) else proc.free_port()
            )
        self.postgres.start(port)
        state["pg_port"] = port
        report.steps.append((f"started PostgreSQL on port {port}", time.perf_counter() - t0))

    def down(self) -> list[str]:
        """Stop every server of this state dir; return what was stopped."""
        stopped: list[str] = []
        if not self.state_dir.exists():
            return stopped
        with self._locked():
            state = self._state()
            for node in self.valkey_nodes(state):
                if node.pid() is not None:
                    node.stop()
                    stopped.append(f"Valkey on port {node.port}")
            if self.postgres.pid() is not None:
                port = self.postgres.running_port()
                self.postgres.stop()
                stopped.append(f"PostgreSQL on port {port}")
            # anything else still running from this state dir (a node we lost track of)
            for leftover in proc.processes_under(self.state_dir):
                proc.terminate(leftover.pid, timeout=5)
                stopped.append(f"stray process {leftover.pid}")
        return stopped

    # -- what runs --------------------------------------------------------------
    def valkey_running(self) -> bool:
        nodes = self.valkey_nodes()
        return bool(nodes) and all(n.pid() is not None for n in nodes)

    def postgres_running(self) -> bool:
        return self.postgres.pid() is not None

    def db_url(self) -> DbUrl:
        port = self.postgres.running_port() if self.postgres_running() else None
        if port is None:
            raise StackNotRunning(
                "the embedded PostgreSQL is not running",
                hint="start the stack with `flightcache up`, or set FLIGHTCACHE_DB_URL",
            )
        return DbUrl.parse(f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DEFAULT_DATABASE}")

    def valkey_url(self) -> ValkeyUrl:
        nodes = self.valkey_nodes()
        if not nodes or not self.valkey_running():
            raise StackNotRunning(
                "the embedded Valkey is not running",
                hint="start the stack with `flightcache up`, or set FLIGHTCACHE_VALKEY_URL",
            )
        scheme = "valkey+cluster" if nodes[0].cluster else "valkey"
        return ValkeyUrl.parse(f"{scheme}://127.0.0.1:{nodes[0].port}")

    def status(self) -> list[ServerStatus]:
        rows: list[ServerStatus] = []
        nodes = self.valkey_nodes()
        if not nodes:
            rows.append(
                ServerStatus(
                    "valkey",
                    False,
                    None,
                    None,
                    valkey_version(),
                    self.state_dir / "valkey",
                    note="never started",
                )
            )
        for i, node in enumerate(nodes):
            pid = node.pid()
            name = f"valkey node {i}" if node.cluster else "valkey"
            rows.append(
                ServerStatus(
                    name,
                    pid is not None,
                    pid,
                    node.port,
                    valkey_version(),
                    node.dir,
                    proc.memory_of(pid) if pid else None,
                )
            )
        pid = self.postgres.pid()
        initialised = self.postgres.initialised
        rows.append(
            ServerStatus(
                "postgresql",
                pid is not None,
                pid,
                self.postgres.running_port() if pid else self._state().get("pg_port"),
                self.postgres.version() if initialised or pid else "not initialised",
                self.postgres.data,
                proc.memory_of(pid) if pid else None,
                note="" if initialised else "no cluster yet (initdb runs on `up`)",
            )
        )
        return rows
