"""Write-through: fresh reads after a write, and no stale copy after either failure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import valkey.exceptions

from flightcache.config import DbUrl
from flightcache.demos.write_through import (
    InjectedFault,
    cached_names,
    find_airline,
    unreachable_client,
)
from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.write_through import WriteThrough
from flightcache.patterns.write_through_airline import NAME_MAX, check_name, read_airline
from tests.conftest import json_of, keys_left, server_args


@pytest.fixture
def keys(valkey_client: Any, key_prefix: str) -> Iterator[Keys]:
    from flightcache.valkey_client import delete_matching

    scoped = Keys(key_prefix).scope("write-through")
    yield scoped
    delete_matching(valkey_client, scoped.match())


def _top_airline(pattern: WriteThrough) -> int:
    routes, _ = pattern.results.route_analysis()
    return int(find_airline(pattern, routes[0]["airline_code"])["airline_id"])


def _warm(pattern: WriteThrough) -> tuple[int, str, list[str]]:
    """Cache the route analysis, the top airline's hash and its detail; its id, name, tags."""
    airline_id = _top_airline(pattern)
    row, hit = pattern.airline(airline_id)
    assert not hit
    pattern.results.airline_detail(airline_id)
    tagged = pattern.results.tagged(airline_id)
    assert len(tagged) == 2  # the route analysis and the detail
    return airline_id, row["airlinename"], tagged


def _db_name(pattern: WriteThrough, airline_id: int) -> str:
    return read_airline(pattern.db, airline_id)["airlinename"]


def test_read_after_write_is_fresh(loaded: Any, valkey_client: Any, keys: Keys) -> None:
    pattern = WriteThrough(loaded, valkey_client, keys)
    airline_id, old, tagged = _warm(pattern)
    assert pattern.airline(airline_id) == ({**read_airline(pattern.db, airline_id)}, True)

    report = pattern.update_name(airline_id, "Fresh Air")
    assert report.committed and report.cache_written and report.attempts == 1
    assert set(tagged) <= set(report.invalidated)
    assert _db_name(pattern, airline_id) == "Fresh Air"

    row, hit = pattern.airline(airline_id)
    assert hit and row["airlinename"] == "Fresh Air"  # written through, not reloaded
    detail, hit = pattern.results.airline_detail(airline_id)
    assert not hit and detail[0]["airlinename"] == "Fresh Air"
    routes, hit = pattern.results.route_analysis()
    assert not hit
    assert "Fresh Air" in [r["airline_name"] for r in routes]
    assert old not in [r["airline_name"] for r in routes]
    # registered again on refill
    assert sorted(pattern.results.tagged(airline_id)) == sorted(tagged)


def test_failed_database_write_leaves_no_stale_copy(
    loaded: Any, valkey_client: Any, keys: Keys
) -> None:
    pattern = WriteThrough(loaded, valkey_client, keys)
    airline_id, old, tagged = _warm(pattern)

    def fail() -> None:
        raise InjectedFault("boom")

    with pytest.raises(InjectedFault):
        pattern.update_name(airline_id, "Never Committed", inside_transaction=fail)
    assert _db_name(pattern, airline_id) == old  # rolled back
    copies = cached_names(pattern, airline_id, tagged)
    assert "Never Committed" not in copies.values()
    assert all(name in (None, old) for name in copies.values()), copies
    row, hit = pattern.airline(airline_id)
    assert not hit and row["airlinename"] == old  # deleted before the failed COMMIT
    routes, _ = pattern.results.route_analysis()
    assert "Never Committed" not in [r["airline_name"] for r in routes]


def test_valkey_down_before_commit_refuses_the_write(loaded: Any, keys: Keys) -> None:
    broken, _ = unreachable_client()
    pattern = WriteThrough(loaded, broken, keys)
    airline_id = int(find_airline(pattern, "1")["airline_id"])
    old = _db_name(pattern, airline_id)
    with pytest.raises(valkey.exceptions.ConnectionError):
        pattern.update_name(airline_id, "Not Without Valkey")
    assert _db_name(pattern, airline_id) == old
    broken.close()


