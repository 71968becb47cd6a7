"""Write-behind on real servers: both databases, one Valkey node and a cluster.

The pattern's promises: a booking is visible in Valkey at once; the worker moves
every accepted booking into the database exactly once, across redelivery, a
worker killed with SIGKILL between commit and XACK, and a database that is down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl
from flightcache.demos import write_behind as demo
from flightcache.keys import Keys
from flightcache.patterns import (
    write_behind,
    write_behind_batch,
    write_behind_dead_letters,
    write_behind_worker,
)


@pytest.fixture
def client(any_valkey: Any, key_prefix: str) -> Iterator[Any]:
    from flightcache.valkey_client import close, connect, delete_matching

    c = connect(any_valkey.url)
    yield c
    delete_matching(c, Keys(key_prefix).match())
    close(c)


def _keys(prefix: str) -> Keys:
    return Keys(prefix).scope("write-behind")


def _flights(db: Any, n: int = 50) -> list[int]:
    return sorted(int(r[0]) for r in db.fetch("SELECT flight_id FROM flight").rows)[:n]


def _spread(flights: list[int], count: int) -> list[tuple[int, int]]:
    return [(flights[i % len(flights)], 1 + i % 3) for i in range(count)]


def _queued(db: Any, client: Any, prefix: str, count: int) -> tuple[Keys, Any, int]:
    """``count`` bookings queued; returns the keys, the pattern and the seats accepted."""
    keys = _keys(prefix)
    pattern = write_behind.WriteBehind(client, db, keys)
    pattern.ensure_groups()
    bookings = _spread(_flights(db), count)
    assert pattern.book_many(bookings) == count
    return keys, pattern, sum(s for _, s in bookings)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTCACHE_")}
    env["FLIGHTCACHE_CONFIG"] = str(tmp_path / "no-config.toml")
    return env


def _global(db_url: DbUrl, valkey_url: Any, prefix: str) -> list[str]:
    return [
        "--db-url",
        db_url.url(redact=False),
        "--valkey-url",
        valkey_url.url(redact=False),
        "--key-prefix",
        prefix,
    ]


def test_a_booking_is_visible_in_valkey_at_once(loaded: Any, client: Any, key_prefix: str) -> None:
    keys = _keys(key_prefix)
    pattern = write_behind.WriteBehind(client, loaded, keys)
    pattern.ensure_groups()
    flight = _flights(loaded, 1)[0]
    first = pattern.book(flight, 3)
    second = pattern.book(flight, 2)
    assert (first.booked, second.booked) == (3, 5)
    assert pattern.booked(flight) == 5
    shard = write_behind.shard_of(flight)
    entries = client.xrange(keys.write_behind_queue(shard))
    assert [e[1] for e in entries] == [
        {"flight": str(flight), "seats": "3"},
        {"flight": str(flight), "seats": "2"},
    ]
    assert [e[0] for e in entries] == [first.entry_id, second.entry_id]
    # the database has not heard of it: only the worker writes there
    write_behind.ensure_tables(loaded)
    assert write_behind.db_total(loaded, keys.prefix) == 0
    assert write_behind.backlog(pattern.depth()) == 2


def test_a_pipelined_booking_whose_script_was_flushed_still_runs(
    loaded: Any, client: Any, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SCRIPT FLUSH between loading the script and the pipeline (a restart, a failover):
    every EVALSHA answers NOSCRIPT, and each booking runs again through EVAL."""
    from flightcache.valkey_client import primaries

    keys = _keys(key_prefix)
    pattern = write_behind.WriteBehind(client, loaded, keys)
    pattern.ensure_groups()
    for node in primaries(client):
        node.script_flush()
    monkeypatch.setattr(pattern, "load_script", lambda: None)  # flushed after loading
    bookings = _spread(_flights(loaded), 30)
    assert pattern.book_many(bookings) == 30
    assert pattern.accepted_writes == 30
    assert write_behind.backlog(pattern.depth()) == 30
    assert pattern.valkey_total({f for f, _ in bookings}) == sum(s for _, s in bookings)


