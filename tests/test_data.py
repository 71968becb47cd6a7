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
    read_meta,
    require_dataset,
)
from flightcache.data.tables import TABLES
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
    # so MySQL looks the ids up and inserts the new ones (patterns/write_behind_batch.py)
    only = {
        "postgresql": {"write_behind_applied_claim"},
        "mysql": {"write_behind_applied_among", "write_behind_applied_insert"},
    }
    mysql, pg = set(sqlfiles.queries("mysql")), set(sqlfiles.queries("postgresql"))
    assert mysql - pg == only["mysql"] and pg - mysql == only["postgresql"]


def test_create_schema_is_idempotent(db: Any) -> None:
    created = create_schema(db)
    assert set(created) == TABLES
    assert create_schema(db) == []
    assert db.tables() >= TABLES


@pytest.mark.safety(3)
def test_foreign_flughafendb_tables_are_never_dropped(db: Any) -> None:
    db.execute("CREATE TABLE airport (x int)")
    db.execute("INSERT INTO airport VALUES (7)")
    with pytest.raises(DataError, match="flightcache did not create"):
        create_schema(db)
    for replace, force in ((False, False), (True, True)):
        with pytest.raises(DataError, match="flightcache did not create") as refused:
            load_generated(db, "tiny", 1, replace=replace, force=force)
        assert "never drops tables it did not create" in (refused.value.hint or "")
    assert [tuple(r) for r in db.fetch("SELECT x FROM airport").rows] == [(7,)]
    assert db.tables() & TABLES == {"airport"}


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


# -- replacing a dataset, importing a dump over one -----------------------------------


def _dataset(url: Any) -> tuple[str | None, int | None, str | None, int]:
    from flightcache.db import connect

    conn = connect(url)
    try:
        found = info(conn, exact=True)
        return found.state, found.seed, found.source, found.rows.get("booking", 0)
    finally:
        conn.close()


@pytest.mark.safety(3)
def test_replace_without_a_terminal_or_yes_is_refused(cli: Any, tiny_db_url: Any) -> None:
    url = tiny_db_url.url(redact=False)
    before = _dataset(tiny_db_url)
    args = ("--db-url", url, "data", "load", "--scale", "tiny", "--seed", "2", "--replace")
    refused = cli(*args)
    assert refused.code == 6, (refused.out, refused.err)
    assert refused.err.startswith("error: not asking on a terminal")
    assert "booking (" in refused.err and "--yes" in refused.err
    assert "Traceback" not in refused.err
    assert _dataset(tiny_db_url) == before
    assert cli(*args, "--yes").code == 0
    assert _dataset(tiny_db_url)[:2] == ("complete", 2)


@pytest.mark.safety(3)
def test_drop_without_a_terminal_or_yes_is_refused(cli: Any, tiny_db_url: Any) -> None:
    url = tiny_db_url.url(redact=False)
    refused = cli("--db-url", url, "data", "drop")
    assert refused.code == 6, (refused.out, refused.err)
    assert refused.err.startswith("error: not asking on a terminal, so not done: drop")
    assert _dataset(tiny_db_url)[0] == "complete"
    assert cli("--db-url", url, "data", "drop", "--yes").code == 0


