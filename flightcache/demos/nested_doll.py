"""The nested-doll demo: compose a flight four times, with a booking and an expiry between.

The pattern itself is :class:`flightcache.patterns.nested_doll.NestedDoll`; this
module narrates it, one function per step. It imports the pattern inside the
functions, so that the command can read :class:`Options` without loading the drivers.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Table, Timing
    from flightcache.patterns.nested_doll import NestedDoll
    from flightcache.patterns.nested_doll_layers import Layer, LayerRead, View

AGE_S = 1.0  # the pause before the booking, in seconds
FLIGHT_MIN = 1  # the smallest flight_id


@dataclass(frozen=True)
class Options:
    """What `flightcache nested-doll` takes."""

    flight: int | None = None  # flight_id; None: the first flight with a delay


Composes = list[tuple[str, "View"]]  # each compose with its label


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.patterns.nested_doll import NestedDoll

    options: Options = ctx.options
    doll = NestedDoll(ctx.db, ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
    flight_id = options.flight if options.flight is not None else default_flight(doll)
    require_flight(doll, flight_id)
    composes: Composes = []

    first = yield from _compose(
        ctx,
        doll,
        flight_id,
        composes,
        f"Compose 1: flight {flight_id}, every layer misses",
        "one pipeline reads the four layers and their PTTLs; each missing layer is one query,"
        " written back with its own TTL",
    )
    schedule, seats = first["schedule"], first["seats"]
    assert isinstance(schedule, dict) and isinstance(seats, dict)
    yield from _compose(
        ctx,
        doll,
        flight_id,
        composes,
        "Compose 2: every layer hits",
        "one round trip; the PTTLs show each layer ageing at its own pace",
    )
    yield from _book(ctx, doll, flight_id, seats)
    yield from _compose(
        ctx,
        doll,
        flight_id,
        composes,
        "Compose 3: after the booking",
        "every layer hits; seats shows the new count",
    )
    yield from _expire_status(ctx, doll, flight_id)
    yield from _compose(
        ctx,
        doll,
        flight_id,
        composes,
        "Compose 4: only the status layer is rebuilt",
        "one query for the layer that expired",
    )
    yield _layers_table(doll, flight_id, composes, schedule)
    yield _timings(ctx, doll, flight_id)


def _compose(
    ctx: DemoContext, doll: NestedDoll, flight_id: int, composes: Composes, title: str, why: str
) -> Generator[Record, None, dict[str, Any]]:
    """One compose as a step; the view's value."""
    with ctx.step(title, why) as step:
        view = doll.compose(flight_id)
        step.hit = not view.misses()
        step.data = {"layers": [_layer_dict(read) for read in view.layers]}
        step.outcome = _summary(view)
    composes.append((title.split(":")[0], view))
    yield step
    return view.value()


def _book(
    ctx: DemoContext, doll: NestedDoll, flight_id: int, seats: dict[str, str]
) -> Iterator[Record]:
    passenger = some_passenger(doll)
    time.sleep(AGE_S)  # let the layers age, so that a TTL that is not reset shows it
    with ctx.step(
        "A booking changes seat availability: rebuild only the seats layer",
        f"{AGE_S:.0f} s after compose 2: INSERT the booking, then one query and HSET + PEXPIRE"
        " for seats; the other layers keep their value and their TTL",
    ) as step:
        before = doll.ttls(flight_id)

        def recorded(new_id: int) -> None:  # before the COMMIT: not even a SIGKILL keeps it
            ctx.put_back(
                "booking_remove",
                {"booking_id": new_id},
                how=lambda: _unbook(doll, flight_id, new_id),
            )

        booking_id = doll.add_booking(flight_id, passenger, recorded=recorded)
        after = doll.ttls(flight_id)
        fresh = doll.valkey.hgetall(doll.key(flight_id, "seats"))
        step.data = {"booking_id": booking_id, "pttl_before": before, "pttl_after": after}
        step.outcome = f"booked {seats['booked']} -> {fresh.get('booked')}; PTTL " + ", ".join(
            f"{name} {seconds(before[name])} -> {seconds(after[name])}" for name in before
        )
    yield step


def _expire_status(ctx: DemoContext, doll: NestedDoll, flight_id: int) -> Iterator[Record]:
    with ctx.step(
        "Expire the 30 s layer early: PEXPIRE status 200 ms",
        "as if 30 s had passed: the status layer is gone, the 24 h layer stays",
    ) as step:
        doll.valkey.pexpire(doll.key(flight_id, "status"), 200)
        time.sleep(0.25)
        left = doll.ttls(flight_id)
        step.data = {"pttl": left}
        step.outcome = (
            f"status {seconds(left['status'])}; aircraft {seconds(left['aircraft'])},"
            f" schedule {seconds(left['schedule'])}, seats {seconds(left['seats'])}"
        )
    yield step


