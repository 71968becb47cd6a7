"""Connections (issue 12, item 7): LOAD DATA LOCAL only on the loader's connection,
every URL parameter reaches its driver or is refused by name, timeouts on every
connection, a statement timeout that cuts a long query, and a local API whose
stop never waits on an idle client. Real servers, real sockets."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl, ValkeyUrl
from flightcache.errors import ConfigError, FlightcacheError, QueryError

pytestmark = pytest.mark.safety(7)


def _with(url: DbUrl, query: str) -> DbUrl:
    """The same database with ``query`` as its URL's parameters, parsed as a user's URL."""
    return DbUrl.parse(f"{url.url(redact=False).split('?')[0]}?{query}")


# -- LOAD DATA LOCAL --------------------------------------------------------------------
def test_only_the_loader_connection_may_load_data_local(mysql_url: DbUrl, tmp_path: Path) -> None:
    from flightcache.db import connect

    secret = tmp_path / "not-for-the-server.txt"
    secret.write_text("private line\n")
    statement = "LOAD DATA LOCAL INFILE %s INTO TABLE probe (line)"
    normal = connect(mysql_url)
    try:
        normal.execute("CREATE TABLE probe (line VARCHAR(100))")
        with pytest.raises(QueryError):
            normal.execute(statement, (str(secret),))
        assert normal.fetch("SELECT COUNT(*) FROM probe").rows[0][0] == 0
    finally:
        normal.close()
    loader = connect(mysql_url, loader=True)
    try:
        assert loader.execute(statement, (str(secret),)) == 1
    finally:
        loader.close()
    with pytest.raises(ConfigError, match="local_infile"):
        _with(mysql_url, "local_infile=1")


# -- URL parameters ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("mysql://root@h/db?sslrootcert=/ca.pem", "sslrootcert"),
        ("mysql://root@h/db?ssl_mode=preferred", "ssl_mode"),
        ("mysql://root@h/db?connect_timeout=nan", "connect_timeout"),
        ("postgresql://h/db?ssl_ca=/ca.pem", "ssl_ca"),
        ("postgresql://h/db?sslmod=require", "sslmod"),
        ("postgresql://h/db?statement_timeout=-5s", "statement_timeout"),
        ("valkey://h:6379?ssl_ca_certs=/ca.pem", "ssl_ca_certs"),
        ("valkey://h:6379?socket_timeout=0", "socket_timeout"),
        ("valkey://h:6379?sockettimeout=1", "sockettimeout"),
        ("valkeys+cluster://h:7000?ssl_check_hostname=false", "ssl_check_hostname"),
    ],
)
def test_a_parameter_no_driver_takes_is_refused_by_name(url: str, name: str) -> None:
    parse = ValkeyUrl.parse if url.startswith("valkey") else DbUrl.parse
    with pytest.raises(ConfigError) as info:
        parse(url)
    assert repr(name) in info.value.message and info.value.hint


def test_tls_and_other_parameters_reach_the_drivers(db_url: DbUrl) -> None:
    """Neither test server speaks TLS: a URL that requires it must fail, not connect in
    the clear; the other parameters show up on the server side of the connection."""
    from flightcache.db import connect

    require = "ssl_mode=required" if db_url.kind == "mysql" else "sslmode=require"
    with pytest.raises(FlightcacheError, match="TLS"):
        connect(_with(db_url, require))
    if db_url.kind == "mysql":
        conn = connect(_with(db_url, "charset=latin1&program_name=fc_probe"))
        probe = "SELECT @@character_set_client"
        expected = "latin1"
    else:
        conn = connect(_with(db_url, "application_name=fc_probe&sslmode=disable"))
        probe = "SELECT current_setting('application_name')"
        expected = "fc_probe"
    try:
        assert conn.fetch(probe).rows[0][0] == expected
    finally:
        conn.close()


BAD_VALUES = {
    "mysql": [("charset=bogus", "charset"), ("ssl_ca=/nonexistent/ca.pem", "ssl_ca")],
    "postgresql": [("sslmode=bogus", "sslmode"), ("gssencmode=no", "gssencmode")],
}


def test_a_value_the_driver_refuses_is_one_line_naming_it(cli: Any, db_url: DbUrl) -> None:
    for query, name in BAD_VALUES[db_url.kind]:
        result = cli("--db-url", _with(db_url, query).url(redact=False), "data", "info")
        assert result.code in (3, 4), result.err  # configuration or connection, no traceback
        assert name in result.err and "Traceback" not in result.err


def test_valkey_url_parameters_reach_the_client(any_valkey: Any) -> None:
    import valkey.exceptions

    from flightcache.valkey_client import close, connect

    base = any_valkey.url.url(redact=False)
    client = connect(ValkeyUrl.parse(f"{base}?client_name=fc_probe&socket_timeout=0.3"))
    try:
        assert client.client_getname() == "fc_probe"
        started = time.monotonic()
        with pytest.raises(valkey.exceptions.TimeoutError):
            client.execute_command("BLPOP", "fc-probe-never-filled", 5)
        assert time.monotonic() - started < 2
    finally:
        close(client)


@pytest.mark.parametrize("kind", ["tls", "unknown"])
def test_sql_hands_the_url_parameters_to_the_shell_or_refuses(
    db_url: DbUrl, tmp_path: Path, kind: str
) -> None:
    """`flightcache sql` started mycli/pgcli without the URL's TLS settings: in the clear."""
    from tests.test_tools import _run_cli

    if kind == "tls":
        query = "ssl_mode=required" if db_url.kind == "mysql" else "sslmode=require"
    else:
        query = "ssl_key_password=Kp9x" if db_url.kind == "mysql" else "sslpassword=Kp9x"
    flag = "-e" if db_url.kind == "mysql" else "-c"
    url = _with(db_url, query).url(redact=False)
    result = _run_cli(tmp_path, "--db-url", url, "sql", flag, "SELECT 4242 AS answer")
    assert result.returncode != 0 and "4242" not in result.stdout
    said = result.stdout + result.stderr
    assert "Kp9x" not in said
    if kind == "tls":
        assert "SSL" in said or "TLS" in said or "ssl" in said, said
    else:
        assert repr(query.split("=")[0]) in said, said


