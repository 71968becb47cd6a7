"""`flightcache memory`: the same flights stored six ways, seat maps two ways, measured.

Every layout of :mod:`flightcache.patterns.memory` writes the same flights,
pipelined; each is measured with MEMORY USAGE (every key, SAMPLES 0), the
server's growth in INFO memory used_memory and OBJECT ENCODING of every key. The
pattern and the demo's records are imported where they are used, so that the command
reads :class:`Options` without loading the clients (``flightcache --help`` stays fast).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from flightcache.errors import ConfigError, DataError

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record
    from flightcache.patterns.memory import BitmapSeats, Flight, SetSeats

FLIGHTS_MIN = 1
FLIGHTS_MAX = 200_000


@dataclass(frozen=True)
class Options:
    flights: int = 1000
    """How many flights to store (the first by id)."""

    def __post_init__(self) -> None:
        if not FLIGHTS_MIN <= self.flights <= FLIGHTS_MAX:
            raise ConfigError(
                f"--flights {self.flights} is out of range: the demo stores {FLIGHTS_MIN} to"
                f" {FLIGHTS_MAX:,} flights",
                hint="try --flights 1000",
            )


@dataclass
class Measured:
    name: str
    keys: int
    usage: int
    delta: int
    encodings: Counter[str]
    per_key: list[int]

    def encoding_text(self) -> str:
        return ", ".join(f"{name} ×{n:,}" for name, n in self.encodings.most_common())

    def as_data(self, flights: int) -> dict[str, Any]:
        return {
            "layout": self.name,
            "keys": self.keys,
            "usage_bytes": self.usage,
            "bytes_per_flight": self.usage / flights if flights else None,
            "used_memory_delta": self.delta,
            "encodings": dict(self.encodings),
        }


def used_memory(client: Any) -> int:
    """INFO memory used_memory, summed over the primaries of a cluster."""
    from flightcache.valkey_client import info_total

    return info_total(client, "memory", ("used_memory",))["used_memory"]


def memory_usage(ctx: DemoContext, keys: Sequence[str]) -> list[int]:
    """MEMORY USAGE key SAMPLES 0 (every element counted, no estimate) for each key."""
    return [int(v or 0) for v in ctx.pipelined(keys, lambda p, k: p.memory_usage(k, samples=0))]


def encodings(ctx: DemoContext, keys: Sequence[str]) -> Counter[str]:
    return Counter(str(v) for v in ctx.pipelined(keys, lambda p, k: p.object("encoding", k)))


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


def _per(total: int, n: int) -> str:
    return f"{total / n:,.1f}" if n else "-"


def _versus(total: int, base: int) -> str:
    return f"{(total - base) / base:+.0%}" if base else "-"


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Load the flights, show the encoding thresholds, store and measure every layout."""
    options: Options = ctx.options
    flights, seats = yield from _load(ctx, options.flights)
    config = yield from _thresholds(ctx)
    yield from _layouts(ctx, flights, config)
    yield from _seat_maps(ctx, flights, seats)


def _load(
    ctx: DemoContext, count: int
) -> Generator[Record, None, tuple[list[Flight], dict[int, list[str]]]]:
    from flightcache.patterns.memory import flight_count, load_flights, load_seats

    with ctx.step(
        f"Load {count:,} flights and their booked seats",
        "the data every layout below stores: flight number, departure, arrival, free seats",
    ) as step:
        total = flight_count(ctx.db)
        if count > total:
            raise DataError(
                f"--flights {count:,} is more than the {total:,} flights the database holds",
                hint=f"try --flights {min(total, 1000):,}, or load a larger scale"
                " (flightcache data load --scale small --replace)",
            )
        flights = load_flights(ctx.db, count)
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
    return flights, seats


def _thresholds(ctx: DemoContext) -> Generator[Record, None, dict[str, str]]:
    from flightcache.patterns.memory import ENCODING_SETTINGS

    with ctx.step(
        "The thresholds that pick an encoding",
        "small hashes and sets are one compact listpack; past these limits they convert"
        " to a hashtable, for good",
    ) as step:
        import valkey.exceptions

        try:
            config = {
                name: str(ctx.valkey.config_get(name).get(name, "?")) for name in ENCODING_SETTINGS
            }
        except valkey.exceptions.NoPermissionError:  # a room account: CONFIG is not theirs
            config = dict.fromkeys(ENCODING_SETTINGS, "?")
        step.outcome = ", ".join(f"{k} {v}" for k, v in config.items())
        if "?" in config.values():
            step.outcome += (
                " (this account may not run CONFIG GET; Valkey's defaults are 128, 64, 128 and 512)"
            )
        step.data = {"config": config}
    yield step
    return config


