"""Tests for flightcache.data.dump: reading FlughafenDB mysqldump files, no servers."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import re
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flightcache.data import dump as dump_module
from flightcache.data.dump import RowBatch, mysql_point_to_lonlat, read_dump
from flightcache.data.tables import COLUMNS
from flightcache.errors import DumpFormatError

# San Francisco's airport, as FlughafenDB stores it (x = longitude, y = latitude).
SFO_LON = -122.375
SFO_LAT = 37.61888122558594
# Frankfurt, for the hex-encoded point.
FRA_LON = 8.570556640625
FRA_LAT = 50.03333282470703


def point(lon: float, lat: float, srid: int = 0) -> bytes:
    """A MySQL POINT: little-endian SRID, then WKB (little-endian, type 1, x, y)."""
    return struct.pack("<I", srid) + struct.pack("<BIdd", 1, 1, lon, lat)


def mysql_escape(data: bytes) -> bytes:
    """What mysqldump does to a binary string inside _binary '...'."""
    table = {0: b"\\0", 10: b"\\n", 13: b"\\r", 26: b"\\Z", 39: b"\\'", 34: b'\\"', 92: b"\\\\"}
    return b"".join(table.get(c, bytes([c])) for c in data)


HEADER = """\
-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: flughafendb
-- ------------------------------------------------------
-- Server version\t8.0.36

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!50503 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;

"""

FOOTER = """\
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on 2024-03-01 12:00:00
"""


def table_sql(name: str, definition: str, inserts: str) -> str:
    """One table as mysqldump writes it: structure, then data between LOCK TABLES."""
    return f"""\
--
-- Table structure for table `{name}`
--

DROP TABLE IF EXISTS `{name}`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!50503 SET character_set_client = utf8mb4 */;
CREATE TABLE `{name}` (
{definition}
) ENGINE=InnoDB AUTO_INCREMENT=100 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `{name}`
--

LOCK TABLES `{name}` WRITE;
/*!40000 ALTER TABLE `{name}` DISABLE KEYS */;
{inserts}
/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;
UNLOCK TABLES;

"""


AIRPORT_DEF = """\
  `airport_id` smallint NOT NULL AUTO_INCREMENT,
  `iata` char(3) DEFAULT NULL,
  `icao` char(4) NOT NULL,
  `name` varchar(50) NOT NULL COMMENT 'the name, (in full)',
  PRIMARY KEY (`airport_id`),
  UNIQUE KEY `icao_unq` (`icao`),
  KEY `name_idx` (`name`),
  KEY `iata_idx` (`iata`)"""

AIRPORT_GEO_DEF = """\
  `airport_id` smallint NOT NULL,
  `name` varchar(50) NOT NULL,
  `city` varchar(50) DEFAULT NULL,
  `country` varchar(50) DEFAULT NULL,
  `latitude` decimal(11,8) NOT NULL,
  `longitude` decimal(11,8) NOT NULL,
  `geolocation` point NOT NULL /*!80003 SRID 0 */,
  KEY `airport_id` (`airport_id`),
  SPATIAL KEY `geolocation_idx` (`geolocation`)"""

# Not FlughafenDB's column order: rows must come out reordered.
BOOKING_DEF = """\
  `booking_id` int NOT NULL AUTO_INCREMENT,
  `passenger_id` int NOT NULL,
  `price` decimal(10,2) NOT NULL,
  `flight_id` int NOT NULL,
  `seat` char(4) DEFAULT NULL,
  PRIMARY KEY (`booking_id`),
  UNIQUE KEY `seatplan_unq` (`flight_id`,`seat`),
  KEY `passenger_idx` (`passenger_id`),
  CONSTRAINT `booking_ibfk_1` FOREIGN KEY (`flight_id`) REFERENCES `flight` (`flight_id`)"""

FLIGHT_DEF = """\
  `flight_id` int NOT NULL AUTO_INCREMENT,
  `flightno` char(8) NOT NULL,
  `from` smallint NOT NULL,
  `to` smallint NOT NULL,
  `departure` datetime NOT NULL,
  `arrival` datetime NOT NULL,
  `airline_id` smallint NOT NULL,
  `airplane_id` int NOT NULL,
  PRIMARY KEY (`flight_id`),
  KEY `from_idx` (`from`),
  KEY `to_idx` (`to`)"""

# A table that is not FlughafenDB's: skipped, its rows too (they even look like
# airport rows, and hold a ";" and a "),(" in a string).
NOTES_SQL = table_sql(
    "notes",
    "  `id` int NOT NULL,\n  `text` text,\n  PRIMARY KEY (`id`)",
    "INSERT INTO `notes` VALUES (1,'skip me;'),(2,'INSERT INTO `airport` VALUES (7,\\'X\\')),(');",
)

# A trigger as mysqldump writes it, and one written by hand without the
# conditional comments; neither INSERT inside must be taken for data.
TRIGGERS_SQL = """\
/*!50003 SET @saved_cs_client      = @@character_set_client */ ;
/*!50003 SET sql_mode              = 'STRICT_TRANS_TABLES' */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `booking_log` \
AFTER INSERT ON `booking` FOR EACH ROW BEGIN
  INSERT INTO airport VALUES (900,'TRG','TRGA','from a trigger');