# -- timeouts ---------------------------------------------------------------------------
def _sleep(db_url: DbUrl, seconds: float) -> str:
    if db_url.kind == "mysql":
        return f"SELECT SLEEP({seconds})"
    return f"SELECT pg_sleep({seconds})"


def test_statement_timeout_cuts_a_long_query(db_url: DbUrl) -> None:
    from flightcache.db import connect
    from flightcache.errors import StatementTimeout

    conn = connect(_with(db_url, "statement_timeout=1s"))
    try:
        started = time.monotonic()
        with pytest.raises(StatementTimeout) as info:
            conn.fetch(_sleep(db_url, 4))
        assert time.monotonic() - started < 3
        assert "statement timeout" in info.value.message and "statement_timeout" in (
            info.value.hint or ""
        )
        assert conn.fetch("SELECT 1").rows[0][0] == 1  # the connection is still usable
    finally:
        conn.close()


def test_every_connection_but_the_loader_has_a_statement_timeout(db_url: DbUrl) -> None:
    from flightcache.db import connect

    probe = (
        "SELECT @@max_statement_time"
        if db_url.kind == "mysql"
        else "SELECT current_setting('statement_timeout')"
    )
    normal, loader = connect(db_url), connect(db_url, loader=True)
    try:
        assert str(normal.fetch(probe).rows[0][0]) in ("60.0", "1min")
        assert str(loader.fetch(probe).rows[0][0]) in ("0.0", "0")
    finally:
        normal.close()
        loader.close()


def test_read_timeout_ends_a_wait_on_a_silent_server(mysql_url: DbUrl) -> None:
    """With the server's own limit off, the client's read timeout still ends the wait."""
    from flightcache.db import connect
    from flightcache.errors import ConnectionFailed

    conn = connect(_with(mysql_url, "statement_timeout=0&read_timeout=1"))
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed):
            conn.fetch("SELECT SLEEP(5)")
        assert time.monotonic() - started < 3
    finally:
        conn.close()


def test_connect_timeout_of_the_url_bounds_a_server_that_never_answers() -> None:
    from flightcache.db import connect
    from flightcache.errors import ConnectionFailed

    with socket.socket() as silent:  # accepts (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = DbUrl.parse(f"mysql://root@127.0.0.1:{port}/x?connect_timeout=1")
        started = time.monotonic()
        with pytest.raises(ConnectionFailed):
            connect(url, connect_timeout=30)
        assert time.monotonic() - started < 3


# -- the local API ----------------------------------------------------------------------
@pytest.mark.parametrize("sends", [b"", b"GET /weather/FRA HTTP/1.0\r\nHost: x\r\n"])
def test_fake_api_stops_at_once_with_an_idle_client(sends: bytes) -> None:
    from flightcache.fakeapi import ApiSnapshot, FakeApi

    api = FakeApi(ApiSnapshot({}, {})).start()
    host, port = api.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=5)
    try:
        client.sendall(sends)
        time.sleep(0.3)  # the server has accepted it and a handler waits for the rest
        stopper = threading.Thread(target=api.stop, daemon=True)
        started = time.monotonic()
        stopper.start()
        stopper.join(timeout=5)
        took = time.monotonic() - started
        assert not stopper.is_alive(), "stop() hangs on an idle client"
        assert took < 2
    finally:
        client.close()


def test_fake_api_handlers_time_out() -> None:
    from flightcache import fakeapi

    assert 0 < fakeapi.REQUEST_TIMEOUT_S <= 30
    api = fakeapi.FakeApi(fakeapi.ApiSnapshot({}, {}), request_timeout=0.5).start()
    try:
        host, port = api.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as client:
            client.sendall(b"GET /weather/FRA HTTP/1.0\r\n")  # half a request, then nothing
            started = time.monotonic()
            assert client.recv(100) == b""  # the server hung up on us
            assert time.monotonic() - started < 3
    finally:
        api.stop()
