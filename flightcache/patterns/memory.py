"""Memory optimisation: the same flights in several layouts, and seat maps two ways.

Read path: HGETALL of a hash with one-letter fields (``n d a s``), or one HGET of a
bucket hash that holds many flights; a seat is GETBIT of the flight's seat map.
Write path: HSET with short field names; HSET bucket(flight_id // size) flight_id;
SETBIT seatmap index 1 per booked seat.
Failure mode: a hash that outgrows hash-max-listpack-entries (or holds a value
longer than hash-max-listpack-value) converts to a hashtable and costs several
times as much per field; a bitmap is as long as its highest seat index, so a
nearly empty flight with a booking in the last row costs as much as a full one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flightcache.keys import Keys
from flightcache.patterns.ttl import plain
from flightcache.sqlfiles import query
from flightcache.trace import TracedDatabase

FULL_FIELDS = ("flightno", "departure", "arrival", "seats_free")
SHORT_FIELDS = ("n", "d", "a", "s")  # 001's compact hash: d(eparture), a(rrival), s(eats)
SEPARATOR = "|"
LETTERS = "ABCDEFGHJK"  # seat letters; aircraft skip I
_SEAT = re.compile(r"^\s*(\d+)\s*([A-Z])\s*$")
ENCODING_SETTINGS = (
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-listpack-entries",
    "set-max-intset-entries",
)
"""The server settings that decide when a small hash or set stops being compact."""


@dataclass(frozen=True)
class Flight:
    flight_id: int
    flightno: str
    departure: str
    arrival: str
    capacity: int
    booked: int

    def values(self) -> list[str]:
        """The cached fields, as text, in FULL_FIELDS order."""
        return [self.flightno, self.departure, self.arrival, str(self.capacity - self.booked)]


# -- layouts: one key (or one field) per flight --------------------------------------
class JsonLayout:
    name = "JSON string"
    example = "SET {key} '{{\"flightno\":...}}'"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def key(self, flight_id: int) -> str:
        return self.keys.memory_json(flight_id)

    def write(self, pipe: Any, flight: Flight) -> None:
        document = dict(zip(FULL_FIELDS, flight.values(), strict=True))
        document["seats_free"] = int(document["seats_free"])  # type: ignore[assignment]
        pipe.set(self.key(flight.flight_id), json.dumps(document, separators=(",", ":")))

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        raw = client.get(self.key(flight_id))
        return None if raw is None else [str(v) for v in json.loads(raw).values()]


# region: compact-hash
class HashLayout:
    """One hash per flight, with full or one-letter field names."""

    def __init__(self, keys: Keys, *, short: bool) -> None:
        self.keys = keys
        self.fields = SHORT_FIELDS if short else FULL_FIELDS
        self.short = short
        self.name = "hash, short fields" if short else "hash, long fields"
        self.example = "HSET {key} " + " ".join(f"{f} ..." for f in self.fields)

    def key(self, flight_id: int) -> str:
        return (self.keys.memory_compact if self.short else self.keys.memory_hash)(flight_id)

    def write(self, pipe: Any, flight: Flight) -> None:
        pipe.hset(
            self.key(flight.flight_id), mapping=dict(zip(self.fields, flight.values(), strict=True))
        )

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        found = client.hgetall(self.key(flight_id))
        return [found[f] for f in self.fields] if found else None


# endregion: compact-hash


class PackedLayout:
    """One string per flight: the four values joined by ``|``."""

    name = "packed string"
    example = "SET {key} 'LH400|2025-06-02 12:05:00|...'"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def key(self, flight_id: int) -> str:
        return self.keys.memory_packed(flight_id)

    def write(self, pipe: Any, flight: Flight) -> None:
        pipe.set(self.key(flight.flight_id), SEPARATOR.join(flight.values()))

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        raw = client.get(self.key(flight_id))
        return None if raw is None else str(raw).split(SEPARATOR)


# region: bucket
class BucketLayout:
    """Many flights per hash: field flight_id in bucket flight_id // size, packed value."""

    def __init__(self, keys: Keys, size: int) -> None:
        self.keys = keys
        self.size = size
        self.name = f"bucket hash of {size:,}"
        self.example = f"HSET {{key}} <flight_id> 'LH400|...'   # bucket = flight_id // {size}"

    def key(self, flight_id: int) -> str:
        return self.keys.memory_bucket(self.size, flight_id // self.size)

    def write(self, pipe: Any, flight: Flight) -> None:
        pipe.hset(
            self.key(flight.flight_id), str(flight.flight_id), SEPARATOR.join(flight.values())
        )

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        raw = client.hget(self.key(flight_id), str(flight_id))
        return None if raw is None else str(raw).split(SEPARATOR)


# endregion: bucket


Layout = JsonLayout | HashLayout | PackedLayout | BucketLayout


def layouts(keys: Keys) -> list[Layout]:
    return [
        JsonLayout(keys),
        HashLayout(keys, short=False),
        HashLayout(keys, short=True),
        PackedLayout(keys),
        BucketLayout(keys, 1000),
        BucketLayout(keys, 100),
    ]


# -- seat maps -----------------------------------------------------------------------
# region: bitmap
def seat_index(label: str, width: int = 6) -> int | None:
    """ "12A" -> 66 with six seats a row (row 1 starts at 0); None when not a seat."""
    match = _SEAT.match(label)
    if match is None or match.group(2) not in LETTERS[:width]:
        return None
    return (int(match.group(1)) - 1) * width + LETTERS.index(match.group(2))


class BitmapSeats:
    name = "bitmap"

    def __init__(self, keys: Keys, width: int = 6) -> None:
        self.keys, self.width = keys, width

    def key(self, flight: int | str) -> str:
        return self.keys.memory_seatmap(flight)

    def write(self, pipe: Any, flight: int | str, labels: Iterable[str]) -> None:
        for label in labels:
            index = seat_index(label, self.width)
            if index is not None:
                pipe.setbit(self.key(flight), index, 1)

    def is_booked(self, client: Any, flight: int | str, label: str) -> bool:
        index = seat_index(label, self.width)
        return index is not None and bool(client.getbit(self.key(flight), index))

    def count(self, client: Any, flight: int | str) -> int:
        return int(client.bitcount(self.key(flight)))


# endregion: bitmap


def seat_label(index: int, width: int) -> str:
    """The inverse of :func:`seat_index`: 66 -> "12A" with six seats a row."""
    return f"{index // width + 1}{LETTERS[index % width]}"


def row_width(labels: Iterable[str]) -> int:
    """Seats per row: the highest seat letter seen (6 when nothing says more)."""
    widest = 6
    for label in labels:
        match = _SEAT.match(label)
        if match and match.group(2) in LETTERS:
            widest = max(widest, LETTERS.index(match.group(2)) + 1)
    return widest


class SetSeats:
    name = "set of labels"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def key(self, flight: int | str) -> str:
        return self.keys.memory_seats(flight)

    def write(self, pipe: Any, flight: int | str, labels: Iterable[str]) -> None:
        labels = list(labels)
        if labels:
            pipe.sadd(self.key(flight), *labels)

    def is_booked(self, client: Any, flight: int | str, label: str) -> bool:
        return bool(client.sismember(self.key(flight), label))

    def count(self, client: Any, flight: int | str) -> int:
        return int(client.scard(self.key(flight)))


# -- the data the layouts store --------------------------------------------------------
def flight_count(db: TracedDatabase) -> int:
    """How many flights the database holds."""
    return int(db.fetch(query(db.dialect, "memory_flight_count")).rows[0][0])


def load_flights(db: TracedDatabase, count: int) -> list[Flight]:
    """The first ``count`` flights by id (fewer when the database holds fewer)."""
    result = db.fetch(query(db.dialect, "memory_flights"), {"limit": count})
    return [
        Flight(
            int(r[0]), str(plain(r[1])), str(plain(r[2])), str(plain(r[3])), int(r[4]), int(r[5])
        )
        for r in result.rows
    ]


def load_seats(db: TracedDatabase, flights: Sequence[Flight]) -> dict[int, list[str]]:
    """Booked seat labels per flight (bookings without a seat left out)."""
    seats: dict[int, list[str]] = {f.flight_id: [] for f in flights}
    if not flights:
        return seats
    params = {"first": flights[0].flight_id, "last": flights[-1].flight_id}
    for flight_id, seat in db.fetch(query(db.dialect, "memory_booked_seats"), params).rows:
        if int(flight_id) in seats:
            seats[int(flight_id)].append(str(seat).strip())
    return seats
