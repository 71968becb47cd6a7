"""Issue 12, item 10: the rows a SIGKILLed `bench run` leaves are swept by the next run.

The leaderboard scenario books as a passenger of its own and the user-sessions scenario
marks its session tokens; each records its undo in the state directory before its first
write. A run is started as a real process (with worker processes), SIGKILLed with its
process group once its rows are in the database, and the next `bench run` puts the rows
back: the dataset's bookings and passengers, and flightcache_session, are as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl
from tests.conftest import ValkeyInstance, keys_left, server_args

pytestmark = pytest.mark.safety


def counts(url: DbUrl) -> dict[str, int]:
    """Rows of what the bench writes: the dataset's bookings and passengers, the sessions."""
    from flightcache.db import connect

    db = connect(url)
    try:
        return {
            table: int(db.fetch(f"SELECT COUNT(*) FROM {table}").rows[0][0])
            for table in ("booking", "passenger", "flightcache_session")
        }
    finally:
        db.close()


def bench(state_dir: Path, tmp_path: Path, args: list[str]) -> subprocess.Popen[bytes]:
    """`flightcache bench run ...` in a process group (session) of its own."""
    env = {**os.environ, "FLIGHTCACHE_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "flightcache", *args],
        stdin=subprocess.DEVNULL,
        stdout=(tmp_path / "out.txt").open("wb"),
        stderr=(tmp_path / "err.txt").open("wb"),
        env=env,
        start_new_session=True,
    )


def kill_when(proc: subprocess.Popen[bytes], check: Callable[[], bool], what: str) -> None:
    """Poll the database until ``check()``, then SIGKILL the run and its worker processes."""
    deadline = time.monotonic() + 90
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the run ended or took too long before {what}: {proc.returncode}")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the worker processes are gone too
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail("the run's process group outlived the SIGKILL")


@pytest.mark.safety(3, 10)
def test_killed_bench_run_leaves_nothing_after_the_next_run(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    from flightcache.db import connect
    from flightcache.patterns.session_database import SessionTable
    from flightcache.valkey_client import close
    from flightcache.valkey_client import connect as valkey

    db = connect(tiny_db_url)
    table = SessionTable(db)
    table.ensure()  # flightcache's own table, as the scenario makes it
    # someone else's session (a demo's, say), whose token merely looks like the bench's
    table.save("fcbench-other-" + "x" * 32, {"user_id": "1"})
    db.close()
    before = counts(tiny_db_url)
    state = tmp_path / "state"
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    run = [*args, "bench", "run", "--duration", "60", "--warmup", "0"]
    run += ["--clients", "2", "--processes", "2", "--no-histogram"]

    # 1. killed while user-sessions' rows are in flightcache_session
    proc = bench(state, tmp_path, [*run, "user-sessions"])
    kill_when(
        proc,
        lambda: counts(tiny_db_url)["flightcache_session"] > before["flightcache_session"],
        "it saved sessions",
    )
    assert counts(tiny_db_url)["flightcache_session"] > before["flightcache_session"]

    # 2. the next run puts them back first; killed while its own bookings are in
    proc = bench(state, tmp_path, [*run, "leaderboard"])
    kill_when(proc, lambda: counts(tiny_db_url)["booking"] > before["booking"], "it booked")
    left = counts(tiny_db_url)
    assert left["flightcache_session"] == before["flightcache_session"], "sessions swept"
    assert left["booking"] > before["booking"]
    assert left["passenger"] == before["passenger"] + 1  # the run's own passenger
    err = (tmp_path / "err.txt").read_text()
    assert "put back 1 row change(s) that a killed run had left" in err, err

    # 3. a run to its end: the killed run's bookings and passenger go first
    proc = bench(
        state,
        tmp_path,
        [*args, "bench", "run", "user-sessions", "leaderboard", "--requests", "20"],
    )
    assert proc.wait(timeout=180) == 0, (tmp_path / "err.txt").read_text()
    err = (tmp_path / "err.txt").read_text()
    assert "put back 2 row change(s) that a killed run had left" in err, err
    assert counts(tiny_db_url) == before  # nothing of the dataset's own was touched
    assert not list((state / "undo").glob("rows-*.json"))  # nothing left pending
    client = valkey(valkey_server.url)
    try:
        assert keys_left(client, key_prefix) == []  # both scenarios' keys of the killed runs
    finally:
        close(client)


@pytest.mark.safety(3)
def test_bench_books_as_its_own_passenger(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    """While a run is under way, its bookings are all its own passenger's (passportno
    FCB...), never a real passenger's: the sweep deletes that passenger's only."""
    from flightcache.db import connect

    args = server_args(tiny_db_url, valkey_server, key_prefix)
    proc = bench(
        tmp_path / "state",
        tmp_path,
        [*args, "bench", "run", "leaderboard", "--duration", "60", "--warmup", "0"],
    )
    db = connect(tiny_db_url)
    try:
        first = int(db.fetch("SELECT MAX(booking_id) FROM booking").rows[0][0])
        sql = (
            "SELECT p.passportno, p.firstname, p.lastname FROM booking b"
            " JOIN passenger p ON p.passenger_id = b.passenger_id"
            f" WHERE b.booking_id > {first}"
        )

        def booked() -> list[Any]:
            return db.fetch(sql).rows

        kill_when(proc, lambda: bool(booked()), "it booked")
        rows = {tuple(str(v).strip() for v in r) for r in booked()}
        assert len(rows) == 1, rows
        ((passportno, first_name, last_name),) = rows
        assert passportno.startswith("FCB") and len(passportno) == 9
        assert (first_name, last_name) == ("flightcache", "bench")
    finally:
        db.close()