def test_failed_cache_write_after_commit_leaves_no_stale_copy(
    loaded: Any, valkey_client: Any, keys: Keys
) -> None:
    pattern = WriteThrough(loaded, valkey_client, keys, backoff_s=0.001)
    airline_id, old, tagged = _warm(pattern)
    broken, _ = unreachable_client()

    report = pattern.update_name(airline_id, "Committed Anyway", cache=broken)
    broken.close()
    assert report.committed and not report.cache_written
    assert report.attempts == 3 and "refused" in report.error.lower()
    assert _db_name(pattern, airline_id) == "Committed Anyway"
    copies = cached_names(pattern, airline_id, tagged)
    assert all(name is None for name in copies.values()), copies  # old name deleted first
    assert airline_id in pattern.repairs

    row, hit = pattern.airline(airline_id)  # recorded for repair: skips Valkey
    assert not hit and row["airlinename"] == "Committed Anyway"
    assert pattern.repairs == {}
    row, hit = pattern.airline(airline_id)
    assert hit and row["airlinename"] == "Committed Anyway"
    routes, _ = pattern.results.route_analysis()
    assert old not in [r["airline_name"] for r in routes]


def test_reader_between_invalidation_and_commit_is_undone(
    loaded: Any, db_url: DbUrl, valkey_client: Any, keys: Keys
) -> None:
    """A reader on another connection caches the old row before COMMIT; the write after
    COMMIT must overwrite the hash and drop the query results it cached."""
    from flightcache.db import connect

    pattern = WriteThrough(loaded, valkey_client, keys)
    airline_id, old, _ = _warm(pattern)
    other = connect(db_url)
    reader = WriteThrough(other, valkey_client, keys)

    def read_old_copies() -> None:
        assert reader.airline(airline_id)[0]["airlinename"] == old
        assert not reader.results.route_analysis()[1]  # rebuilt from the committed, old data

    try:
        pattern.update_name(airline_id, "After The Race", inside_transaction=read_old_copies)
    finally:
        other.close()
    row, hit = pattern.airline(airline_id)
    assert hit and row["airlinename"] == "After The Race"
    routes, hit = pattern.results.route_analysis()
    assert not hit and old not in [r["airline_name"] for r in routes]


def test_bad_input_matches_nothing(loaded: Any, valkey_client: Any, keys: Keys) -> None:
    pattern = WriteThrough(loaded, valkey_client, keys)
    for text in ("ZZ", "999", "99999999999999999999", "Q1' OR '1'='1", "'; DROP TABLE airline; --"):
        with pytest.raises(DataError, match="no airline with"):
            find_airline(pattern, text)
    assert find_airline(pattern, "q1")["airline_id"] == "1"  # codes are matched upper-case
    assert int(loaded.fetch("SELECT COUNT(*) FROM airline").rows[0][0]) > 0
    with pytest.raises(DataError, match=f"at most {NAME_MAX}"):
        check_name("x" * (NAME_MAX + 1))
    with pytest.raises(DataError, match="empty"):
        check_name("   ")
    old = _db_name(pattern, 1)
    with pytest.raises(DataError):
        pattern.update_name(1, "y" * (NAME_MAX + 1))
    assert _db_name(pattern, 1) == old


