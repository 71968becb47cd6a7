"""Issue 12, items 1, 2 and 9 for the embedded stack, with real faults.

- ``down`` signals only the servers flightcache started: real processes working in,
  or naming, the state directory, and a pidfile whose pid now belongs to another
  program, all survive it.
- A state directory may not be ``/``, a home directory, or someone else's directory.
- Another account on the machine (``runuser -u nobody``) gets into neither server,
  over TCP or the Unix socket; the servers do not run as root; the credentials are
  0600 in a 0700 directory; every URL printed shows ``***`` for the password.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from flightcache.stack import Stack, proc, statedir
from flightcache.stack.valkey import raw_command, server_binary
from tests import test_stack
from tests.conftest import PG_URL, public_tempdir

pytestmark = [pytest.mark.slow, pytest.mark.safety]

state_dir = test_stack.state_dir  # a fresh state dir, its servers downed afterwards

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another account")


@pytest.fixture
def bystanders() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes that are not flightcache's; each test checks they outlive it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


def _sleeper(cwd: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A python that sleeps, working in ``cwd``, with ``extra`` on its command line."""
    code = "import time; time.sleep(300)"
    return subprocess.Popen([sys.executable, "-c", code, *extra], cwd=cwd)


def _alive(child: subprocess.Popen[bytes]) -> bool:
    return child.poll() is None


# -- item 1: processes ------------------------------------------------------------------
@pytest.mark.safety(1)
def test_down_leaves_processes_in_or_naming_the_state_dir_alive(
    state_dir: Path, bystanders: list[subprocess.Popen[bytes]], cli: Any
) -> None:
    stack = Stack(state_dir)
    stack.up(start_postgres=False)
    node = stack.valkey_nodes()[0]
    server = node.pid()
    assert server is not None
    bystanders += [
        _sleeper(state_dir),  # a learner's shell sitting in the state dir
        _sleeper(node.dir),  # ... or in the node's own directory
        _sleeper(Path("/"), str(node.conf), f"--state-dir={state_dir}"),  # naming its path
    ]
    time.sleep(0.2)
    result = cli("--state-dir", str(state_dir), "down")
    assert result.code == 0, result.err
    assert "stopped Valkey" in result.out and "stray" not in result.out
    assert proc.wait_gone(server, 5)
    assert all(_alive(b) for b in bystanders)


@pytest.mark.safety(1)
def test_a_pidfile_naming_another_process_leads_to_no_kill(
    state_dir: Path, bystanders: list[subprocess.Popen[bytes]]
) -> None:
    stack = Stack(state_dir)
    stack.up(start_postgres=False)
    node = stack.valkey_nodes()[0]
    old = node.pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)  # the server dies; its pidfile and start record stay
    assert proc.wait_gone(old, 5)
    record = node.record.read_text()

    # its pid "reused" by a program of another kind, working in the node's directory
    bystanders.append(_sleeper(node.dir))
    # ... and by a real valkey-server of someone else's, in the same directory
    port = proc.free_port()
    other = subprocess.Popen(
        [str(server_binary()), "--port", str(port), "--save", "", "--requirepass", "x"],
        cwd=node.dir,
        stdout=subprocess.DEVNULL,
    )
    bystanders.append(other)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"NOAUTH" not in _ping(port):
        time.sleep(0.05)
    for child in bystanders:
        node.record.write_text(record)
        node.pidfile.write_text(f"{child.pid}\n")
        assert Stack(state_dir).down() == []
        assert _alive(child)

    # a pidfile from before start records: the pid must be older than the pidfile
    node.record.unlink(missing_ok=True)
    node.pidfile.write_text(f"{other.pid}\n")
    long_ago = time.time() - 3600
    os.utime(node.pidfile, (long_ago, long_ago))
    assert Stack(state_dir).down() == []
    assert all(_alive(b) for b in bystanders)


def _ping(port: int) -> bytes:
    try:
        return raw_command(port, "PING", timeout=0.5)
    except OSError:
        return b""


@pytest.mark.safety(1)
def test_state_dir_may_not_be_root_home_or_someone_elses(
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    bystanders: list[subprocess.Popen[bytes]],
    valkey_server: Any,
) -> None:
    from flightcache.config import resolve
    from flightcache.errors import ConfigError

    with pytest.raises(ConfigError, match="is the root directory"):
        resolve(state_dir="/")

    home = tmp_path / "home"
    (home / "project").mkdir(parents=True)
    (home / ".bashrc").write_text("# mine\n")
    monkeypatch.setenv("HOME", str(home))
    bystanders.append(_sleeper(home / "project"))
    for args in (["down"], ["up", "--no-load"]):
        result = cli("--state-dir", str(home), *args)
        assert result.code == 3 and "is your home directory" in result.err, result.err
        assert len(result.err.strip().splitlines()) == 2  # the error line and its hint

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("not flightcache's\n")
    theirs.chmod(0o755)
    bystanders.append(_sleeper(theirs))
    configured = ["--db-url", PG_URL, "--valkey-url", str(valkey_server.url)]
    for args in (["down"], ["up", "--no-load"]):
        result = cli("--state-dir", str(theirs), *configured, *args)
        assert result.code == 5, result.err
        assert "already holds files flightcache did not create (notes.txt)" in result.err
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755

    # a directory holding only a "postgres" of someone's: its pg_hba.conf stays theirs
    someones = tmp_path / "someones"
    (someones / "postgres" / "data").mkdir(parents=True)
    (someones / "postgres" / "data" / "PG_VERSION").write_text("15\n")
    result = cli("--state-dir", str(someones), *configured, "up", "--no-load")
    assert result.code == 5 and "did not create (postgres)" in result.err, result.err
    assert [p.name for p in someones.iterdir()] == ["postgres"]
    assert all(_alive(b) for b in bystanders)


