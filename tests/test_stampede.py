"""flightcache stampede: the XFetch rule, the herd under each defence, the lock's faults.

On both databases; the herd on one node and on the 3-node cluster. The herd is
released by a barrier, so the clients really arrive together.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import json_of, keys_left, server_args

# -- no servers ------------------------------------------------------------------------


def test_xfetch_rule() -> None:
    from flightcache.patterns.stampede import xfetch_early

    # r = 1: ln(r) = 0, so only an expired value is recomputed
    assert not xfetch_early(999, 100, 1.0, 1000, 1.0)
    assert xfetch_early(1000, 100, 1.0, 1000, 1.0)
    # 100 ms before the expiry with delta 100 and beta 1: early when -ln(r) >= 1
    assert xfetch_early(900, 100, 1.0, 1000, math.exp(-1) - 1e-9)
    assert not xfetch_early(900, 100, 1.0, 1000, math.exp(-1) + 1e-3)
    # beta 2 reaches twice as far ahead with the same draw
    assert not xfetch_early(800, 100, 1.0, 1000, 0.3)
    assert xfetch_early(800, 100, 2.0, 1000, 0.3)
    # a slower rebuild (larger delta) recomputes earlier
    assert xfetch_early(800, 200, 1.0, 1000, 0.3)


def test_lease_and_lead_sizes() -> None:
    from flightcache.demos.stampede import lead_for
    from flightcache.patterns.lock import LEASE_FLOOR_MS, lease_for

    assert lease_for(1) == LEASE_FLOOR_MS
    assert lease_for(200) == 600
    # XFetch's first early recompute (about delta*beta*ln(rate*delta*beta) ahead) is
    # inside the round's lead, so the herd is reading steadily by then
    delta, clients, think = 200, 50, 20.0
    assert lead_for(delta, 1.0, clients, think) > delta * math.log(clients / think * delta)


def test_command_bounds_match_the_demos() -> None:
    import inspect
    import typing

    import typer

    from flightcache.commands import stampede as command
    from flightcache.demos import stampede as limits

    assert command.MAX_CLIENTS == limits.MAX_CLIENTS
    assert command.MAX_REBUILD_MS == limits.MAX_REBUILD_MS
    # the Typer options take their bounds and defaults from the demo's, defined once
    params = inspect.signature(command.stampede).parameters
    hints = typing.get_type_hints(command.stampede, include_extras=True)
    bounds = {
        "clients": limits.MAX_CLIENTS,
        "rebuild_ms": limits.MAX_REBUILD_MS,
        "expiries": limits.MAX_EXPIRIES,
        "think_ms": limits.MAX_THINK_MS,
        "db_pool": limits.MAX_DB_POOL,
    }
    for name, bound in bounds.items():
        (option,) = [m for m in hints[name].__metadata__ if isinstance(m, typer.models.OptionInfo)]
        assert option.max == bound, name
    for name in ("clients", "rebuild_ms", "expiries", "beta", "think_ms", "db_pool"):
        assert params[name].default == getattr(limits.Options, name), name


def test_why_a_read_acted() -> None:
    from flightcache.demos.stampede import explain
    from flightcache.patterns.stampede import DefendedRead

    assert explain(DefendedRead("hit"), 1.0) == ""
    early = DefendedRead("early", early=True, expiry_in_ms=120, delta_ms=100, draw=0.25)
    assert explain(early, 1.0) == (
        "120 ms before the expiry, r = 0.2500: -delta*beta*ln(r) = 139 ms reaches it"
    )
    assert explain(DefendedRead("stale", expiry_in_ms=-35), 1.0) == "35 ms past the soft expiry"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("clients", 0, "--clients"),
        ("clients", 501, "--clients"),
        ("rebuild_ms", 5001, "--rebuild-ms"),
        ("beta", math.nan, "--beta must be greater than 0"),
        ("beta", 10.5, "--beta must be greater than 0"),
        ("expiries", 101, "--expiries"),
        ("think_ms", 0, "--think-ms"),
        ("db_pool", 101, "--db-pool"),
    ],
)
def test_options_check_names_the_option(field: str, value: Any, fragment: str) -> None:
    from flightcache.demos.stampede import Options
    from flightcache.errors import UsageError

    Options().check()
    with pytest.raises(UsageError, match=fragment):
        Options(**{field: value}).check()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--clients", "0"], "--clients"),
        (["--clients", "-3"], "--clients"),
        (["--clients", "100000"], "--clients"),
        (["--rebuild-ms", "-1"], "--rebuild-ms"),
        (["--beta", "0"], "--beta must be greater than 0"),
        (["--beta", "-1.5"], "--beta must be greater than 0"),
        (["--beta", "nan"], "--beta must be greater than 0"),
        (["--expiries", "0"], "--expiries"),
    ],
)
def test_bad_input_is_one_clear_line(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("stampede", *args)
    assert result.code == 2
    assert fragment in result.err
    assert "Traceback" not in result.err


# -- helpers on real servers ----------------------------------------------------------


@pytest.fixture(scope="module", params=["mysql", "postgresql"])
def tiny(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One database per backend for the whole module, with the tiny dataset: every test
    here only reads it (each with its own key prefix), so one load per backend will do."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect
    from tests.conftest import _fresh_database

    fresh = _fresh_database(request.param)
    url = next(fresh)
    conn = connect(url)
    try:
        load_generated(conn, "tiny", 1)
        yield conn
    finally:
        conn.close()
        next(fresh, None)  # drops it


class CountingDatabase:
    """A real connection whose fetches are counted here, apart from the pattern's count."""

    def __init__(self, inner: Any, counter: Counter[str]) -> None:
        self.inner, self.counter = inner, counter
        self.dialect = inner.dialect

    def fetch(self, sql: str, params: Any = None) -> Any:
        self.counter["fetch"] += 1
        return self.inner.fetch(sql, params)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def pool_of(tiny: Any) -> Iterator[Callable[..., Any]]:
    """pool_of(size) -> (Pool, Counter of fetches) on the test database."""
    from flightcache.db import connect
    from flightcache.demos.stampede import Pool

    pools: list[Any] = []

    def make(size: int = 4) -> tuple[Any, Counter[str]]:
        seen: Counter[str] = Counter()
        pool = Pool(lambda: CountingDatabase(connect(tiny.url), seen), size)
        pools.append(pool)
        return pool, seen

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def single(valkey_server: Any) -> Iterator[Any]:
    """A client of the one-node Valkey."""
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    yield client
    close(client)


