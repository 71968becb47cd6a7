"""flightcache bench: scenarios on both databases, one node and a cluster; the open loop's
accounting of schedule lag; exports and compare; bad input; Ctrl-C."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flightcache.data.load import SETTLE
from tests.conftest import keys_left, server_args

ALL = [
    "airline-routes",
    "flight-search",
    "user-sessions",
    "leaderboard",
    "cache-aside",
    "hit-floor",
    "write-through",
    "write-behind",
    "nested-doll",
    "near-cache",
    "valkey-get",
]


def _state(db: Any) -> tuple[int, list[tuple[Any, ...]]]:
    """What the write scenarios touch and must leave as they found it."""
    bookings = int(db.fetch("SELECT COUNT(*) FROM booking").rows[0][0])
    names = db.fetch("SELECT airline_id, airlinename FROM airline ORDER BY airline_id").rows
    return bookings, names


def _paths(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["name"], p["path"]): p for s in doc["scenarios"] for p in s["paths"]}


def _check_calls(doc: dict[str, Any], requests: int) -> None:
    """Each path made the database calls its code makes, counted on the connection."""
    paths = _paths(doc)
    assert {s["name"] for s in doc["scenarios"]} == set(ALL)
    for p in paths.values():
        assert p["n"] == requests  # --requests is per path, exactly
    for name in ("airline-routes", "flight-search", "cache-aside"):
        assert paths[(name, "database")]["db_calls"] == requests
    for name, cached in (
        ("airline-routes", "cache"),
        ("flight-search", "cache"),
        ("cache-aside", "cache-aside"),
    ):
        p = paths[(name, cached)]
        assert p["db_calls"] == p["misses"]  # a query per miss, none per hit
        assert p["hits"] + p["misses"] == requests
    assert paths[("airline-routes", "cache")]["misses"] == 0  # filled before the run
    floor = paths[("cache-aside", "bare GET")]  # copies of the values that never expire
    assert floor["db_calls"] == floor["misses"] == 0 and floor["hits"] == requests
    # a session read is one SELECT, a page view a SELECT and an UPDATE; the hash none
    sessions = paths[("user-sessions", "database")]
    assert sessions["db_calls"] == sessions["reads"]["n"] + 2 * sessions["writes"]["n"]
    assert paths[("user-sessions", "cache")]["db_calls"] == 0
    # a booking is 4 statements (flight, passenger, INSERT, lastval), the top 10 one more
    board = paths[("leaderboard", "database")]
    assert board["db_calls"] == 5 * board["writes"]["n"] + board["reads"]["n"]
    assert paths[("leaderboard", "sorted set")]["db_calls"] == 0
    wt, wt_db = paths[("write-through", "write-through")], paths[("write-through", "database")]
    assert wt_db["db_calls"] == requests  # a SELECT or an UPDATE each
    assert wt["db_calls"] == 2 * wt["writes"]["n"] + wt["misses"]  # UPDATE + re-read
    assert paths[("write-behind", "write-through")]["db_calls"] == requests
    assert paths[("write-behind", "write-behind")]["db_calls"] == 0
    doll = paths[("nested-doll", "nested doll")]
    assert paths[("nested-doll", "database")]["db_calls"] == 4 * requests
    assert doll["misses"] <= doll["db_calls"] <= 4 * doll["misses"]  # only missing layers
    for path in ("valkey-py loop", "bench"):
        assert paths[("valkey-get", path)]["db_calls"] == 0
    # a write refreshes the Valkey key on every path: only the database path's reads query
    near_db = paths[("near-cache", "database")]
    assert near_db["db_calls"] == near_db["reads"]["n"] and near_db["writes"]["n"] > 0
    for path in ("cache-aside", "near-cache", "valkey GET"):
        assert paths[("near-cache", path)]["db_calls"] == 0  # every key cached before
    near = paths[("near-cache", "near-cache")]
    assert near["hits"] + near["misses"] == near["reads"]["n"]
    assert set(near["counters"]) == {"raced", "invalidations", "evictions", "flushes"}
    floor_paths = [p for (name, _), p in paths.items() if name == "hit-floor"]
    assert len(floor_paths) == 8  # a GET and a hit per size, every value cached before
    assert all(p["db_calls"] == p["misses"] == 0 and p["hits"] == requests for p in floor_paths)


def test_every_scenario_counts_its_database_calls_and_exports(
    demo_cli: Any, loaded: Any, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    from flightcache.bench import report
    from flightcache.valkey_client import close, connect

    before = _state(loaded)
    out = {kind: tmp_path / f"run.{kind}" for kind in ("json", "csv", "md")}
    result = demo_cli(
        "bench", "run", "all", "--requests", "40", "--warmup", "0", "--read-ratio", "0.5",
        "--json", str(out["json"]), "--csv", str(out["csv"]), "--markdown", str(out["md"]),
    )  # fmt: skip
    assert result.code == 0, result.err
    doc = report.load(str(out["json"]))
    _check_calls(doc, 40)
    assert _state(loaded) == before  # bookings deleted, airline names restored
    client = connect(valkey_server.url)
    assert keys_left(client, key_prefix) == []
    close(client)
    # what it ran on
    env = doc["environment"]
    assert env["database"]["dialect"] == loaded.dialect
    assert env["database"]["dataset"]["scale"] == "tiny"
    assert env["valkey"]["version"] and "Parser" in env["valkey"]["client_parser"]
    assert env["cpu_count"] >= 1 and "bench run all" in env["command"]
    settled = env["database"]["settled"]  # the tables settled before the first scenario
    assert settled["statement"] == SETTLE[loaded.dialect] and settled["seconds"] >= 0
    if loaded.dialect == "postgresql":
        assert _last_vacuum(loaded, "booking") is not None
    assert doc["self_check"]["per_op_ns"] > 0 and "get_ratio" in doc["self_check"]
    # the CSV says what the JSON says
    rows = list(csv.DictReader(out["csv"].open()))
    paths = _paths(doc)
    for row in (r for r in rows if r["kind"] == "all"):
        p = paths[(row["scenario"], row["path"])]
        assert int(row["p50_ns"]) == p["p50"] and int(row["p99.9_ns"]) == p["p99.9"]
        assert int(row["db_calls"]) == p["db_calls"]
    assert {(r["scenario"], r["path"]) for r in rows} == set(paths)
    # the histogram decodes to the same percentiles
    from flightcache.bench import hdr

    p = paths[("flight-search", "cache")]
    assert hdr.summary(hdr.decode(p["histogram"])).p50 == p["p50"]
    markdown = out["md"].read_text()
    assert "| Query type | Without cache (p50) | With cache (p50) | Improvement (p50) |" in markdown
    assert "| Flight search |" in markdown and "valkey-get" in markdown
    # compare: a run against itself changes nothing
    same = demo_cli("bench", "compare", str(out["json"]), str(out["json"]), "--json")
    changes = json.loads(same.out)["changes"]
    assert changes and all(c["percent"] in (0, None) for c in changes)
    shown = demo_cli("bench", "compare", str(out["json"]), str(out["json"]))
    assert shown.code == 0 and "+0.0%" in shown.out and "flight-search" in shown.out


@pytest.mark.cluster
def test_scenarios_on_a_cluster(
    cli: Any, mysql_url: Any, valkey_cluster: Any, key_prefix: str, tmp_path: Path
) -> None:
    from flightcache.bench import report
    from tests.demo_helpers import leftover_keys, load_tiny

    load_tiny(mysql_url)
    result = cli(
        *server_args(mysql_url, valkey_cluster, key_prefix),
        "bench", "run", "all", "--requests", "30", "--warmup", "0", "--read-ratio", "0.5",
        "--json", str(tmp_path / "c.json"), "--no-histogram",
    )  # fmt: skip
    assert result.code == 0, result.err
    _check_calls(report.load(str(tmp_path / "c.json")), 30)
    assert leftover_keys(valkey_cluster.url, key_prefix) == []


def test_processes_share_the_requests(
    demo_cli: Any, tmp_path: Path, valkey_server: Any, key_prefix: str
) -> None:
    result = demo_cli(
        "bench", "run", "flight-search", "valkey-get", "--clients", "4", "--processes", "2",
        "--requests", "41", "--warmup", "0.05", "--json", str(tmp_path / "p.json"),
    )  # fmt: skip
    assert result.code == 0, result.err
    doc = json.loads((tmp_path / "p.json").read_text())
    paths = _paths(doc)
    assert all(p["n"] == 41 for p in paths.values())  # 21 + 20 over the two processes
    assert paths[("flight-search", "database")]["db_calls"] == 41
    assert doc["settings"]["processes"] == 2 and doc["settings"]["clients"] == 4
    assert "2 threads per process share one GIL" in result.out


# -- the engine alone: coordinated omission -----------------------------------------------
class _Stall:
    """A path that answers at once, except one call that stalls for ``stall_s``."""

    def __init__(self, at: int, stall_s: float) -> None:
        self.calls, self.at, self.stall_s = 0, at, stall_s

    def __call__(self, i: int) -> None:
        self.calls += 1
        if self.calls == self.at:
            time.sleep(self.stall_s)


class _StallFactory:
    def __init__(self) -> None:
        self.stall = _Stall(at=20, stall_s=0.3)

    def __call__(self, index: int) -> Any:
        from flightcache.bench.engine import Opened, Path, Workload

        return Opened(Workload({"stalls": Path(self.stall)}), lambda: 0, lambda: None)


def _slow(h: Any, over_ns: int) -> int:
    return sum(
        int(item.count_added_in_this_iter_step)
        for item in h.get_recorded_iterator()
        if item.value_iterated_to >= over_ns
    )


def test_open_loop_counts_the_operations_a_stall_delayed() -> None:
    """One 300 ms stall at 100 operations/s: the 30 operations due meanwhile start late,
    and the open loop charges each its wait; the closed loop sees one slow operation."""
    from flightcache.bench.engine import Load, drive
    from flightcache.bench.report import path_result
    from flightcache.bench.run import Floor

    stop = threading.Event()
    common = {"warmup": 0.0, "slice": 2.0, "seconds": 1.0}
    opened = drive(_StallFactory(), Load(rate=100.0, **common), stop=stop)  # type: ignore[arg-type]
    t = opened.tallies["stalls"]
    assert _slow(t.service, 100_000_000) == 1  # one operation was slow itself
    assert _slow(t.read, 100_000_000) >= 20  # ...and those due during it waited
    assert _slow(t.lag, 50_000_000) >= 20
    assert opened.late["stalls"] >= 20
    floor = Floor(100, 200, 1000.0, 1)
    result = path_result("stalls", t, Load(rate=100.0, **common), floor, opened.late["stalls"])  # type: ignore[arg-type]
    assert any("after their scheduled time" in w for w in result.warnings)
    assert result.service is not None and result.all.p99 > result.service.p99
    closed = drive(_StallFactory(), Load(requests=200, warmup=0.0, slice=2.0), stop=stop)
    assert _slow(closed.tallies["stalls"].read, 100_000_000) == 1  # the omission


def test_an_answer_is_freed_after_the_clock_stops_and_its_hit_counted() -> None:
    """An op may return its answer (a Lookup): its ``hit`` is counted, and freeing it,
    50 ms here, is not charged to the operation."""
    from flightcache.bench.engine import Load, Opened, Path, Workload, drive
    from tests.test_foundation import _SlowToFree

    def factory(index: int) -> Any:
        return Opened(Workload({"answers": Path(lambda i: _SlowToFree())}), lambda: 0, lambda: None)

    for load in (Load(requests=5, warmup=0.0, slice=2.0), Load(rate=5.0, warmup=0.0, seconds=1.0)):
        t = drive(factory, load, stop=threading.Event()).tallies["answers"]  # type: ignore[arg-type]
        assert t.hits == t.ops >= 4 and t.misses == 0
        assert _slow(t.read if load.rate is None else t.service, 25_000_000) == 0


def test_hot_loop_counts_equal_the_librarys() -> None:
    import random

    from flightcache.bench import hdr

    values = [random.randrange(0, 10**12) for _ in range(5_000)] + [0, 1, hdr.HIGHEST_NS]
    theirs, ours = hdr.new(), hdr.new()
    for v in values:
        theirs.record_value(v)
        ours.counts[hdr.index(v)] += 1
    hdr.settle(ours, len(values))
    assert hdr.encode(ours) == hdr.encode(theirs)
    assert hdr.summary(ours) == hdr.summary(theirs)


# -- bad input ----------------------------------------------------------------------------
CLOSED = "mysql://root@127.0.0.1:1/nothing"  # nothing listens: input is checked first


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nope"], "unknown scenario 'nope'; known: airline-routes, flight-search"),
        (["--clients", "0"], "--clients must be 1 to 256, not 0"),
        (["--clients", "-3"], "--clients must be 1 to 256, not -3"),
        (["--clients", "257"], "--clients must be 1 to 256, not 257"),
        (["--rate", "0"], "--rate must be above 0"),
        (["--rate", "-10"], "--rate must be above 0"),
        (["--rate", "1e9"], "per process), not 1e+09"),
        (["--clients", "4", "--processes", "3"], "cannot be shared evenly"),
        (["--processes", "0"], "--processes must be 1 to"),
        (["--duration", "5", "--requests", "9"], "--duration or --requests, not both"),
        (["--read-ratio", "1.5"], "--read-ratio must be 0 to 1"),
        (["--keys", "pareto"], "--keys must be uniform or zipf"),
        (["--zipf-s", "0"], "--zipf-s must be above 0"),
        (["--json", "/nonexistent-dir/out.json"], "its directory /nonexistent-dir does not exist"),
        (["--csv", "/tmp"], "--csv /tmp: is a directory"),
        (["--json", "-", "--csv", "-"], "--json and --csv both ask for stdout"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    cli: Any, args: list[str], fragment: str
) -> None:
    result = cli("--db-url", CLOSED, "bench", "run", *args)
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("error: ") and fragment in result.err, result.err
    assert "Traceback" not in result.err and "hint:" in result.err


def test_unwritable_export_fails_before_the_run(cli: Any, tmp_path: Path) -> None:
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    paths = ["/proc/fc-bench-test.md"]  # not even root creates files there
    if os.geteuid() != 0:  # root writes in a read-only directory; others may not
        paths.append(str(locked / "x.md"))
    try:
        for path in paths:
            result = cli("--db-url", CLOSED, "bench", "run", "--markdown", path)
            assert result.code == 2, result.err
            assert result.err.startswith(f"error: --markdown {path}: cannot be written")
    finally:
        locked.chmod(0o700)
    assert not (locked / "x.md").exists()


def _bench_file(path: Path, scenarios: list[str]) -> str:
    doc = {
        "format": "flightcache-bench",
        "version": 1,
        "environment": {},
        "settings": {},
        "scenarios": [{"name": n, "paths": []} for n in scenarios],
    }
    path.write_text(json.dumps(doc))
    return str(path)


def test_compare_refuses_what_it_cannot_compare(cli: Any, tmp_path: Path) -> None:
    a = _bench_file(tmp_path / "a.json", ["flight-search"])
    b = _bench_file(tmp_path / "b.json", ["valkey-get"])
    other = tmp_path / "other.json"
    other.write_text('{"demo": "cache-aside"}')
    text = tmp_path / "notes.txt"
    text.write_text("not json at all")
    for args, fragment in (
        ([a, b], "share no scenario (flight-search vs valkey-get): nothing to compare"),
        ([a, str(other)], "is not a flightcache bench file"),
        ([str(text), a], "is not a flightcache bench file"),
        ([a, str(tmp_path / "missing.json")], "missing.json: no such file"),
    ):
        result = cli("bench", "compare", *args)
        assert result.code == 2 and result.err.startswith("error: "), result.err
        assert fragment in result.err and "hint:" in result.err


def test_list_names_every_scenario(cli: Any) -> None:
    result = cli("bench", "list", "--json")
    doc = json.loads(result.out)
    assert [s["name"] for s in doc] == ALL
    assert {s["row_001"] for s in doc} >= {
        "Airline Route Analysis",
        "Flight Search",
        "User Sessions",
        "Leaderboard Updates",
    }


# -- Ctrl-C -------------------------------------------------------------------------------
def test_ctrl_c_prints_what_was_measured_and_exits_130(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "flightcache", *server_args(db_url, valkey_server, key_prefix),
            "bench", "run", "flight-search", "valkey-get", "--duration", "60",
            "--json", str(out), "--no-histogram",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:  # not a terminal: a line when measuring starts
        if line.startswith("flight-search [1/3]: measuring"):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "flight-search: Flight search (interrupted" in stdout
    assert "Performance improvements measured" in stdout
    doc = json.loads(out.read_text())
    assert doc["interrupted"] and [s["name"] for s in doc["scenarios"]] == ["flight-search"]
    assert all(p["n"] > 0 for p in doc["scenarios"][0]["paths"])
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    assert keys_left(client, key_prefix) == []  # the teardown ran
    close(client)


def _last_vacuum(db: Any, table: str) -> Any:
    sql = f"SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = '{table}'"
    return db.fetch(sql).rows[0][0]


# -- the near cache: its hit ratio against the share of writes ------------------------------
def _near(doc: dict[str, Any]) -> dict[str, Any]:
    return _paths(doc)[("near-cache", "near-cache")]


@pytest.mark.parametrize("clients", [1, 3])
def test_near_cache_hits_fall_as_writes_rise(
    demo_cli: Any, tmp_path: Path, valkey_server: Any, key_prefix: str, clients: int
) -> None:
    """All reads: after the warm-up's first read of each key (a tracked GET, kept) the
    near cache answers from memory, faster than the bare GET. With writes, each write invalidates
    the copy and the next read of that key goes to Valkey: fewer hits."""
    ratios = {}
    for read_ratio in ("1", "0.5"):
        out = tmp_path / f"near-{read_ratio}.json"
        result = demo_cli(
            "bench", "run", "near-cache", "--requests", "3000", "--warmup", "0.3",
            "--read-ratio", read_ratio, "--clients", str(clients), "--json", str(out),
            "--no-histogram",
        )  # fmt: skip
        assert result.code == 0, result.err
        doc = json.loads(out.read_text())
        near = _near(doc)
        assert near["hits"] + near["misses"] == near["reads"]["n"]
        ratios[read_ratio] = near["hit_ratio"]
        if read_ratio == "1":
            assert near["counters"]["invalidations"] == 0  # nothing wrote
            assert near["writes"]["n"] == 0
            # warm: every key was read once and kept; a miss now is a hit turned away
            # while a push or a reply was unread on the tracking connections
            assert near["hit_ratio"] >= 0.95
            assert near["p50"] < _paths(doc)[("near-cache", "valkey GET")]["p50"]
        else:
            # a key written twice with no read between is invalidated once (default mode)
            assert near["counters"]["invalidations"] > 0.25 * near["writes"]["n"]
    assert ratios["0.5"] < ratios["1"] - 0.2
    assert "raced" in result.out and "near-cache: Near cache vs a network GET" in result.out
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    assert keys_left(client, key_prefix) == []
    close(client)


def test_near_cache_counters_add_up_over_processes(
    demo_cli: Any, tmp_path: Path, valkey_server: Any, key_prefix: str
) -> None:
    """Each process has a near cache of its own; the counters of both reach the JSON."""
    out = tmp_path / "near-processes.json"
    result = demo_cli(
        "bench", "run", "near-cache", "--requests", "3000", "--warmup", "0", "--read-ratio",
        "0.8", "--clients", "2", "--processes", "2", "--json", str(out), "--no-histogram",
    )  # fmt: skip
    assert result.code == 0, result.err
    near = _near(json.loads(out.read_text()))
    assert near["n"] == 3000 and near["hits"] + near["misses"] == near["reads"]["n"]
    assert near["counters"]["invalidations"] > 0 and near["counters"]["flushes"] == 0
    assert 0 < near["hit_ratio"] < 1