END */;;
CREATE TRIGGER `booking_log2` AFTER UPDATE ON `booking` FOR EACH ROW BEGIN
  SET @x = 'a;;b';
  INSERT INTO `booking` VALUES (901,1,1.00,1,'9Z');
END ;;
DELIMITER ;
/*!50003 SET character_set_client  = @saved_cs_client */ ;

"""

GEO_BINARY = point(SFO_LON, SFO_LAT)
GEO_HEX = point(FRA_LON, FRA_LAT)


def flughafen_dump() -> bytes:
    """A small FlughafenDB dump in mysqldump's style, as the bytes of the file."""
    airport_rows = (
        "INSERT INTO `airport` VALUES "
        "(1,'SFO','KSFO','San Francisco International'),"
        "(2,NULL,'EDDF','It\\'s ),( tricky; isn''t it'),"
        "(3,'MUC','EDDM','M\u00fcnchen \\\"Franz Josef Strau\u00df\\\"\\n\\\\ \\t\\r\\0\\b\\Z\\%'),"
        "(4,'','ZZZZ','');"
    )
    text = (
        HEADER
        + "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `flughafendb`;\nUSE `flughafendb`;\n\n"
        + table_sql("airport", AIRPORT_DEF, airport_rows)
        + table_sql(
            "airport_geo",
            AIRPORT_GEO_DEF,
            "INSERT INTO `airport_geo` VALUES "
            "(1,'SFO','San Francisco','United States',37.61888122,-122.37500000,"
            "_binary '@GEO_BINARY@'),"
            f"(2,'FRA','Frankfurt','Germany',50.03333282,8.57055664,0x{GEO_HEX.hex().upper()});",
        )
        + NOTES_SQL
        + table_sql(
            "booking",
            BOOKING_DEF,
            "INSERT INTO `booking` VALUES (1,10,123.45,3,'12A'),(2,11,-0.50,3,NULL),"
            "(3,12,1E2,4,'1B');\n"
            "INSERT INTO `booking` VALUES (4,13,99.00,4,'2C');",
        )
        + table_sql(
            "flight",
            FLIGHT_DEF,
            "INSERT INTO `flight` (`flightno`, `flight_id`, `to`, `from`, `departure`, "
            "`arrival`, `airplane_id`, `airline_id`) VALUES "
            "('LH401',3,2,1,'2024-01-02 10:00:00','2024-01-02 18:00:00',7,-5);",
        )
        + TRIGGERS_SQL
        + FOOTER
    )
    return text.encode("utf-8").replace(b"@GEO_BINARY@", mysql_escape(GEO_BINARY))


EXPECTED: dict[str, list[tuple[object, ...]]] = {
    "airport": [
        (1, "SFO", "KSFO", "San Francisco International"),
        (2, None, "EDDF", "It's ),( tricky; isn't it"),
        (3, "MUC", "EDDM", 'M\u00fcnchen "Franz Josef Strau\u00df"\n\\ \t\r\0\b\x1a\\%'),
        (4, "", "ZZZZ", ""),
    ],
    "airport_geo": [
        (
            1,
            "SFO",
            "San Francisco",
            "United States",
            Decimal("37.61888122"),
            Decimal("-122.37500000"),
            GEO_BINARY,
        ),
        (
            2,
            "FRA",
            "Frankfurt",
            "Germany",
            Decimal("50.03333282"),
            Decimal("8.57055664"),
            GEO_HEX,
        ),
    ],
    # canonical order: booking_id, flight_id, seat, passenger_id, price
    "booking": [
        (1, 3, "12A", 10, Decimal("123.45")),
        (2, 3, None, 11, Decimal("-0.50")),
        (3, 4, "1B", 12, Decimal("1E2")),
        (4, 4, "2C", 13, Decimal("99.00")),
    ],
    "flight": [
        (3, "LH401", 1, 2, "2024-01-02 10:00:00", "2024-01-02 18:00:00", -5, 7),
    ],
}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rows_by_table(batches: list[RowBatch]) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    for batch in batches:
        out.setdefault(batch.table, []).extend(batch.rows)
    return out


def read_error(path: Path, **kwargs: object) -> DumpFormatError:
    with pytest.raises(DumpFormatError) as info:
        for _ in read_dump(path, **kwargs):  # type: ignore[arg-type]
            pass
    assert info.value.hint, "every DumpFormatError carries a hint"
    assert "\n" not in info.value.message
    return info.value


