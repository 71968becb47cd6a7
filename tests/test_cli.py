"""The command line: help everywhere, and one clear line for every kind of bad input."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from flightcache.cli import app

SECRET = "Zq9-not-a-real-password"


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, group)]
    for name, sub in getattr(group, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_has_help_with_an_example_and_a_chapter(cli: Any) -> None:
    root = typer.main.get_command(app)
    from flightcache.workshop import chapters as workshop_chapters

    chapters = " ".join(c.body for c in workshop_chapters())
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    walked = _commands(root)
    names = {" ".join(path) for path, _ in walked}
    assert {
        "up",
        "down",
        "status",
        "doctor",
        "sql",
        "valkey",
        "monitor",
        "data load",
        "data import",
        "data info",
        "data schema",
    } <= names
    for path, command in walked:
        if not path or hasattr(command, "commands"):
            assert command.help, f"{path} has no help"
            continue
        assert command.help and "Example" in command.help, f"{' '.join(path)} lacks an example"
        name = "flightcache " + " ".join(path)
        assert name in chapters, f"no workshop chapter mentions `{name}`"
        assert name in readme, f"the README does not mention `{name}`"
        result = cli(*path, "--help")
        assert result.code == 0 and "Usage:" in result.out


def test_version_and_module_entry(cli: Any) -> None:
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("flightcache ")
    proc = subprocess.run(
        [sys.executable, "-m", "flightcache", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout == result.out


def _one_line_error(result: Any, code: int, fragment: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err + result.out
    assert result.err.startswith("error: ")
    assert fragment in result.err
    assert "hint:" in result.err
    assert SECRET not in result.err + result.out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (
            ["--db-url", f"oracle://u:{SECRET}@h/x", "data", "info"],
            3,
            "unknown database URL scheme",
        ),
        (["--db-url", f"mysql://u:{SECRET}@h:port/x", "data", "info"], 3, "malformed database URL"),
        (
            ["--valkey-url", f"redis://u:{SECRET}@h:1", "valkey", "PING"],
            3,
            "unknown Valkey URL scheme",
        ),
        (["--valkey-url", "valkey://[::1", "valkey", "PING"], 3, "malformed Valkey URL"),
    ],
)
def test_bad_urls(cli: Any, args: list[str], code: int, fragment: str) -> None:
    _one_line_error(cli(*args), code, fragment)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_servers(cli: Any) -> None:
    port = _closed_port()
    _one_line_error(
        cli("--db-url", f"mysql://root:{SECRET}@127.0.0.1:{port}/x", "data", "info"),
        4,
        "cannot reach MySQL",
    )
    _one_line_error(
        cli("--db-url", f"postgresql://p:{SECRET}@127.0.0.1:{port}/x", "data", "info"),
        4,
        "cannot reach PostgreSQL",
    )
    _one_line_error(
        cli("--valkey-url", f"valkey://:{SECRET}@127.0.0.1:{port}", "valkey", "PING"),
        4,
        "cannot reach Valkey",
    )


def test_wrong_mysql_password(cli: Any, mysql_url: Any) -> None:
    url = mysql_url.url(redact=False).replace(
        f"//{mysql_url.user}@", f"//{mysql_url.user}:{SECRET}@"
    )
    _one_line_error(cli("--db-url", url, "data", "info"), 4, "wrong password")


def test_cluster_url_modes_must_match(cli: Any, valkey_server: Any, valkey_cluster: Any) -> None:
    single = valkey_server.url.url(redact=False).replace("valkey://", "valkey+cluster://")
    _one_line_error(cli("--valkey-url", single, "valkey", "PING"), 3, "not in cluster mode")
    node = valkey_cluster.url.url(redact=False).replace("valkey+cluster://", "valkey://")
    _one_line_error(cli("--valkey-url", node, "valkey", "PING"), 3, "is a cluster node")


def test_valkey_command_prints_like_valkey_cli(
    cli: Any, valkey_server: Any, key_prefix: str
) -> None:
    url = str(valkey_server.url)
    key = key_prefix + "greeting"
    assert cli("--valkey-url", url, "valkey", "SET", key, "hi there").out == "OK\n"
    assert cli("--valkey-url", url, "valkey", "GET", key).out == '"hi there"\n'
    assert cli("--valkey-url", url, "valkey", "GET", key + "x").out == "(nil)\n"
    assert cli("--valkey-url", url, "valkey", "RPUSH", key + "l", "a", "b").out == "(integer) 2\n"
    assert (
        cli("--valkey-url", url, "valkey", "LRANGE", key + "l", "0", "-1").out == '1) "a"\n2) "b"\n'
    )
    bad = cli("--valkey-url", url, "valkey", "NOSUCHCMD")
    assert bad.code == 1 and bad.out.startswith("(error) ")
    cli("--valkey-url", url, "valkey", "DEL", key, key + "l")


def test_valkey_command_on_cluster(cli: Any, valkey_cluster: Any, key_prefix: str) -> None:
    url = str(valkey_cluster.url)
    keys = [f"{key_prefix}{i}" for i in range(12)]  # spread over the slots of all nodes
    for i, key in enumerate(keys):
        assert cli("--valkey-url", url, "valkey", "SET", key, str(i)).code == 0
    for i, key in enumerate(keys):
        assert cli("--valkey-url", url, "valkey", "GET", key).out == f'"{i}"\n'
    assert cli("--valkey-url", url, "valkey", "DEL", *keys[:1]).out == "(integer) 1\n"
    for key in keys[1:]:
        cli("--valkey-url", url, "valkey", "DEL", key)


def test_doctor_ok_and_failing(cli: Any, db_url: Any, valkey_server: Any) -> None:
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    args = ("--db-url", db_url.url(redact=False), "--valkey-url", str(valkey_server.url))
    missing = cli(*args, "doctor", "--json")
    assert missing.code == 1 and '"dataset"' in missing.out and "data load" in missing.out
    conn = connect(db_url)
    load_generated(conn, "tiny", 1)
    conn.close()
    ok = cli(*args, "doctor", "--json")
    assert ok.code == 0, ok.out
    assert '"ok": true' in ok.out and "LibvalkeyParser" in ok.out and "Valkey 9" in ok.out
    info = cli(*args, "data", "info")
    assert info.code == 0 and "booking" in info.out


def test_data_commands_refuse_bad_targets(cli: Any, db_url: Any, tmp_path: Path) -> None:
    from flightcache.db import connect

    url = db_url.url(redact=False)
    _one_line_error(cli("--db-url", url, "data", "info"), 6, "no FlughafenDB data")
    conn = connect(db_url)
    conn.execute("CREATE TABLE payroll (id int)")
    conn.close()
    _one_line_error(cli("--db-url", url, "data", "load", "--scale", "tiny"), 6, "not FlughafenDB's")
    notes = tmp_path / "notes.sql.gz"
    notes.write_bytes(gzip.compress(b"CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n"))
    _one_line_error(cli("--db-url", url, "data", "import", str(notes)), 6, "not a FlughafenDB")
    bad_scale = cli("--db-url", url, "data", "load", "--scale", "huge")
    assert bad_scale.code == 2 and "unknown scale" in bad_scale.err


def test_embedded_stack_down_says_how_to_start(cli: Any, tmp_path: Path) -> None:
    _one_line_error(
        cli("--state-dir", str(tmp_path / "empty"), "data", "info"),
        5,
        "embedded PostgreSQL is not running",
    )
    result = cli("--state-dir", str(tmp_path / "empty"), "valkey", "PING")
    _one_line_error(result, 5, "embedded Valkey is not running")
    assert "flightcache up" in result.err


def test_unwritable_state_dir(cli: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _one_line_error(
        cli("--state-dir", str(blocker / "state"), "up", "--no-load"), 5, "cannot be written"
    )


def test_port_already_taken(cli: Any, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state = tmp_path / "state"
        result = cli(
            "--state-dir",
            str(state),
            "--db-url",
            "mysql://root@127.0.0.1/x",
            "up",
            "--no-load",
            "--valkey-port",
            str(port),
        )
        _one_line_error(result, 5, f"port {port} is already taken")
    assert not (state / "valkey" / "standalone" / "valkey.pid").exists()


def test_help_is_fast_to_import() -> None:
    heavy = (
        "valkey",
        "pymysql",
        "psycopg",
        "psutil",
        "airportsdata",
        "fastapi",
        "uvicorn",
        "starlette",
    )
    code = f"import sys, flightcache.cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert proc.stdout.strip() == "", f"heavy modules imported at start: {proc.stdout}"


def test_import_a_dump_into_either_database(cli: Any, db_url: Any, tmp_path: Path) -> None:
    import struct

    from flightcache.data.tables import COLUMNS
    from flightcache.db import connect

    def create(table: str) -> str:
        cols = ",\n".join(f"  `{c}` varchar(100)" for c in COLUMNS[table])
        return (
            f"DROP TABLE IF EXISTS `{table}`;\nCREATE TABLE `{table}` (\n{cols}\n) ENGINE=InnoDB;\n"
        )

    point = (struct.pack("<I", 0) + struct.pack("<BIdd", 1, 1, 8.54313, 50.0264)).hex()
    dump = "".join(
        [
            "-- MySQL dump 10.13\n/*!40101 SET NAMES utf8mb4 */;\n",
            create("airport"),
            "INSERT INTO `airport` VALUES (1,'FRA','EDDF','Frankfurt'),"
            "(2,'JFK','KJFK','O''Hare\\\\x');\n",
            create("airport_geo"),
            f"INSERT INTO `airport_geo` VALUES (1,'Frankfurt','Frankfurt','DE',"
            f"50.02640000,8.54313000,0x{point});\n",
            create("airline"),
            "INSERT INTO `airline` VALUES (1,'LH','Lufthansa',1);\n",
            create("flight"),
            "INSERT INTO `flight` VALUES (1,'LH400',1,2,'2015-06-01 10:00:00',"
            "'2015-06-01 18:00:00',1,1),(2,'LH401',2,1,'2015-06-02 10:00:00',"
            "'2015-06-02 22:00:00',1,1);\n",
            create("booking"),
            "INSERT INTO `booking` VALUES (1,1,'1A',7,99.50),(2,1,'1B',8,120.00),"
            "(3,2,NULL,7,80.25);\n",
            "-- Dump completed on 2015-06-03 12:00:00\n",
        ]
    )
    path = tmp_path / "flughafendb.sql"
    path.write_text(dump)
    url = db_url.url(redact=False)
    result = cli("--db-url", url, "data", "import", str(path))
    assert result.code == 0, result.err
    conn = connect(db_url)
    try:
        counts = {
            t: conn.fetch(f"SELECT COUNT(*) FROM {conn.quote(t)}").rows[0][0]
            for t in ("airport", "airport_geo", "airline", "flight", "booking")
        }
        assert counts == {"airport": 2, "airport_geo": 1, "airline": 1, "flight": 2, "booking": 3}
        name = conn.fetch("SELECT name FROM airport WHERE airport_id = 2").rows[0][0]
        assert name == "O'Hare\\x"
        total = conn.fetch("SELECT SUM(price) FROM booking").rows[0][0]
        assert float(total) == 299.75
        if conn.dialect == "mysql":
            lon = conn.fetch("SELECT ST_X(geolocation) FROM airport_geo").rows[0][0]
        else:
            lon = conn.fetch("SELECT geolocation[0] FROM airport_geo").rows[0][0]
        assert abs(float(lon) - 8.54313) < 1e-9
    finally:
        conn.close()
    again = cli("--db-url", url, "data", "import", str(path))
    _one_line_error(again, 6, "already loaded")