def test_the_dead_letter_script_moves_a_pending_entry_once(client: Any, key_prefix: str) -> None:
    """Pending: acked and added to the dead letters (1). Acked already, by another
    worker: nothing added (0), so an entry has one dead letter at most."""
    keys = _keys(key_prefix)
    write_behind.WriteBehind(client, None, keys).ensure_groups()
    queue, dead = keys.write_behind_queue(3), keys.write_behind_dead_letters(3)
    entry = str(client.xadd(queue, {"flight": 3, "seats": 1}))
    client.xreadgroup(write_behind.GROUP, "worker-1", {queue: ">"}, count=1)
    args = [write_behind.GROUP, entry, 10, "flight", "3", "entry", entry, "error", "refused"]
    assert write_behind_dead_letters.DEAD_LETTER(client, [queue, dead], args) == 1
    assert write_behind_dead_letters.DEAD_LETTER(client, [queue, dead], args) == 0
    assert [fields for _, fields in client.xrange(dead)] == [
        {"flight": "3", "entry": entry, "error": "refused"}
    ]
    assert client.xpending(queue, write_behind.GROUP)["pending"] == 0


def test_the_worker_drains_everything(loaded: Any, client: Any, key_prefix: str) -> None:
    keys = _keys(key_prefix)
    pattern = write_behind.WriteBehind(client, loaded, keys)
    pattern.ensure_groups()
    bookings = _spread(_flights(loaded), 1_234)
    assert pattern.book_many(bookings) == 1_234
    worker = write_behind_worker.Worker(
        client, keys, lambda: loaded, batch=100, own_connection=False
    )
    report = worker.run(once=True)
    assert report.applied == 1_234 and report.skipped == 0
    assert report.batches >= 13
    assert write_behind.db_total(loaded, keys.prefix) == sum(s for _, s in bookings)
    assert write_behind.applied_count(loaded, keys.prefix) == 1_234
    for flight in {f for f, _ in bookings}:
        expected = sum(s for f, s in bookings if f == flight)
        assert (
            write_behind.db_total(loaded, keys.prefix, flight) == expected == pattern.booked(flight)
        )
    depths = pattern.depth()
    assert write_behind.backlog(depths) == 0
    assert sum(d.length for d in depths) == 0  # acked entries are trimmed away


