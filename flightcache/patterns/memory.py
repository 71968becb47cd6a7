"""Memory optimisation: the same flights in several layouts, each one measured.

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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import valkey.cluster

from flightcache.demos.base import DemoContext, Record, Table
from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.ttl import plain
from flightcache.sqlfiles import query
from flightcache.trace import TracedDatabase

FULL_FIELDS = ("flightno", "departure", "arrival", "seats_free")
SHORT_FIELDS = ("n", "d", "a", "s")  # 001's compact hash: d(eparture), a(rrival), s(eats)
SEP = "|"
LETTERS = "ABCDEFGHJK"  # seat letters; aircraft skip I
_SEAT = re.compile(r"^\s*(\d+)\s*([A-Z])\s*$")


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
        return self.keys.mem_json(flight_id)

    def write(self, pipe: Any, flight: Flight) -> None:
        doc = dict(zip(FULL_FIELDS, flight.values(), strict=True))
        doc["seats_free"] = int(doc["seats_free"])  # type: ignore[assignment]
        pipe.set(self.key(flight.flight_id), json.dumps(doc, separators=(",", ":")))

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        raw = client.get(self.key(flight_id))
        return None if raw is None else [str(v) for v in json.loads(raw).values()]


class HashLayout:
    """One hash per flight, with full or one-letter field names."""

    def __init__(self, keys: Keys, *, short: bool) -> None:
        self.keys = keys
        self.fields = SHORT_FIELDS if short else FULL_FIELDS
        self.short = short
        self.name = "hash, short fields" if short else "hash, long fields"
        self.example = "HSET {key} " + " ".join(f"{f} ..." for f in self.fields)

    def key(self, flight_id: int) -> str:
        return (self.keys.mem_compact if self.short else self.keys.mem_hash)(flight_id)

    def write(self, pipe: Any, flight: Flight) -> None:
        pipe.hset(
            self.key(flight.flight_id), mapping=dict(zip(self.fields, flight.values(), strict=True))
        )

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        found = client.hgetall(self.key(flight_id))
        return [found[f] for f in self.fields] if found else None


class PackedLayout:
    """One string per flight: the four values joined by ``|``."""

    name = "packed string"
    example = "SET {key} 'LH400|2025-06-02 12:05:00|...'"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def key(self, flight_id: int) -> str:
        return self.keys.mem_packed(flight_id)

    def write(self, pipe: Any, flight: Flight) -> None:
        pipe.set(self.key(flight.flight_id), SEP.join(flight.values()))

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        raw = client.get(self.key(flight_id))
        return None if raw is None else str(raw).split(SEP)


class BucketLayout:
    """Many flights per hash: field flight_id in bucket flight_id // size, packed value."""

    def __init__(self, keys: Keys, size: int) -> None:
        self.keys = keys
        self.size = size
        self.name = f"bucket hash of {size:,}"
        self.example = f"HSET {{key}} <flight_id> 'LH400|...'   # bucket = flight_id // {size}"

    def key(self, flight_id: int) -> str:
        return self.keys.mem_bucket(self.size, flight_id // self.size)

    def write(self, pipe: Any, flight: Flight) -> None:
        pipe.hset(self.key(flight.flight_id), str(flight.flight_id), SEP.join(flight.values()))

    def read(self, client: Any, flight_id: int) -> list[str] | None:
        raw = client.hget(self.key(flight_id), str(flight_id))
        return None if raw is None else str(raw).split(SEP)


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
def seat_index(label: str, width: int = 6) -> int | None:
    """ "12A" -> 66 with six seats a row (row 1 starts at 0); None when not a seat."""
    match = _SEAT.match(label)
    if match is None or match.group(2) not in LETTERS[:width]:
        return None
    return (int(match.group(1)) - 1) * width + LETTERS.index(match.group(2))


def row_width(labels: Iterable[str]) -> int:
    """Seats per row: the highest seat letter seen (6 when nothing says more)."""
    widest = 6
    for label in labels:
        match = _SEAT.match(label)
        if match and match.group(2) in LETTERS:
            widest = max(widest, LETTERS.index(match.group(2)) + 1)
    return widest


class BitmapSeats:
    name = "bitmap"

    def __init__(self, keys: Keys, width: int = 6) -> None:
        self.keys, self.width = keys, width

    def key(self, flight: int | str) -> str:
        return self.keys.mem_seatmap(flight)

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


class SetSeats:
    name = "set of labels"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def key(self, flight: int | str) -> str:
        return self.keys.mem_seats(flight)

    def write(self, pipe: Any, flight: int | str, labels: Iterable[str]) -> None:
        labels = list(labels)
        if labels:
            pipe.sadd(self.key(flight), *labels)

    def is_booked(self, client: Any, flight: int | str, label: str) -> bool:
        return bool(client.sismember(self.key(flight), label))

    def count(self, client: Any, flight: int | str) -> int:
        return int(client.scard(self.key(flight)))


# -- loading and measuring -----------------------------------------------------------
def load_flights(db: TracedDatabase, n: int) -> list[Flight]:
    """The first ``n`` flights; DataError when the database holds fewer."""
    total = int(db.fetch(query(db.dialect, "memory_flight_count")).rows[0][0])
    if n > total:
        raise DataError(
            f"--flights {n:,} is more than the {total:,} flights the database holds",
            hint=f"try --flights {min(total, 1000):,}, or load a larger scale"
            " (flightcache data load --scale small --replace)",
        )
    result = db.fetch(query(db.dialect, "memory_flights"), {"limit": n})
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


def _is_cluster(client: Any) -> bool:
    return isinstance(client, valkey.cluster.ValkeyCluster)


def used_memory(client: Any) -> int:
    """INFO memory used_memory, summed over the primaries of a cluster."""
    if _is_cluster(client):
        replies = client.info("memory", target_nodes=client.PRIMARIES)
        return sum(int(r["used_memory"]) for r in replies.values())
    return int(client.info("memory")["used_memory"])


def memory_usage(ctx: DemoContext, keys: Sequence[str]) -> list[int]:
    """MEMORY USAGE key SAMPLES 0 (every element counted, no estimate) for each key."""
    return [int(v or 0) for v in ctx.pipelined(keys, lambda p, k: p.memory_usage(k, samples=0))]


def encodings(ctx: DemoContext, keys: Sequence[str]) -> Counter[str]:
    return Counter(str(v) for v in ctx.pipelined(keys, lambda p, k: p.object("encoding", k)))


@dataclass
class Measured:
    name: str
    keys: int
    usage: int
    delta: int
    encodings: Counter[str]
    per_key: list[int]

    def encoding_text(self) -> str:
        return ", ".join(f"{enc} ×{n:,}" for enc, n in self.encodings.most_common())


def _store(
    ctx: DemoContext,
    name: str,
    keys: Sequence[str],
    items: Sequence[Any],
    queue: Callable[[Any, Any], None],
) -> Measured:
    """Write ``items`` pipelined, then measure: INFO memory before and after,
    MEMORY USAGE and OBJECT ENCODING of every key."""
    before = used_memory(ctx.valkey)
    ctx.pipelined(items, queue)
    delta = used_memory(ctx.valkey) - before
    usage = memory_usage(ctx, keys)
    return Measured(name, len(keys), sum(usage), delta, encodings(ctx, keys), usage)


def _write_seats(
    layout: BitmapSeats | SetSeats, seats: dict[int, list[str]], pipe: Any, flight: Flight
) -> None:
    layout.write(pipe, flight.flight_id, seats[flight.flight_id])


def _config(ctx: DemoContext, names: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        reply = ctx.valkey.config_get(name)
        found[name] = str(reply.get(name, "?"))
    return found


# -- the demo --------------------------------------------------------------------------
def _per(total: int, n: int) -> str:
    return f"{total / n:,.1f}" if n else "-"


def _vs(total: int, base: int) -> str:
    return f"{(total - base) / base:+.0%}" if base else "-"


def demo(ctx: DemoContext) -> Iterator[Record]:
    n: int = ctx.options.get("flights", 1000)
    with ctx.step(
        f"Load {n:,} flights and their booked seats",
        "the data every layout below stores: flight number, departure, arrival, free seats",
    ) as step:
        flights = load_flights(ctx.db, n)
        seats = load_seats(ctx.db, flights)
        booked = sum(len(s) for s in seats.values())
        fullest = max(flights, key=lambda f: len(seats[f.flight_id]))
        step.rows = len(flights)
        step.outcome = (
            f"{len(flights):,} flights, {booked:,} booked seats; the fullest is flight "
            f"{fullest.flight_id} ({fullest.flightno}) with {len(seats[fullest.flight_id])} "
            f"of {fullest.capacity} seats"
        )
        step.data = {"flights": len(flights), "booked_seats": booked}
    yield step

    settings = (
        "hash-max-listpack-entries",
        "hash-max-listpack-value",
        "set-max-listpack-entries",
        "set-max-intset-entries",
    )
    with ctx.step(
        "The thresholds that pick an encoding",
        "small hashes and sets are one compact listpack; past these limits they convert"
        " to a hashtable, for good",
    ) as step:
        config = _config(ctx, settings)
        step.outcome = ", ".join(f"{k} {v}" for k, v in config.items())
        step.data = {"config": config}
    yield step

    measured: list[Measured] = []
    for layout in layouts(ctx.keys):
        keys = sorted({layout.key(f.flight_id) for f in flights})
        with ctx.step(
            f"Store the flights as {layout.name}", layout.example.format(key=keys[0])
        ) as step:
            m = _store(ctx, layout.name, keys, flights, layout.write)
            step.outcome = (
                f"{m.keys:,} keys, MEMORY USAGE {m.usage:,} bytes ({_per(m.usage, len(flights))}"
                f" per flight), used_memory {m.delta:+,}; {m.encoding_text()}"
            )
            step.data = _measured_data(m, len(flights))
        measured.append(m)
        yield step
    base = measured[0].usage
    yield Table(
        f"The same {len(flights):,} flights, six ways",
        [
            "layout",
            "keys",
            "MEMORY USAGE",
            "B/flight",
            "vs JSON",
            "used_memory Δ",
            "encoding",
        ],
        [
            [
                m.name,
                f"{m.keys:,}",
                f"{m.usage:,}",
                _per(m.usage, len(flights)),
                _vs(m.usage, base),
                f"{m.delta:+,}",
                m.encoding_text(),
            ]
            for m in measured
        ],
        note="MEMORY USAGE counts each key with its name and header; used_memory Δ is what"
        " the server grew by. A key costs a name, a header and a keyspace slot; a field of a"
        " listpack hash costs a few bytes. A hash with more than hash-max-listpack-entries"
        f" ({config['hash-max-listpack-entries']}) fields becomes a hashtable: see the"
        " buckets' encodings.",
    )

    # -- seat maps -------------------------------------------------------------------
    width = row_width(label for labels in seats.values() for label in labels)
    bitmap, setlayout = BitmapSeats(ctx.keys, width), SetSeats(ctx.keys)
    with_seats = [f for f in flights if seats[f.flight_id]]
    seat_measured: list[Measured] = []
    for seat_layout in (bitmap, setlayout):
        keys = [seat_layout.key(f.flight_id) for f in with_seats]
        with ctx.step(
            f"Store the booked seats as a {seat_layout.name}",
            f"{width} seats a row; seat 1A is index 0"
            if seat_layout is bitmap
            else "SADD the labels",
        ) as step:
            m = _store(
                ctx, seat_layout.name, keys, with_seats, partial(_write_seats, seat_layout, seats)
            )
            step.outcome = (
                f"{m.keys:,} keys, MEMORY USAGE {m.usage:,} bytes, used_memory {m.delta:+,};"
                f" {m.encoding_text()}"
            )
            step.data = _measured_data(m, len(with_seats))
        seat_measured.append(m)
        yield step
    bitmap_wins = sum(
        1 for b, s in zip(seat_measured[0].per_key, seat_measured[1].per_key, strict=True) if b < s
    )

    with ctx.step(
        f"A full flight: every one of the {fullest.capacity} seats of flight {fullest.flight_id}",
        "the same seat map with all seats booked, as a bitmap and as a set",
    ) as step:
        labels = [_label(i, width) for i in range(fullest.capacity)]
        full = f"full-{fullest.flight_id}"
        pipe = ctx.tracer.pipeline(ctx.valkey)
        bitmap.write(pipe, full, labels)
        setlayout.write(pipe, full, labels)
        pipe.execute()
        full_bitmap, full_set = memory_usage(ctx, [bitmap.key(full), setlayout.key(full)])
        full_enc = encodings(ctx, [setlayout.key(full)]).most_common(1)[0][0]
        step.outcome = (
            f"bitmap {full_bitmap:,} bytes, set {full_set:,} bytes ({full_enc});"
            f" the bitmap takes {full_bitmap / full_set:.0%} of the set"
        )
        step.data = {
            "capacity": fullest.capacity,
            "bitmap_bytes": full_bitmap,
            "set_bytes": full_set,
            "set_encoding": full_enc,
        }
    yield step
    sb, ss = seat_measured
    yield Table(
        f"Seat maps of the {len(with_seats):,} flights with bookings",
        ["layout", "keys", "MEMORY USAGE", "B/flight", "used_memory Δ", "encoding"],
        [
            [
                m.name,
                f"{m.keys:,}",
                f"{m.usage:,}",
                _per(m.usage, m.keys),
                f"{m.delta:+,}",
                m.encoding_text(),
            ]
            for m in (sb, ss)
        ]
        + [
            ["full flight, bitmap", "1", f"{full_bitmap:,}", f"{full_bitmap:,}", "-", "raw"],
            ["full flight, set", "1", f"{full_set:,}", f"{full_set:,}", "-", full_enc],
        ],
        note=f"The bitmap is smaller for {bitmap_wins:,} of {len(with_seats):,} flights. A bitmap"
        " costs one bit per seat up to the highest booked one; a set costs a few bytes per"
        " booked seat, so it wins on nearly empty flights and loses on full ones.",
    )


def _label(index: int, width: int) -> str:
    return f"{index // width + 1}{LETTERS[index % width]}"


def _measured_data(m: Measured, flights: int) -> dict[str, Any]:
    return {
        "layout": m.name,
        "keys": m.keys,
        "usage_bytes": m.usage,
        "bytes_per_flight": m.usage / flights if flights else None,
        "used_memory_delta": m.delta,
        "encodings": dict(m.encodings),
    }
