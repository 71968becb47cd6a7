"""The tools around the servers: sql, monitor, and doctor/data info on a cluster."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl

PASSWORD = "Fc-sql-7f3b-secret"


def _run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """flightcache in a child process: mycli/pgcli write to the terminal, not to sys.stdout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLIGHTCACHE_", "MYSQL_", "PG", "PYTHON_KEYRING"))
    }
    # the clients keep history and rc files under HOME: give them a scratch one
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    env["FLIGHTCACHE_CONFIG"] = str(home / "no-config.toml")
    return subprocess.run(
        [sys.executable, "-m", "flightcache", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=120,
        check=False,
    )


def test_sql_runs_the_databases_own_client(db_url: DbUrl, tmp_path: Path) -> None:
    from flightcache.db import connect

    conn = connect(db_url)
    conn.execute("CREATE TABLE probe (answer INT)")
    conn.execute("INSERT INTO probe VALUES (4242)")
    conn.close()
    flag = "-e" if db_url.kind == "mysql" else "-c"
    result = _run_cli(
        tmp_path, "--db-url", db_url.url(redact=False), "sql", flag, "SELECT answer FROM probe"
    )
    assert result.returncode == 0, result.stderr
    assert "4242" in result.stdout
    # no keyring noise: flightcache hands the password over itself
    assert "keyring" not in result.stdout + result.stderr


@pytest.fixture
def mysql_user(mysql_url: DbUrl) -> Iterator[DbUrl]:
    """A MySQL account with a password, allowed into the test database only."""
    from flightcache.db import connect

    name = f"fc_test_{uuid.uuid4().hex[:8]}"
    admin = connect(mysql_url)
    admin.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{PASSWORD}'")
    admin.execute(f"GRANT ALL ON `{mysql_url.database}`.* TO '{name}'@'%'")
    yield dataclasses.replace(mysql_url, user=name, password=PASSWORD)
    admin.execute(f"DROP USER '{name}'@'%'")
    admin.close()


def test_sql_passes_the_password_without_showing_it(mysql_user: DbUrl, tmp_path: Path) -> None:
    url = mysql_user.url(redact=False)
    assert PASSWORD in url
    result = _run_cli(tmp_path, "--db-url", url, "sql", "-e", "SELECT CURRENT_USER() AS who")
    assert result.returncode == 0, result.stderr
    assert mysql_user.user in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_sql_on_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = _run_cli(
        tmp_path, "--db-url", f"mysql://root:{PASSWORD}@127.0.0.1:1/x", "sql", "-e", "SELECT 1"
    )
    assert result.returncode != 0
    assert PASSWORD not in result.stdout + result.stderr


class _Writer(threading.Thread):
    """Sends SETs until stopped, so that MONITOR has something to show whenever it starts."""

    def __init__(self, client: Any, keys: list[str], idle: float) -> None:
        super().__init__(daemon=True)
        self.client, self.keys, self.idle = client, keys, idle
        self.halt = threading.Event()

    def run(self) -> None:
        if self.halt.wait(self.idle):
            return
        while not self.halt.wait(0.05):
            for key in self.keys:
                self.client.set(key, "seen", px=60_000)


def _watch(cli: Any, url: str, client: Any, keys: list[str], idle: float = 0.0) -> Any:
    writer = _Writer(client, keys, idle)
    writer.start()
    try:
        return cli("--valkey-url", url, "monitor", "--seconds", str(idle + 1.5))
    finally:
        writer.halt.set()
        writer.join()
        for key in keys:
            client.delete(key)
        client.close()


def test_monitor_streams_commands(cli: Any, valkey_server: Any, key_prefix: str) -> None:
    from flightcache.valkey_client import connect

    key = key_prefix + 'a "quoted" key'
    # a quiet second first: an idle server must not cost the watch its connection
    result = _watch(cli, str(valkey_server.url), connect(valkey_server.url), [key], idle=1.2)
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if key_prefix in line]
    assert lines, result.out
    raw_key = key.replace('"', '\\"')
    assert f'"SET" "{raw_key}" "seen" "PX" "60000"' in lines[0]
    assert not lines[0].startswith("[")  # one node: no node tags


def test_monitor_watches_every_cluster_primary(
    cli: Any, valkey_cluster: Any, key_prefix: str
) -> None:
    from flightcache.valkey_client import connect

    client = connect(valkey_cluster.url)
    keys = [f"{key_prefix}{i}" for i in range(24)]
    owner = {key: client.get_node_from_key(key).port for key in keys}
    assert len(set(owner.values())) == 3  # the keys reach every primary
    result = _watch(cli, str(valkey_cluster.url), client, keys)
    assert result.code == 0, result.err
    seen: dict[str, set[int]] = {}
    for line in result.out.splitlines():
        if line.startswith("[") and '"SET"' in line:
            port = int(line[1 : line.index("]")])
            key = line.split('"SET" "', 1)[1].split('"', 1)[0]
            seen.setdefault(key, set()).add(port)
    assert set(seen) == set(keys), result.out
    for key, ports in seen.items():
        assert ports == {owner[key]}  # each line tagged with the node that served it


def test_monitor_on_a_dead_valkey_is_one_line(cli: Any) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "monitor", "--seconds", "1")
    assert result.code == 4 and "cannot reach Valkey" in result.err
    assert "Traceback" not in result.err


def test_doctor_and_data_info_on_a_cluster(cli: Any, db_url: DbUrl, valkey_cluster: Any) -> None:
    import json

    from flightcache.data.load import load_generated
    from flightcache.db import connect

    conn = connect(db_url)
    load_generated(conn, "tiny", 1)
    conn.close()
    args = ("--db-url", db_url.url(redact=False), "--valkey-url", str(valkey_cluster.url))
    result = cli(*args, "doctor", "--json")
    assert result.code == 0, result.out
    report = json.loads(result.out)
    checks = {c["name"]: c for c in report["checks"]}
    assert "cluster of 3 primaries" in checks["valkey"]["detail"]
    assert checks["valkey memory"]["ok"] and "policy" in checks["valkey memory"]["detail"]
    assert checks["client parser"]["ok"] and "Libvalkey" in checks["client parser"]["detail"]
    table = cli(*args, "doctor")
    assert table.code == 0 and "cluster of 3 primaries" in table.out
    info = cli(*args, "data", "info")
    assert info.code == 0 and "tiny" in info.out and "booking" in info.out


def test_ctrl_c_stops_monitor_at_once(valkey_server: Any, tmp_path: Path) -> None:
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTCACHE_")}
    env["FLIGHTCACHE_CONFIG"] = str(tmp_path / "no-config.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flightcache", "--valkey-url", str(valkey_server.url), "monitor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert "watching" in proc.stdout.readline()  # it is past start-up and idle
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)  # the watch threads poll; none blocks the exit
    assert proc.returncode == 130 and err.strip() == "interrupted"
