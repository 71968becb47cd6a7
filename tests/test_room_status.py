"""The room's record: what an attendee's commands write, and `room status` reading it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import keys_left, server_args


@pytest.fixture
def attendee_prefix() -> tuple[str, str]:
    """A made-up attendee name and its key prefix, unique to the test."""
    from flightcache.room import Attendee

    a = Attendee(f"t{uuid.uuid4().hex[:8]}")
    return a.name, a.key_prefix


@pytest.fixture
def admin(valkey_server: Any) -> Any:
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    yield client
    close(client)


def _record(admin: Any, prefix: str) -> dict[str, Any]:
    from flightcache.keys import Keys
    from flightcache.room.activity import read

    return read(admin, Keys(prefix)).__dict__


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_room_account_records_each_command_and_nothing_otherwise(
    cli: Any,
    loaded: Any,
    db_url: Any,
    valkey_server: Any,
    admin: Any,
    attendee_prefix: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    name, prefix = attendee_prefix
    args = server_args(db_url, valkey_server, prefix)
    try:
        # not a room account: the demo runs and nothing of the room is written
        assert cli(*args, "cache-aside", "--repeat", "5").code == 0
        assert [k for k in keys_left(admin, prefix) if ":room:" in k] == []

        monkeypatch.setenv("FLIGHTCACHE_ROOM", name)
        before = time.time()
        assert cli(*args, "cache-aside", "--repeat", "5", "--json").code == 0
        got = _record(admin, prefix)
        assert got["command"] == "cache-aside" and got["exit"] == 0
        assert got["chapter"].startswith("1. ") and before <= got["last_seen"] <= time.time()
        assert got["failed"] == [] and got["passed"] == []

        # a failure is listed with its error; the chapter stays the last demo's
        monkeypatch.setenv("FLIGHTCACHE_EXERCISES_DIR", str(tmp_path / "mine"))
        failed = cli(*args, "exercise", "check", "leaderboard")
        assert failed.code != 0
        got = _record(admin, prefix)
        assert got["command"] == "exercise check leaderboard" and got["exit"] == failed.code
        assert got["chapter"].startswith("1. ")
        assert got["failed"][0]["command"] == "exercise check leaderboard"
        assert "you have not started leaderboard" in got["failed"][0]["error"]

        # an exercise that passes is counted (the reference solution as the learner's file)
        from flightcache.exercises import catalogue

        assert cli(*args, "exercise", "start", "leaderboard").code == 0
        exercise = catalogue.get("leaderboard")
        mine = next((tmp_path / "mine").rglob(exercise.filename))
        mine.write_text(catalogue.reference_text(exercise))
        passed = cli(*args, "exercise", "check", "leaderboard")
        assert passed.code == 0, passed.out + passed.err
        assert _record(admin, prefix)["passed"] == ["leaderboard"]
    finally:
        for key in keys_left(admin, prefix):
            admin.delete(key)


def test_recording_never_fails_the_command(
    cli: Any,
    valkey_server: Any,
    admin: Any,
    attendee_prefix: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attendee's Valkey user may not write the record (a real ACL refusal): the
    command's own result stands, and one line says nothing was recorded."""
    from flightcache.config import ValkeyUrl

    name, prefix = attendee_prefix
    user, password = f"fctest_{name}", uuid.uuid4().hex
    admin.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", f"~{prefix}*", "+@all", "-hset", "-@admin"
    )
    url = ValkeyUrl.parse(str(valkey_server.url)).url(redact=False)
    host_part = url.split("://", 1)[1].split("@")[-1]
    as_user = f"valkey://{user}:{password}@{host_part}"
    monkeypatch.setenv("FLIGHTCACHE_ROOM", name)
    try:
        result = cli(
            "--valkey-url", as_user, "--key-prefix", prefix, "valkey", "SET", f"{prefix}k", "v"
        )
        assert result.code == 0, result.err
        err = " ".join(result.err.split())
        assert "not recorded for the room" in err and "no permissions to run the 'hset'" in err
        assert admin.get(f"{prefix}k") == "v"
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        for key in keys_left(admin, prefix):
            admin.delete(key)


def _register(db_url: Any, names: list[str]) -> None:
    from flightcache.db import connect
    from flightcache.room import Attendee
    from flightcache.room.registry import ensure_table, mark_ready, register

    db = connect(db_url)
    try:
        ensure_table(db)
        for n in names:
            register(db, Attendee(n))
        mark_ready(db, Attendee(names[0]))  # the second one is still being added
    finally:
        db.close()


def test_status_shows_every_attendee_from_their_record(
    cli: Any, db_url: Any, valkey_server: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flightcache.room import Attendee

    active, idle = Attendee(f"a{uuid.uuid4().hex[:8]}"), Attendee(f"b{uuid.uuid4().hex[:8]}")
    _register(db_url, [active.name, idle.name])
    instructor = server_args(db_url, valkey_server, "fctest:instructor:")
    try:
        monkeypatch.setenv("FLIGHTCACHE_ROOM", active.name)
        as_active = server_args(db_url, valkey_server, active.key_prefix)
        assert cli(*as_active, "valkey", "SET", f"{active.key_prefix}x", "1").code == 0
        assert cli(*as_active, "workshop", "run", "99", "--no-pause").code != 0
        monkeypatch.delenv("FLIGHTCACHE_ROOM")

        doc = json.loads(cli(*instructor, "room", "status", "--json").out)
        by_name = {r["attendee"]: r for r in doc}
        assert set(by_name) == {active.name, idle.name}
        assert by_name[idle.name]["last_seen"] is None and not by_name[idle.name]["ready"]
        seen = by_name[active.name]
        assert seen["ready"] and seen["command"] == "workshop run 99" and seen["exit"] != 0
        assert [f["command"] for f in seen["failed"]] == ["workshop run 99"]

        table = cli(*instructor, "room", "status")
        assert table.code == 0
        assert active.name in table.out and idle.name in table.out and "never" in table.out
        assert "(being added)" in table.out
    finally:
        for a in (active, idle):
            for key in keys_left(admin, a.key_prefix):
                admin.delete(key)


@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
def test_status_watch_refreshes_until_ctrl_c(
    db_url: Any, valkey_server: Any, admin: Any, tmp_path: Path
) -> None:
    """A real SIGINT to a real `room status --watch`: it ends with exit 0, having drawn
    the attendee who ran a command after the watch began."""
    from flightcache.keys import Keys
    from flightcache.room import Attendee
    from flightcache.room.activity import record

    late = Attendee(f"c{uuid.uuid4().hex[:8]}")
    _register(db_url, [late.name])
    env = {**os.environ, "FLIGHTCACHE_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flightcache",
            *server_args(db_url, valkey_server, "fctest:instructor:"),
            "room",
            "status",
            "--watch",
            "--interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(2.0)
        record(admin, Keys(late.key_prefix), ["ttl"], 0)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        for key in keys_left(admin, late.key_prefix):
            admin.delete(key)
    assert proc.returncode == 0, err
    # off a terminal Live draws once, at the end: the record made 2 s into the watch shows
    assert "s ago" in out and "ttl" in out and "never" not in out
