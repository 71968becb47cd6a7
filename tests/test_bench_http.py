"""`flightcache bench http`: seed 004's load test over the API, short runs on the test
servers; the numbers are checked for consistency, never for speed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

from tests.conftest import ValkeyInstance, server_args
from tests.web_helpers import Served, wait_for

SHORT = ["--duration", "0.6", "--warmup", "0.2"]


def _bench(cli: Any, db_url: Any, instance: ValkeyInstance, prefix: str, *args: str) -> Any:
    result = cli(*server_args(db_url, instance, prefix), "bench", "http", *args, "--json", "-")
    assert result.code == 0, result.err + result.out
    return json.loads(result.out)


def _consistent(doc: dict[str, Any], modes: list[str]) -> None:
    assert [(r["mode"], r["via"]) for r in doc["runs"]] == [
        (m, via) for m in modes for via in ("http", "valkey")
    ]
    for run in doc["runs"]:
        expected = {"both": {"writes", "reads"}}.get(run["mode"], {run["mode"]})
        assert set(run["ops"]) == expected
        for op in run["ops"].values():
            lat = op["latency_ns"]
            assert op["requests"] > 0 and op["errors"] == 0, op
            assert op["per_s"] == pytest.approx(op["requests"] / op["seconds"], rel=0.01)
            assert 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
            assert lat["n"] == op["requests"]
        client, server = run["client_cores"], run["server_cores"]
        assert client >= 0
        if server is None:  # a server the bench did not start: its CPU is not known
            assert run["via"] == "http" and not doc["server"]["started_by_bench"]
        elif abs(client - server) > 0.015:  # the figures are rounded to 0.01
            assert run["client_bound"] == (client >= 0.85 or client > server)
    for mode in modes:  # closed loop: the bare commands outrun the API doing the same and more
        if doc["options"]["loop"] == "open":
            break
        http, bare = (r for r in doc["runs"] if r["mode"] == mode)
        for op in http["ops"]:
            assert bare["ops"][op]["per_s"] > http["ops"][op]["per_s"]
    assert doc["published_004"]["writes_separate"] == 25_000
    assert "seed 004" in doc["published_004_source"]


def _no_keys_left(instance: ValkeyInstance, prefix: str) -> None:
    from flightcache.valkey_client import close, connect, primaries

    client = connect(instance.url)
    try:
        left = [k for node in primaries(client) for k in node.scan_iter(match=prefix + "*")]
    finally:
        close(client)
    assert left == []


@pytest.mark.slow
def test_every_mode_beside_bare_valkey(
    cli: Any, loaded: Any, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    doc = _bench(cli, db_url, valkey_server, key_prefix, *SHORT, "--connections", "4")
    _consistent(doc, ["writes", "reads", "both"])
    both = next(r for r in doc["runs"] if r["mode"] == "both" and r["via"] == "http")
    assert {op["connections"] for op in both["ops"].values()} == {2}
    assert doc["server"]["started_by_bench"] is True and doc["server"]["workers"] == 1
    shown = " ".join(doc["command"])
    assert "bench http --connections 4 --duration 0.6 --warmup 0.2" in shown, shown
    assert doc["board_members"] > 10
    # the server it started is gone, and so is every key of its scope (the user's boards
    # were never touched: the run had a key prefix of its own under the test's)
    assert wait_for(lambda: _refused(doc["server"]["url"]), 10, what="the server to stop")
    _no_keys_left(valkey_server, key_prefix)


def _refused(base: str) -> bool:
    import httpx

    try:
        httpx.get(base + "/health", timeout=1)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.slow
def test_reads_on_the_cluster_with_two_workers(
    cli: Any, loaded: Any, db_url: Any, valkey_cluster: ValkeyInstance, key_prefix: str
) -> None:
    doc = _bench(
        cli, db_url, valkey_cluster, key_prefix, "reads", *SHORT, "--connections", "3",
        "--workers", "2",
    )  # fmt: skip
    _consistent(doc, ["reads"])
    assert doc["server"]["workers"] == 2
    assert doc["runs"][0]["server_cores"] > 0
    _no_keys_left(valkey_cluster, key_prefix)


@pytest.mark.slow
def test_open_loop_keeps_its_rate(
    cli: Any, loaded: Any, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    doc = _bench(cli, db_url, valkey_server, key_prefix, "reads", "--rate", "40",
                 "--duration", "1.5", "--warmup", "0.2", "--connections", "2")  # fmt: skip
    _consistent(doc, ["reads"])
    assert doc["options"]["loop"] == "open"
    for run in doc["runs"]:
        # due every 25 ms over 1.5 s: 60 requests (the last may fall just outside)
        assert 55 <= run["ops"]["reads"]["requests"] <= 61, run


@pytest.mark.slow
def test_a_running_server_by_url(
    cli: Any, served: Served, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    before = served.process.pid
    doc = _bench(cli, db_url, valkey_server, key_prefix, "writes", *SHORT,
                 "--connections", "2", "--url", served.base, "--token", served.token)  # fmt: skip
    _consistent(doc, ["writes"])
    assert doc["server"]["started_by_bench"] is False and doc["server"]["url"] == served.base
    assert "***" in doc["command"] and served.token not in json.dumps(doc)
    assert served.process.poll() is None and served.process.pid == before  # left running


BAD = [
    (["--rate", "0"], "--rate 0 must be above zero"),
    (["--rate", "-5"], "--rate -5 must be above zero"),
    (["--duration", "0"], "--duration 0 must be above zero"),
    (["--duration", "nan"], "--duration nan is not a number"),
    (["sideways"], "unknown mode 'sideways'"),
    (["--connections", "0"], "--connections 0 is out of range"),
    (["--url", "ftp://x", "--token", "t"], "is not an http:// URL"),
    (["--url", "http://127.0.0.1:1"], "--url needs --token"),
]


@pytest.mark.safety(8)
@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_usage_line(cli: Any, args: list[str], message: str) -> None:
    result = cli("bench", "http", *args)
    assert result.code == 2, result.out + result.err
    assert message in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) <= 2


@pytest.mark.slow
@pytest.mark.safety(1, 10)
def test_ctrl_c_stops_the_server_it_started(
    loaded: Any, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    from flightcache.children import child_env

    command = [sys.executable, "-m", "flightcache",
               *server_args(db_url, valkey_server, key_prefix),
               "bench", "http", "--duration", "30", "--warmup", "0"]  # fmt: skip
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=child_env(), start_new_session=True)  # fmt: skip
    try:
        parent = psutil.Process(bench.pid)

        def serving() -> list[psutil.Process]:
            return [p for p in parent.children(recursive=True) if "serve" in p.cmdline()]

        server = wait_for(serving, 30, what="bench http to start its server")[0]
        assert bench.stderr is not None
        wait_for(lambda: "measuring" in bench.stderr.readline(), 30, what="the first run")
        time.sleep(0.5)
        bench.send_signal(signal.SIGINT)
        bench.wait(30)
        server.wait(10)  # raises if the server outlives the bench
        assert not server.is_running()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode != 0
    _no_keys_left(valkey_server, key_prefix)


@pytest.mark.slow
@pytest.mark.safety(10)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_killed_run_s_keys_are_deleted_by_the_next(
    cli: Any, loaded: Any, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    """SIGKILL (a real one, to the run's whole process group) leaves the run's board
    copies in Valkey; the next `bench http` deletes them, and leaves a live run's alone."""
    from flightcache.children import child_env
    from flightcache.valkey_client import close, connect, primaries

    command = [sys.executable, "-m", "flightcache",
               *server_args(db_url, valkey_server, key_prefix),
               "bench", "http", "--duration", "30", "--warmup", "0"]  # fmt: skip
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=child_env(), start_new_session=True)  # fmt: skip
    client = connect(valkey_server.url)
    try:
        assert bench.stderr is not None
        wait_for(lambda: "measuring" in bench.stderr.readline(), 60, what="the first run")
        os.killpg(bench.pid, signal.SIGKILL)
        bench.wait(10)

        def left() -> list[str]:
            return [k for n in primaries(client) for k in n.scan_iter(match=key_prefix + "*")]

        assert any(f".{bench.pid}." in k for k in left())  # what the kill left
        other = subprocess.Popen(["sleep", "60"])  # stands for a run still going
        started = int(psutil.Process(other.pid).create_time())
        alive = f"{key_prefix}bench-http:{_host()}.{other.pid}.{started}:board"
        client.set(alive, "a live run's")
        result = cli(*server_args(db_url, valkey_server, key_prefix), "bench", "http", *SHORT)
        assert result.code == 0, result.err
        assert "a killed `bench http` had left" in result.err
        assert left() == [alive]
        other.kill()
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
        for k in [k for n in primaries(client) for k in n.scan_iter(match=key_prefix + "*")]:
            client.delete(k)
        close(client)


def _host() -> str:
    from flightcache.bench.http import http_scope

    return http_scope("").split(":")[1].split(".")[0]