# -- item 2: closed to other accounts ------------------------------------------------------
@pytest.fixture(scope="module")
def running() -> Iterator[Stack]:
    root = public_tempdir("fc-test-safety-closed-")
    stack = Stack(root / "state")
    stack.up()
    yield stack
    stack.down()
    shutil.rmtree(root, ignore_errors=True)


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "nobody", "--", *cmd],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        cwd="/",
        check=False,
        timeout=30,
    )


@as_root
@pytest.mark.safety(2)
def test_another_account_gets_into_neither_server(running: Stack) -> None:
    port = running.db_url().port
    psql = ["psql", "-U", "postgres", "-d", "postgres", "-p", str(port), "-c", "SELECT 1"]
    tcp = _as_nobody(*psql, "-h", "127.0.0.1")
    assert tcp.returncode != 0 and "no password supplied" in tcp.stderr, tcp
    socket_dir = running.postgres.socket_dir
    unix = _as_nobody(*psql, "-h", str(socket_dir))
    assert unix.returncode != 0 and "Permission denied" in unix.stderr, unix
    guess = _as_nobody("env", "PGPASSWORD=postgres", *psql, "-h", "127.0.0.1")
    assert guess.returncode != 0 and "password authentication failed" in guess.stderr

    vport = running.valkey_url().port
    probe = (
        "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
        " s.sendall(b'PING\\r\\n'); print(s.recv(100))"
    )
    valkey = _as_nobody("/usr/bin/python3", "-I", "-c", probe, str(vport))
    assert "NOAUTH" in valkey.stdout and "PONG" not in valkey.stdout, valkey

    for secret in (
        statedir.credentials_file(running.state_dir),
        running.valkey_nodes()[0].conf,
        running.postgres.data / "pg_hba.conf",
    ):
        assert _as_nobody("cat", str(secret)).returncode != 0

    # whoever runs flightcache gets in without typing anything, both ways
    from flightcache.db import connect

    db = connect(running.db_url().with_database("postgres"))
    try:
        assert db.fetch("SELECT current_user").rows[0][0] == "postgres"
    finally:
        db.close()
    pw = running.credentials().postgres
    over_socket = subprocess.run(
        [*psql, "-h", str(socket_dir)],
        env={**os.environ, "PGPASSWORD": pw},
        capture_output=True,
        check=False,
    )
    assert over_socket.returncode == 0, over_socket.stderr
    assert raw_command(vport, "PING", password=running.credentials().valkey) == b"+PONG\r\n"


@as_root
@pytest.mark.safety(2)
def test_no_server_runs_as_root(running: Stack, valkey_server: Any) -> None:
    pids = [running.postgres.pid(), *(n.pid() for n in running.valkey_nodes())]
    assert len(pids) == 2 and all(pids)
    for pid in pids:
        assert pid is not None
        process = psutil.Process(pid)
        assert process.uids().real != 0 and process.uids().effective != 0
        assert process.username() == "flightcache"
    scratch = [c for c in psutil.net_connections("tcp") if c.laddr.port == valkey_server.ports[0]]
    owners = {psutil.Process(c.pid).uids().real for c in scratch if c.pid}
    assert owners and 0 not in owners


