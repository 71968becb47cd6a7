"""flightcache bench curve: one scenario at rising concurrency, threads and processes, on
both databases; the database server's CPU as the bench meters it; bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

CLOSED = "mysql://root@127.0.0.1:1/nothing"  # nothing listens: input is checked first

HEAVY = {  # a statement that keeps one server thread or backend busy for a while
    "mysql": "SELECT BENCHMARK(4000000, MD5('flightcache'))",
    "postgresql": "SELECT count(*) FROM generate_series(1, 4000000)",
}


def test_the_curve_on_both_databases(demo_cli: Any, loaded: Any) -> None:
    result = demo_cli(
        "bench", "curve", "user-sessions", "--clients", "1,2", "--duration", "0.6",
        "--warmup", "0.1", "--json", "-",
    )  # fmt: skip
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["scenario"] == "user-sessions" and not doc["interrupted"]
    assert doc["environment"]["database"]["dialect"] == loaded.dialect
    plan = [(p["clients"], p["mode"], p["processes"]) for p in doc["points"]]
    assert plan == [(1, "threads", 1), (1, "processes", 1), (2, "threads", 1), (2, "processes", 2)]
    assert doc["db_server_cpu"] and doc["valkey_cpu"]  # the servers run here: both are read
    for point in doc["points"]:
        assert point["threads_per_process"] * point["processes"] == point["clients"]
        paths = {p["path"]: p for p in point["paths"]}
        assert set(paths) == {"database", "cache"}
        for p in paths.values():
            assert p["ops"] > 0 and p["seconds"] > 0
            assert p["ops_per_s"] == pytest.approx(p["ops"] / p["seconds"], rel=1e-3, abs=0.1)
            assert 0 < p["p50_ns"] <= p["p99_ns"]
            # a closed loop: no client waits on another's operation, so ops/s cannot beat
            # what the clients' mean latency allows by more than the p50 noise
            assert p["ops_per_s"] * p["p50_ns"] / 1e9 <= point["clients"] * 2
        db, cache = paths["database"], paths["cache"]
        # every session read is a statement the server runs: it costs the server CPU
        assert db["db_server_cpu_s"] > 0 and db["db_server_cpu_us_per_op"] > 0
        assert db["db_server_cpu_us_per_op"] == pytest.approx(
            db["db_server_cpu_s"] * 1e6 / db["ops"], rel=0.01, abs=0.01
        )
        if loaded.dialect == "postgresql":  # the clients' own backends idle meanwhile
            assert cache["db_server_cpu_us_per_op"] < db["db_server_cpu_us_per_op"] / 10
        # every HGETALL is Valkey's work; the test session's Valkey idles on the database path
        assert cache["valkey_cpu_s"] > 0
        assert db["valkey_cpu_us_per_op"] < cache["valkey_cpu_us_per_op"] / 5
    shown = demo_cli("bench", "curve", "--clients", "1", "--modes", "threads", "--duration", "0.3",
                     "--warmup", "0")  # fmt: skip
    assert shown.code == 0, shown.err
    assert "bench curve: user-sessions on" in shown.out and "DB CPU/op" in shown.out
    assert "threads: the most ops/s measured: database" in shown.out


def test_the_meter_reads_the_servers_cpu(loaded: Any, db_url: Any) -> None:
    """A busy statement on one connection moves its meter; PostgreSQL: another
    connection's backend does not move; MariaDB: only client 0 reads the server."""
    from flightcache.bench import server_cpu
    from flightcache.db import connect

    other = connect(db_url)
    try:
        mine = server_cpu.meter(loaded, 0)
        assert mine is not None
        theirs = server_cpu.meter(other, 1)
        before = mine(), None if theirs is None else theirs()
        loaded.fetch(HEAVY[loaded.dialect])
        assert mine() - before[0] > 0.05  # seconds of CPU, read from the server's process
        if loaded.dialect == "postgresql":
            assert theirs is not None and theirs() - before[1] < 0.02  # an idle backend
        else:
            assert theirs is None  # one process for all: client 0 counts it once
        assert server_cpu.describe(loaded)
    finally:
        other.close()