def _layers_table(
    doll: NestedDoll, flight_id: int, composes: Composes, schedule: dict[str, str]
) -> Table:
    from flightcache.demos.base import Table
    from flightcache.patterns.nested_doll_layers import LAYERS

    return Table(
        f"layers of flight {flight_id} in each compose (remaining TTL)",
        ["layer", "TTL", *[name.lower() for name, _ in composes]],
        [
            [
                layer.name,
                f"{_ttl_class(layer)}, {layer.volatility}",
                *[
                    ("HIT " if read.hit else "MISS ") + seconds(read.pttl_ms)
                    for _, view in composes
                    for read in view.layers
                    if read.layer == layer.name
                ],
            ]
            for layer in LAYERS
        ],
        note=f"{schedule.get('flightno', '').strip()} {schedule.get('from_iata')}"
        f" -> {schedule.get('to_iata')}, departs {schedule.get('departure')};"
        f" keys {doll.key(flight_id, 'aircraft')} and its siblings;"
        " MISS: rebuilt from the database and set with the full TTL",
    )


def _timings(ctx: DemoContext, doll: NestedDoll, flight_id: int) -> Timing:
    from flightcache.patterns.nested_doll_layers import LAYERS

    doll.compose(flight_id)  # every layer present before the timed runs
    queries = doll.queries
    timing = ctx.compare(
        "composed view: database vs cache",
        {
            "database (4 queries)": lambda: doll.compose_from_db(flight_id),
            "cache (1 pipeline)": lambda: doll.compose(flight_id),
        },
    )
    rebuilt = doll.queries - queries - (ctx.warmup + ctx.repeat) * len(LAYERS)
    timing.note = (
        "cache = HGETALL x3, GET, PTTL x4 in one pipeline;"
        f" layers rebuilt during the timed runs: {max(rebuilt, 0)}"
    )
    return timing


# -- the flight and passenger the demo uses ------------------------------------------------
def require_flight(doll: NestedDoll, flight_id: int) -> None:
    """DataError with the range of ids there are, when the flight does not exist."""
    from flightcache.errors import DataError
    from flightcache.sqlfiles import query

    dialect = doll.db.dialect
    if doll.db.fetch(query(dialect, "flight_seats"), {"flight_id": flight_id}).rows:
        return
    low, high = doll.db.fetch(query(dialect, "flight_id_range")).rows[0]
    raise DataError(
        f"no flight with id {flight_id}",
        hint=f"flight ids here run from {low} to {high}" if low else "load data first",
    )


def default_flight(doll: NestedDoll) -> int:
    """The first flight with a change in flight_log, else the first flight."""
    from flightcache.errors import DataError
    from flightcache.sqlfiles import query

    rows = doll.db.fetch(query(doll.db.dialect, "flight_default")).rows
    if not rows or rows[0][0] is None:
        raise DataError("there are no flights", hint="load data with `flightcache data load`")
    return int(rows[0][0])


def some_passenger(doll: NestedDoll) -> int:
    """A passenger to book a seat for."""
    from flightcache.errors import DataError
    from flightcache.sqlfiles import query

    rows = doll.db.fetch(query(doll.db.dialect, "passenger_first")).rows
    if not rows or rows[0][0] is None:
        raise DataError("there are no passengers", hint="load data with `flightcache data load`")
    return int(rows[0][0])


def _unbook(doll: NestedDoll, flight_id: int, booking_id: int) -> None:
    """Remove the demo's booking; the seats layer is rebuilt when Valkey lets us."""
    import valkey.exceptions

    try:
        doll.remove_booking(flight_id, booking_id)
    except valkey.exceptions.ValkeyError:
        pass  # the DELETE is committed; the layer ages out within its 5 min


# -- how the demo writes layers and TTLs -----------------------------------------------------
def seconds(ms: int) -> str:
    """A PTTL as people read it: seconds, or what -1 and -2 mean."""
    if ms == -2:
        return "gone"
    if ms == -1:
        return "no TTL"
    return f"{ms / 1000:,.1f} s"


def _ttl_class(layer: Layer) -> str:
    ttl_s = layer.ttl_s
    if ttl_s >= 3600:
        return f"{ttl_s // 3600} h"
    return f"{ttl_s // 60} min" if ttl_s >= 60 else f"{ttl_s} s"


def _layer_dict(read: LayerRead) -> dict[str, Any]:
    from flightcache.patterns.nested_doll_layers import BY_NAME

    return {
        "layer": read.layer,
        "key": read.key,
        "hit": read.hit,
        "pttl_ms": read.pttl_ms,
        "ttl_s": BY_NAME[read.layer].ttl_s,
        "value": read.value,
    }


def _summary(view: View) -> str:
    hits, misses = view.hits(), view.misses()
    parts = []
    if hits:
        parts.append("hit: " + ", ".join(hits))
    if misses:
        queries = f"{len(misses)} {'query' if len(misses) == 1 else 'queries'}"
        parts.append(f"rebuilt ({queries}): " + ", ".join(misses))
    return "; ".join(parts)
