"""What the universal cache fronts in the demo: an HTTP API, SQL, and their TTLs.

:class:`~flightcache.patterns.universal.UniversalCache` caches anything a
``fetch()`` returns. These are the origins of 001's Module 2: :class:`ApiClient`
GETs JSON from an HTTP API (the weather, flight-tracking and airport services
APIs) with a timeout, and turns every failure into
:class:`~flightcache.patterns.universal.OriginDown`; the SQL origins compute a
route's distance, a day's booking statistics and a flight search. Each
:class:`Source` carries the TTL of its data class and how long its last good copy
is kept.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from flightcache.data.generate import great_circle_km
from flightcache.errors import DataError, UsageError
from flightcache.patterns.ttl import rows_as_dicts
from flightcache.patterns.universal import OriginDown
from flightcache.sqlfiles import query

KM_PER_MILE = 1.609344
KM_PER_NAUTICAL_MILE = 1.852


class ApiNotFound(DataError):
    """The API answered 404: it knows no such airport or flight."""


class ApiClient:
    """GET JSON from an HTTP API with a timeout; failures as :class:`OriginDown`.

    ``log`` collects one line per request (what the demo shows as ``http>``);
    :meth:`take` empties it.
    """

    def __init__(self, base_url: str, *, timeout_s: float, name: str = "API") -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.name = name
        self.log: list[str] = []
        self.recording = True
        # no proxy from the environment: the service is on this machine
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str, *, name: str | None = None) -> Any:
        url = self.base_url + path
        what = name or self.name
        start = time.perf_counter_ns()
        try:
            with self._opener.open(url, timeout=self.timeout_s) as response:
                body = response.read()
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            self._note(f"GET {url} -> {exc.code} {exc.reason}", start)
            if exc.code == 404:
                raise ApiNotFound(
                    f"the {what} knows no {path.strip('/').split('/')[1]!r}",
                    hint=f"{_error_of(exc)}; check the code",
                ) from None
            raise OriginDown(f"the {what} answered {exc.code} {exc.reason}") from None
        except TimeoutError:
            self._note(f"GET {url} -> no answer within {self.timeout_s * 1000:.0f} ms", start)
            raise OriginDown(
                f"the {what} did not answer within {self.timeout_s * 1000:.0f} ms"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                self._note(f"GET {url} -> no connection within the timeout", start)
                raise OriginDown(f"the {what} did not accept a connection in time") from None
            self._note(f"GET {url} -> {reason}", start)
            raise OriginDown(f"cannot reach the {what} at {self.base_url}: {reason}") from None
        try:
            value = json.loads(body)
        except ValueError:
            self._note(f"GET {url} -> {status}, not JSON", start)
            raise OriginDown(f"the {what} answered something that is not JSON") from None
        self._note(f"GET {url} -> {status} OK, {len(body):,} bytes", start)
        return value

    def _note(self, line: str, start: int) -> None:
        if self.recording:
            from flightcache.measure.duration import human_ns

            self.log.append(f"{line} in {human_ns(time.perf_counter_ns() - start)}")

    def take(self) -> list[str]:
        lines, self.log = self.log, []
        return lines


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


@dataclass(frozen=True)
class Source:
    """One kind of thing to cache, and how long its copies may live."""

    name: str  # "weather API"
    item: str  # the item name as 001 spells its key, with {placeholders}
    origin: str  # what a miss costs
    data_class: str  # 001's "TTL strategy by data source"
    class_range: str
    ttl_s: int
    stale_ttl_s: int  # how long the last good copy is kept

    def item_for(self, **parts: Any) -> str:
        return self.item.format(**parts)


WEATHER = Source(
    "weather API", "weather:api:{iata}", "HTTP GET /weather/<IATA>",
    "real-time API", "1-10 min", 600, 3_600,
)  # fmt: skip
FLIGHT = Source(
    "flight-tracking API", "flightaware:{flightno}", "HTTP GET /flights/<FLIGHTNO>",
    "real-time API", "1-10 min", 120, 900,
)  # fmt: skip
SERVICES = Source(
    "airport services API", "airport:services:{iata}", "HTTP GET /airports/<IATA>/services",
    "business API", "1-6 h", 7_200, 86_400,
)  # fmt: skip
DISTANCE = Source(
    "route distance", "route:distance:{origin}:{destination}",
    "SQL universal_airport_coords + haversine in Python",
    "static reference", "24 h", 86_400, 7 * 86_400,
)  # fmt: skip
STATS = Source(
    "daily booking statistics", "stats:daily:bookings:{day}", "SQL universal_daily_bookings",
    "business data", "1-6 h", 3_600, 86_400,
)  # fmt: skip
SEARCH = Source(
    "flight search", "search:flights:{origin}:{destination}:{day}", "SQL flight_search",
    "user-specific", "5-30 min", 900, 3_600,
)  # fmt: skip
SOURCES = (WEATHER, FLIGHT, SERVICES, DISTANCE, STATS, SEARCH)


def airport_coords(db: Any, origin: str, destination: str) -> dict[str, dict[str, Any]]:
    """The two airports of a route by IATA code; UsageError naming a code not found."""
    result = db.fetch(
        query(db.dialect, "universal_airport_coords"),
        {"origin": origin, "destination": destination},
    )
    found = {str(row["iata"]).strip(): row for row in rows_as_dicts(result.columns, result.rows)}
    missing = [code for code in (origin, destination) if code not in found]
    if missing:
        codes = [
            str(row[0]).strip()
            for row in db.fetch(query(db.dialect, "universal_airport_some_codes")).rows
        ]
        raise UsageError(
            f"no airport with IATA code {missing[0]!r} (or it has no coordinates in airport_geo)",
            hint="pass a code such as " + (", ".join(codes) or "FRA"),
        )
    return found


def route_distance(db: Any, origin: str, destination: str) -> dict[str, Any]:
    """001's route:distance value, computed: the great-circle distance from airport_geo."""
    found = airport_coords(db, origin, destination)
    start, end = found[origin], found[destination]
    km = great_circle_km(start["latitude"], start["longitude"], end["latitude"], end["longitude"])
    return {
        "from": origin,
        "to": destination,
        "km": round(km, 1),
        "miles": round(km / KM_PER_MILE),
        "nautical_miles": round(km / KM_PER_NAUTICAL_MILE),
        "from_city": start["city"],
        "to_city": end["city"],
        "domestic": start["country"] == end["country"],
    }


def daily_bookings(db: Any, day: Any) -> dict[str, Any]:
    """001's stats:daily:bookings for one day: total, domestic, international."""
    result = db.fetch(query(db.dialect, "universal_daily_bookings"), {"day": day})
    [row] = rows_as_dicts(result.columns, result.rows)
    return {"day": str(day), **{name: int(value or 0) for name, value in row.items()}}


def flight_search(db: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    """001's search:flights: the catalogue's flight_search, as a list of flights."""
    result = db.fetch(query(db.dialect, "flight_search"), params)
    return rows_as_dicts(result.columns, result.rows)


def api_paths(iata: str, flightno: str) -> dict[Source, str]:
    """The HTTP path of each API source for one airport and one flight."""
    return {
        WEATHER: f"/weather/{iata}",
        FLIGHT: f"/flights/{flightno}",
        SERVICES: f"/airports/{iata}/services",
    }