# ------------------------------------------------------------------------- reading


def test_reads_every_flughafendb_table_in_canonical_order(tmp_path: Path) -> None:
    batches = list(read_dump(write(tmp_path, "flughafendb.sql", flughafen_dump())))

    assert [b.table for b in batches] == ["airport", "airport_geo", "booking", "flight"]
    for batch in batches:
        assert batch.columns == COLUMNS[batch.table]
        assert isinstance(batch.rows, list)
    assert rows_by_table(batches) == EXPECTED


def test_value_types_are_exact(tmp_path: Path) -> None:
    rows = rows_by_table(list(read_dump(write(tmp_path, "d.sql", flughafen_dump()))))
    booking = rows["booking"][0]
    assert [type(v) for v in booking] == [int, int, str, int, Decimal]
    assert str(booking[4]) == "123.45"  # the scale is kept
    assert type(rows["airport_geo"][0][6]) is bytes


def test_gzip_gives_the_same_batches_whatever_the_file_name(tmp_path: Path) -> None:
    data = flughafen_dump()
    # gzip is recognised by its magic bytes: the names here are deliberately wrong.
    plain = write(tmp_path, "plain.sql.gz", data)
    packed = write(tmp_path, "packed.sql", gzip.compress(data))

    from_plain = list(read_dump(plain, batch_rows=3))
    from_gzip = list(read_dump(packed, batch_rows=3))

    assert from_gzip == from_plain
    assert rows_by_table(from_gzip) == EXPECTED


def test_escapes_nulls_and_separators_inside_strings(tmp_path: Path) -> None:
    rows = rows_by_table(list(read_dump(write(tmp_path, "d.sql", flughafen_dump()))))
    airport = {r[0]: r for r in rows["airport"]}
    assert airport[2] == (2, None, "EDDF", "It's ),( tricky; isn't it")
    name = airport[3][3]
    assert isinstance(name, str)
    assert name.startswith('München "Franz Josef Strauß"\n')
    assert name.endswith("\\ \t\r\0\b\x1a\\%")  # MySQL keeps the backslash of \%
    assert airport[4] == (4, "", "ZZZZ", "")


def test_create_table_order_differs_from_canonical(tmp_path: Path) -> None:
    batches = list(read_dump(write(tmp_path, "d.sql", flughafen_dump())))
    booking = [b for b in batches if b.table == "booking"]
    assert booking[0].columns == ("booking_id", "flight_id", "seat", "passenger_id", "price")
    # In the dump the first row is (1,10,123.45,3,'12A'): id, passenger, price, flight, seat.
    assert booking[0].rows[0] == (1, 3, "12A", 10, Decimal("123.45"))


def test_insert_with_explicit_column_list(tmp_path: Path) -> None:
    batches = list(read_dump(write(tmp_path, "d.sql", flughafen_dump())))
    (flight,) = [b for b in batches if b.table == "flight"]
    assert flight.rows == [(3, "LH401", 1, 2, "2024-01-02 10:00:00", "2024-01-02 18:00:00", -5, 7)]


def test_geolocation_points_decode_to_lon_lat(tmp_path: Path) -> None:
    rows = rows_by_table(list(read_dump(write(tmp_path, "d.sql", flughafen_dump()))))
    geo = {r[0]: r[6] for r in rows["airport_geo"]}
    assert geo[1] == GEO_BINARY  # _binary '...' with raw and escaped bytes
    assert geo[2] == GEO_HEX  # 0x...
    assert isinstance(geo[1], bytes) and isinstance(geo[2], bytes)
    assert mysql_point_to_lonlat(geo[1]) == (SFO_LON, SFO_LAT)
    assert mysql_point_to_lonlat(geo[2]) == (FRA_LON, FRA_LAT)


def test_point_as_a_plain_string_with_raw_bytes(tmp_path: Path) -> None:
    # Older mysqldump versions write a POINT as a plain string: escaped where it
    # must be, raw bytes (not UTF-8) everywhere else.
    rows = (
        b"INSERT INTO `airport_geo` VALUES (1,'SFO','San Francisco','United States',"
        b"37.61888122,-122.37500000,'" + mysql_escape(GEO_BINARY) + b"');"
    )
    assert any(b >= 0x80 for b in GEO_BINARY)
    text = (
        HEADER
        + table_sql("airport", AIRPORT_DEF, "")
        + table_sql("airport_geo", AIRPORT_GEO_DEF, "<ROWS>")
        + FOOTER
    )
    data = text.encode().replace(b"<ROWS>", rows)
    batches = list(read_dump(write(tmp_path, "old.sql", data)))
    geolocation = batches[0].rows[0][6]
    assert geolocation == GEO_BINARY
    assert isinstance(geolocation, bytes)
    assert mysql_point_to_lonlat(geolocation) == (SFO_LON, SFO_LAT)