# -- the command ---------------------------------------------------------------------
def test_cli_json(
    cli: Any, loaded: Any, db_url: DbUrl, key_prefix: str, any_valkey: Any, valkey_client: Any
) -> None:
    before = loaded.fetch("SELECT airline_id, airlinename FROM airline ORDER BY airline_id").rows
    args = server_args(db_url, any_valkey, key_prefix)
    doc = json_of(
        cli(
            *args,
            "write-through",
            "--airline",
            "vm",
            "--name",
            "Renamed By Test",
            "--json",
            "--repeat",
            "3",
        )
    )
    assert doc["demo"] == "write-through" and doc["key_prefix"] == key_prefix + "write-through:"
    records = doc["records"]
    assert [r["type"] for r in records] == ["step"] * 10 + ["timing", "timing", "table"]
    steps = records[:10]
    assert steps[2]["hit"] is True and steps[2]["data"]["name"] == before[1][1]
    write = steps[3]
    assert write["data"]["committed"] and write["data"]["cache_written"]
    assert "BEGIN" in write["sql"] and "COMMIT" in write["sql"]
    version = write["data"]["version"]
    airline = write["data"]["airline_id"]
    version_key = f"{key_prefix}write-through:{{airline:{airline}}}:version"
    assert f"INCRBY {version_key} 1" in write["valkey"]  # what valkey-py sends for INCR
    assert any(line.startswith("EVALSHA ") for line in write["valkey"])
    assert steps[4]["data"]["name"] == "Renamed By Test"
    assert steps[4]["data"]["detail_name"] == "Renamed By Test"
    slow = steps[5]
    assert slow["ok"] and slow["data"]["read"] == "Renamed By Test"
    assert slow["data"]["filled"] is False and slow["data"]["cached"] != "Renamed By Test"
    assert int(slow["data"]["version"]) > int(slow["data"]["noted"]) > version
    assert any(line.startswith("SET ") and line.endswith(" 0 NX") for line in slow["valkey"])
    fault_a, fault_b = steps[6], steps[8]
    assert not fault_a["ok"] and "ROLLBACK" in fault_a["sql"]
    assert fault_a["on_purpose"] and fault_b["on_purpose"]
    assert [s["title"] for s in steps if not s["ok"]] == [fault_a["title"], fault_b["title"]]
    slow_name = slow["data"]["cached"]
    assert fault_a["data"]["database_name"] == slow_name
    assert all(n in (None, slow_name) for n in fault_a["data"]["cached_names"].values())
    assert fault_b["data"]["committed"] and not fault_b["data"]["cache_written"]
    assert fault_b["data"]["attempts"] == 3
    assert all(n is None for n in fault_b["data"]["cached_names"].values())
    assert steps[9]["data"]["name"] == fault_b["data"]["database_name"]
    assert steps[9]["data"]["repairs"] == {}
    writes, reads = records[10], records[11]
    assert [s["label"] for s in writes["series"]] == ["database only", "write-through"]
    assert [s["label"] for s in reads["series"]] == ["database", "cache hit"]
    assert all(s["n"] == 3 and s["p50"] > 0 for s in writes["series"] + reads["series"])
    # the database as the demo found it, and no key left behind
    after = loaded.fetch("SELECT airline_id, airlinename FROM airline ORDER BY airline_id").rows
    assert after == before
    assert keys_left(valkey_client, key_prefix) == []


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--airline", "ZZ"], 6, "no airline with IATA code 'ZZ'"),
        (["--airline", ""], 6, "no airline with IATA code ''"),
        (["--airline", "424242"], 6, "no airline with id 424242"),
        (["--airline", "Q1' OR '1'='1"], 6, "no airline with IATA code"),
        (["--name", "n" * 31], 6, "holds at most 30"),
        (["--name", ""], 6, "cannot be empty"),
    ],
)
def test_cli_bad_input(
    demo_cli: Any, loaded: Any, args: list[str], code: int, fragment: str
) -> None:
    before = loaded.fetch("SELECT airline_id, airlinename FROM airline ORDER BY airline_id").rows
    result = demo_cli("write-through", *args)
    assert result.code == code, (result.out, result.err)
    assert result.err.startswith("error: ") and fragment in result.err
    assert "hint:" in result.err and "Traceback" not in result.err
    after = loaded.fetch("SELECT airline_id, airlinename FROM airline ORDER BY airline_id").rows
    assert after == before


# -- the slow reader and the late writer: a version check closes both ----------------
class _Paused:
    """A database connection that stops at one point until the test lets it go on:
    ``after="select"`` once its first query has been read (a reader between its SELECT
    and its fill), ``after="commit"`` once a transaction has committed (a writer between
    its COMMIT and its cache write). It waits on real events, in a thread of its own."""

    def __init__(self, db: Any, after: str) -> None:
        import threading

        self.db, self.after = db, after
        self.dialect = db.dialect
        self.reached, self.go = threading.Event(), threading.Event()

    def _stop(self) -> None:
        self.reached.set()
        assert self.go.wait(30), "the test never let the paused connection go on"

    def fetch(self, sql: str, params: Any = None) -> Any:
        result = self.db.fetch(sql, params)
        if self.after == "select" and not self.reached.is_set():
            self._stop()
        return result

    def execute(self, sql: str, params: Any = None) -> int:
        return int(self.db.execute(sql, params))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield
        if self.after == "commit":
            self._stop()