def test_applying_the_same_entries_twice_counts_them_once(loaded: Any, key_prefix: str) -> None:
    write_behind.ensure_tables(loaded)
    flights = _flights(loaded, 3)
    entries = [
        write_behind_batch.QueueEntry(f"1700000000000-{i}", flights[i % 3], 2) for i in range(40)
    ]
    assert write_behind_batch.apply_batch(loaded, key_prefix, 5, entries) == (40, 0)
    assert write_behind.db_total(loaded, key_prefix) == 80
    assert write_behind_batch.apply_batch(loaded, key_prefix, 5, entries) == (0, 40)
    # a batch that overlaps: only the new half counts
    more = entries[20:] + [
        write_behind_batch.QueueEntry(f"1700000000001-{i}", flights[0], 1) for i in range(10)
    ]
    assert write_behind_batch.apply_batch(loaded, key_prefix, 5, more) == (10, 20)
    assert write_behind.db_total(loaded, key_prefix) == 90
    assert write_behind.applied_count(loaded, key_prefix) == 50
    # the same ids in another shard's stream are other entries
    assert write_behind_batch.apply_batch(loaded, key_prefix, 6, entries[:1]) == (1, 0)


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    db_url: DbUrl, loaded: Any, client: Any, any_valkey: Any, key_prefix: str, tmp_path: Path
) -> None:
    write_behind.ensure_tables(loaded)
    keys, pattern, accepted = _queued(loaded, client, key_prefix, 900)
    command = demo.worker_command(50, "crashy", _global(db_url, any_valkey.url, key_prefix))
    pid, code, committed = demo.kill_after_commit(command, _env(tmp_path), loaded, keys.prefix)
    assert code == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # really gone
    assert 0 < committed <= 50
    assert write_behind.applied_count(loaded, keys.prefix) == committed
    assert 0 < write_behind.db_total(loaded, keys.prefix) < accepted
    pending = sum(d.pending for d in pattern.depth())
    assert pending == committed  # applied, never acked

    done = subprocess.run(
        command, env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["recovered"] == committed
    assert summary["skipped"] == committed  # redelivered, found applied, not counted again
    assert summary["applied"] == 900 - committed
    assert summary["backlog"] == 0
    assert write_behind.db_total(loaded, keys.prefix) == accepted
    assert write_behind.applied_count(loaded, keys.prefix) == 900


def test_a_database_that_is_down_leaves_entries_pending(
    db_url: DbUrl, loaded: Any, client: Any, any_valkey: Any, key_prefix: str, cli: Any
) -> None:
    from flightcache.stack import proc

    keys, pattern, accepted = _queued(loaded, client, key_prefix, 300)
    closed = proc.free_port()
    down = db_url.url(redact=False).replace(f":{db_url.port}/", f":{closed}/")
    assert down != db_url.url(redact=False)
    common = ["--valkey-url", any_valkey.url.url(redact=False), "--key-prefix", key_prefix]
    worker = ["write-behind", "worker", "--once", "--batch", "100", "--json"]
    result = cli("--db-url", down, *common, *worker, "--max-seconds", "1.5")
    assert result.code == 4, result.err
    assert "database unavailable" in result.err and "pending (not acked)" in result.err
    assert "Traceback" not in result.err
    summary = json.loads(result.out)
    assert summary["applied"] == 0 and summary["retries"] >= 2
    stuck = summary["stopped_pending"]
    assert 0 < stuck <= 100  # the batch it read: one shard's entries, at most --batch
    depths = pattern.depth()
    assert sum(d.pending for d in depths) == stuck  # read, not acked
    assert write_behind.backlog(depths) == 300  # nothing lost

    result = cli("--db-url", db_url.url(redact=False), *common, *worker)
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["recovered"] == stuck and summary["skipped"] == 0
    assert summary["applied"] == 300 and summary["backlog"] == 0
    assert write_behind.db_total(loaded, keys.prefix) == accepted


def test_the_demo_runs_and_adds_up(
    db_url: DbUrl, loaded: Any, any_valkey: Any, key_prefix: str, cli: Any
) -> None:
    result = cli(
        *_global(db_url, any_valkey.url, key_prefix),
        "write-behind",
        "--burst",
        "600",
        "--batch",
        "100",
        "--crash-writes",
        "400",
        "--repeat",
        "5",
        "--json",
    )
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["demo"] == "write-behind"
    records = document["records"]
    assert all(r["ok"] for r in records if r["type"] == "step")
    timing = next(r for r in records if r["type"] == "timing")
    assert [s["label"][:12] for s in timing["series"]] == ["write-throug", "write-behind"]
    final = records[-1]
    assert final["title"] == "Nothing lost, nothing applied twice"
    row = dict(zip(final["columns"], final["rows"][0], strict=True))
    assert row["accepted bookings"] == row["entries applied"] > 1_000
    assert row["accepted seats"] == row["database total"]
    assert row["duplicates"] == 0 and row["lost"] == 0
    assert row["redelivered, skipped"] > 0
    # keys and the demo's rows are gone afterwards
    write_behind.ensure_tables(loaded)
    assert write_behind.applied_count(loaded, key_prefix + "write-behind:") == 0
    from flightcache.valkey_client import close, connect, delete_matching

    c = connect(any_valkey.url)
    assert delete_matching(c, Keys(key_prefix).match()) == 0
    close(c)


def test_bad_input_is_one_clear_line(
    db_url: DbUrl, loaded: Any, valkey_server: Any, key_prefix: str, cli: Any
) -> None:
    common = _global(db_url, valkey_server.url, key_prefix)
    result = cli(*common, "write-behind", "book", "--flight", "987654321", "--seats", "2")
    assert result.code == 6, result.err
    assert result.err.startswith("error: flight 987654321 does not exist")
    assert "hint:" in result.err and "Traceback" not in result.err
    result = cli(*common, "write-behind", "book", "--flight", "1", "--seats", "0")
    assert result.code == 3 and "a booking takes one seat or more" in result.err
    result = cli(*common, "write-behind", "book", "--flight", "1 OR 1=1")
    assert result.code == 2  # not a number: Typer's usage error
    result = cli(*common, "write-behind", "worker", "--batch", "0")
    assert result.code == 3 and "--batch 0" in result.err and "hint:" in result.err
    result = cli(*common, "write-behind", "--batch", "0")
    assert result.code == 3 and "--batch 0" in result.err
    result = cli(*common, "write-behind", "--flight", "987654321")
    assert result.code == 6 and "does not exist" in result.err
    # nothing was queued by any of them
    from flightcache.valkey_client import close, connect, delete_matching

    c = connect(valkey_server.url)
    assert delete_matching(c, Keys(key_prefix).match()) == 0
    close(c)
    # a good booking, for contrast
    flight = _flights(loaded, 1)[0]
    result = cli(*common, "write-behind", "book", "--flight", str(flight), "--seats", "2", "--json")
    assert result.code == 0, result.err
    booking = json.loads(result.out)
    assert booking["booked"] == 2 and booking["backlog"] == 1


# -- poison entries, bounds, a worker that always ends (issue 12, item 5) -------------------
def _xadd(client: Any, keys: Keys, flight: int, seats: Any) -> str:
    """An entry straight into its shard's stream, past the booking script's checks."""
    return str(
        client.xadd(
            keys.write_behind_queue(write_behind.shard_of(flight)),
            {"flight": flight, "seats": seats},
        )
    )


@pytest.mark.safety(5)
def test_poison_entries_go_to_the_dead_letters_once(
    db_url: DbUrl, loaded: Any, client: Any, any_valkey: Any, key_prefix: str, cli: Any
) -> None:
    """Entries injected with XADD that no database can take: a flight that does not
    exist, seats beyond a BIGINT (the database's DataError), a malformed entry. Each is
    dead-lettered with its error and acked; the good ones around it are applied; a second
    run retries none of them. A consumer a killed worker left behind is removed."""
    keys, pattern, accepted = _queued(loaded, client, key_prefix, 300)
    missing = max(_flights(loaded, 10_000)) + 1
    real = _flights(loaded, 1)[0]
    poison = [  # (shard, id): ids are per stream, two shards may hand out the same one
        (write_behind.shard_of(f), _xadd(client, keys, f, seats))
        for f, seats in ((missing, 1), (real, str(10**20)), (real, "two"), (real, 0))
    ]
    more = pattern.book_many(_spread(_flights(loaded), 100))  # good ones after the poison
    accepted += sum(s for _, s in _spread(_flights(loaded), 100))
    # a consumer of a worker that was killed, holding one entry
    ghost = keys.write_behind_queue(write_behind.shard_of(real))
    client.xreadgroup(write_behind.GROUP, "ghost", {ghost: ">"}, count=1)

    common = _global(db_url, any_valkey.url, key_prefix)
    worker = ["write-behind", "worker", "--once", "--batch", "50", "--claim-idle", "0", "--json"]
    result = cli(*common, *worker, "--max-seconds", "30")  # today: retried until time is up
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["dead_lettered"] == 4 and summary["dead_letters"] == 4
    assert summary["backlog"] == 0 and summary["retries"] == 0
    assert summary["swept"] >= 1
    assert write_behind.db_total(loaded, keys.prefix) == accepted  # every good booking, once
    assert write_behind.applied_count(loaded, keys.prefix) == 300 + more
    consumers = [c["name"] for c in client.xinfo_consumers(ghost, write_behind.GROUP)]
    assert "ghost" not in consumers

    result = cli(*common, "write-behind", "dead-letters", "--json")
    assert result.code == 0, result.err
    listed = json.loads(result.out)
    assert listed["total"] == 4
    errors = {(d["shard"], d["entry"]): d["error"] for d in listed["dead_letters"]}
    assert set(errors) == set(poison)
    assert errors[poison[0]] == f"flight {missing} does not exist"
    assert "out of range" in errors[poison[1]].lower()  # the database's own words
    assert errors[poison[2]].startswith("malformed entry") and "two" in errors[poison[2]]
    assert errors[poison[3]].startswith("malformed entry: 0 seats")
    for key in {keys.write_behind_dead_letters(write_behind.shard_of(f)) for f in (missing, real)}:
        assert client.xlen(key) >= 1  # beside its shard's queue: same hash tag

    result = cli(*common, *worker)  # nothing is retried
    assert result.code == 0, result.err
    again = json.loads(result.out)
    assert again["dead_lettered"] == 0 and again["dead_letters"] == 4 and again["applied"] == 0


@pytest.mark.safety(5)
@pytest.mark.parametrize("db_url", ["mysql", "postgresql"], indirect=True)
def test_worker_once_ends_when_the_database_is_unreachable(
    db_url: DbUrl, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    """No --max-seconds: --once alone gives up after a bounded number of retries."""
    import sys
    import time

    from flightcache.stack import proc
    from flightcache.valkey_client import close, connect, delete_matching

    keys = _keys(key_prefix)
    c = connect(valkey_server.url)
    write_behind.WriteBehind(c, None, keys).ensure_groups()
    for i in range(20):
        _xadd(c, keys, 1 + i, 1)  # well-formed entries; the database decides
    closed = proc.free_port()  # a real port where nothing listens
    down = db_url.url(redact=False).replace(f":{db_url.port}/", f":{closed}/")
    command = [
        sys.executable, "-m", "flightcache", *_global(DbUrl.parse(down), valkey_server.url,
        key_prefix), "write-behind", "worker", "--once", "--json",
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, env=_env(tmp_path), capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        assert delete_matching(c, Keys(key_prefix).match()) > 0
        close(c)
    assert time.monotonic() - started < 30
    assert done.returncode == 4, done.stderr
    assert "stayed unavailable" in done.stderr and "none of them lost" in done.stderr
    summary = json.loads(done.stdout)
    assert summary["retries"] == write_behind_worker.ONCE_RETRIES and summary["backlog"] == 20
    assert summary["dead_lettered"] == 0  # a database that is down is not the entries' fault


@pytest.mark.safety(5)
def test_out_of_range_input_is_refused_before_anything_is_written(
    db_url: DbUrl, loaded: Any, valkey_server: Any, key_prefix: str, cli: Any
) -> None:
    common = _global(db_url, valkey_server.url, key_prefix)
    flight = str(_flights(loaded, 1)[0])
    cases = [
        (["book", "--flight", flight, "--seats", "1001"], "takes at most 1,000"),
        (["book", "--flight", flight, "--seats", str(2**70)], ""),
        (["book", "--flight", "0"], "--flight 0 must be above zero"),
        (["book", "--flight", "-5"], "--flight -5 must be above zero"),
        (["book", "--flight", str(2**31)], "cannot exist"),
        (["--seats", "5000"], "takes at most 1,000"),
        (["--flight", "0"], "--flight 0 must be above zero"),
        (["worker", "--once", "--batch", "1000000"], "more than one transaction"),
    ]
    for args, said in cases:
        result = cli(*common, "write-behind", *args)
        assert result.code in (2, 3), (args, result.err)
        assert said in result.err and "Traceback" not in result.err, (args, result.err)
    long = ["--key-prefix", "p" * 90 + ":"]
    for args in (["book", "--flight", flight], ["worker", "--once"], [], ["dead-letters"]):
        result = cli(*common, *long, "write-behind", *args)
        assert result.code == 3, (args, result.err)
        assert "more than 64" in result.err, result.err  # the shared prefix check, first
    from flightcache.valkey_client import close, connect, delete_matching

    c = connect(valkey_server.url)
    assert delete_matching(c, Keys(key_prefix).match()) == 0  # nothing was written
    assert delete_matching(c, "p" * 90 + ":*") == 0
    close(c)