def test_trigger_bodies_and_other_tables_are_skipped(tmp_path: Path) -> None:
    rows = rows_by_table(list(read_dump(write(tmp_path, "d.sql", flughafen_dump()))))
    assert set(rows) == {"airport", "airport_geo", "booking", "flight"}
    assert [r[0] for r in rows["airport"]] == [1, 2, 3, 4]  # not 7, not 900
    assert [r[0] for r in rows["booking"]] == [1, 2, 3, 4]  # not 901


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 61, 509])
def test_any_chunk_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    # Tiny reads put a chunk boundary everywhere: inside keywords, strings, escapes,
    # UTF-8 sequences, comments, the ";;" delimiter and between tuples.
    monkeypatch.setattr(dump_module, "_CHUNK", chunk)
    monkeypatch.setattr(dump_module, "_PEEK", 400)  # still more than any INSERT header
    data = flughafen_dump()
    assert rows_by_table(list(read_dump(write(tmp_path, "d.sql", data)))) == EXPECTED
    packed = write(tmp_path, "d.gz", gzip.compress(data))
    assert rows_by_table(list(read_dump(packed))) == EXPECTED


def test_batches_split_at_batch_rows(tmp_path: Path) -> None:
    batches = list(read_dump(write(tmp_path, "d.sql", flughafen_dump()), batch_rows=3))
    sizes = [(b.table, len(b.rows)) for b in batches]
    # booking's four rows come from two INSERT statements and still fill batches.
    assert sizes == [
        ("airport", 3),
        ("airport", 1),
        ("airport_geo", 2),
        ("booking", 3),
        ("booking", 1),
        ("flight", 1),
    ]
    assert rows_by_table(batches) == EXPECTED

    one = list(read_dump(write(tmp_path, "d1.sql", flughafen_dump()), batch_rows=1))
    assert len(one) == 11
    assert all(len(b.rows) == 1 for b in one)


def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        next(read_dump(write(tmp_path, "d.sql", flughafen_dump()), batch_rows=0))


def big_booking_dump(rows: int, *, rows_per_insert: int = 80_000) -> bytes:
    """A dump with one long extended INSERT line per ``rows_per_insert`` rows."""
    parts = [HEADER, table_sql("airport", AIRPORT_DEF, "")]
    definition = BOOKING_DEF
    inserts = []
    for start in range(1, rows + 1, rows_per_insert):
        stop = min(start + rows_per_insert, rows + 1)
        values = []
        for i in range(start, stop):
            if i % 1000 == 0:  # now and then a string that needs the slow path
                seat = "'a\\'),(b;'"
            elif i % 777 == 0:
                seat = "NULL"
            else:
                seat = f"'{i % 30}{'ABCDEF'[i % 6]}'"
            values.append(f"({i},{i % 97},{i * 3}.{i % 100:02d},{i % 89},{seat})")
        inserts.append("INSERT INTO `booking` VALUES " + ",".join(values) + ";")
    parts.append(table_sql("booking", definition, "\n".join(inserts)))
    parts.append(FOOTER)
    return "".join(parts).encode()


def expected_booking_row(i: int) -> tuple[object, ...]:
    if i % 1000 == 0:
        seat: str | None = "a'),(b;"
    elif i % 777 == 0:
        seat = None
    else:
        seat = f"{i % 30}{'ABCDEF'[i % 6]}"
    return (i, i % 89, seat, i % 97, Decimal(f"{i * 3}.{i % 100:02d}"))


