"""The layers of the nested doll, and what a compose returns.

A flight's data is split by how fast it changes: aircraft (static, 24 h),
schedule (semi-static, 6 h), seats (dynamic, 5 min), status (real-time, 30 s).
Each layer has a named query in ``sql/`` that returns one row for the flight, a
key in ``keys.py`` under the flight's hash tag, and ``from_row``, which turns
that row into what Valkey holds: a hash of strings, or (status) one string.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flightcache.keys import Keys

Value = dict[str, str] | str
Row = dict[str, Any]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _strings(row: Row) -> Value:
    return {k: _text(v) for k, v in row.items()}


def _schedule(row: Row) -> Value:
    """The schedule with its weekday flags as one field: ``days`` = "Mon Wed Fri"."""
    days = " ".join(day[:3].title() for day in WEEKDAYS if row.get(day))
    rest = {k: v for k, v in row.items() if k not in WEEKDAYS}
    return {**{k: _text(v) for k, v in rest.items()}, "days": days}


def _seats(row: Row) -> Value:
    capacity, booked = row["capacity"], int(row["booked"] or 0)
    available = "" if capacity is None else str(int(capacity) - booked)
    return {"capacity": _text(capacity), "booked": str(booked), "available": available}


def _status(row: Row) -> Value:
    """A status computed from the latest flight_log change: a delay, or on time."""
    planned, logged = row.get("departure"), row.get("departure_new")
    if isinstance(planned, dt.datetime) and isinstance(logged, dt.datetime) and logged != planned:
        minutes = round((logged - planned).total_seconds() / 60)
        return f"delayed {minutes} min" if minutes > 0 else f"early {-minutes} min"
    return "on time"


@dataclass(frozen=True)
class Layer:
    """One doll: its name, TTL class, the query that builds it, its key and its value."""

    name: str
    ttl_s: int
    volatility: str
    query: str
    key: Callable[[Keys, int], str]
    from_row: Callable[[Row], Value]
    is_hash: bool = True

    @property
    def ttl_ms(self) -> int:
        return self.ttl_s * 1000


LAYERS = (
    Layer("aircraft", 86_400, "static", "flight_aircraft", Keys.flight_aircraft, _strings),
    Layer("schedule", 21_600, "semi-static", "flight_schedule", Keys.flight_schedule, _schedule),
    Layer("seats", 300, "dynamic", "flight_seats", Keys.flight_seats, _seats),
    Layer("status", 30, "real-time", "flight_status", Keys.flight_status, _status, is_hash=False),
)
BY_NAME = {layer.name: layer for layer in LAYERS}


@dataclass
class LayerRead:
    """One layer of one compose: hit or rebuilt, and its remaining TTL."""

    layer: str
    key: str
    hit: bool
    pttl_ms: int
    value: Value


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
