"""Issue 12, items 3 (demos half) and 4: what a demo changes is put back, however it ends.

Each test starts a demo as a real process against the test servers, waits (polling the
server) until the demo has changed a setting or a row, then sends a real signal. After
SIGINT, SIGTERM and SIGHUP the demo itself puts everything back before it exits; after
SIGKILL the next flightcache command does, and says so in one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl
from tests.conftest import ValkeyInstance, keys_left, server_args

pytestmark = pytest.mark.safety

SETTINGS = ("maxmemory", "maxmemory-policy")
STATUS = {"SIGINT": 130, "SIGTERM": 128 + 15, "SIGHUP": 128 + 1}


def flightcache(state_dir: Path, args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "FLIGHTCACHE_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "flightcache", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def finished(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(proc: subprocess.Popen[str], check: Callable[[], bool], what: str) -> None:
    """Poll until ``check()``; the demo runs with --pause, so press Enter now and then
    (one step at a time) until it has done what the test waits for."""
    deadline = time.monotonic() + 90
    pressed = time.monotonic()
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the demo ended before {what}: {proc.returncode}\n{out}\n{err}")
        if time.monotonic() - pressed > 1.5:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            pressed = time.monotonic()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def settings_of(client: Any) -> dict[str, str]:
    return {name: str(client.config_get(name)[name]) for name in SETTINGS}


@pytest.fixture
def valkey_settings(valkey_server: ValkeyInstance) -> Iterator[tuple[Any, dict[str, str]]]:
    """A client of the one-node Valkey and its settings now; whatever a failing test
    leaves changed is put back for the tests after it."""
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    before = settings_of(client)
    yield client, before
    client.config_set("maxmemory", before["maxmemory"])
    client.config_set("maxmemory-policy", before["maxmemory-policy"])
    close(client)


def eviction_args(db_url: DbUrl, valkey: ValkeyInstance, prefix: str) -> list[str]:
    return [
        *server_args(db_url, valkey, prefix),
        "eviction",
        "--policies",
        "allkeys-lru",
        "--keys",
        "2000",
        "--requests",
        "200",
        "--yes",
        "--pause",
    ]


@pytest.mark.safety(4, 9)
def test_undo_files_are_private(tmp_path: Path, valkey_settings: tuple[Any, Any]) -> None:
    from flightcache.undo import Undo

    client, before = valkey_settings
    Undo(tmp_path / "state").save_settings(client, before)
    directory = tmp_path / "state" / "undo"
    assert directory.stat().st_mode & 0o777 == 0o700
    files = list(directory.glob("valkey-*.json"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"])
@pytest.mark.safety(4)
def test_eviction_settings_are_put_back(
    sig: str,
    tiny_db_url: DbUrl,
    valkey_server: ValkeyInstance,
    valkey_settings: tuple[Any, dict[str, str]],
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """By the demo itself on SIGTERM, SIGHUP, SIGINT; after SIGKILL, by the next command
    that connects to the Valkey, which says so in one line (and only once)."""
    client, before = valkey_settings
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    proc = flightcache(tmp_path, eviction_args(tiny_db_url, valkey_server, key_prefix))
    wait_for(proc, lambda: settings_of(client) != before, "it changed the settings")
    assert list((tmp_path / "undo").glob("valkey-*.json")), "saved before CONFIG SET"
    proc.send_signal(getattr(signal, sig))
    code, _, err = finished(proc)
    if sig != "SIGKILL":
        assert code == STATUS[sig], err
        assert keys_left(client, key_prefix) == []
    else:
        assert settings_of(client) != before  # the fault is real: nothing ran at exit
        code, _, err = finished(flightcache(tmp_path, [*args, "valkey", "PING"]))
        assert code == 0, err
        assert len([line for line in err.splitlines() if "put back Valkey" in line]) == 1, err
        code, _, err = finished(flightcache(tmp_path, [*args, "valkey", "PING"]))
        assert code == 0 and "put back" not in err  # said once
    assert settings_of(client) == before
    assert not list((tmp_path / "undo").glob("valkey-*.json"))


@pytest.mark.safety(4)
def test_a_restarted_valkey_is_not_touched(
    valkey_server: ValkeyInstance, valkey_settings: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    """A record for another run of the server (its run_id changed) is dropped unapplied."""
    import json

    from flightcache.undo import Undo, repair_settings

    client, before = valkey_settings
    Undo(tmp_path).save_settings(client, {"maxmemory-policy": "volatile-ttl"})
    [path] = (tmp_path / "undo").glob("valkey-*.json")
    record = json.loads(path.read_text())
    record["run_id"] = "0" * 40
    record["owner"]["pid"] = 2**22 + 1  # gone
    path.write_text(json.dumps(record))
    assert repair_settings(tmp_path, [client]) == []
    assert settings_of(client) == before
    assert not path.exists()


def airline_name(url: DbUrl, airline_id: int) -> str:
    from flightcache.db import connect

    db = connect(url)
    try:
        rows = db.fetch(
            "SELECT airlinename FROM airline WHERE airline_id = %(id)s", {"id": airline_id}
        )
        return str(rows.rows[0][0])
    finally:
        db.close()


def write_through_args(db_url: DbUrl, valkey: ValkeyInstance, prefix: str) -> list[str]:
    return [
        *server_args(db_url, valkey, prefix),
        "write-through",
        "--airline",
        "1",
        "--name",
        "Signal Test Air",
        "--pause",
    ]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"])
@pytest.mark.safety(3)
def test_write_through_rename_is_put_back(
    sig: str,
    tiny_db_url: DbUrl,
    valkey_server: ValkeyInstance,
    valkey_settings: tuple[Any, dict[str, str]],
    key_prefix: str,
    tmp_path: Path,
) -> None:
    valkey_client = valkey_settings[0]
    original = airline_name(tiny_db_url, 1)
    proc = flightcache(tmp_path, write_through_args(tiny_db_url, valkey_server, key_prefix))
    wait_for(
        proc,
        lambda: airline_name(tiny_db_url, 1) != original,
        "it renamed the airline",
    )
    assert list((tmp_path / "undo").glob("rows-*.json")), "recorded before the change"
    proc.send_signal(getattr(signal, sig))
    code, _, err = finished(proc)
    if sig != "SIGKILL":
        assert code == STATUS[sig], err
        assert airline_name(tiny_db_url, 1) == original
    else:
        assert airline_name(tiny_db_url, 1) != original  # nothing ran at exit
        nxt = flightcache(
            tmp_path, [*server_args(tiny_db_url, valkey_server, key_prefix), "write-through"]
        )
        code, _, err = finished(nxt, timeout=120)
        assert code == 0, err
        assert len([line for line in err.splitlines() if "put back 1 row" in line]) == 1, err
        assert airline_name(tiny_db_url, 1) == original
    from flightcache.valkey_client import delete_matching

    if sig == "SIGKILL":
        delete_matching(valkey_client, key_prefix + "*")  # what a SIGKILL cannot clean
    assert keys_left(valkey_client, key_prefix) == []
    assert not list((tmp_path / "undo").glob("rows-*.json"))


def rows_state(url: DbUrl) -> tuple[int, list[Any]]:
    """How many bookings, and every flight's times: what the booking demos change."""
    from flightcache.db import connect

    db = connect(url)
    try:
        bookings = int(db.fetch("SELECT COUNT(*) FROM booking").rows[0][0])
        flights = db.fetch(
            "SELECT flight_id, departure, arrival FROM flight ORDER BY flight_id"
        ).rows
        return bookings, [tuple(r) for r in flights]
    finally:
        db.close()