def test_long_insert_lines_across_chunk_boundaries(tmp_path: Path) -> None:
    data = big_booking_dump(120_000)
    assert max(len(line) for line in data.splitlines()) > 2 * (1 << 20)
    rows = [r for b in read_dump(write(tmp_path, "big.sql", data)) for r in b.rows]
    assert len(rows) == 120_000
    assert rows == [expected_booking_row(i) for i in range(1, 120_001)]


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_on_progress_reaches_the_file_size(tmp_path: Path, packed: bool) -> None:
    data = big_booking_dump(120_000)
    if packed:
        data = gzip.compress(data, compresslevel=1)
    path = write(tmp_path, "big", data)
    size = path.stat().st_size
    calls: list[tuple[int, int]] = []

    n = sum(len(b.rows) for b in read_dump(path, on_progress=lambda d, t: calls.append((d, t))))

    assert n == 120_000
    assert calls[-1] == (size, size)
    assert calls.count((size, size)) == 1
    assert all(total == size for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert all(0 <= d <= size for d in done)
    # about once per MiB, not once per row or per chunk of text
    assert len(calls) <= size // (1 << 20) + 2
    if not packed:
        assert len(calls) >= 3  # several MiB: reported along the way, not only at the end


def test_spaces_inside_tuples_and_one_row_per_insert(tmp_path: Path) -> None:
    text = (
        HEADER
        + table_sql(
            "airport",
            AIRPORT_DEF,
            "INSERT INTO `airport` VALUES ( 1 , 'AAA' ,\n 'AAAA' , 'a' ) ,\n(2,NULL,'BBBB','b') ;\n"
            "insert into airport values (3,'CCC','CCCC','c');\n"
            "INSERT IGNORE INTO `flughafendb`.`airport` VALUES (4,'DDD','DDDD','d');\n"
            "REPLACE INTO `airport` VALUES (5,'EEE','EEEE','e');",
        )
        + FOOTER
    )
    batches = list(read_dump(write(tmp_path, "d.sql", text.encode())))
    assert rows_by_table(batches) == {
        "airport": [
            (1, "AAA", "AAAA", "a"),
            (2, None, "BBBB", "b"),
            (3, "CCC", "CCCC", "c"),
            (4, "DDD", "DDDD", "d"),
            (5, "EEE", "EEEE", "e"),
        ]
    }


def test_create_table_if_not_exists_and_qualified_names(tmp_path: Path) -> None:
    text = (
        HEADER
        + "CREATE TABLE /*!32312 IF NOT EXISTS*/ `flughafendb`.`airport` (\n"
        + AIRPORT_DEF
        + "\n) ENGINE=InnoDB;\n"
        + "INSERT INTO `flughafendb` . `Airport` VALUES (1,'AAA','AAAA','a');\n"
        + FOOTER
    )
    batches = list(read_dump(write(tmp_path, "d.sql", text.encode())))
    assert rows_by_table(batches) == {"airport": [(1, "AAA", "AAAA", "a")]}


def test_literal_kinds(tmp_path: Path) -> None:
    rows = (
        "INSERT INTO `weatherdata` VALUES "
        "('2024-01-01','10:00:00',-7,-1.5,+2,1.25e2,0.00,X'4E65626C',b'0101'),"
        "('2024-01-02','11:00:00',0x0A0B,_binary 'a\\0b',_utf8mb4'x''y',0b11,NULL,null,1e-3);"
    )
    definition = ",\n".join(f"  `{c}` varchar(10)" for c in COLUMNS["weatherdata"])
    text = (
        HEADER
        + table_sql("airport", AIRPORT_DEF, "")
        + table_sql("weatherdata", definition, rows)
        + FOOTER
    )
    batches = list(read_dump(write(tmp_path, "d.sql", text.encode())))
    assert batches[0].rows == [
        (
            "2024-01-01",
            "10:00:00",
            -7,
            Decimal("-1.5"),
            2,
            Decimal("1.25e2"),
            Decimal("0.00"),
            b"Nebl",
            5,
        ),
        ("2024-01-02", "11:00:00", b"\n\x0b", b"a\0b", "x'y", 3, None, None, Decimal("0.001")),
    ]
    first = batches[0].rows[0]
    assert type(first[2]) is int and type(first[4]) is int and type(first[8]) is int


def test_rows_before_the_airport_table_are_held_until_identified(tmp_path: Path) -> None:
    airline_def = (
        "  `airline_id` smallint NOT NULL,\n  `iata` char(2) NOT NULL,\n"
        "  `airlinename` varchar(30) DEFAULT NULL,\n  `base_airport` smallint NOT NULL"
    )
    airline = table_sql(
        "airline", airline_def, "INSERT INTO `airline` VALUES (1,'LH','Lufthansa',2);"
    )
    # FlughafenDB dumps list tables alphabetically: airline comes before airport.
    good = HEADER + airline + table_sql("airport", AIRPORT_DEF, "") + FOOTER
    batches = list(read_dump(write(tmp_path, "good.sql", good.encode())))
    assert rows_by_table(batches) == {"airline": [(1, "LH", "Lufthansa", 2)]}

    # Without airport, flight or booking it is not FlughafenDB: nothing is yielded.
    got: list[RowBatch] = []
    with pytest.raises(DumpFormatError, match="not a FlughafenDB MySQL dump"):
        for batch in read_dump(write(tmp_path, "bad.sql", (HEADER + airline).encode())):
            got.append(batch)
    assert got == []


# ------------------------------------------------------------------------- points


def test_point_with_srid_prefix() -> None:
    assert mysql_point_to_lonlat(point(SFO_LON, SFO_LAT, srid=4326)) == (SFO_LON, SFO_LAT)


def test_point_plain_wkb_and_big_endian() -> None:
    little = struct.pack("<BIdd", 1, 1, 8.5, 50.25)
    big = struct.pack(">BIdd", 0, 1, -3.75, 40.5)
    assert mysql_point_to_lonlat(little) == (8.5, 50.25)
    assert mysql_point_to_lonlat(big) == (-3.75, 40.5)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b"", "0 bytes"),
        (point(1.0, 2.0)[:-1], "24 bytes"),
        (struct.pack("<I", 0) + struct.pack("<BIdd", 7, 1, 1.0, 2.0), "byte-order"),
        (struct.pack("<I", 0) + struct.pack("<BIdd", 1, 2, 1.0, 2.0), "geometry type is 2"),
    ],
    ids=["empty", "short", "byte-order", "linestring-type"],
)
def test_malformed_points(value: bytes, words: str) -> None:
    with pytest.raises(DumpFormatError, match=words) as info:
        mysql_point_to_lonlat(value)
    assert info.value.hint


