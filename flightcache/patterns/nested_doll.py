"""Nested doll: one flight's data in layers that age at their own pace.

Read path: one pipeline reads a flight's four layers (HGETALL aircraft, schedule
and seats, GET status) with their PTTLs. Only the layers that missed are
queried, one query each, and written back in one more pipeline (HSET + PEXPIRE,
SET PX), each with the TTL of its class: aircraft 24 h, schedule 6 h, seats
5 min, status 30 s. The keys share the hash tag ``{flight:<id>}``, so each
pipeline goes to one slot, one node of a cluster.

Write path: a change rebuilds only the layer it touches. A booking rebuilds the
seats layer; aircraft, schedule and status keep their values and their TTLs.

Failure mode: the layers of one view are of different ages by design, a status
30 s old beside a seat count 5 min old; each layer's TTL bounds how stale it can
be. A layer that expires or is evicted costs one query, for that layer only.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.demos.base import DemoContext, Record
    from flightcache.trace import TracedDatabase

AGE_S = 1.0  # the pause before the booking, in seconds
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Layer:
    """One doll: its name, TTL class, the query that builds it and its key."""

    name: str
    ttl_s: int
    volatility: str
    query: str
    key: Callable[[Keys, int], str]
    is_hash: bool = True

    @property
    def ttl_ms(self) -> int:
        return self.ttl_s * 1000


LAYERS = (
    Layer("aircraft", 86_400, "static", "flight_aircraft", Keys.flight_aircraft),
    Layer("schedule", 21_600, "semi-static", "flight_schedule", Keys.flight_schedule),
    Layer("seats", 300, "dynamic", "flight_seats", Keys.flight_seats),
    Layer("status", 30, "real-time", "flight_status", Keys.flight_status, is_hash=False),
)
BY_NAME = {layer.name: layer for layer in LAYERS}

Value = dict[str, str] | str


@dataclass
class LayerRead:
    """One layer of one compose: hit or rebuilt, and its remaining TTL."""

    layer: str
    key: str
    hit: bool
    pttl_ms: int
    value: Value

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "key": self.key,
            "hit": self.hit,
            "pttl_ms": self.pttl_ms,
            "ttl_s": BY_NAME[self.layer].ttl_s,
            "value": self.value,
        }


@dataclass
class View:
    """A flight composed from its layers."""

    flight_id: int
    layers: list[LayerRead] = field(default_factory=list)

    def value(self) -> dict[str, Value]:
        return {read.layer: read.value for read in self.layers}

    def hits(self) -> list[str]:
        return [read.layer for read in self.layers if read.hit]

    def misses(self) -> list[str]:
        return [read.layer for read in self.layers if not read.hit]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _status(row: dict[str, Any]) -> str:
    """A status computed from the latest flight_log change: a delay, or on time."""
    planned, logged = row.get("departure"), row.get("departure_new")
    if isinstance(planned, dt.datetime) and isinstance(logged, dt.datetime) and logged != planned:
        minutes = round((logged - planned).total_seconds() / 60)
        return f"delayed {minutes} min" if minutes > 0 else f"early {-minutes} min"
    return "on time"


def _build(layer: Layer, row: dict[str, Any]) -> Value:
    if layer.name == "status":
        return _status(row)
    if layer.name == "seats":
        capacity, booked = row["capacity"], int(row["booked"] or 0)
        available = "" if capacity is None else str(int(capacity) - booked)
        return {"capacity": _text(capacity), "booked": str(booked), "available": available}
    if layer.name == "schedule":
        days = " ".join(day[:3].title() for day in WEEKDAYS if row.get(day))
        row = {k: v for k, v in row.items() if k not in WEEKDAYS}
        return {**{k: _text(v) for k, v in row.items()}, "days": days}
    return {k: _text(v) for k, v in row.items()}


class NestedDoll:
    """Compose a flight from four cached layers, rebuilding only what is missing."""

    def __init__(
        self,
        db: Database | TracedDatabase,
        client: Any,
        keys: Keys,
        *,
        pipeline: Pipeline = plain_pipeline,
    ) -> None:
        self.db = db
        self.valkey = client
        self.keys = keys
        self.pipeline = pipeline
        self.queries = 0  # layer queries run, for the demo's notes

    def _sql(self, name: str) -> str:
        return query(self.db.dialect, name)

    def key(self, flight_id: int, layer: str) -> str:
        return BY_NAME[layer].key(self.keys, flight_id)

    def require_flight(self, flight_id: int) -> None:
        """DataError with the range of ids there are, when the flight does not exist."""
        if self.db.fetch(self._sql("flight_seats"), {"flight_id": flight_id}).rows:
            return
        low, high = self.db.fetch(self._sql("flight_id_range")).rows[0]
        raise DataError(
            f"no flight with id {flight_id}",
            hint=f"flight ids here run from {low} to {high}" if low else "load data first",
        )

    def default_flight(self) -> int:
        """The first flight with a change in flight_log, else the first flight."""
        rows = self.db.fetch(self._sql("flight_default")).rows
        if not rows or rows[0][0] is None:
            raise DataError("there are no flights", hint="load data with `flightcache data load`")
        return int(rows[0][0])

    # -- building layers from the database -----------------------------------------
    def build(self, flight_id: int, layer: str) -> Value:
        """One layer from its query."""
        self.queries += 1
        result = self.db.fetch(self._sql(BY_NAME[layer].query), {"flight_id": flight_id})
        if not result.rows:
            raise DataError(f"no flight with id {flight_id}")
        return _build(BY_NAME[layer], dict(zip(result.columns, result.rows[0], strict=True)))

    def compose_from_db(self, flight_id: int) -> dict[str, Value]:
        """The whole view from the database: four queries, no cache."""
        return {layer.name: self.build(flight_id, layer.name) for layer in LAYERS}

    def _store(self, flight_id: int, built: dict[str, Value]) -> None:
        pipe = self.pipeline(self.valkey)
        for name, value in built.items():
            layer, key = BY_NAME[name], self.key(flight_id, name)
            if isinstance(value, dict):
                pipe.hset(key, mapping=value)
                pipe.pexpire(key, layer.ttl_ms)
            else:
                pipe.set(key, value, px=layer.ttl_ms)
        pipe.execute()

    # -- read path ------------------------------------------------------------------
    def compose(self, flight_id: int) -> View:
        """Read every layer in one pipeline; query and store only the missing ones."""
        pipe = self.pipeline(self.valkey)
        for layer in LAYERS:
            key = layer.key(self.keys, flight_id)
            if layer.is_hash:
                pipe.hgetall(key)
            else:
                pipe.get(key)
            pipe.pttl(key)
        replies = pipe.execute()
        view = View(flight_id)
        built: dict[str, Value] = {}
        for i, layer in enumerate(LAYERS):
            value, pttl = replies[2 * i], replies[2 * i + 1]
            key = layer.key(self.keys, flight_id)
            if value:
                view.layers.append(LayerRead(layer.name, key, True, int(pttl), value))
                continue
            built[layer.name] = self.build(flight_id, layer.name)
            view.layers.append(LayerRead(layer.name, key, False, layer.ttl_ms, built[layer.name]))
        if built:
            self._store(flight_id, built)
        return view

    def ttls(self, flight_id: int) -> dict[str, int]:
        """PTTL of every layer (-2: the key does not exist)."""
        pipe = self.pipeline(self.valkey)
        for layer in LAYERS:
            pipe.pttl(layer.key(self.keys, flight_id))
        return {layer.name: int(ms) for layer, ms in zip(LAYERS, pipe.execute(), strict=True)}

    # -- write path -----------------------------------------------------------------
    def refresh(self, flight_id: int, layer: str) -> Value:
        """Rebuild one layer from the database with a fresh TTL; the others stay as they are."""
        value = self.build(flight_id, layer)
        self._store(flight_id, {layer: value})
        return value

    def add_booking(
        self,
        flight_id: int,
        passenger_id: int,
        price: float = 99.0,
        *,
        recorded: Callable[[int], None] | None = None,
    ) -> int:
        """Book a seat (no seat number) and rebuild the seats layer; the new booking id.
        ``recorded(booking_id)`` runs before the COMMIT (a demo records the undo there)."""
        with self.db.transaction():
            self.db.execute(
                self._sql("booking_add"),
                {"flight_id": flight_id, "passenger_id": passenger_id, "price": price},
            )
            booking_id = int(self.db.fetch(self._sql("last_insert_id")).rows[0][0])
            if recorded is not None:
                recorded(booking_id)
        self.refresh(flight_id, "seats")
        return booking_id

    def remove_booking(self, flight_id: int, booking_id: int) -> None:
        """Delete a booking and rebuild the seats layer."""
        with self.db.transaction():
            self.db.execute(self._sql("booking_remove"), {"booking_id": booking_id})
        self.refresh(flight_id, "seats")

    def some_passenger(self) -> int:
        rows = self.db.fetch(self._sql("passenger_first")).rows
        if not rows or rows[0][0] is None:
            raise DataError(
                "there are no passengers", hint="load data with `flightcache data load`"
            )
        return int(rows[0][0])


# -- the demo ------------------------------------------------------------------------
def seconds(ms: int) -> str:
    """A PTTL as people read it: seconds, or what -1 and -2 mean."""
    if ms == -2:
        return "gone"
    if ms == -1:
        return "no TTL"
    return f"{ms / 1000:,.1f} s"


def _ttl_class(layer: Layer) -> str:
    s = layer.ttl_s
    return f"{s // 3600} h" if s >= 3600 else f"{s // 60} min" if s >= 60 else f"{s} s"


def _summary(view: View) -> str:
    hits, misses = view.hits(), view.misses()
    parts = []
    if hits:
        parts.append("hit: " + ", ".join(hits))
    if misses:
        queries = f"{len(misses)} {'query' if len(misses) == 1 else 'queries'}"
        parts.append(f"rebuilt ({queries}): " + ", ".join(misses))
    return "; ".join(parts)


def _unbook(doll: NestedDoll, flight_id: int, booking_id: int) -> None:
    """Remove the demo's booking; the seats layer is rebuilt when Valkey lets us."""
    import valkey.exceptions

    try:
        doll.remove_booking(flight_id, booking_id)
    except valkey.exceptions.ValkeyError:
        pass  # the DELETE is committed; the layer ages out within its 5 min


