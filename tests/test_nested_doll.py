"""Nested doll: layers with their own TTLs, rebuilt one at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from valkey.crc import key_slot

from flightcache.config import DbUrl
from flightcache.demos.nested_doll import default_flight, require_flight, some_passenger
from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.nested_doll import NestedDoll
from flightcache.patterns.nested_doll_layers import LAYERS
from tests.conftest import json_of, keys_left, server_args

SLACK_MS = 10_000  # how much a layer may have aged during a test
BY_TTL = {layer.name: layer.ttl_ms for layer in LAYERS}


@pytest.fixture
def doll(loaded: Any, valkey_client: Any, key_prefix: str) -> Iterator[NestedDoll]:
    from flightcache.valkey_client import delete_matching

    keys = Keys(key_prefix).scope("nested-doll")
    yield NestedDoll(loaded, valkey_client, keys)
    delete_matching(valkey_client, keys.match())


def _booked(doll: NestedDoll, flight_id: int) -> int:
    rows = doll.db.fetch("SELECT COUNT(*) FROM booking WHERE flight_id = %(f)s", {"f": flight_id})
    return int(rows.rows[0][0])


def test_layers_of_a_flight_share_a_slot(key_prefix: str) -> None:
    keys = Keys(key_prefix).scope("nested-doll")
    for flight_id in (7, 12345):
        names = [layer.key(keys, flight_id) for layer in LAYERS]
        assert len({key_slot(name.encode()) for name in names}) == 1, names
        assert all(f"{{flight:{flight_id}}}" in name for name in names)
    assert len({layer.key(keys, 7) for layer in LAYERS}) == len(LAYERS)


def test_first_compose_misses_then_hits_with_ttls_in_their_classes(doll: NestedDoll) -> None:
    flight_id = default_flight(doll)
    first = doll.compose(flight_id)
    assert first.misses() == [layer.name for layer in LAYERS] and doll.queries == 4
    assert first.value() == doll.compose_from_db(flight_id)
    ttls = doll.ttls(flight_id)
    for layer in LAYERS:
        assert layer.ttl_ms - SLACK_MS < ttls[layer.name] <= layer.ttl_ms, (layer.name, ttls)
    second = doll.compose(flight_id)
    assert second.hits() == [layer.name for layer in LAYERS]
    assert doll.queries == 8  # only compose_from_db's four
    assert second.value() == first.value()
    for read in second.layers:
        assert 0 < read.pttl_ms <= BY_TTL[read.layer]
    status, seats = second.value()["status"], second.value()["seats"]
    assert isinstance(status, str) and (status == "on time" or " min" in status)
    assert isinstance(seats, dict)
    assert int(seats["available"]) == int(seats["capacity"]) - int(seats["booked"])


def test_refresh_of_one_layer_leaves_the_others_alone(doll: NestedDoll) -> None:
    flight_id = default_flight(doll)
    before = doll.compose(flight_id).value()
    aged = {"aircraft": 50_000, "schedule": 40_000, "status": 20_000, "seats": 10_000}
    for name, ms in aged.items():
        doll.valkey.pexpire(doll.key(flight_id, name), ms)
    count = _booked(doll, flight_id)

    booking_id = doll.add_booking(flight_id, some_passenger(doll))
    try:
        assert _booked(doll, flight_id) == count + 1
        ttls = doll.ttls(flight_id)
        assert BY_TTL["seats"] - SLACK_MS < ttls["seats"] <= BY_TTL["seats"]  # a fresh TTL
        for name in ("aircraft", "schedule", "status"):
            assert 0 < ttls[name] <= aged[name], (name, ttls)  # not reset
        after = doll.compose(flight_id)
        assert after.hits() == [layer.name for layer in LAYERS]
        value = after.value()
        seats = value["seats"]
        assert isinstance(seats, dict) and int(seats["booked"]) == count + 1
        assert {k: v for k, v in value.items() if k != "seats"} == {
            k: v for k, v in before.items() if k != "seats"
        }
    finally:
        doll.remove_booking(flight_id, booking_id)
    assert _booked(doll, flight_id) == count
    seats = doll.compose(flight_id).value()["seats"]
    assert isinstance(seats, dict) and int(seats["booked"]) == count


def test_an_expired_layer_alone_is_rebuilt(doll: NestedDoll) -> None:
    flight_id = default_flight(doll)
    doll.compose(flight_id)
    doll.valkey.pexpire(doll.key(flight_id, "status"), 1)
    time.sleep(0.05)
    assert doll.ttls(flight_id)["status"] == -2
    queries = doll.queries
    view = doll.compose(flight_id)
    assert view.misses() == ["status"] and doll.queries == queries + 1
    assert doll.ttls(flight_id)["aircraft"] > BY_TTL["aircraft"] - SLACK_MS


def test_missing_flight_is_a_data_error_and_writes_nothing(doll: NestedDoll) -> None:
    with pytest.raises(DataError, match="no flight with id 999999999") as caught:
        require_flight(doll, 999_999_999)
    assert caught.value.hint and "run from 1 to" in caught.value.hint
    with pytest.raises(DataError):
        doll.compose(999_999_999)
    assert keys_left(doll.valkey, doll.keys.prefix) == []


# -- the command ---------------------------------------------------------------------
def test_cli_json(
    cli: Any, loaded: Any, db_url: DbUrl, key_prefix: str, any_valkey: Any, valkey_client: Any
) -> None:
    bookings = int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0])
    args = server_args(db_url, any_valkey, key_prefix)
    doc = json_of(
        cli(
            *args,
            "nested-doll",
            "--flight",
            "12",
            "--json",
            "--repeat",
            "3",
        )
    )
    assert doc["demo"] == "nested-doll"
    records = doc["records"]
    assert [r["type"] for r in records] == ["step"] * 6 + ["table", "timing"]
    composes = [r for r in records if r["type"] == "step" and r["title"].startswith("Compose")]
    hits = [[layer["hit"] for layer in c["data"]["layers"]] for c in composes]
    assert hits == [[False] * 4, [True] * 4, [True] * 4, [True, True, True, False]]
    assert "{flight:12}" in composes[0]["data"]["layers"][0]["key"]
    assert len(composes[0]["sql"]) == 4 and composes[1]["sql"] == []
    assert len(composes[3]["sql"]) == 1
    for compose in composes:
        for layer in compose["data"]["layers"]:
            assert 0 < layer["pttl_ms"] <= layer["ttl_s"] * 1000
    booking = records[2]["data"]
    assert booking["pttl_after"]["seats"] >= booking["pttl_before"]["seats"]
    for name in ("aircraft", "schedule"):
        assert booking["pttl_after"][name] <= booking["pttl_before"][name]
    table = records[6]
    assert table["columns"][:2] == ["layer", "TTL"] and len(table["rows"]) == 4
    labels = [s["label"] for s in records[7]["series"]]
    assert labels == ["database (4 queries)", "cache (1 pipeline)"]
    # the booking the demo made is gone again
    assert int(loaded.fetch("SELECT COUNT(*) FROM booking").rows[0][0]) == bookings


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--flight", "999999999"], 6, "no flight with id 999999999"),
        (["--flight", "abc"], 2, "Invalid value for '--flight'"),
        (["--flight", "0"], 2, "Invalid value for '--flight'"),
    ],
)
def test_cli_bad_input(
    demo_cli: Any, loaded: Any, args: list[str], code: int, fragment: str
) -> None:
    result = demo_cli("nested-doll", *args)
    assert result.code == code, (result.out, result.err)
    assert fragment in result.err and "Traceback" not in result.err + result.out