@pytest.mark.safety(3)
def test_replace_on_a_terminal_names_the_tables_and_asks(tiny_db_url: Any) -> None:
    import os
    import pty
    import select
    import subprocess
    import sys

    before = _dataset(tiny_db_url)
    command = [sys.executable, "-m", "flightcache", "--db-url", tiny_db_url.url(redact=False)]
    command += ["data", "load", "--scale", "tiny", "--seed", "2", "--replace"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        while b"[y/N]" not in seen:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, f"no question asked: {seen!r}"
            seen += os.read(master, 4096)
        os.write(master, b"n\n")
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
        os.close(master)
    question = seen.decode(errors="replace")
    for table in ("airport", "flight", "booking", "passenger"):
        assert f"{table} (" in question
    assert _dataset(tiny_db_url) == before


_TEST_MYSQL = "FLIGHTCACHE_TEST_MYSQL_URL"


@pytest.fixture(scope="module")
def real_dump(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real mysqldump of the tiny dataset, written by this machine's MySQL/MariaDB."""
    import shutil
    import subprocess

    from tests.conftest import _fresh_database

    tool = shutil.which("mysqldump") or shutil.which("mariadb-dump")
    if tool is None:
        pytest.skip("no mysqldump on this machine")
    fresh = _fresh_database("mysql")
    url = next(fresh)
    from flightcache.db import connect

    conn = connect(url)
    load_generated(conn, "tiny", 1)
    conn.close()
    path = tmp_path_factory.mktemp("dump") / "flughafendb.sql"
    args = [tool, "-h", url.host or "127.0.0.1", "-P", str(url.port or 3306)]
    args += ["-u", url.user or "root", "--single-transaction", url.database or ""]
    with path.open("wb") as fh:
        subprocess.run(args, stdout=fh, check=True, timeout=120)
    next(fresh, None)  # drop the scratch database
    return path


@pytest.mark.safety(8)
@pytest.mark.parametrize("packed", [False, True], ids=["sql", "sql.gz"])
def test_a_real_dump_cut_in_half_is_refused(real_dump: Any, tmp_path: Any, packed: bool) -> None:
    import gzip

    from flightcache.data.dump import read_dump
    from flightcache.errors import DumpFormatError

    data = real_dump.read_bytes()
    assert sum(len(b.rows) for b in read_dump(real_dump)) > 15_000
    cuts = {
        "half": len(data) // 2,
        "between statements": data.index(b"-- Table structure for table `flight`"),
    }
    for what, cut in cuts.items():
        part = data[:cut]
        path = tmp_path / ("cut.sql.gz" if packed else "cut.sql")
        path.write_bytes(gzip.compress(part) if packed else part)
        with pytest.raises(DumpFormatError, match="truncated"):
            for _ in read_dump(path):
                pass
        if packed:  # the gzip stream itself cut in half
            path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
            with pytest.raises(DumpFormatError, match="truncated"):
                for _ in read_dump(path):
                    pass
        assert what


@pytest.mark.safety(3)
@pytest.mark.parametrize("fault", ["cut-between-statements", "cut-in-half", "bad-row-late"])
def test_import_over_a_dataset_keeps_it_when_the_dump_is_broken(
    cli: Any, db_url: Any, real_dump: Any, tmp_path: Any, fault: str
) -> None:
    from flightcache.db import connect

    conn = connect(db_url)
    load_generated(conn, "tiny", 2)
    conn.close()
    before = _dataset(db_url)
    data = real_dump.read_bytes()
    if fault == "cut-between-statements":
        data = data[: data.index(b"-- Table structure for table `passenger`")]
    elif fault == "cut-in-half":
        data = data[: len(data) // 2]
    else:  # the last booking row of the last INSERT holds a value no database takes
        end = data.index(b";\n", data.rindex(b"INSERT INTO `booking`"))
        row = data.rindex(b"(", 0, end)
        data = data[:row] + b"(1,1,'1A',1,CURRENT_USER)" + data[end:]
    path = tmp_path / "broken.sql"
    path.write_bytes(data)
    url = db_url.url(redact=False)
    result = cli("--db-url", url, "data", "import", str(path), "--replace", "--yes")
    assert result.code == 6, (result.out, result.err)
    assert "Traceback" not in result.err
    assert _dataset(db_url) == before == ("complete", 2, "generated", before[3])


def test_a_real_dump_imports_into_either_database(
    cli: Any, db_url: Any, real_dump: Any, tmp_path: Any
) -> None:
    import gzip

    expected = generate("tiny", 1).counts
    packed = gzip.compress(real_dump.read_bytes())
    size = -(-len(packed) // 3)
    parts = []
    for i, suffix in enumerate(("aa", "ab", "ac")):
        part = tmp_path / f"flughafendb.sql.gz.part-{suffix}"
        part.write_bytes(packed[i * size : (i + 1) * size])
        parts.append(str(part))
    result = cli("--db-url", db_url.url(redact=False), "data", "import", *parts)
    assert result.code == 0, result.err
    state, _, source, bookings = _dataset(db_url)
    assert (state, source, bookings) == (
        "complete",
        "import:flughafendb.sql.gz",
        expected["booking"],
    )
    wrong = cli("--db-url", db_url.url(redact=False), "data", "import", parts[1], parts[0])
    assert wrong.code == 6 and "not in order" in wrong.err


@pytest.mark.safety(8)
def test_rows_mysql_skips_are_counted_and_reported(cli: Any, mysql_url: Any, tmp_path: Any) -> None:
    from flightcache.data.tables import COLUMNS as COLS
    from flightcache.db import connect

    def create(table: str) -> str:
        cols = ",\n".join(f"  `{c}` varchar(100)" for c in COLS[table])
        return f"CREATE TABLE `{table}` (\n{cols}\n);\n"

    dump = (
        "-- MySQL dump 10.13\n"
        + create("airport")
        + "INSERT INTO `airport` VALUES (1,'FRA','EDDF','Frankfurt'),(2,'JFK','KJFK','JFK'),"
        "(1,'FRA','EDDF','Frankfurt again');\n" + "-- Dump completed on 2024-03-01 12:00:00\n"
    )
    path = tmp_path / "dup.sql"
    path.write_text(dump)
    result = cli("--db-url", mysql_url.url(redact=False), "data", "import", str(path))
    assert result.code == 0, result.err
    conn = connect(mysql_url)
    try:
        # LOAD DATA says 2 rows; MariaDB's bulk load into an empty table may keep none
        stored = int(conn.fetch("SELECT COUNT(*) FROM airport").rows[0][0])
        meta = read_meta(conn)
    finally:
        conn.close()
    assert f"{3 - stored} row(s) of airport were not stored" in " ".join(result.out.split())
    assert meta["rows.airport"] == str(stored) and meta["skipped.airport"] == str(3 - stored)
