"""`room add`, `room remove`, `room list` on real servers, both databases: two attendees
at once, each confined to their own schema or database and keys; a removal that leaves
nothing of theirs and everything else; an add killed with SIGKILL mid-copy, repaired by
the next command. Every attendee name is this run's own and is removed afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl
from flightcache.db import Database, connect
from flightcache.errors import ExitCode, QueryError
from flightcache.room import Attendee
from flightcache.room.accounts import Room
from flightcache.valkey_client import close
from flightcache.valkey_client import connect as connect_valkey

TRANSIENT = ("fc_test_", "flightcache_ex_", "flightcache-exercise-")
"""Names other tests on these shared servers make and drop while this one runs."""


def unique(tag: str) -> str:
    return f"t{tag}{uuid.uuid4().hex[:8]}"


def instructor(db_url: DbUrl, valkey: Any) -> list[str]:
    return ["--db-url", db_url.url(redact=False), "--valkey-url", str(valkey.url)]


@pytest.fixture
def room(loaded: Any, db_url: DbUrl, valkey_server: Any, tmp_path: Path) -> Iterator[Room]:
    """The instructor's room over the loaded test database; whoever a test added is
    removed afterwards."""
    made = Room(db_url, valkey_server.url, tmp_path / "cards")
    yield made
    made.remove(made.removable(None))  # the registry of the test's own database


def config_of(room: Room, name: str) -> dict[str, str]:
    with room.config_path(Attendee(name)).open("rb") as fh:
        return tomllib.load(fh)


def as_attendee(room: Room, name: str) -> Database:
    return connect(DbUrl.parse(config_of(room, name)["db_url"]))


def snapshot(db: Database, valkey: Any) -> set[str]:
    """Every role/user, schema/database and ACL user, by kind."""
    if db.dialect == "postgresql":
        rows = db.fetch(
            "SELECT 'role:' || rolname FROM pg_roles UNION ALL"
            " SELECT 'schema:' || nspname FROM pg_namespace"
        ).rows
    else:
        rows = db.fetch(
            "SELECT CONCAT('user:', user, '@', host) FROM mysql.user UNION ALL"
            " SELECT CONCAT('database:', schema_name) FROM information_schema.schemata"
        ).rows
    found = {str(r[0]) for r in rows}
    found |= {f"acl:{u}" for u in valkey.execute_command("ACL", "USERS")}
    return found


def theirs(entry: str, name: str) -> bool:
    return entry.split(":", 1)[1].split("@")[0] == f"fcroom_{name}"


def transient(entry: str) -> bool:
    return entry.split(":", 1)[1].startswith(TRANSIENT)


@pytest.mark.slow
def test_two_attendees_each_confined_to_their_own(
    cli: Any, room: Room, db_url: DbUrl, valkey_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = unique("a"), unique("b")
    added = cli(
        *instructor(db_url, valkey_server), "room", "add", alice, bob, "--out", str(room.out_dir)
    )
    assert added.code == 0, added.err
    assert f"room:{alice}:" in added.out and f"fcroom_{bob}:" in added.out  # the cards
    for name in (alice, bob):
        path = room.config_path(Attendee(name))
        assert path.stat().st_mode & 0o777 == 0o600
        assert config_of(room, name)["room"] == name
    listed = cli(
        *instructor(db_url, valkey_server), "room", "list", "--out", str(room.out_dir), "--json"
    )
    assert {(r["name"], r["state"]) for r in __import__("json").loads(listed.out)} >= {
        (alice, "ready"),
        (bob, "ready"),
    }

    admin = connect_valkey(valkey_server.url)
    try:
        # each one's demo, on their own account
        for name in (alice, bob):
            monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(room.config_path(Attendee(name))))
            assert cli("doctor").code == 0  # the card's first command
            demo = cli("cache-aside")
            assert demo.code == 0, demo.err
            assert cli("data", "info").code == 0
            assert cli("valkey", "SET", f"room:{name}:mine", name).code == 0
        # alice reaches neither bob's keys nor his rows
        monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(room.config_path(Attendee(alice))))
        got = cli("valkey", "GET", f"room:{bob}:mine")
        assert got.code != 0 and "No permissions" in got.out
        gone = cli("valkey", "DEL", f"room:{bob}:mine")
        assert gone.code != 0 and admin.get(f"room:{bob}:mine") == bob
        assert cli("valkey", "GET", f"room:{alice}:mine").out.strip() == f'"{alice}"'
        db = as_attendee(room, alice)
        shared = db.quote(db_url.database if db.dialect == "mysql" else "public")
        try:
            for sql in (
                f"SELECT COUNT(*) FROM {db.quote('fcroom_' + bob)}.booking",
                f"DELETE FROM {db.quote('fcroom_' + bob)}.booking",
                f"SELECT COUNT(*) FROM {shared}.booking",
                "UPDATE airport SET name = 'x'",  # a view of the shared table: read-only
                "SELECT COUNT(*) FROM flightcache_room",
            ):
                with pytest.raises(QueryError):
                    db.fetch(sql)
            before = int(db.fetch("SELECT MAX(booking_id) FROM booking").rows[0][0])
            db.execute(
                "INSERT INTO booking (flight_id, seat, passenger_id, price) VALUES (1, 'Z99', 1, 1)"
            )
            assert int(db.fetch("SELECT MAX(booking_id) FROM booking").rows[0][0]) > before
        finally:
            db.close()
        # and through `flightcache sql` (mycli -e, pgcli -c), as a person would
        flag = "-e" if db.dialect == "mysql" else "-c"
        for table, said in ((f"fcroom_{bob}.booking", "denied"), ("booking", "seen")):
            shell = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "flightcache",
                    "sql",
                    "--",
                    flag,
                    f"SELECT COUNT(*) AS seen FROM {table}",
                ],
                env={
                    **os.environ,
                    "FLIGHTCACHE_CONFIG": os.environ["FLIGHTCACHE_CONFIG"],
                    "HOME": str(room.out_dir.parent),
                },
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            shown = shell.stdout + shell.stderr
            assert said in shown and ("denied" in shown) == (said == "denied"), (table, shown)
        # an exercise check, on alice's account (a Valkey exercise: the database ones
        # create a role of their own, which a room account may not)
        from flightcache.exercises import catalogue

        exercise = catalogue.get("sessions")
        folder = room.out_dir.parent / "exercises"
        folder.mkdir()
        (folder / exercise.filename).write_text(catalogue.reference_text(exercise))
        checked = cli("exercise", "check", "sessions", "--dir", str(folder))
        assert checked.code == 0, checked.out + checked.err
        database = catalogue.get("cache-aside")
        (folder / database.filename).write_text(catalogue.reference_text(database))
        refused = cli("exercise", "check", "cache-aside", "--dir", str(folder))
        assert refused.code != 0 and "room's account may not" in refused.err, refused.err
        assert "Traceback" not in refused.err
        assert admin.get(f"room:{bob}:mine") == bob
    finally:
        close(admin)


@pytest.mark.slow
def test_a_command_the_room_refuses_is_one_line(
    cli: Any, room: Room, db_url: DbUrl, valkey_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("e")
    room.add([Attendee(name)])
    monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(room.config_path(Attendee(name))))
    result = cli("eviction", "--yes")
    assert result.code == ExitCode.VALKEY_COMMAND, result.err
    assert "may not run that command" in result.err and "flightcache up" in result.err
    assert "Traceback" not in result.err and "internal error" not in result.err


@pytest.mark.slow
def test_remove_leaves_nothing_of_theirs_and_everything_else(
    cli: Any, room: Room, db_url: DbUrl, valkey_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, kept = unique("g"), unique("k")
    room.add([Attendee(gone), Attendee(kept)])
    admin = connect_valkey(valkey_server.url)
    db = connect(db_url)
    try:
        for name in (gone, kept):
            monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(room.config_path(Attendee(name))))
            assert cli("valkey", "SET", f"room:{name}:x", "1").code == 0
        before = snapshot(db, admin)
        assert {e for e in before if theirs(e, gone)}, before
        monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(room.out_dir / "none.toml"))
        asked = cli(
            *instructor(db_url, valkey_server), "room", "remove", gone, "--out", str(room.out_dir)
        )
        assert asked.code == ExitCode.DATA and "pass --yes" in asked.err  # no terminal: not done
        removed = cli(
            *instructor(db_url, valkey_server),
            "room",
            "remove",
            gone,
            "--yes",
            "--out",
            str(room.out_dir),
        )
        assert removed.code == 0, removed.err
        after = snapshot(db, admin)
        assert not {e for e in after if theirs(e, gone)}
        lost = {e for e in before - after if not theirs(e, gone) and not transient(e)}
        assert lost == set()
        assert admin.get(f"room:{gone}:x") is None and admin.get(f"room:{kept}:x") == "1"
        assert not room.config_path(Attendee(gone)).exists()
        assert room.config_path(Attendee(kept)).exists()
        assert [r.name for r in room.list()] == [kept]
    finally:
        db.close()
        close(admin)


def _on_server(db: Database, name: str, *, waiting: bool = False) -> bool:
    """A statement of an add on ``name`` is on the server (``waiting``: for a lock)."""
    if db.dialect == "postgresql":
        rows = db.fetch(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE %(q)s AND pid <> pg_backend_pid()"
            " AND (NOT %(w)s OR wait_event_type = 'Lock')",
            {"q": f"%fcroom_{name}%", "w": waiting},
        ).rows
    else:
        rows = db.fetch(
            "SELECT 1 FROM information_schema.processlist WHERE info LIKE %(q)s"
            " AND id <> CONNECTION_ID() AND (NOT %(w)s OR state LIKE 'Waiting for table%%')",
            {"q": f"%fcroom_{name}%", "w": waiting},
        ).rows
    return bool(rows)


def _wait(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_an_add_killed_mid_copy_is_completed_by_the_next(
    cli: Any, room: Room, db_url: DbUrl, valkey_server: Any, tmp_path: Path
) -> None:
    victim, later = unique("v"), unique("l")
    holder = connect(db_url)
    watcher = connect(db_url)
    process: subprocess.Popen[bytes] | None = None
    try:
        # the shared booking table locked: the add copies airline, then waits on booking
        if holder.dialect == "postgresql":
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE booking IN ACCESS EXCLUSIVE MODE")
        else:
            holder.execute("LOCK TABLES booking WRITE")
        env = {**os.environ, "FLIGHTCACHE_CONFIG": str(tmp_path / "none.toml")}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flightcache",
                *instructor(db_url, valkey_server),
                "room",
                "add",
                victim,
                "--out",
                str(room.out_dir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _on_server(watcher, victim, waiting=True))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
        if holder.dialect == "postgresql":
            holder.execute("ROLLBACK")
        else:
            holder.execute("UNLOCK TABLES")
        _wait(lambda: not _on_server(watcher, victim))  # the server saw the client go
        listed = {r.name: r for r in room.list()}
        assert listed[victim].state == "half-added"
        assert not room.config_path(Attendee(victim)).exists()

        # the next add (of someone else) completes the half-added one
        added = cli(
            *instructor(db_url, valkey_server), "room", "add", later, "--out", str(room.out_dir)
        )
        assert added.code == 0, added.err
        assert "made again" in added.err
        listed = {r.name: r for r in room.list()}
        assert listed[victim].state == "ready" and listed[later].state == "ready"
        db = as_attendee(room, victim)
        try:
            assert int(db.fetch("SELECT COUNT(*) FROM booking").rows[0][0]) > 0
            assert int(db.fetch("SELECT COUNT(*) FROM airline").rows[0][0]) > 0
        finally:
            db.close()
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        holder.close()
        watcher.close()


def test_add_and_remove_want_names_or_a_count(cli: Any) -> None:
    assert cli("room", "add").code == ExitCode.USAGE
    assert cli("room", "add", "alice", "--count", "2").code == ExitCode.USAGE
    assert cli("room", "remove").code == ExitCode.USAGE
    bad = cli("room", "add", "Not-A-Name")
    assert bad.code == ExitCode.USAGE and "cannot name an attendee" in bad.err


@pytest.mark.slow
def test_on_a_cluster_the_user_is_on_every_node(
    cli: Any,
    loaded: Any,
    db_url: DbUrl,
    valkey_cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flightcache.valkey_client import primaries

    room = Room(db_url, valkey_cluster.url, tmp_path / "cards", host="192.0.2.7")
    mine, other = unique("c"), unique("o")
    admin = connect_valkey(valkey_cluster.url)
    try:
        added, _ = room.add([Attendee(mine), Attendee(other)])
        assert len(added) == 2
        for name in (mine, other):  # --host: the cards and files name the room's address
            settings = config_of(room, name)
            assert "@192.0.2.7:" in settings["db_url"] and "@192.0.2.7:" in settings["valkey_url"]
        nodes = primaries(admin)
        assert len(nodes) == 3
        for node in nodes:
            assert f"fcroom_{mine}" in node.execute_command("ACL", "USERS")
        # keys on every node: a hash tag per slot range, so each node holds some
        keys = [f"room:{mine}:{{{n}}}" for n in range(30)]
        for key in keys:
            admin.set(key, "1")
        assert {admin.get_node_from_key(k).name for k in keys} == {
            f"{n.connection_pool.connection_kwargs['host']}:{n.connection_pool.connection_kwargs['port']}"
            for n in nodes
        }
        admin.set(f"room:{other}:kept", "1")
        room.remove([Attendee(mine)])
        for node in nodes:
            assert f"fcroom_{mine}" not in node.execute_command("ACL", "USERS")
            assert f"fcroom_{other}" in node.execute_command("ACL", "USERS")
        assert all(admin.get(k) is None for k in keys)
        assert admin.get(f"room:{other}:kept") == "1"
    finally:
        room.remove(room.removable(None))
        close(admin)


@pytest.mark.slow
def test_remove_also_removes_the_half_added(
    cli: Any, room: Room, db_url: DbUrl, valkey_server: Any
) -> None:
    """A row that is not ready and whose add is gone (its lock free): `remove` of
    someone else removes it too (the killed add itself is the test above)."""
    from flightcache.room import registry

    half, whole = unique("h"), unique("w")
    room.add([Attendee(whole)])
    db = connect(db_url)
    try:
        registry.register(db, Attendee(half))
        assert {r.name: r.state for r in room.list()}[half] == "half-added"
        removed = cli(
            *instructor(db_url, valkey_server),
            "room",
            "remove",
            whole,
            "--yes",
            "--out",
            str(room.out_dir),
        )
        assert removed.code == 0, removed.err
        assert f"removed {half}" in removed.err and f"removed {whole}" in removed.err
        assert room.list() == []
    finally:
        db.close()


def test_a_name_another_room_holds_is_left_alone(
    cli: Any, room: Room, db_url: DbUrl, valkey_server: Any
) -> None:
    name = unique("x")
    db = connect(db_url)
    kind = "ROLE" if db.dialect == "postgresql" else "USER"
    user = db.quote(f"fcroom_{name}") + ("" if db.dialect == "postgresql" else "@'%'")
    db.execute(f"CREATE {kind} {user}")
    try:
        added = cli(
            *instructor(db_url, valkey_server), "room", "add", name, "--out", str(room.out_dir)
        )
        assert added.code == 0 and "not this room's" in added.err
        assert any(e == f"fcroom_{name}" for e in _users(db))
        assert room.list() == []
    finally:
        db.execute(f"DROP {kind} {user}")
        db.close()


def _users(db: Database) -> list[str]:
    if db.dialect == "postgresql":
        return [str(r[0]) for r in db.fetch("SELECT rolname FROM pg_roles").rows]
    return [str(r[0]) for r in db.fetch("SELECT user FROM mysql.user").rows]


@pytest.mark.slow
def test_an_instructor_with_createrole_only(
    cli: Any, valkey_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: no superuser needed, the owner of the dataset's database with
    CREATEROLE will do (it becomes a member of each attendee's role, to give them
    their schema and tables)."""
    from dataclasses import replace

    from flightcache.data.load import load_generated
    from flightcache.errors import FlightcacheError
    from tests.conftest import PG_URL, absent

    server = DbUrl.parse(PG_URL)
    try:
        admin = connect(server, connect_timeout=3)
    except FlightcacheError as exc:
        absent(f"PostgreSQL at {server.host}:{server.port}: {exc.message}")
    instructor_role, database, name = unique("i"), unique("d"), unique("n")
    admin.execute(f"CREATE ROLE {instructor_role} LOGIN CREATEROLE PASSWORD 'pw'")
    admin.execute(f"CREATE DATABASE {database} OWNER {instructor_role}")
    url = replace(server, user=instructor_role, password="pw", database=database)
    try:
        owner = connect(server.with_database(database))
        owner.execute(f"ALTER SCHEMA public OWNER TO {instructor_role}")
        owner.close()
        loader = connect(url, loader=True)
        load_generated(loader, "tiny", 1)
        loader.close()
        out = tmp_path / "cards"
        base = ["--db-url", url.url(redact=False), "--valkey-url", str(valkey_server.url)]
        added = cli(*base, "room", "add", name, "--out", str(out))
        assert added.code == 0, added.err
        monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(out / f"{name}.toml"))
        assert cli("data", "info").code == 0
        monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(tmp_path / "none.toml"))
        removed = cli(*base, "room", "remove", name, "--yes", "--out", str(out))
        assert removed.code == 0, removed.err
        assert f"fcroom_{name}" not in {
            r[0] for r in admin.fetch("SELECT rolname FROM pg_roles").rows
        }
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS fcroom_{name}")
        admin.execute(f"DROP ROLE IF EXISTS {instructor_role}")
        admin.close()