def _race(
    db_url: DbUrl,
    any_valkey: Any,
    keys: Keys,
    after: str,
    slow: Callable[[WriteThrough], Any],
    meanwhile: Callable[[], None],
) -> Any:
    """Run ``slow`` in a thread of its own, on a connection of its own that stops at
    ``after``; run ``meanwhile`` while it waits there, then let it go on. What ``slow``
    returned (its error, raised here)."""
    import threading

    from flightcache.db import connect
    from flightcache.valkey_client import close
    from flightcache.valkey_client import connect as valkey_connect

    paused = _Paused(connect(db_url), after)
    client = valkey_connect(any_valkey.url)
    pattern = WriteThrough(paused, client, keys)
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(slow(pattern))
        except BaseException as exc:  # handed to the test, which raises it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert paused.reached.wait(30), f"the slow side never reached its {after}"
        meanwhile()
    finally:
        paused.go.set()
        thread.join(30)
        paused.db.close()
        close(client)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _cached_name(client: Any, keys: Keys, airline_id: int) -> str | None:
    name: str | None = client.hget(keys.airline(airline_id), "airlinename")
    return name


def test_slow_reader_cannot_write_the_old_row_back_after_an_update(
    loaded: Any, db_url: DbUrl, any_valkey: Any, valkey_client: Any, keys: Keys
) -> None:
    """A reader misses, SELECTs the old row, and stops before its fill; a writer renames
    the airline and commits and writes the new row through; then the reader goes on. Its
    fill must not put the old name back: Valkey ends with the new name, or no copy."""
    writer = WriteThrough(loaded, valkey_client, keys)
    airline_id = int(find_airline(writer, "1")["airline_id"])
    old = _db_name(writer, airline_id)

    def write() -> None:
        report = writer.update_name(airline_id, "Newer Than The Reader")
        assert report.committed and report.cache_written
        assert _cached_name(valkey_client, keys, airline_id) == "Newer Than The Reader"

    row, _ = _race(db_url, any_valkey, keys, "select", lambda r: r.airline(airline_id), write)
    assert row["airlinename"] == old  # the reader answered with what it read
    assert _cached_name(valkey_client, keys, airline_id) in (None, "Newer Than The Reader")
    assert writer.airline(airline_id)[0]["airlinename"] == "Newer Than The Reader"


def test_late_writer_cannot_overwrite_a_newer_write(
    loaded: Any, db_url: DbUrl, any_valkey: Any, valkey_client: Any, keys: Keys
) -> None:
    """Writer A commits and stops before its cache write; writer B renames the airline
    after it and writes through; then A goes on. A's row is older than B's committed one:
    Valkey must end with B's name, or no copy, never A's."""
    b = WriteThrough(loaded, valkey_client, keys)
    airline_id = int(find_airline(b, "1")["airline_id"])
    b.airline(airline_id)  # cached, as a busy airline is

    def write_b() -> None:
        assert _db_name(b, airline_id) == "Writer A"
        assert b.update_name(airline_id, "Writer B").committed
        assert _cached_name(valkey_client, keys, airline_id) == "Writer B"

    report = _race(
        db_url, any_valkey, keys, "commit", lambda a: a.update_name(airline_id, "Writer A"), write_b
    )
    assert report.committed and report.superseded and not report.error
    assert _db_name(b, airline_id) == "Writer B"
    assert _cached_name(valkey_client, keys, airline_id) in (None, "Writer B")
    assert b.airline(airline_id)[0]["airlinename"] == "Writer B"


def test_slow_reader_cannot_cache_an_old_query_result_after_an_update(
    loaded: Any, db_url: DbUrl, any_valkey: Any, valkey_client: Any, keys: Keys
) -> None:
    """The same race for a tagged query result: a reader runs the route analysis before a
    rename commits and stores it after the writer's drop. The epoch it noted has moved,
    so it deletes its own copy: Valkey ends with no copy, or one with the new name."""
    from flightcache.patterns.write_through_tags import ROUTES

    writer = WriteThrough(loaded, valkey_client, keys)
    airline_id = _top_airline(writer)
    old = _db_name(writer, airline_id)
    key = keys.query(ROUTES, {})
    valkey_client.delete(key)  # the next reader misses

    def write() -> None:
        assert writer.update_name(airline_id, "Newer Than The Query").cache_written

    rows, _ = _race(db_url, any_valkey, keys, "select", lambda r: r.results.route_analysis(), write)
    assert old in [r["airline_name"] for r in rows]  # the reader answered what it read
    assert cached_names(writer, airline_id, [key])[key] in (None, "Newer Than The Query")
    routes, _ = writer.results.route_analysis()
    assert "Newer Than The Query" in [r["airline_name"] for r in routes]