def defence(name: str, pool: Any, dialect: str, key_prefix: str, rebuild_ms: int, **kw: Any) -> Any:
    from flightcache.keys import Keys
    from flightcache.patterns.stampede import Defence, Rebuild

    return Defence(name, Keys(key_prefix), Rebuild(pool, dialect, rebuild_ms), **kw)  # type: ignore[arg-type]


# -- the herd --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["valkey_server", "valkey_cluster"])
def test_herd_side_by_side(
    tiny: Any, pool_of: Any, where: str, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    """20 clients, a 100 ms rebuild: the lock, XFetch+lock and stale each query once per
    expiry; without a defence every client that missed queried."""
    from flightcache.demos.stampede import Wire, herd
    from flightcache.patterns.lock import lease_for
    from flightcache.patterns.stampede import DEFENCES, Built
    from flightcache.valkey_client import close, connect

    client = connect(request.getfixturevalue(where).url)
    pool, seen = pool_of(10)
    try:
        defences = [
            defence(n, pool, tiny.dialect, key_prefix, 100, lease_ms=lease_for(100))
            for n in DEFENCES
        ]
        first = defences[0].rebuild.run()
        built = Built(first.value, first.delta_ms)
        for d in defences:
            d.store(Wire(client), built)
        tallies = {
            t.defence: t
            for t in herd(
                defences,
                client,
                built,
                clients=20,
                expiries=1,
                think_ms=10,
                lead_ms=200,
                after_ms=200,
            )
        }
        for name, t in tallies.items():
            assert t.errors == 0, (name, t.first_error)
        assert tallies["lock"].queries == [1]
        assert tallies["xfetch+lock"].queries == [1]
        assert tallies["stale"].queries == [1]
        assert tallies["stale"].stale > 0  # the others were served while one refreshed
        assert tallies["none"].queries[0] >= 2  # every client that missed rebuilt
        assert tallies["xfetch"].queries[0] >= 1
        # the pattern's counter is every query the database saw
        assert seen["fetch"] == 1 + sum(sum(t.queries) for t in tallies.values())
        # the traced client's commands: the lock winner's read, released by the script
        traced = tallies["lock"].traced()
        assert traced is not None and traced.outcome == "rebuilt"
        names = [str(c[0]) for c in traced.valkey]
        assert names[:2] == ["GET", "SET"] and "NX" in traced.valkey[1]
        assert names[-1] in ("EVALSHA", "EVAL") and traced.sql
    finally:
        close(client)


def test_bursts(tiny: Any, pool_of: Any, single: Any, key_prefix: str) -> None:
    """Every reader draws an early recompute at once: XFetch alone lets each one query,
    XFetch with the lock lets one. A herd on a missing key, past a soft expiry, or on
    a rebuild slower than the lease (renewed meanwhile) queries once."""
    from flightcache.demos.stampede import Wire, burst
    from flightcache.keys import Keys
    from flightcache.patterns.stampede import DEFENCES, Built, DefendedRead

    keys = Keys(key_prefix)
    pool, _ = pool_of(10)
    certain = 1e-12  # -ln(r) = 27.6: every draw recomputes early

    def run(name: str, *, stored: bool = True, expiry_in: int | None = None) -> list[Any]:
        d = defence(name, pool, tiny.dialect, key_prefix, 100, lease_ms=1000, rand=lambda: certain)
        if stored:
            expiry = None if expiry_in is None else d.clock() + expiry_in
            d.store(Wire(single), Built('{"columns":[],"rows":[]}', 100), expiry)
        reads = [r for r, _ in burst(d, single, 12)]
        assert all(isinstance(r, DefendedRead) for r in reads), reads
        assert all(r.value is not None for r in reads)
        return [d.rebuild.queries, Counter(r.outcome for r in reads)]

    queries, outcomes = run("xfetch", expiry_in=1000)  # 2.7 s of reach is past it
    assert queries == 12 and outcomes == {"early": 12}
    queries, outcomes = run("xfetch+lock", expiry_in=1000)
    assert queries == 1 and outcomes["early"] == 1
    assert outcomes["early-busy"] + outcomes["rechecked"] == 11
    queries, outcomes = run("lock", stored=False)
    assert queries == 1 and outcomes["rebuilt"] == 1
    assert outcomes["waited"] + outcomes["rechecked"] == 11
    queries, outcomes = run("stale", expiry_in=-1)  # past its soft expiry, still stored
    assert queries == 1 and outcomes["refreshed"] == 1
    assert outcomes["stale"] + outcomes["rechecked"] == 11
    # a 900 ms rebuild under a 400 ms lease: the holder renews it, nobody else rebuilds
    slow = defence("lock", pool, tiny.dialect, key_prefix, 900, lease_ms=400)
    single.delete(slow.value_key)
    reads = [r for r, _ in burst(slow, single, 5)]
    holder = [r for r in reads if isinstance(r, DefendedRead) and r.outcome == "rebuilt"]
    assert slow.rebuild.queries == 1 and len(holder) == 1 and holder[0].renewals >= 1
    assert all(isinstance(r, DefendedRead) for r in reads), reads
    single.delete(
        *(k for name in DEFENCES for k in (keys.stampede_value(name), keys.stampede_lock(name)))
    )


# -- the lock's faults -------------------------------------------------------------------


def test_lock_lease_renewal_and_owner(valkey_client: Any, key_prefix: str) -> None:
    """The lock alone: a lease on SET NX, renewed while held, released by its owner only;
    a holder whose lock was taken from it stops renewing and leaves the new lock alone."""
    from flightcache.keys import Keys
    from flightcache.patterns.lock import Lock

    lock = Lock(Keys(key_prefix).stampede_lock("lock"), lease_ms=200)
    assert lock.acquire(valkey_client, "a")
    assert not lock.acquire(valkey_client, "b")
    assert 0 < valkey_client.pttl(lock.key) <= 200
    with lock.held(valkey_client, "a") as lease:
        time.sleep(0.35)  # past the first lease: renewed meanwhile
        assert valkey_client.get(lock.key) == "a"
    assert lease.renewals >= 1 and not lease.lost
    assert valkey_client.exists(lock.key) == 0
    assert lock.acquire(valkey_client, "c")
    with lock.held(valkey_client, "c") as lease:
        valkey_client.set(lock.key, "d", px=5000)
        time.sleep(0.15)
    assert lease.lost and lease.renewals == 0
    assert valkey_client.get(lock.key) == "d"
    valkey_client.delete(lock.key)


def test_dead_holder_and_stranger_release(
    tiny: Any, pool_of: Any, valkey_client: Any, key_prefix: str
) -> None:
    from flightcache.demos.stampede import Wire

    pool, _ = pool_of(1)
    d = defence("lock", pool, tiny.dialect, key_prefix, 10, lease_ms=300)
    w = Wire(valkey_client)
    # a holder that never releases: the reader waits for its lease, then rebuilds
    assert d.lock.acquire(w, "dead-client")
    lease_left = valkey_client.pttl(d.lock_key)
    start = time.monotonic()
    read = d.read(w)
    waited_ms = (time.monotonic() - start) * 1000
    assert read.outcome == "rebuilt" and read.polls > 0 and d.rebuild.queries == 1
    assert waited_ms >= lease_left - 15  # it could not have won the lock any sooner
    assert valkey_client.exists(d.lock_key) == 0  # and released its own lock
    assert d.read(w).outcome == "hit"
    # a release by a client that does not own the lock changes nothing
    assert d.lock.acquire(w, "owner")
    assert not d.lock.release(w, "stranger")
    assert not d.lock.renew(w, "stranger")
    assert valkey_client.get(d.lock_key) == "owner"
    assert d.lock.renew(w, "owner")
    assert d.lock.release(w, "owner")
    assert valkey_client.exists(d.lock_key) == 0
    valkey_client.delete(d.value_key)


HOLDER = """
import sys
from flightcache.config import DbUrl, ValkeyUrl
from flightcache.db import connect
from flightcache.keys import Keys
from flightcache.demos.stampede import Pool, Wire
from flightcache.patterns.stampede import Defence, Rebuild
from flightcache.valkey_client import connect as vconnect

db = connect(DbUrl.parse(sys.argv[1]))
rebuild = Rebuild(Pool(lambda: db, 1), db.dialect, 1000)
Defence("lock", Keys(sys.argv[3]), rebuild, lease_ms=200).read(
    Wire(vconnect(ValkeyUrl.parse(sys.argv[2])))
)
"""


def test_holder_process_killed_mid_rebuild(
    tiny: Any, pool_of: Any, valkey_server: Any, single: Any, key_prefix: str
) -> None:
    """A process takes the lock, starts a 1 s rebuild and is killed (SIGKILL): its lease
    runs out and another client rebuilds."""
    from flightcache.demos.stampede import Wire

    client = single
    pool, _ = pool_of(1)
    d = defence("lock", pool, tiny.dialect, key_prefix, 10, lease_ms=200)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            tiny.url.url(redact=False),
            str(valkey_server.url),
            key_prefix,
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while client.get(d.lock_key) is None:
            assert holder.poll() is None, "the holder exited before taking the lock"
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.01)
        dead_token = client.get(d.lock_key)
        time.sleep(0.3)  # it renews its lease while its rebuild runs
        assert client.get(d.lock_key) == dead_token
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        read = d.read(Wire(client))
        assert read.outcome == "rebuilt" and d.rebuild.queries == 1
        assert client.exists(d.lock_key) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        client.delete(d.value_key, d.lock_key)


