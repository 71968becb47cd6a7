"""Schema, generated data and loading, on MySQL/MariaDB and PostgreSQL alike."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from flightcache import sqlfiles
from flightcache.commands.data import SCALES as CLI_SCALES
from flightcache.data.generate import SCALES, generate, great_circle_km, seat_label
from flightcache.data.load import (
    create_schema,
    info,
    load_generated,
    require_dataset,
)
from flightcache.data.tables import COLUMNS, TABLES
from flightcache.errors import DataError


def test_generator_is_deterministic_and_seed_sensitive() -> None:
    def digest(seed: int) -> str:
        ds = generate("tiny", seed)
        h = hashlib.sha256()
        for table in ("airport", "flightschedule", "flight", "booking", "passenger"):
            for row in ds.rows(table):
                h.update(repr(row).encode())
        return h.hexdigest()

    assert digest(1) == digest(1)
    assert tuple(SCALES) == CLI_SCALES  # the CLI names every scale the generator has
    assert digest(1) != digest(2)


def test_generator_shapes() -> None:
    ds = generate("tiny", 3)
    flights = {r[0]: r for r in ds.rows("flight")}
    capacity = {r[0]: r[1] for r in ds.rows("airplane")}
    per_flight: dict[int, set[str]] = {}
    for _, fid, seat, _, price in ds.rows("booking"):
        assert fid in flights and price > 0
        seats = per_flight.setdefault(fid, set())
        assert seat not in seats, "a seat is sold twice"
        seats.add(seat)
    for fid, seats in per_flight.items():
        assert len(seats) <= capacity[flights[fid][7]]
    # hubs carry more traffic than the long tail
    by_airport: dict[int, int] = {}
    for f in flights.values():
        by_airport[f[2]] = by_airport.get(f[2], 0) + 1
    ranked = sorted(by_airport.values(), reverse=True)
    assert ranked[0] > 5 * ranked[len(ranked) // 2]
    assert seat_label(0) == "1A" and seat_label(7) == "2B"
    assert 3900 < great_circle_km(40.64, -73.78, 33.94, -118.41) < 4000  # JFK-LAX


def test_schema_has_the_fourteen_tables_everywhere() -> None:
    for dialect in ("mysql", "postgresql"):
        made = {
            s.split()[2].strip('`"')
            for s in sqlfiles.statements(dialect, "schema.sql")  # type: ignore[arg-type]
            if s.upper().startswith("CREATE TABLE")
        }
        assert made == TABLES
    assert len(TABLES) == 14
    # the same names in both dialects, except write-behind's claim of applied entry ids:
    # one INSERT ... ON CONFLICT DO NOTHING RETURNING on PostgreSQL, which MySQL lacks,
    # so MySQL looks the ids up and inserts the new ones (patterns/write_behind.py)
    only = {"postgresql": {"wb_applied_claim"}, "mysql": {"wb_applied_among", "wb_applied_insert"}}
    mysql, pg = set(sqlfiles.queries("mysql")), set(sqlfiles.queries("postgresql"))
    assert mysql - pg == only["mysql"] and pg - mysql == only["postgresql"]


def test_create_schema_is_idempotent(db: Any) -> None:
    created = create_schema(db)
    assert set(created) == TABLES
    assert create_schema(db) == []
    assert db.tables() >= TABLES


def test_foreign_flughafendb_tables_need_force(db: Any) -> None:
    db.execute("CREATE TABLE airport (x int)")
    with pytest.raises(DataError, match="flightcache did not create"):
        create_schema(db)
    assert set(create_schema(db, force=True)) == TABLES
    assert "airport_id" in [c for c in COLUMNS["airport"]]


def test_load_tiny_and_invariants(db: Any) -> None:
    report = load_generated(db, "tiny", 5)
    expected = generate("tiny", 5).counts
    loaded = {name: n for name, n, _ in report.tables}
    assert loaded["booking"] == expected["booking"] > 10_000
    found = require_dataset(db)
    assert (found.scale, found.seed, found.state) == ("tiny", 5, "complete")
    exact = info(db, exact=True)
    assert exact.rows == found.rows
    over = db.fetch(
        "SELECT COUNT(*) FROM (SELECT b.flight_id FROM booking b "
        "JOIN flight f ON f.flight_id = b.flight_id "
        "JOIN airplane a ON a.airplane_id = f.airplane_id "
        "GROUP BY b.flight_id, a.capacity HAVING COUNT(*) > a.capacity) t"
    )
    assert over.rows[0][0] == 0
    # a second load without --replace is refused; with it, it runs again
    with pytest.raises(DataError, match="already loaded"):
        load_generated(db, "tiny", 5)
    load_generated(db, "tiny", 6, replace=True)
    assert require_dataset(db).seed == 6
    # identity columns continue after the loaded ids
    top = db.fetch("SELECT MAX(passenger_id) FROM passenger").rows[0][0]
    db.execute(
        "INSERT INTO passenger (passportno, firstname, lastname) VALUES ('X00000001', 'A', 'B')"
    )
    assert db.fetch("SELECT MAX(passenger_id) FROM passenger").rows[0][0] == top + 1


def test_interrupted_load_never_looks_complete(db: Any) -> None:
    load_generated(db, "tiny", 1)

    class Boom(Exception):
        pass

    def explode(table: str, done: int, expected: int | None) -> None:
        if table == "booking" and done >= 5_000:
            raise Boom

    with pytest.raises(Boom):
        load_generated(db, "tiny", 2, replace=True, progress=explode)
    state = info(db)
    if db.dialect == "postgresql":
        # one transaction: the previous dataset is intact
        assert (state.state, state.seed) == ("complete", 1)
    else:
        assert state.state == "loading"
        with pytest.raises(DataError, match="did not finish"):
            require_dataset(db)
        report = load_generated(db, "tiny", 2)  # no --replace needed to repair
        assert report.repaired
    assert require_dataset(db).state == "complete"


def test_unrelated_tables_refused_without_force(db: Any) -> None:
    db.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(DataError, match="not FlughafenDB's: invoices"):
        load_generated(db, "tiny", 1)
    load_generated(db, "tiny", 1, force=True)
    assert "invoices" in db.tables()


def test_no_data_is_a_clear_error(db: Any) -> None:
    with pytest.raises(DataError, match="no FlughafenDB data"):
        require_dataset(db)


def test_route_analysis_runs_and_ranks(db: Any) -> None:
    load_generated(db, "tiny", 42)
    result = db.fetch(sqlfiles.query(db.dialect, "airline_route_analysis"))
    assert result.columns[:3] == ["airline_name", "airline_code", "total_routes"]
    routes = [r[2] for r in result.rows]
    assert routes == sorted(routes, reverse=True) and routes[0] > 0
    # the same data gives the same answer on either database
    assert result.rows[0][1] == _reference_top_airline()


def _reference_top_airline() -> str:
    ds = generate("tiny", 42)
    codes = {r[0]: r[1] for r in ds.rows("airline")}
    routes: dict[int, set[tuple[int, int]]] = {}
    for f in ds.rows("flight"):
        routes.setdefault(f[6], set()).add((f[2], f[3]))
    best = sorted(routes, key=lambda a: (-len(routes[a]), codes[a]))[0]
    return codes[best]