@pytest.mark.safety(2, 9)
def test_credentials_are_0600_in_a_0700_directory(running: Stack) -> None:
    creds = statedir.credentials_file(running.state_dir)
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds.parent.stat().st_mode) == 0o700
    assert creds.stat().st_uid == os.geteuid() == creds.parent.stat().st_uid
    # the state dir itself: only the server account's group may pass through
    assert stat.S_IMODE(running.state_dir.stat().st_mode) & 0o007 == 0
    for private in (running.valkey_nodes()[0].conf, running.postgres.data / "pg_hba.conf"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    for folder in (running.valkey_nodes()[0].dir, running.postgres.root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.safety(2, 9)
def test_every_printed_url_masks_the_password(running: Stack, cli: Any) -> None:
    creds = running.credentials()
    where = ["--state-dir", str(running.state_dir)]
    outputs = []
    for args in (["up", "--no-load"], ["status"], ["status", "--json"], ["doctor", "--json"]):
        result = cli(*where, *args)
        outputs.append(result.out + result.err)
    joined = "\n".join(outputs)
    assert creds.postgres not in joined and creds.valkey not in joined
    assert "postgresql://postgres:***@127.0.0.1" in outputs[0]
    assert "valkey://default:***@127.0.0.1" in outputs[0]
    assert "***@127.0.0.1" in outputs[3]
    # and the commands that connect need nobody to type a password
    assert cli(*where, "valkey", "PING").out == "PONG\n"
    status = json.loads(outputs[2])
    assert all(s["running"] for s in status["servers"])


@pytest.mark.safety(2)
def test_the_scratch_valkey_wants_a_password(valkey_server: Any) -> None:
    reply = _ping(valkey_server.ports[0])
    assert reply.startswith(b"-NOAUTH"), reply
    assert valkey_server.url.password


@as_root
@pytest.mark.safety(2)
def test_no_silent_fallback_to_nobody(
    state_dir: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTCACHE_PG_ACCOUNT", "fc-no-such-account")
    result = cli("--state-dir", str(state_dir), "up", "--no-load")
    assert result.code == 5, (result.out, result.err)
    assert "'fc-no-such-account' named in FLIGHTCACHE_PG_ACCOUNT does not exist" in result.err
    assert not Stack(state_dir).postgres_running() and not Stack(state_dir).valkey_running()


@as_root
@pytest.mark.safety(2)
def test_a_stack_from_before_credentials_is_closed_by_up(state_dir: Path, cli: Any) -> None:
    """What an older flightcache left: no credentials, trust in pg_hba, an open Valkey."""
    from flightcache.stack.valkey import ValkeyNode

    stack = Stack(state_dir)
    stack.up()
    stack.down()
    shutil.rmtree(state_dir / "secrets")
    (state_dir / statedir.MARKER).unlink()
    (stack.postgres.data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    port = stack.valkey_nodes()[0].port
    open_node = ValkeyNode(state_dir / "valkey" / "standalone", port)  # no password
    open_node.start()
    assert _ping(port) == b"+PONG\r\n"

    status = cli("--state-dir", str(state_dir), "status")
    assert "valkey: no password: any account on this machine can connect" in status.out
    result = cli("--state-dir", str(state_dir), "valkey", "PING")
    assert result.code == 5 and "has no credentials" in result.err
    assert "run `flightcache up`" in result.err

    result = cli("--state-dir", str(state_dir), "up", "--no-load")
    assert result.code == 0, result.err
    assert "without passwords" in result.out and "gave the PostgreSQL superuser" in result.out
    assert _ping(port).startswith(b"-NOAUTH")
    pg_port = stack.db_url().port
    psql = ["psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "-d", "postgres"]
    refused = _as_nobody(*psql, "-c", "SELECT 1")
    assert refused.returncode != 0 and "no password supplied" in refused.stderr
    assert (state_dir / statedir.MARKER).exists()
    assert cli("--state-dir", str(state_dir), "valkey", "PING").out == "PONG\n"


@pytest.mark.safety(2)
def test_up_closes_a_valkey_whose_password_was_taken_off(state_dir: Path) -> None:
    stack = Stack(state_dir)
    stack.up(start_postgres=False)
    node = stack.valkey_nodes()[0]
    assert node.command("CONFIG", "SET", "requirepass", "") == b"+OK\r\n"
    assert _ping(node.port) == b"+PONG\r\n"  # open to anyone now
    report = stack.up(start_postgres=False)
    assert report.steps[-1][0].startswith("started Valkey")  # restarted, not "already running"
    assert _ping(node.port).startswith(b"-NOAUTH")


@pytest.mark.safety(1)
def test_a_state_dir_any_command_makes_is_marked_and_someone_elses_is_refused(
    tmp_path: Path,
) -> None:
    """Progress, exercise progress and undo records create the state directory the way
    `up` does (marked, 0700), so a later `up` takes it; none of them writes into a
    directory holding someone else's files."""
    from flightcache import undo
    from flightcache.errors import StackError
    from flightcache.exercises.progress import ExerciseProgress
    from flightcache.workshop import ChapterProgress

    writers = {
        "workshop": lambda state: ChapterProgress(state / "workshop-progress.json").save(),
        "exercises": lambda state: ExerciseProgress(state).save(),
        "undo": lambda state: undo._dir(state),
    }
    for name, write in writers.items():
        state = tmp_path / f"made-by-{name}"
        write(state)
        assert (state / statedir.MARKER).is_file(), name
        assert stat.S_IMODE(state.stat().st_mode) == 0o700, name
        statedir.check(state)  # what `up` asks first

        foreign = tmp_path / f"foreign-{name}"
        foreign.mkdir()
        (foreign / "thesis.tex").write_text("mine\n")
        with pytest.raises(StackError, match="did not create"):
            write(foreign)
        assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"], name
