"""flightcache invalidation: exactly the affected keys go, the next read is fresh, races lose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flightcache.demos.invalidation import Scene, move_flight
from flightcache.keys import Keys
from flightcache.patterns.invalidation import (
    Invalidator,
    TaggedCache,
    bookings_of,
    flight_row,
    route_tag,
    search,
)
from flightcache.patterns.ttl import Jitter
from tests.conftest import json_of, keys_left, server_args

ON_PURPOSE = ("Event: passenger", "Why not DEL before the COMMIT?")


@pytest.fixture
def keys(valkey_client: Any, key_prefix: str) -> Iterator[Keys]:
    from flightcache.valkey_client import delete_matching

    scoped = Keys(key_prefix).scope("invalidation")
    yield scoped
    delete_matching(valkey_client, scoped.match())


def _cache(loaded: Any, client: Any, keys: Keys) -> TaggedCache:
    return TaggedCache(client, loaded, keys, Jitter(10, 1), ttl_s=600)


def test_demo_on_both_databases_one_node_and_cluster(
    cli: Any, loaded: Any, db_url: Any, any_valkey: Any, key_prefix: str
) -> None:
    before = _state(loaded)
    document = json_of(
        cli(
            *server_args(db_url, any_valkey, key_prefix),
            "invalidation",
            "--warm",
            "30",
            "--repeat",
            "5",
            "--json",
        )
    )
    steps = [r for r in document["records"] if r["type"] == "step"]
    for step in steps:
        expected = not step["title"].startswith(ON_PURPOSE)
        assert step["ok"] is expected, (step["title"], step["outcome"])
        assert step["on_purpose"] is not expected, step["title"]
    booking, fix = steps[2]["data"], steps[5]["data"]
    assert booking["stale"] and booking["cached_rows"] + 1 == booking["database_rows"]
    assert fix["cached_rows"] + 1 == fix["database_rows"]  # DEL before COMMIT left it stale
    by_name = steps[3]["data"]
    assert len(by_name["deleted"]) == 2 and not by_name["absent"] and len(by_name["kept"]) == 6
    tagged = next(s["data"] for s in steps if "invalidate its tags" in s["title"])
    assert sorted(tagged["deleted"]) == tagged["expected"] and len(tagged["absent"]) == 1
    assert set(tagged["listed"]) == {t for t in tagged["tags"]}
    straddle = [s["data"] for s in steps if "reader_kept" in s["data"]]
    assert len(straddle) == 2 and not any(d["reader_kept"] for d in straddle)
    assert document["records"][-1]["title"] == "What each invalidation did"
    client = _client(any_valkey)
    assert keys_left(client, key_prefix) == []
    client.close()
    assert _state(loaded) == before  # the bookings removed, the flight back on time


def _state(db: Any) -> list[Any]:
    flights = db.fetch("SELECT flight_id, departure, arrival FROM flight ORDER BY flight_id")
    return [*flights.rows, *db.fetch("SELECT COUNT(*) FROM booking").rows]


def _client(instance: Any) -> Any:
    from flightcache.valkey_client import connect

    return connect(instance.url)


def test_tags_delete_exactly_the_results_that_show_the_flight(
    loaded: Any, valkey_client: Any, keys: Keys
) -> None:
    cache = _cache(loaded, valkey_client, keys)
    scene = Scene.find(loaded, None, None)
    flight = scene.flight
    on = [cache.get(*bookings_of(p)) for p in scene.on_flight]
    off = cache.get(*bookings_of(scene.elsewhere))
    found = cache.get(*search(flight))
    row = cache.get(*flight_row(flight))
    elsewhere = cache.get(*search(scene.other))
    assert f"flight:{flight['flight_id']}" in on[0].tags and route_tag(flight) in found.tags

    report = Invalidator(valkey_client, keys).after_commit(
        loaded,
        lambda: move_flight(loaded, flight, 30),
        tags=[f"flight:{flight['flight_id']}", route_tag(flight)],
    )
    try:
        assert sorted(report.deleted) == sorted([*(r.key for r in on), found.key, row.key])
        assert not report.absent and not report.error
        assert all(valkey_client.exists(k) for k in (off.key, elsewhere.key))
        assert not valkey_client.exists(keys.tag(f"flight:{flight['flight_id']}"))
        again = cache.get(*bookings_of(scene.on_flight[0]))
        assert not again.hit and again.rows == cache.fresh(*bookings_of(scene.on_flight[0]))
        assert again.rows != on[0].rows  # the departure moved
        assert cache.get(*bookings_of(scene.elsewhere)).hit
    finally:
        move_flight(loaded, flight, 0)


def test_a_reader_that_raced_the_invalidation_deletes_its_own_copy(
    loaded: Any, valkey_client: Any, keys: Keys
) -> None:
    cache = _cache(loaded, valkey_client, keys)
    scene = Scene.find(loaded, None, None)
    spec = bookings_of(scene.on_flight[1])
    fill = cache.begin(*spec)
    old = cache.load(fill)  # read before the change commits
    Invalidator(valkey_client, keys).after_commit(
        loaded,
        lambda: move_flight(loaded, scene.flight, 45),
        tags=[f"flight:{scene.flight['flight_id']}"],
    )
    try:
        late = cache.finish(fill, old)  # its SET and SADD land after the SPOP and the DELs
        assert not late.kept and not valkey_client.exists(late.key)
        assert valkey_client.sismember(keys.tag(f"flight:{scene.flight['flight_id']}"), late.key)
        now = cache.get(*spec)
        assert not now.hit and now.rows == cache.fresh(*spec) != old["rows"]
        # a fill with no invalidation under way keeps its copy
        assert cache.get(*bookings_of(scene.elsewhere)).kept
    finally:
        move_flight(loaded, scene.flight, 0)


def test_a_large_tag_is_taken_in_several_spops_and_every_member_goes(
    valkey_client: Any, keys: Keys
) -> None:
    members = [keys.query("x", {"n": n}) for n in range(2500)]
    pipe = valkey_client.pipeline(transaction=False)
    for key in members:
        pipe.set(key, "1", ex=60)
        pipe.sadd(keys.tag("big"), key)
    pipe.execute()
    report = Invalidator(valkey_client, keys).invalidate(tags=["big"])
    assert sorted(report.deleted) == sorted(members) and report.epoch == 1
    assert not any(valkey_client.exists(k) for k in members[:50])
    assert not valkey_client.exists(keys.tag("big"))


def test_valkey_down_after_the_commit_is_reported_not_raised() -> None:
    from flightcache.valkey_client import unreachable

    client = unreachable()
    report = Invalidator(client, Keys("fctest:"), backoff_s=0.001).invalidate(keys=["fctest:a"])
    client.close()
    assert report.attempts == 3 and report.error and not report.deleted


def test_scene_refuses_unknown_rows(loaded: Any) -> None:
    from flightcache.errors import DataError

    with pytest.raises(DataError, match="no flight with id 9999999"):
        Scene.find(loaded, 9_999_999, None)
    with pytest.raises(DataError, match="no passenger with id 9999999"):
        Scene.find(loaded, None, 9_999_999)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--delay", "0"], "--delay"),
        (["--jitter", "60"], "--jitter"),
        (["--flight", "0"], "--flight"),
        (["--warm", "-1"], "--warm"),
        (["--ttl", "0"], "--ttl"),
    ],
)
def test_bad_input_is_a_usage_error(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "invalidation", *args)
    assert result.code == 2, (result.out, result.err)
    assert fragment in result.err and "Traceback" not in result.err


def test_jitter_bounds_the_tag_ttl() -> None:
    cache = TaggedCache(None, None, Keys(), Jitter(10, 1), ttl_s=3600)
    assert cache.tag_ttl_ms == 3_960_000  # 3600 s + 10 %: the longest a member gets
    assert max(cache.jitter.ttl_ms(3600) for _ in range(1000)) <= cache.tag_ttl_ms


def test_a_chosen_passenger_off_the_flight(
    cli: Any, mysql_url: Any, valkey_server: Any, key_prefix: str
) -> None:
    from flightcache.db import connect
    from tests.demo_helpers import load_tiny

    load_tiny(mysql_url)
    db = connect(mysql_url)
    scene = Scene.find(db, None, None)
    db.close()
    document = json_of(
        cli(
            *server_args(mysql_url, valkey_server, key_prefix),
            "invalidation",
            "--passenger",
            str(scene.elsewhere),
            "--warm",
            "0",
            "--repeat",
            "3",
            "--json",
        )
    )
    steps = [r for r in document["records"] if r["type"] == "step"]
    assert f"passenger {scene.elsewhere} books" in steps[2]["title"]
    for step in steps:
        assert step["ok"] is not step["title"].startswith(ON_PURPOSE), step["title"]
        assert step["on_purpose"] is step["title"].startswith(ON_PURPOSE), step["title"]


def test_the_command_takes_its_defaults_from_the_demos_options() -> None:
    import dataclasses
    import inspect

    from flightcache.commands.invalidation import invalidation
    from flightcache.demos.invalidation import Options

    parameters = inspect.signature(invalidation).parameters
    for option in dataclasses.fields(Options):
        assert parameters[option.name].default == getattr(Options, option.name), option.name