def demo(ctx: DemoContext) -> Iterator[Record]:
    from flightcache.demos.base import Table

    doll = NestedDoll(ctx.db, ctx.valkey, ctx.keys, pipeline=ctx.tracer.pipeline)
    wanted = ctx.options.get("flight")
    flight_id = int(wanted) if wanted is not None else doll.default_flight()
    doll.require_flight(flight_id)
    composes: list[tuple[str, View]] = []

    def compose_step(title: str, why: str) -> Iterator[Record]:
        with ctx.step(title, why) as step:
            view = doll.compose(flight_id)
            step.hit = not view.misses()
            step.data = {"layers": [read.as_dict() for read in view.layers]}
            step.outcome = _summary(view)
        composes.append((title.split(":")[0], view))
        yield step

    yield from compose_step(
        f"Compose 1: flight {flight_id}, every layer misses",
        "one pipeline reads the four layers and their PTTLs; each missing layer is one query,"
        " written back with its own TTL",
    )
    view = composes[-1][1].value()
    schedule, seats = view["schedule"], view["seats"]
    assert isinstance(schedule, dict) and isinstance(seats, dict)
    yield from compose_step(
        "Compose 2: every layer hits",
        "one round trip; the PTTLs show each layer ageing at its own pace",
    )

    passenger = doll.some_passenger()
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
    yield from compose_step(
        "Compose 3: after the booking", "every layer hits; seats shows the new count"
    )

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
    yield from compose_step(
        "Compose 4: only the status layer is rebuilt", "one query for the layer that expired"
    )

    yield Table(
        f"layers of flight {flight_id} in each compose (remaining TTL)",
        ["layer", "TTL", *[name.lower() for name, _ in composes]],
        [
            [
                layer.name,
                f"{_ttl_class(layer)}, {layer.volatility}",
                *[
                    ("HIT " if read.hit else "MISS ") + seconds(read.pttl_ms)
                    for _, v in composes
                    for read in v.layers
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
    yield timing