def test_failures_in_a_herd(tiny: Any, pool_of: Any, single: Any, key_prefix: str) -> None:
    """A rebuild that fails releases the lock at once and is counted per client; a
    Valkey that cannot be reached fails the round with the driver's error, no thread
    left behind."""
    import threading

    import valkey.exceptions

    from flightcache.demos.stampede import Wire, burst, describe, herd
    from flightcache.patterns.stampede import Built
    from flightcache.valkey_client import unreachable

    pool, _ = pool_of(2)
    other = "postgresql" if tiny.dialect == "mysql" else "mysql"
    broken = defence("lock", pool, other, key_prefix, 10, lease_ms=5000)  # wrong dialect
    built = Built('{"columns":[],"rows":[]}', 10)
    (tally,) = herd(
        [broken], single, built, clients=3, expiries=1, think_ms=5, lead_ms=20, after_ms=80
    )
    assert tally.errors > 0 and tally.outcomes["error"] == tally.errors
    assert "syntax" in tally.first_error.lower() or "error" in tally.first_error.lower()
    # each failed rebuild gave the lock back: no client waited out the 5 s lease
    assert tally.elapsed_ns < 5e9 and single.exists(broken.lock_key) == 0
    single.delete(broken.value_key)

    gone = unreachable()
    d = defence("lock", pool, tiny.dialect, key_prefix, 0)
    for result, _ in burst(d, gone, 3):
        assert isinstance(result, valkey.exceptions.ConnectionError)
        assert "connect" in describe(result).lower()
    before = threading.active_count()
    with pytest.raises(valkey.exceptions.ConnectionError):
        herd([d], gone, built, clients=3, expiries=1, think_ms=5, lead_ms=20, after_ms=20)
    assert threading.active_count() == before
    with pytest.raises(valkey.exceptions.ConnectionError):
        d.store(Wire(gone), built)


