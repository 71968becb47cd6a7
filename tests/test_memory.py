"""`flightcache memory`: every layout round-trips, the figures are positive and ordered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightcache.config import DbUrl
from flightcache.patterns.memory import LETTERS, row_width, seat_index
from tests.demo_helpers import leftover_keys, load_tiny


def _measure(cli: Any, db: str, valkey: Any, prefix: str, flights: int) -> None:
    result = cli(
        "--db-url", db, "--valkey-url", str(valkey.url), "--key-prefix", prefix,
        "memory", "--json", "--flights", str(flights),
    )  # fmt: skip
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["demo"] == "memory"
    steps = [r for r in doc["records"] if r["type"] == "step"]
    tables = [r for r in doc["records"] if r["type"] == "table"]
    assert len(tables) == 2 and all(t["rows"] for t in tables)
    assert steps[0]["data"]["flights"] == flights
    config = steps[1]["data"]["config"]
    assert int(config["hash-max-listpack-entries"]) > 0
    layouts = {s["data"]["layout"]: s["data"] for s in steps if "layout" in s["data"]}
    assert len(layouts) == 8
    for data in layouts.values():
        assert data["usage_bytes"] > 0 and data["keys"] > 0
        assert sum(data["encodings"].values()) == data["keys"]
    for name in ("JSON string", "hash, long fields", "hash, short fields", "packed string"):
        assert layouts[name]["keys"] == flights
    assert (
        layouts["hash, short fields"]["usage_bytes"] < layouts["hash, long fields"]["usage_bytes"]
    )
    assert set(layouts["hash, short fields"]["encodings"]) == {"listpack"}
    # many flights per key: fewer keys, less memory than one key per flight
    assert layouts["bucket hash of 100"]["usage_bytes"] < layouts["packed string"]["usage_bytes"]
    assert layouts["bucket hash of 100"]["keys"] <= flights // 100 + 1
    full = next(s["data"] for s in steps if "bitmap_bytes" in s["data"])
    assert 0 < full["bitmap_bytes"] < full["set_bytes"]
    assert layouts["bitmap"]["keys"] == layouts["set of labels"]["keys"] > 0
    assert leftover_keys(valkey.url, prefix) == []


def test_memory_demo(cli: Any, db_url: DbUrl, valkey_server: Any, key_prefix: str) -> None:
    db = load_tiny(db_url)
    _measure(cli, db, valkey_server, key_prefix, 600)
    text = cli(
        "--db-url", db, "--valkey-url", str(valkey_server.url), "--key-prefix", key_prefix,
        "memory", "--flights", "50",
    )  # fmt: skip
    assert text.code == 0 and "listpack" in text.out and "vs JSON" in text.out


@pytest.mark.cluster
def test_memory_demo_on_a_cluster(
    cli: Any, db_url: DbUrl, valkey_cluster: Any, key_prefix: str
) -> None:
    db = load_tiny(db_url)
    _measure(cli, db, valkey_cluster, key_prefix, 400)


def test_every_layout_reads_back_what_it_stored(
    db_url: DbUrl, valkey_server: Any, key_prefix: str
) -> None:
    from flightcache.db import connect as connect_db
    from flightcache.keys import Keys
    from flightcache.patterns.memory import (
        BitmapSeats,
        SetSeats,
        layouts,
        load_flights,
        load_seats,
    )
    from flightcache.trace import Tracer
    from flightcache.valkey_client import connect, delete_matching

    load_tiny(db_url)
    db = Tracer().database(connect_db(db_url))
    flights = load_flights(db, 250)
    seats = load_seats(db, flights)
    client = connect(valkey_server.url)
    keys = Keys(key_prefix).scope("memory")
    try:
        for layout in layouts(keys):
            pipe = client.pipeline(transaction=False)
            for flight in flights:
                layout.write(pipe, flight)
            pipe.execute()
            for flight in flights:
                assert layout.read(client, flight.flight_id) == flight.values(), layout.name
        width = row_width(s for labels in seats.values() for s in labels)
        for seat_layout in (BitmapSeats(keys, width), SetSeats(keys)):
            pipe = client.pipeline(transaction=False)
            for flight in flights:
                seat_layout.write(pipe, flight.flight_id, seats[flight.flight_id])
            pipe.execute()
            for flight in flights[:40]:
                booked = seats[flight.flight_id]
                assert seat_layout.count(client, flight.flight_id) == len(booked)
                for label in booked[:3]:
                    assert seat_layout.is_booked(client, flight.flight_id, label)
        free = next(
            f"{row}A" for row in range(1, 200) if f"{row}A" not in seats[flights[0].flight_id]
        )
        assert not BitmapSeats(keys, width).is_booked(client, flights[0].flight_id, free)
    finally:
        delete_matching(client, key_prefix + "*")
        db.inner.close()


def test_seat_index() -> None:
    assert seat_index("1A") == 0 and seat_index("1F") == 5 and seat_index("2A") == 6
    assert seat_index("12A") == 66 and seat_index(" 12A ") == 66
    assert seat_index("3C", width=10) == 22
    assert seat_index("1G") is None and seat_index("A1") is None and seat_index("") is None
    assert row_width(["1A", "2K"]) == LETTERS.index("K") + 1 and row_width([]) == 6


def test_more_flights_than_the_database_holds(cli: Any, db_url: DbUrl, valkey_server: Any) -> None:
    db = load_tiny(db_url)
    result = cli(
        "--db-url", db, "--valkey-url", str(valkey_server.url), "memory", "--flights", "150000"
    )
    assert result.code == 6, result.err
    assert "more than the" in result.err and "flights the database holds" in result.err
    assert "hint:" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("flights", ["0", "-3", "200001"])
def test_bad_flight_counts(cli: Any, flights: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "memory", "--flights", flights)
    assert result.code == 3, result.err
    assert result.err.startswith("error: ") and "out of range" in result.err
    assert "hint:" in result.err


def test_the_command_takes_its_defaults_and_limits_from_the_demos_options() -> None:
    import typer.main

    from flightcache.cli import app
    from flightcache.demos.memory import FLIGHTS_MAX, FLIGHTS_MIN, Options
    from flightcache.errors import ConfigError

    params = {p.name: p for p in typer.main.get_command(app).commands["memory"].params}  # type: ignore[attr-defined]
    assert params["flights"].default == Options.flights
    Options(flights=FLIGHTS_MIN)
    Options(flights=FLIGHTS_MAX)
    for outside in (FLIGHTS_MIN - 1, FLIGHTS_MAX + 1):
        with pytest.raises(ConfigError, match="out of range"):
            Options(flights=outside)