# ------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    err = read_error(tmp_path / "nope.sql.gz")
    assert "not found" in err.message
    assert "nope.sql.gz" in err.message


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in read_error(tmp_path).message


def test_empty_file(tmp_path: Path) -> None:
    err = read_error(write(tmp_path, "empty.sql", b""))
    assert "is empty" in err.message
    err = read_error(write(tmp_path, "empty.sql.gz", gzip.compress(b"")))
    assert "no data" in err.message


def test_random_binary_bytes(tmp_path: Path) -> None:
    data = random.Random(20240301).randbytes(64 * 1024)
    assert data[:2] != b"\x1f\x8b"
    err = read_error(write(tmp_path, "random.sql", data))
    assert "binary file" in err.message


def test_binary_without_nul_bytes(tmp_path: Path) -> None:
    data = bytes(range(0x80, 0x100)) * 16  # no NUL, not UTF-8
    assert "binary file" in read_error(write(tmp_path, "latin.sql", data)).message


def test_text_that_is_not_utf8(tmp_path: Path) -> None:
    # A dump written with --default-character-set=latin1: "Köln" as latin-1 bytes.
    text = HEADER + table_sql(
        "airport", AIRPORT_DEF, "INSERT INTO airport VALUES (1,'CGN','EDDK','K<o-umlaut>ln');"
    )
    data = text.encode().replace(b"<o-umlaut>", "ö".encode("latin-1"))
    err = read_error(write(tmp_path, "latin1.sql", data))
    assert "`airport` holds text that is not UTF-8" in err.message


def test_plain_text_that_is_not_sql(tmp_path: Path) -> None:
    text = "Shopping list\n\n- milk\n- don't forget the eggs\n-- not a comment either\n"
    err = read_error(write(tmp_path, "notes.txt", text.encode()))
    assert "not a FlughafenDB MySQL dump" in err.message
    assert "no airport, flight or booking table found" in err.message
    assert "does not look like SQL" in err.message


def test_sql_dump_of_another_database(tmp_path: Path) -> None:
    employees = table_sql(
        "employees",
        "  `emp_no` int NOT NULL,\n  `name` varchar(14) NOT NULL,\n  PRIMARY KEY (`emp_no`)",
        "INSERT INTO `employees` VALUES (10001,'Georgi'),(10002,'Bezalel');",
    )
    err = read_error(write(tmp_path, "employees.sql", (HEADER + employees + FOOTER).encode()))
    assert "is not a FlughafenDB MySQL dump: no airport, flight or booking table found" in (
        err.message
    )
    assert "does not look like SQL" not in err.message


def test_identification_gives_up_after_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dump_module, "_IDENTIFY_LIMIT", 4096)
    monkeypatch.setattr(dump_module, "_CHUNK", 1024)
    filler = "".join(f"-- line {i} of a long preamble\n" for i in range(2000))
    late = (
        HEADER
        + filler
        + table_sql("airport", AIRPORT_DEF, "INSERT INTO airport VALUES (1,'A','B','C');")
    )
    err = read_error(write(tmp_path, "late.sql", late.encode()))
    assert "not a FlughafenDB MySQL dump" in err.message


def test_schema_without_rows(tmp_path: Path) -> None:
    text = HEADER + table_sql("airport", AIRPORT_DEF, "") + NOTES_SQL + FOOTER
    err = read_error(write(tmp_path, "schema.sql", text.encode()))
    assert "holds the schema but no rows" in err.message


def test_column_mismatch(tmp_path: Path) -> None:
    definition = AIRPORT_DEF.replace("`icao` char(4)", "`icao_code` char(4)") + ",\n  `x` int"
    text = HEADER + table_sql(
        "airport", definition, "INSERT INTO airport VALUES (1,'A','B','C',2);"
    )
    err = read_error(write(tmp_path, "mismatch.sql", text.encode()))
    assert "`airport`" in err.message
    assert "missing column(s) icao" in err.message
    assert "unexpected column(s) icao_code, x" in err.message