def _layouts(ctx: DemoContext, flights: list[Flight], config: dict[str, str]) -> Iterator[Record]:
    from flightcache.demos.base import Table
    from flightcache.patterns.memory import layouts

    measured: list[Measured] = []
    for layout in layouts(ctx.keys):
        keys = sorted({layout.key(f.flight_id) for f in flights})
        with ctx.step(
            f"Store the flights as {layout.name}", layout.example.format(key=keys[0])
        ) as step:
            stored = _store(ctx, layout.name, keys, flights, layout.write)
            step.outcome = (
                f"{stored.keys:,} keys, MEMORY USAGE {stored.usage:,} bytes"
                f" ({_per(stored.usage, len(flights))} per flight), used_memory"
                f" {stored.delta:+,}; {stored.encoding_text()}"
            )
            step.data = stored.as_data(len(flights))
        measured.append(stored)
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
                stored.name,
                f"{stored.keys:,}",
                f"{stored.usage:,}",
                _per(stored.usage, len(flights)),
                _versus(stored.usage, base),
                f"{stored.delta:+,}",
                stored.encoding_text(),
            ]
            for stored in measured
        ],
        note="MEMORY USAGE counts each key with its name and header; used_memory Δ is what"
        " the server grew by. A key costs a name, a header and a keyspace slot; a field of a"
        " listpack hash costs a few bytes. A hash with more than hash-max-listpack-entries"
        f" ({config['hash-max-listpack-entries']}) fields becomes a hashtable: see the"
        " buckets' encodings.",
    )


def _seat_maps(
    ctx: DemoContext, flights: list[Flight], seats: dict[int, list[str]]
) -> Iterator[Record]:
    from flightcache.demos.base import Table
    from flightcache.patterns.memory import BitmapSeats, SetSeats, row_width

    width = row_width(label for labels in seats.values() for label in labels)
    bitmap, set_layout = BitmapSeats(ctx.keys, width), SetSeats(ctx.keys)
    with_seats = [f for f in flights if seats[f.flight_id]]
    seat_measured: list[Measured] = []
    for seat_layout in (bitmap, set_layout):
        keys = [seat_layout.key(f.flight_id) for f in with_seats]
        with ctx.step(
            f"Store the booked seats as a {seat_layout.name}",
            f"{width} seats a row; seat 1A is index 0"
            if seat_layout is bitmap
            else "SADD the labels",
        ) as step:
            stored = _store(
                ctx, seat_layout.name, keys, with_seats, partial(_write_seats, seat_layout, seats)
            )
            step.outcome = (
                f"{stored.keys:,} keys, MEMORY USAGE {stored.usage:,} bytes, used_memory"
                f" {stored.delta:+,}; {stored.encoding_text()}"
            )
            step.data = stored.as_data(len(with_seats))
        seat_measured.append(stored)
        yield step
    fullest = max(flights, key=lambda f: len(seats[f.flight_id]))
    full = yield from _full_flight(ctx, fullest, bitmap, set_layout)
    full_bitmap, full_set, full_encoding = full
    bitmap_wins = sum(
        1 for b, s in zip(seat_measured[0].per_key, seat_measured[1].per_key, strict=True) if b < s
    )
    yield Table(
        f"Seat maps of the {len(with_seats):,} flights with bookings",
        ["layout", "keys", "MEMORY USAGE", "B/flight", "used_memory Δ", "encoding"],
        [
            [
                stored.name,
                f"{stored.keys:,}",
                f"{stored.usage:,}",
                _per(stored.usage, stored.keys),
                f"{stored.delta:+,}",
                stored.encoding_text(),
            ]
            for stored in seat_measured
        ]
        + [
            ["full flight, bitmap", "1", f"{full_bitmap:,}", f"{full_bitmap:,}", "-", "raw"],
            ["full flight, set", "1", f"{full_set:,}", f"{full_set:,}", "-", full_encoding],
        ],
        note=f"The bitmap is smaller for {bitmap_wins:,} of {len(with_seats):,} flights. A bitmap"
        " costs one bit per seat up to the highest booked one; a set costs a few bytes per"
        " booked seat, so it wins on nearly empty flights and loses on full ones.",
    )


def _full_flight(
    ctx: DemoContext, fullest: Flight, bitmap: BitmapSeats, set_layout: SetSeats
) -> Generator[Record, None, tuple[int, int, str]]:
    """Every seat of the fullest flight booked, as a bitmap and as a set."""
    from flightcache.patterns.memory import seat_label

    with ctx.step(
        f"A full flight: every one of the {fullest.capacity} seats of flight {fullest.flight_id}",
        "the same seat map with all seats booked, as a bitmap and as a set",
    ) as step:
        labels = [seat_label(i, bitmap.width) for i in range(fullest.capacity)]
        full = f"full-{fullest.flight_id}"
        pipe = ctx.tracer.pipeline(ctx.valkey)
        bitmap.write(pipe, full, labels)
        set_layout.write(pipe, full, labels)
        pipe.execute()
        full_bitmap, full_set = memory_usage(ctx, [bitmap.key(full), set_layout.key(full)])
        full_encoding = encodings(ctx, [set_layout.key(full)]).most_common(1)[0][0]
        step.outcome = (
            f"bitmap {full_bitmap:,} bytes, set {full_set:,} bytes ({full_encoding});"
            f" the bitmap takes {full_bitmap / full_set:.0%} of the set"
        )
        step.data = {
            "capacity": fullest.capacity,
            "bitmap_bytes": full_bitmap,
            "set_bytes": full_set,
            "set_encoding": full_encoding,
        }
    yield step
    return full_bitmap, full_set, full_encoding
