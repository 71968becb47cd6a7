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


def _room_address() -> str:
    """An IPv4 address of this machine other than loopback (the room's network)."""
    import socket

    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    pytest.skip("this machine has no IPv4 address but loopback")


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_listen_for_a_room_and_back(state_dir: Path) -> None:
    """`up --listen ADDRESS`: both servers answer there, with their passwords only;
    `--listen local` (the empty address) restarts them on 127.0.0.1 alone."""
    import psycopg
    import valkey

    room = _room_address()
    stack = Stack(state_dir)
    stack.up(listen=room)
    assert stack.listening() == room
    creds = stack.credentials()
    vport, pport = stack.valkey_nodes()[0].port, stack.postgres.running_port()
    assert pport is not None
    client = valkey.Valkey(host=room, port=vport, password=creds.valkey, socket_timeout=5)
    assert client.ping()
    client.close()
    with pytest.raises(valkey.exceptions.AuthenticationError):
        valkey.Valkey(host=room, port=vport, password="wrong", socket_timeout=5).ping()
    with psycopg.connect(
        host=room, port=pport, user="postgres", password=creds.postgres, dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=room, port=pport, user="postgres", password="wrong", dbname="postgres")

    again = stack.up(listen="")
    assert any("to listen on 127.0.0.1 only" in s for s, _ in again.steps)
    assert stack.listening() is None and stack.valkey_running() and stack.postgres_running()
    assert not _reachable(room, vport) and not _reachable(room, pport)
    assert _reachable("127.0.0.1", stack.valkey_nodes()[0].port)


def test_a_listening_cluster_announces_the_room_address(state_dir: Path) -> None:
    """Clients on other laptops follow the cluster's slot map: it must name the address
    they reach, not 127.0.0.1."""
    import valkey

    room = _room_address()
    stack = Stack(state_dir)
    stack.up(cluster=3, start_postgres=False, listen=room)
    node = stack.valkey_nodes()[0]
    client = valkey.Valkey(host=room, port=node.port, password=stack.credentials().valkey)
    try:
        hosts = {str(shard[2][0], "utf-8") for shard in client.execute_command("CLUSTER SLOTS")}
    finally:
        client.close()
    assert hosts == {room}


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("0.0.0.0", "must be one IPv4 address of this machine"),
        ("203.0.113.77", "this machine has no such address"),
        ("example", "is not an IP address"),
        ("::1", "must be one IPv4 address of this machine"),
    ],
)
def test_listen_refuses_what_it_cannot_serve(cli: Any, address: str, message: str) -> None:
    result = cli("up", "--listen", address, "--no-load")
    assert result.code == 2, result.out + result.err
    assert message in result.err and "Traceback" not in result.err


def test_a_room_on_the_embedded_stack_end_to_end(
    state_dir: Path, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instructor's day on nothing but flightcache: `up --listen`, `room add`, one
    card tested (a real attendee login over the room address, passwords checked by the
    embedded servers), `room status` seeing it, `room remove`."""
    import json

    room = _room_address()
    me = ["--state-dir", str(state_dir)]
    assert cli(*me, "up", "--listen", room, "--scale", "tiny").code == 0
    cards = tmp_path / "cards"
    added = cli(*me, "room", "add", "alice", "--out", str(cards), "--no-cards")
    assert added.code == 0, added.err
    card = (cards / "alice.toml").read_text()
    assert f"@{room}:" in card and "127.0.0.1" not in card  # what the room can reach

    # the attendee: only their file, no state directory of the instructor's
    monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(cards / "alice.toml"))
    monkeypatch.setenv("FLIGHTCACHE_STATE_DIR", str(tmp_path / "alice-state"))
    doctor = cli("doctor")
    assert doctor.code == 0, doctor.out + doctor.err
    assert cli("cache-aside", "--repeat", "3").code == 0
    monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("FLIGHTCACHE_STATE_DIR", str(state_dir))

    status = json.loads(cli(*me, "room", "status", "--json").out)
    assert [(r["attendee"], r["command"], r["exit"]) for r in status] == [
        ("alice", "cache-aside", 0)
    ]
    gone = cli(*me, "room", "remove", "alice", "--out", str(cards), "--yes")
    assert gone.code == 0, gone.err
    assert not (cards / "alice.toml").exists()