# -- the command -------------------------------------------------------------------------


def test_cli_json_run_and_cleanup(cli: Any, tiny: Any, valkey_server: Any, key_prefix: str) -> None:
    from flightcache.valkey_client import close, connect

    args = server_args(tiny.url, valkey_server, key_prefix)
    doc = json_of(
        cli(
            *args,
            "stampede",
            "--clients",
            "4",
            "--rebuild-ms",
            "20",
            "--expiries",
            "1",
            "--think-ms",
            "5",
            "--json",
        )
    )
    steps = [r for r in doc["records"] if r["type"] == "step"]
    assert all(s["ok"] for s in steps), [s["outcome"] for s in steps if not s["ok"]]
    per = {s["data"]["defence"]: s["data"] for s in steps if "defence" in s["data"]}
    assert set(per) == {"none", "lock", "xfetch", "xfetch+lock", "stale"}
    assert per["lock"]["queries_per_expiry"] == [1]
    assert per["xfetch+lock"]["max_queries_per_expiry"] <= 1
    assert per["lock"]["p99_ns"] >= per["lock"]["p50_ns"] > 0
    (table,) = [r for r in doc["records"] if r["type"] == "table"]
    assert [row[0] for row in table["rows"]] == ["none", "lock", "xfetch", "xfetch+lock", "stale"]
    client = connect(valkey_server.url)
    try:
        assert keys_left(client, key_prefix) == []
    finally:
        close(client)
    # Valkey down: one clear line, no traceback
    dead = cli(
        "--db-url", tiny.url.url(redact=False), "--valkey-url", "valkey://127.0.0.1:1", "stampede"
    )
    assert dead.code == 4 and "cannot reach Valkey" in dead.err and "Traceback" not in dead.err
