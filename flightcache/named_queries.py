"""The named queries Module 1 caches: expensive FlughafenDB queries and their parameters.

Each entry names a query of ``sql/<dialect>/queries.sql`` and its parameters.
Parameters arrive as text (``origin=FRA``) and are checked and converted here;
a code is never checked against a pattern, because it only ever reaches the
database as a bound parameter: an injection attempt simply matches nothing.
Missing parameters take defaults read from the loaded data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flightcache.db import Database
from flightcache.errors import UsageError
from flightcache.sqlfiles import query

Kind = Literal["text", "int", "date"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    help: str


@dataclass(frozen=True)
class Query:
    name: str
    title: str
    params: tuple[Param, ...] = ()
    sample: str | None = None  # named query giving default parameters

    def sql(self, dialect: Any) -> str:
        return query(dialect, self.name)


NAMED_QUERIES: dict[str, Query] = {
    q.name: q
    for q in (
        Query(
            "airline_route_analysis",
            "Airlines by routes flown, destinations and countries (001's expensive query)",
        ),
        Query(
            "flight_search",
            "Flights on a route and day, with seats left and the lowest fare",
            (
                Param("origin", "text", "IATA code of the departure airport"),
                Param("destination", "text", "IATA code of the arrival airport"),
                Param("day", "date", "departure day, YYYY-MM-DD"),
            ),
            sample="sample_route_day",
        ),
        Query(
            "passenger_bookings",
            "A passenger's booking history, newest first",
            (Param("passenger_id", "int", "passenger id"),),
            sample="sample_passenger",
        ),
        Query(
            "top_airports_daily",
            "The ten airports with the most bookings on one day",
            (Param("day", "date", "departure day, YYYY-MM-DD"),),
            sample="sample_route_day",
        ),
    )
}


def get(name: str) -> Query:
    try:
        return NAMED_QUERIES[name]
    except KeyError:
        raise UsageError(
            f"no query named {name!r}",
            hint="`flightcache query list` shows them: " + ", ".join(NAMED_QUERIES),
        ) from None


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["origin=FRA", "day=2025-06-02"]`` as a dict; one clear error otherwise."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(
                f"parameter {item!r} is not NAME=VALUE",
                hint="e.g. flightcache query run flight_search origin=FRA destination=JFK",
            )
        out[name.strip()] = value
    return out


def convert(param: Param, raw: str) -> Any:
    if param.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UsageError(
                f"{param.name} must be a whole number, not {raw!r}", hint=param.help
            ) from None
    if param.kind == "date":
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise UsageError(
                f"{param.name} must be a date like 2025-06-02, not {raw!r}", hint=param.help
            ) from None
    return raw


def bind(db: Database, q: Query, given: Mapping[str, str]) -> dict[str, Any]:
    """The query's parameters: converted from ``given``, defaults from the data."""
    known = {p.name for p in q.params}
    unknown = sorted(set(given) - known)
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"{q.name} has no parameter {', '.join(unknown)}",
            hint=f"its parameters: {names}",
        )
    params = {p.name: convert(p, given[p.name]) for p in q.params if p.name in given}
    missing = [p.name for p in q.params if p.name not in params]
    if missing and q.sample:
        result = db.fetch(query(db.dialect, q.sample))
        if result.rows:
            sample = dict(zip(result.columns, result.rows[0], strict=True))
            for name in missing:
                value = sample.get(name)
                if isinstance(value, dt.datetime):
                    value = value.date()
                params[name] = value
    still = [p.name for p in q.params if params.get(p.name) is None]
    if still:
        raise UsageError(f"{q.name} needs {', '.join(still)}", hint="give them as NAME=VALUE")
    return params
