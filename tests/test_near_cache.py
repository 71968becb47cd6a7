"""The near cache on real servers: one Valkey and the cluster, both databases where the
database answers, tracking in its three modes, the bounds, a killed tracking
connection, and readers racing a writer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ValkeyInstance, own_valkey_server

# one node of this module's own: a test stops it (SIGSTOP) for a moment
valkey_server = own_valkey_server("fc-test-near-")


def until(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


@pytest.fixture
def writer(valkey_client: Any) -> Any:
    """Another client than the near cache's: another process's writes, and its kills."""
    return valkey_client


@pytest.fixture
def one_db(mysql_url: Any) -> Iterator[Any]:
    """A database for the tests whose reads never reach it (every value is in Valkey)."""
    from flightcache.db import connect

    conn = connect(mysql_url)
    yield conn
    conn.close()


@contextlib.contextmanager
def near_cache(server: ValkeyInstance, db: Any, prefix: str, **options: Any) -> Iterator[Any]:
    """A near cache on a client of its own, its tracking up; closed on the way out."""
    from flightcache.keys import Keys
    from flightcache.patterns.near_cache import NearCache
    from flightcache.valkey_client import close, connect

    client = connect(server.url)
    near = NearCache(client, db, Keys(prefix).scope("near-cache"), ttl=120, **options)
    try:
        assert near.wait_ready(10), "tracking never came up"
        yield near
    finally:
        near.close()
        close(client)


def put(client: Any, near: Any, n: int, value: Any) -> str:
    """Write the cached result of parameter set ``n`` into Valkey, as a writer would."""
    from flightcache.named_queries import get

    key: str = near.key(get("flight_search"), {"n": n})
    client.set(key, json.dumps({"columns": ["v"], "rows": [[value]]}), ex=120)
    return key


def read(near: Any, n: int, **kw: Any) -> Any:
    from flightcache.named_queries import get

    return near.get(get("flight_search"), {"n": n}, **kw)


def pushes(near: Any) -> int:
    return sum(t.pushes for t in near.trackers.values())


def node_of(client: Any, name: str) -> Any:
    from flightcache.valkey_client import node_name, primaries

    return next(node for node in primaries(client) if node_name(node) == name)


@pytest.mark.parametrize("mode", ["default", "bcast", "optin"])
def test_hit_from_memory_and_a_second_clients_write_invalidates(
    loaded: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str, mode: str
) -> None:
    from flightcache.named_queries import bind, get

    q = get("flight_search")
    params = bind(loaded, q, {})
    with near_cache(any_valkey, loaded, key_prefix, mode=mode) as near:
        first = near.get(q, params)
        assert first.source == "database" and first.rows and not first.kept
        # the miss's GET was tracked (bcast: the key is under the prefix), so the fill's
        # own SET comes back as an invalidation; a read racing it would not be kept
        assert until(lambda: pushes(near) >= 1)
        second = near.get(q, params)  # Valkey answers, and the copy is kept
        assert second.source == "valkey" and second.kept and second.rows == first.rows
        third = near.get(q, params)
        assert third.from_memory and third.rows == first.rows
        assert near.store.counters.hits == 1 and len(near.store) == 1
        tracker = near.tracker(first.key)
        info = node_of(writer, tracker.name).execute_command(
            "CLIENT", "LIST", "ID", tracker.sink_id
        )
        assert f"id={tracker.sink_id} " in info and "resp=3" in info

        changed = {"columns": first.columns, "rows": [["changed"]]}
        writer.set(first.key, json.dumps(changed), ex=120)
        assert until(lambda: len(near.store) == 0), "the write's invalidation never arrived"
        assert near.store.counters.invalidations >= 1
        after = near.get(q, params)
        assert after.source == "valkey" and after.rows == [["changed"]]
        assert near.get(q, params).from_memory
        writer.delete(first.key)  # write-through's invalidation: the next read refills
        assert until(lambda: len(near.store) == 0)
        assert near.get(q, params).source == "database"


def test_default_mode_tracks_only_what_was_read(
    one_db: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str
) -> None:
    with near_cache(any_valkey, one_db, key_prefix, mode="default") as near:
        unread = put(writer, near, 1, "a")
        read_key = put(writer, near, 2, "a")
        assert read(near, 2).kept
        writer.set(unread, json.dumps({"columns": ["v"], "rows": [["b"]]}))
        writer.set(read_key, json.dumps({"columns": ["v"], "rows": [["b"]]}))
        assert until(lambda: near.store.counters.invalidations >= 1)
        time.sleep(0.1)  # room for a push about the unread key, which must not come
        assert near.store.counters.invalidations == 1 and pushes(near) == 1
        # the server told us once; it tracks the key again only after the next read
        writer.set(read_key, json.dumps({"columns": ["v"], "rows": [["c"]]}))
        time.sleep(0.1)
        assert pushes(near) == 1


def test_broadcast_mode_hears_every_change_under_its_prefix_read_or_not(
    one_db: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str
) -> None:

    with near_cache(any_valkey, one_db, key_prefix, mode="bcast") as near:
        assert near.prefixes == [near.keys.query_prefix()]
        for n in range(6):  # six keys, never read: six invalidations all the same
            put(writer, near, n, "a")
        assert until(lambda: near.store.counters.invalidations >= 6)

    # prefixes of one query only: the other queries' keys are read through, never kept
    only = near.keys.query_prefix("passenger_bookings")
    with near_cache(any_valkey, one_db, key_prefix, mode="bcast", prefixes=[only]) as near:
        put(writer, near, 1, "a")
        assert read(near, 1).source == "valkey" and not read(near, 1).kept
        assert len(near.store) == 0
        for tracker in near.trackers.values():
            assert f"id={tracker.reader_id} " in node_of(writer, tracker.name).execute_command(
                "CLIENT", "LIST", "ID", tracker.reader_id
            )
            assert tracker.reader_id != tracker.sink_id


def test_optin_mode_keeps_only_the_reads_it_asked_to_track(
    one_db: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str
) -> None:
    with near_cache(any_valkey, one_db, key_prefix, mode="optin") as near:
        untracked = put(writer, near, 1, "a")
        tracked = put(writer, near, 2, "a")
        assert read(near, 1, tracked=False).source == "valkey"
        assert not read(near, 1, tracked=False).kept and len(near.store) == 0
        assert read(near, 2).kept and read(near, 2).from_memory
        writer.set(untracked, json.dumps({"columns": ["v"], "rows": [["b"]]}))
        time.sleep(0.1)
        assert pushes(near) == 0  # the server never tracked the untracked read
        writer.set(tracked, json.dumps({"columns": ["v"], "rows": [["b"]]}))
        assert until(lambda: pushes(near) == 1 and len(near.store) == 0)
        assert read(near, 2).rows == [["b"]]


def test_the_store_stays_within_its_entries_and_bytes_least_recently_used_out(
    one_db: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str
) -> None:
    with near_cache(any_valkey, one_db, key_prefix, max_entries=3) as near:
        for n in range(1, 4):
            put(writer, near, n, "x" * 100)
            assert read(near, n).kept
        assert read(near, 1).from_memory  # 1 is now the most recently used; 2 the least
        put(writer, near, 4, "x" * 100)
        assert read(near, 4).kept
        assert len(near.store) == 3 and near.store.counters.evictions == 1
        assert not read(near, 2).from_memory  # evicted
        assert read(near, 1).from_memory

    with near_cache(any_valkey, one_db, key_prefix, max_bytes=700) as near:
        sizes = []
        for n in range(1, 4):
            put(writer, near, n, "y" * 200)
            sizes.append(read(near, n).bytes)
        assert near.store.bytes <= 700 and len(near.store) == 2
        assert near.store.counters.evictions == 1
        assert near.store.keys() == [near.key(*q) for q in _queries(2, 3)]
        put(writer, near, 9, "z" * 800)  # larger than the whole store: read, never kept
        assert not read(near, 9).kept and near.store.bytes <= 700
        assert sizes[0] > 200


def _queries(*ns: int) -> list[tuple[Any, dict[str, int]]]:
    from flightcache.named_queries import get

    return [(get("flight_search"), {"n": n}) for n in ns]


def test_bounds_are_checked() -> None:
    from flightcache.patterns.near_cache import LocalStore

    for entries, size in ((0, 10), (10, 0), (-1, -1)):
        with pytest.raises(ValueError):
            LocalStore(entries, size)


@pytest.mark.safety(7)
@pytest.mark.parametrize("which", ["tracking", "reader"])
def test_a_killed_connection_flushes_the_store_before_it_serves_again(
    one_db: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str, which: str
) -> None:
    """CLIENT KILL of the tracking connection (or of the tracked one): invalidations
    sent meanwhile are lost, so no copy may be served until tracking is on again."""
    with near_cache(any_valkey, one_db, key_prefix) as near:
        key = put(writer, near, 1, "before")
        assert read(near, 1).kept and read(near, 1).from_memory
        tracker = near.tracker(key)
        old_id = tracker.sink_id
        node = node_of(writer, tracker.name)
        victim = old_id if which == "tracking" else tracker.reader_id
        flushes = near.store.counters.flushes
        assert node.execute_command("CLIENT", "KILL", "ID", victim) in (1, "OK", True)
        # the killed connection missed this write's invalidation (or will, being gone)
        writer.set(key, json.dumps({"columns": ["v"], "rows": [["after"]]}), ex=120)
        served = read(near, 1)
        assert not served.from_memory and served.rows == [["after"]]
        # the tracking thread flushes when it sees the drop: the read above may come first,
        # and was refused the copy all the same (the socket had closed)
        assert until(lambda: near.store.counters.flushes > flushes)
        assert near.wait_ready(10)
        if which == "tracking":
            assert tracker.sink_id != old_id and tracker.connects == 2
        assert read(near, 1).kept and read(near, 1).from_memory
        # tracking is whole again: a write is heard on the new connection
        writer.set(key, json.dumps({"columns": ["v"], "rows": [["again"]]}), ex=120)
        assert until(lambda: len(near.store) == 0)
        assert read(near, 1).rows == [["again"]]


@pytest.mark.safety(7)
def test_a_silent_server_is_found_by_the_heartbeat_and_the_store_flushed(
    one_db: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> None:
    """A server that stops answering (SIGSTOP: no FIN, no push, as a cut network) may be
    missing writes; after two silent heartbeats the copies are no longer served."""
    from flightcache.valkey_client import close, connect

    writer = connect(valkey_server.url)
    pid = int(writer.info("server")["process_id"])
    try:
        with near_cache(valkey_server, one_db, key_prefix, heartbeat_s=0.2) as near:
            put(writer, near, 1, "a")
            assert read(near, 1).kept and read(near, 1).from_memory
            flushes = near.store.counters.flushes
            os.kill(pid, signal.SIGSTOP)
            try:
                assert until(lambda: near.store.counters.flushes > flushes, timeout=3)
                assert len(near.store) == 0
                assert not next(iter(near.trackers.values())).serving()
            finally:
                os.kill(pid, signal.SIGCONT)
            assert near.wait_ready(10)
            assert read(near, 1).kept and read(near, 1).from_memory
    finally:
        close(writer)


def test_no_reader_sees_a_value_older_than_an_invalidation_it_received(
    one_db: Any, any_valkey: ValkeyInstance, writer: Any, key_prefix: str
) -> None:
    """One writer, three readers, 3,000 writes over 8 keys: a reader that started after
    an invalidation was applied never gets a value written before it."""
    writes, nkeys = 3000, 8
    with near_cache(any_valkey, one_db, key_prefix) as near:
        served, stale = race(near, writer, writes, nkeys)
    assert stale == []
    assert near.store.counters.invalidations > 100
    assert served["memory"] > 100 and served["other"] > 100, served


def race(near: Any, writer: Any, writes: int, nkeys: int) -> tuple[dict[str, int], list[Any]]:
    """Run the writer against three readers; what the readers were served, and the
    reads that returned a value older than an invalidation already applied."""
    keys = [put(writer, near, n, 0) for n in range(nkeys)]
    written = dict.fromkeys(keys, 0)  # the last value whose SET has returned
    floor = dict.fromkeys(keys, 0)  # written[key] when an invalidation of key was applied
    applied = near.store.invalidate

    def invalidate(names: Any) -> None:
        names = list(names)
        applied(names)
        for name in names:
            if name in floor:
                floor[name] = max(floor[name], written[name])

    near.store.invalidate = invalidate
    stale: list[tuple[str, int, int]] = []
    served = {"memory": 0, "other": 0}
    done = threading.Event()

    def reader(offset: int) -> None:
        i = offset
        while not done.is_set():
            n = i % nkeys
            before = floor[keys[n]]
            got = read(near, n)
            value = got.rows[0][0]
            served["memory" if got.from_memory else "other"] += 1
            if value < before:
                stale.append((keys[n], value, before))
            i += 1

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, writes + 1):
            key = keys[i % nkeys]
            writer.set(key, json.dumps({"columns": ["v"], "rows": [[i]]}), ex=120)
            written[key] = i
    finally:
        done.set()
        for t in threads:
            t.join(30)
    return served, stale