@pytest.mark.parametrize(
    "demo", [["invalidation"], ["leaderboard", "demo"], ["nested-doll"]], ids=" ".join
)
@pytest.mark.safety(3)
def test_killed_demos_bookings_and_moved_flight_are_put_back(
    demo: list[str],
    tiny_db_url: DbUrl,
    valkey_server: ValkeyInstance,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """SIGKILL right after the demo booked a seat (and, for invalidation, before or after
    it moved a flight): the next demo on that database puts every row back."""
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    before = rows_state(tiny_db_url)
    proc = flightcache(tmp_path, [*args, *demo, "--pause"])
    wait_for(proc, lambda: rows_state(tiny_db_url)[0] != before[0], "it booked a seat")
    proc.send_signal(signal.SIGKILL)
    finished(proc)
    assert rows_state(tiny_db_url) != before  # the fault is real

    code, _, err = finished(flightcache(tmp_path, [*args, "write-through"]), timeout=120)
    assert code == 0, err
    assert len([x for x in err.splitlines() if "that a killed run had left" in x]) == 1, err
    assert rows_state(tiny_db_url) == before


@pytest.mark.safety(3)
def test_killed_session_demos_row_is_deleted(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    """The session demo's row in flightcache_session goes too (SIGKILL, then a demo)."""
    from flightcache.db import connect
    from flightcache.errors import FlightcacheError

    def sessions() -> int:
        db = connect(tiny_db_url)
        try:
            return int(db.fetch("SELECT COUNT(*) FROM flightcache_session").rows[0][0])
        except FlightcacheError:
            return 0  # not created yet
        finally:
            db.close()

    args = server_args(tiny_db_url, valkey_server, key_prefix)
    proc = flightcache(tmp_path, [*args, "session", "--pause"])
    wait_for(proc, lambda: sessions() > 0, "it stored a session row")
    proc.send_signal(signal.SIGKILL)
    finished(proc)
    code, _, err = finished(flightcache(tmp_path, [*args, "write-through"]), timeout=120)
    assert code == 0, err
    assert "that a killed run had left" in err
    assert sessions() == 0


@pytest.mark.safety(3)
def test_simulate_cleanup_runs_on_sigterm(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    before = rows_state(tiny_db_url)[0]
    simulate = ["leaderboard", "simulate", "--rate", "50", "--seconds", "60", "--cleanup"]
    proc = flightcache(tmp_path, [*args, *simulate])
    wait_for(proc, lambda: rows_state(tiny_db_url)[0] > before, "it booked")
    proc.send_signal(signal.SIGTERM)
    code, _, err = finished(proc)
    assert code == STATUS["SIGTERM"], err
    assert rows_state(tiny_db_url)[0] == before


@pytest.mark.safety(3)
def test_simulate_cleanup_after_sigkill_is_done_by_the_next_command(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    """--cleanup promised the bookings would go; a SIGKILL before the end cannot keep
    that promise itself, so each batch's ids were written down before it committed."""
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    before = rows_state(tiny_db_url)[0]
    simulate = ["leaderboard", "simulate", "--rate", "100", "--seconds", "60", "--cleanup"]
    proc = flightcache(tmp_path, [*args, *simulate])
    wait_for(proc, lambda: rows_state(tiny_db_url)[0] > before + 40, "it booked")
    proc.send_signal(signal.SIGKILL)
    finished(proc)
    assert rows_state(tiny_db_url)[0] > before  # the fault is real: its bookings stayed
    again = [*simulate[:3], "1", "--seconds", "0.2", "--cleanup"]  # repairs first
    code, _, err = finished(flightcache(tmp_path, [*args, *again]), timeout=120)
    assert code == 0, err
    assert "that a killed run had left" in err, err
    assert rows_state(tiny_db_url)[0] == before


@pytest.mark.safety(3)
def test_session_and_bench_refuse_a_database_flightcache_did_not_load(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    """The session demo creates flightcache_session and writes a row; bench's writing
    scenarios book and rename: neither happens in someone else's database without --yes."""
    from flightcache.db import connect

    db = connect(tiny_db_url)
    db.execute("DELETE FROM flightcache_meta WHERE name = 'owner'")
    db.execute("DROP TABLE IF EXISTS flightcache_session")
    bookings = db.fetch("SELECT COUNT(*) FROM booking").rows[0][0]
    db.close()
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    bench = ["bench", "run", "--requests", "20", "--warmup", "0", "--no-histogram"]
    for command in (["session"], [*bench, "leaderboard", "cache-aside"], [*bench, "all"]):
        code, _, err = finished(flightcache(tmp_path, [*args, *command]))
        assert code == 6, err
        assert "a database flightcache did not load" in err and "--yes" in err, err
    db = connect(tiny_db_url)
    assert "flightcache_session" not in db.tables()
    assert db.fetch("SELECT COUNT(*) FROM booking").rows[0][0] == bookings
    db.close()
    # reading alone is no change: a read-only scenario runs without --yes
    code, _, err = finished(flightcache(tmp_path, [*args, *bench, "flight-search"]))
    assert code == 0, err
    code, _, err = finished(flightcache(tmp_path, [*args, "session", "--yes"]), timeout=120)
    assert code == 0, err


@pytest.mark.safety(4)
def test_a_running_demos_settings_are_left_to_it(
    tiny_db_url: DbUrl,
    valkey_server: ValkeyInstance,
    valkey_settings: tuple[Any, dict[str, str]],
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """Another command on the same Valkey while a demo runs does not put back its settings."""
    client, before = valkey_settings
    args = server_args(tiny_db_url, valkey_server, key_prefix)
    proc = flightcache(tmp_path, eviction_args(tiny_db_url, valkey_server, key_prefix))
    wait_for(proc, lambda: settings_of(client) != before, "it changed the settings")
    changed = settings_of(client)
    code, _, err = finished(flightcache(tmp_path, [*args, "valkey", "PING"]))
    assert code == 0 and "put back" not in err, err
    assert settings_of(client) == changed
    proc.send_signal(signal.SIGTERM)
    finished(proc)
    assert settings_of(client) == before


CLUSTER_SETTINGS = (*SETTINGS, "slowlog-log-slower-than", "slowlog-max-len")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
@pytest.mark.safety(4)
def test_memory_pressure_on_a_cluster_puts_every_node_back(
    sig: str,
    tiny_db_url: DbUrl,
    valkey_cluster: ValkeyInstance,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    from flightcache.valkey_client import close, connect, primaries

    client = connect(valkey_cluster.url)
    nodes = primaries(client)

    def now() -> list[dict[str, str]]:
        return [{n: str(node.config_get(n)[n]) for n in CLUSTER_SETTINGS} for node in nodes]

    before = now()
    args = server_args(tiny_db_url, valkey_cluster, key_prefix)
    try:
        proc = flightcache(tmp_path, [*args, "memory-pressure", "--yes", "--pause"])
        wait_for(proc, lambda: now() != before, "it changed the settings")
        proc.send_signal(getattr(signal, sig))
        code, _, err = finished(proc)
        if sig == "SIGKILL":
            assert now() != before  # the fault is real
            code, _, err = finished(flightcache(tmp_path, [*args, "valkey", "PING"]))
            assert code == 0, err
            assert len([x for x in err.splitlines() if "put back Valkey" in x]) == 1, err
        else:
            assert code == STATUS[sig], err
            assert keys_left(client, key_prefix) == []
        assert now() == before
    finally:
        for node, saved in zip(nodes, before, strict=True):
            node.execute_command("CONFIG", "SET", *[x for item in saved.items() for x in item])
        close(client)


@pytest.mark.safety(3)
def test_demo_refuses_a_database_flightcache_did_not_load(
    tiny_db_url: DbUrl, valkey_server: ValkeyInstance, key_prefix: str, tmp_path: Path
) -> None:
    from flightcache.db import connect

    db = connect(tiny_db_url)
    db.execute("DELETE FROM flightcache_meta WHERE name = 'owner'")
    db.close()
    original = airline_name(tiny_db_url, 1)
    args = [*write_through_args(tiny_db_url, valkey_server, key_prefix)]
    args.remove("--pause")
    code, _, err = finished(flightcache(tmp_path, args))
    assert code == 6
    assert "a database flightcache did not load" in err and "--yes" in err
    assert airline_name(tiny_db_url, 1) == original
    code, _, err = finished(flightcache(tmp_path, [*args, "--yes"]), timeout=120)
    assert code == 0, err
    assert airline_name(tiny_db_url, 1) == original

    db = connect(tiny_db_url)
    bookings = db.fetch("SELECT COUNT(*) FROM booking").rows[0][0]
    book = [*server_args(tiny_db_url, valkey_server, key_prefix), "leaderboard", "book"]
    code, _, err = finished(flightcache(tmp_path, [*book, "--flight", "1", "--passenger", "1"]))
    assert code == 6 and "a database flightcache did not load" in err
    assert db.fetch("SELECT COUNT(*) FROM booking").rows[0][0] == bookings
    db.close()


@pytest.mark.safety(4)
def test_a_failing_cleanup_does_not_skip_the_others(
    valkey_server: ValkeyInstance,
    valkey_settings: tuple[Any, dict[str, str]],
    tiny_db_url: DbUrl,
    key_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Settings changed first, then a cleanup that raises, then the demo fails: the
    settings are still put back, the keys deleted, and the failure named."""
    from types import SimpleNamespace

    from flightcache.app import App, GlobalOptions
    from flightcache.commands import _demo
    from flightcache.demos.base import DemoContext, Record

    client, before = valkey_settings

    def demo(ctx: DemoContext) -> Iterator[Record]:
        policy = before["maxmemory-policy"]
        ctx.on_exit(lambda: ctx.valkey.config_set("maxmemory-policy", policy))
        ctx.on_exit(lambda: 1 / 0)  # runs first (last registered), and fails
        ctx.valkey.config_set("maxmemory-policy", "allkeys-random")
        ctx.valkey.set(ctx.keys.prefix + "left", "x")
        with ctx.step("changed") as step:
            step.outcome = "maxmemory-policy changed"
        yield step
        raise RuntimeError("the demo fails")

    app = App(
        GlobalOptions(
            db_url=tiny_db_url.url(redact=False),
            valkey_url=str(valkey_server.url),
            state_dir=tmp_path,
            key_prefix=key_prefix,
        )
    )
    with pytest.raises(RuntimeError):
        _demo.run(
            SimpleNamespace(obj=app),  # type: ignore[arg-type]
            "cleanup-test",
            demo,
            as_json=False,
            pause=False,
            repeat=1,
        )
    assert "division by zero" in capsys.readouterr().err
    assert settings_of(client) == before
    assert keys_left(client, key_prefix) == []