def test_the_valkey_meter_reads_valkey_server(valkey_server: Any) -> None:
    from flightcache.bench import server_cpu
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    try:
        assert server_cpu.valkey_meter(client, valkey_server.url, 1) is None  # client 0 only
        read = server_cpu.valkey_meter(client, valkey_server.url, 0)
        assert read is not None
        before = read()
        client.eval("local n = 0 for i = 1, 20000000 do n = n + i end return 0", 0)
        assert read() - before > 0.05
    finally:
        close(client)


def test_no_meter_for_a_server_elsewhere() -> None:
    from flightcache.bench import server_cpu

    def refuse(*args: Any) -> Any:
        raise AssertionError("a server elsewhere is not asked for its pid")

    remote = SimpleNamespace(
        url=SimpleNamespace(host="10.9.8.7"), dialect="postgresql", fetch=refuse
    )
    assert server_cpu.meter(remote, 0) is None
    url = SimpleNamespace(host="10.9.8.7", path="", cluster=False)
    assert server_cpu.valkey_meter(SimpleNamespace(info=refuse), url, 0) is None


def test_processes_per_point() -> None:
    from flightcache.bench.curve import CurveOptions, plan, processes_for

    assert [processes_for(n, "processes", 2) for n in (1, 8, 32, 128, 12, 7)] == [1, 8, 8, 8, 6, 7]
    assert all(processes_for(n, "threads", 2) == 1 for n in (1, 8, 128))
    assert plan(CurveOptions(clients=[1, 128]), cpus=2) == [
        (1, "threads", 1), (1, "processes", 1), (128, "threads", 1), (128, "processes", 8)
    ]  # fmt: skip


@pytest.mark.safety(8)
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--clients", "0,8"], "--clients must be a comma-separated list of counts 1 to 256"),
        (["--clients", "1,x"], "not '1,x'"),
        (["--clients", "300"], "counts 1 to 256"),
        (["--clients", ""], "--clients must be"),
        (["--modes", "fork"], "--modes must be threads, processes or both, not 'fork'"),
        (["--duration", "0"], "--duration must be above 0"),
        (["--duration", "nan"], "--duration must be above 0"),
        (["--warmup", "-1"], "--warmup must be 0 to 600"),
        (["nope"], "unknown scenario 'nope'"),
        (["--json", "/nonexistent-dir/c.json"], "its directory /nonexistent-dir does not exist"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    cli: Any, args: list[str], fragment: str
) -> None:
    result = cli("--db-url", CLOSED, "bench", "curve", *args)
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("error: ") and fragment in result.err, result.err
    assert "Traceback" not in result.err and "hint:" in result.err


@pytest.mark.safety(10)
def test_ctrl_c_keeps_the_points_measured_and_exits_130(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    """A real SIGINT in the middle of the second point (two child processes): both points
    are written, the second marked, and the children and the keys are gone."""
    import signal
    import subprocess
    import sys

    import psutil

    from flightcache.valkey_client import close, connect
    from tests.conftest import keys_left, server_args

    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "flightcache", *server_args(db_url, valkey_server, key_prefix),
            "bench", "curve", "--clients", "1,2", "--modes", "processes", "--duration", "3",
            "--warmup", "0", "--json", str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:  # not a terminal: a line when each point starts measuring
        said.append(line)
        if line.startswith("user-sessions, 2 client(s), processes: measuring"):
            break
    time.sleep(0.5)
    found = psutil.Process(proc.pid).children(recursive=True)
    children = [c for c in found if "spawn_main" in " ".join(c.cmdline())]
    assert len(children) == 2  # the point's two bench processes
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(said) + stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] and [p["clients"] for p in doc["points"]] == [1, 2]
    assert [p["interrupted"] for p in doc["points"]] == [False, True]
    assert all(p["ops"] > 0 for p in doc["points"][0]["paths"])
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    assert "bench curve: user-sessions" in stdout
    client = connect(valkey_server.url)
    assert keys_left(client, key_prefix) == []  # the teardown ran
    close(client)