def test_column_mismatch_in_an_insert_column_list(tmp_path: Path) -> None:
    text = (
        HEADER
        + table_sql("airport", AIRPORT_DEF, "")
        + "INSERT INTO `airport` (`airport_id`,`iata`,`name`) VALUES (1,'A','C');\n"
    )
    err = read_error(write(tmp_path, "list.sql", text.encode()))
    assert "`airport`" in err.message
    assert "missing column(s) icao" in err.message


def test_row_with_the_wrong_number_of_values(tmp_path: Path) -> None:
    text = HEADER + table_sql("airport", AIRPORT_DEF, "INSERT INTO airport VALUES (1,'A','B');")
    err = read_error(write(tmp_path, "short.sql", text.encode()))
    assert "3 value(s) where 4 were expected" in err.message
    assert "`airport`" in err.message


def test_unreadable_value(tmp_path: Path) -> None:
    text = HEADER + table_sql(
        "airport", AIRPORT_DEF, "INSERT INTO airport VALUES (1,'A','B',CURRENT_USER);"
    )
    err = read_error(write(tmp_path, "value.sql", text.encode()))
    assert "CURRENT_USER" in err.message


def test_insert_before_create_table(tmp_path: Path) -> None:
    text = (
        HEADER
        + table_sql("airport", AIRPORT_DEF, "")
        + "INSERT INTO `booking` VALUES (1,2,'3',4,5.00);\n"
    )
    err = read_error(write(tmp_path, "data-only.sql", text.encode()))
    assert "`booking`" in err.message
    assert "before its CREATE TABLE" in err.message


def test_truncated_plain_dump(tmp_path: Path) -> None:
    data = flughafen_dump()
    cut = data[: data.index(b"(3,12,1E2") + 5]
    err = read_error(write(tmp_path, "cut.sql", cut))
    assert "ends in the middle of an INSERT for table `booking`" in err.message


