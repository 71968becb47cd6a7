"""The embedded stack: fresh start, idempotence, repair after an outside kill, down."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from flightcache.stack import Stack, proc
from tests.conftest import public_tempdir

pytestmark = pytest.mark.slow


@pytest.fixture
def state_dir() -> Iterator[Path]:
    root = public_tempdir("fc-test-stack-")
    yield root / "state"
    Stack(root / "state").down()
    shutil.rmtree(root, ignore_errors=True)


def test_up_status_down_and_repairs(state_dir: Path, cli: Any) -> None:
    stack = Stack(state_dir)
    report = stack.up()
    assert report.initdb and stack.valkey_running() and stack.postgres_running()
    pg_pid = stack.postgres.pid()
    assert pg_pid is not None
    if os.geteuid() == 0:  # initdb refuses root: the postmaster must run unprivileged
        assert psutil.Process(pg_pid).uids().real != 0
    again = stack.up()
    assert not again.initdb and all(s.startswith("already running") for s, _ in again.steps)

    # a Valkey killed from outside is noticed and restarted on the same port
    node = stack.valkey_nodes()[0]
    old_pid = node.pid()
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    proc.wait_gone(old_pid, 5)
    assert not stack.valkey_running()
    status = {s.name: s for s in stack.status()}
    assert not status["valkey"].running and status["postgresql"].running
    stack.up()
    assert stack.valkey_running() and stack.valkey_nodes()[0].port == node.port

    # a stale pidfile naming some unrelated live process is not mistaken for Valkey
    stack.valkey_nodes()[0].stop()
    node.pidfile.write_text(f"{os.getpid()}\n")
    assert node.pid() is None and not node.pidfile.exists()
    stack.up()
    assert stack.valkey_running()

    # the CLI sees the same stack, and down leaves no process behind
    result = cli("--state-dir", str(state_dir), "status", "--json")
    assert result.code == 0 and '"running": true' in result.out
    servers = [stack.postgres.pid(), *(n.pid() for n in stack.valkey_nodes())]
    stopped = stack.down()
    assert any("PostgreSQL" in s for s in stopped) and any("Valkey" in s for s in stopped)
    assert servers and not any(proc.process_alive(pid) for pid in servers)
    assert stack.down() == []


def test_cluster_up_and_back(state_dir: Path) -> None:
    import valkey.cluster

    stack = Stack(state_dir)
    report = stack.up(cluster=3, start_postgres=False)
    assert report.valkey_url is not None and report.valkey_url.cluster
    client = valkey.cluster.ValkeyCluster.from_url(report.valkey_url.client_url())
    try:
        assert len(client.get_primaries()) == 3
        for i in range(30):
            client.set(f"fctest:stack:{i}", i)
        assert client.get("fctest:stack:29") == b"29"
    finally:
        client.close()
    single = stack.up(cluster=0, start_postgres=False)
    assert single.valkey_url is not None and not single.valkey_url.cluster
    assert len(stack.valkey_nodes()) == 1
