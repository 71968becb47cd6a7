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

The layers themselves (TTL, query, key, value) are in
:mod:`flightcache.patterns.nested_doll_layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError
from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, plain_pipeline
from flightcache.patterns.nested_doll_layers import BY_NAME, LAYERS, LayerRead, Value, View
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase


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
        self.queries = 0  # layer queries run

    def _sql(self, name: str) -> str:
        return query(self.db.dialect, name)

    def key(self, flight_id: int, layer: str) -> str:
        return BY_NAME[layer].key(self.keys, flight_id)

    def build(self, flight_id: int, layer: str) -> Value:
        """One layer from its query."""
        self.queries += 1
        result = self.db.fetch(self._sql(BY_NAME[layer].query), {"flight_id": flight_id})
        if not result.rows:
            raise DataError(f"no flight with id {flight_id}")
        return BY_NAME[layer].from_row(dict(zip(result.columns, result.rows[0], strict=True)))

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
    # region: compose
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

    # endregion: compose

    def ttls(self, flight_id: int) -> dict[str, int]:
        """PTTL of every layer (-2: the key does not exist)."""
        pipe = self.pipeline(self.valkey)
        for layer in LAYERS:
            pipe.pttl(layer.key(self.keys, flight_id))
        return {layer.name: int(ms) for layer, ms in zip(LAYERS, pipe.execute(), strict=True)}

    # -- write path -----------------------------------------------------------------
    # region: booking
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

    # endregion: booking

    def remove_booking(self, flight_id: int, booking_id: int) -> None:
        """Delete a booking and rebuild the seats layer."""
        with self.db.transaction():
            self.db.execute(self._sql("booking_remove"), {"booking_id": booking_id})
        self.refresh(flight_id, "seats")