def test_truncated_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(big_booking_dump(20_000))
    err = read_error(write(tmp_path, "cut.sql.gz", packed[: len(packed) // 2]))
    assert "truncated gzip" in err.message


@pytest.mark.parametrize(
    ("offset", "patch"),
    [(10, b"\x07"), (-8, b"\0\0\0\0")],
    ids=["bad-deflate-block", "bad-crc"],
)
def test_corrupt_gzip(tmp_path: Path, offset: int, patch: bytes) -> None:
    packed = bytearray(gzip.compress(flughafen_dump()))
    start = offset % len(packed)
    packed[start : start + len(patch)] = patch
    err = read_error(write(tmp_path, "bad.sql.gz", bytes(packed)))
    assert "starts like a gzip file but cannot be decompressed" in err.message


# ------------------------------------------------------------------ untrusted input


def _bench_dump() -> Any:
    """scripts/bench_dump.py, whose adversarial files the tests share."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_dump.py"
    spec = importlib.util.spec_from_file_location("bench_dump", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.safety(8)
def test_no_regex_feature_that_early_311_gets_wrong() -> None:
    # Possessive quantifiers and atomic groups are new in 3.11 and wrong in 3.11.2
    # (Debian 12's python3): there, CREATE TABLE `a`.`b` was not recognised.
    patterns = [v.pattern for v in vars(dump_module).values() if isinstance(v, re.Pattern)]
    patterns += [dump_module._row_fast_re(8).pattern, dump_module._special_re(";;").pattern]
    assert len(patterns) > 5
    for pattern in patterns:
        for feature in ("*+", "++", "?+", "}+", "(?>"):
            assert feature not in pattern.replace("\\+", ""), (feature, pattern)


@pytest.mark.safety(8)
def test_adversarial_dumps_are_rejected_in_linear_time(tmp_path: Path) -> None:
    """1 MiB files built to make regex backtracking explode are refused in seconds.

    Read in a child process, so that a reader that takes hours fails the test
    instead of hanging it.
    """
    bench = _bench_dump()
    paths = bench.write_adversarial(tmp_path, 1 << 20)
    code = (
        "import json, sys\n"
        "from flightcache.data.dump import read_dump\n"
        "from flightcache.errors import DumpFormatError\n"
        "import time\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    t0 = time.perf_counter()\n"
        "    try:\n"
        "        for _ in read_dump(p): pass\n"
        "        out[p] = ['ACCEPTED', 0]\n"
        "    except DumpFormatError as e:\n"
        "        out[p] = [e.message, time.perf_counter() - t0]\n"
        "print(json.dumps(out))\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading 1 MiB adversarial dumps took over a minute")
    results = json.loads(proc.stdout)
    assert len(results) == len(bench.ADVERSARIAL) >= 15
    for path, (message, seconds) in results.items():
        assert message != "ACCEPTED", path
        assert seconds < bench.TARGET_SECONDS, (path, seconds)


def test_scanner_reads_what_the_fast_path_does_not(tmp_path: Path) -> None:
    rows = (
        "INSERT INTO `airport` VALUES ( 1 ,\t'A\\'B' , 'C''D',_utf8mb4 'x\\\\y'),"
        "(2,X'41',b'1',0x4142) , (3,'(,)',' ; ','');"
    )
    text = HEADER + table_sql("airport", AIRPORT_DEF, rows) + FOOTER
    batches = list(read_dump(write(tmp_path, "d.sql", text.encode())))
    assert rows_by_table(batches)["airport"] == [
        (1, "A'B", "C'D", "x\\y"),
        (2, b"A", 1, b"AB"),
        (3, "(,)", " ; ", ""),
    ]


# ------------------------------------------------------------------ truncation


@pytest.mark.safety(8)
@pytest.mark.parametrize("where", ["between-statements", "before-last-line"])
def test_a_dump_cut_short_is_refused(tmp_path: Path, where: str) -> None:
    data = flughafen_dump()
    cut = {
        # what today's reader took for a whole dump: every statement it read was whole
        "between-statements": data[: data.index(b"--\n-- Table structure for table `flight`")],
        "before-last-line": data[: data.index(b"-- Dump completed")],
    }[where]
    for name, payload in (("cut.sql", cut), ("cut.sql.gz", gzip.compress(cut))):
        err = read_error(write(tmp_path, name, payload))
        assert "truncated" in err.message, err.message


@pytest.mark.safety(8)
def test_a_mariadb_dump_cut_short_is_refused(tmp_path: Path) -> None:
    # mariadb-dump 10.11 writes a sandbox-mode line before its header
    data = b"/*M!999999\\- enable the sandbox mode */ \n" + flughafen_dump().replace(
        b"-- MySQL dump", b"-- MariaDB dump"
    )
    assert rows_by_table(list(read_dump(write(tmp_path, "whole.sql", data)))) == EXPECTED
    cut = data[: data.index(b"--\n-- Table structure for table `flight`")]
    assert "truncated" in read_error(write(tmp_path, "cut.sql", cut)).message


@pytest.mark.safety(8)
@pytest.mark.parametrize("packed", [False, True], ids=["sql", "sql.gz"])
def test_a_dump_cut_in_half_is_refused(tmp_path: Path, packed: bool) -> None:
    data = big_booking_dump(50_000, rows_per_insert=2_000)
    if packed:
        data = gzip.compress(data)
    whole = write(tmp_path, "whole", data)
    assert sum(len(b.rows) for b in read_dump(whole)) == 50_000
    err = read_error(write(tmp_path, "half", data[: len(data) // 2]))
    assert "truncated" in err.message


# ------------------------------------------------------------------ split dumps


def split(data: bytes, parts: int, tmp_path: Path, names: list[str]) -> list[Path]:
    size = -(-len(data) // parts)
    return [
        write(tmp_path, f"flughafendb_large.sql.gz.part-{name}", data[i * size : (i + 1) * size])
        for i, name in enumerate(names)
    ]


def test_split_parts_read_as_one_gzip_stream(tmp_path: Path) -> None:
    data = gzip.compress(big_booking_dump(30_000))
    parts = split(data, 3, tmp_path, ["aa", "ab", "ac"])
    whole = write(tmp_path, "flughafendb_large.sql.gz", data)
    calls: list[tuple[int, int]] = []
    from_parts = list(read_dump(parts, on_progress=lambda d, t: calls.append((d, t))))
    assert from_parts == list(read_dump(whole))
    assert calls[-1] == (len(data), len(data))
    numbered = split(data, 3, tmp_path, ["00", "01", "02"])
    assert sum(len(b.rows) for b in read_dump(numbered)) == 30_000


@pytest.mark.safety(8)
@pytest.mark.parametrize(
    ("order", "words"),
    [
        ([1, 0, 2], "not in order"),
        ([0, 2], "missing between"),
        ([1, 2], "not the first part"),
        ([0, 0, 1, 2], "given twice"),
    ],
)
def test_split_parts_out_of_order_are_refused(tmp_path: Path, order: list[int], words: str) -> None:
    data = gzip.compress(big_booking_dump(3_000))
    parts = split(data, 3, tmp_path, ["aa", "ab", "ac"])
    err = read_error([parts[i] for i in order])  # type: ignore[arg-type]
    assert words in err.message
    assert "part-*" in (err.hint or "")


def test_several_files_that_are_not_parts(tmp_path: Path) -> None:
    one = write(tmp_path, "a.sql", flughafen_dump())
    two = write(tmp_path, "b.sql", flughafen_dump())
    err = read_error([one, two])  # type: ignore[arg-type]
    assert "is not a part of a split dump" in err.message
