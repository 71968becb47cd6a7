"""Universal caching: if it can be queried, it can be cached, with a last good copy.

One cache in front of any origin: an HTTP API, a computation, an aggregate or a
search in SQL. Each cached item has three keys sharing the hash tag ``{<item>}``
(see ``Keys.cached_item``): the fresh copy, the last good copy and a hold.

Read path: GET the fresh copy; a hit is served with its age. On a miss, MGET the
last good copy and the hold in one round trip. Without a hold, call the origin;
on success write the fresh copy (EX the data class's TTL), the last good copy (EX
a longer stale TTL) and delete the hold, in one pipeline.

Failure mode: when the origin fails (an error, a 5xx, a connection refused, a
timeout), SET the hold with PX ``retry_after`` and serve the last good copy
marked stale with its age; with no copy at all, raise :class:`NothingCached`
("the weather API is down and nothing is cached"). While the hold lives, readers
get the last good copy (or that error) without calling the origin again, so a
failing API is not hammered by every reader. Every copy stores when it was
fetched, so the age a reader is told is the age of the data, whichever copy it
came from, and the two copies need not be written atomically. With Valkey
unreachable, reads go to the origin and nothing is stored.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import valkey.exceptions

from flightcache.data.generate import great_circle_km
from flightcache.errors import ConnectionFailed, DataError, FlightcacheError, UsageError
from flightcache.keys import Keys
from flightcache.patterns.ttl import rows_as_dicts
from flightcache.sqlfiles import query

UNAVAILABLE = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)
KM_PER_MILE = 1.609344
KM_PER_NM = 1.852
RETRY_AFTER_S = 5.0

Origin = Literal["cache", "origin", "stale"]


class OriginDown(FlightcacheError):
    """The origin of a cached item (an API, the database) did not answer."""


class NothingCached(OriginDown):
    """The origin is down and no copy of the item is cached."""


class ApiNotFound(DataError):
    """The API answered 404: it knows no such airport or flight."""


# -- the HTTP client ------------------------------------------------------------------
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
            elapsed_ms = (time.perf_counter_ns() - start) / 1e6
            self.log.append(f"{line} in {elapsed_ms:.1f} ms")

    def take(self) -> list[str]:
        lines, self.log = self.log, []
        return lines


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


# -- the cache ------------------------------------------------------------------------
@dataclass
class Served:
    """One read: the value, where it came from, and how old the data is."""

    item: str
    value: Any
    source: Origin
    age_s: float  # since the origin produced it
    error: str = ""  # why a stale copy was served
    note: str = ""  # e.g. "Valkey unavailable"
    called_origin: bool = False

    @property
    def stale(self) -> bool:
        return self.source == "stale"

    def describe(self) -> str:
        age = f"{self.age_s:.1f} s old"
        if self.source == "cache":
            return f"from the cache, {age}"
        if self.source == "stale":
            return f"STALE: the last good copy, {age} ({self.error})"
        return "from the origin" + (f" ({self.note})" if self.note else "")


@dataclass
class UniversalCache:
    """Any origin behind Valkey: fresh copy, last good copy, and a hold after a failure.

    ``get(item, fetch, ttl=, stale_ttl=, what=)`` is the whole API: ``fetch()``
    returns a JSON-able value or raises one of ``failures`` when the origin is
    down. ``clock`` gives the wall time stored with each copy; ``pipeline(client)``
    makes the pipeline of a refill (a demo passes the tracer's).
    """

    client: Any
    keys: Keys
    retry_after_s: float = RETRY_AFTER_S
    failures: tuple[type[BaseException], ...] = (OriginDown, ConnectionFailed)
    clock: Callable[[], float] = time.time
    pipeline: Callable[[Any], Any] = lambda client: client.pipeline(transaction=False)
    fetches: int = field(default=0, init=False)  # origin calls made

    def get(
        self,
        item: str,
        fetch: Callable[[], Any],
        *,
        ttl: int,
        stale_ttl: int,
        what: str = "origin",
    ) -> Served:
        fresh = self.keys.cached_item(item)
        try:
            cached = self.client.get(fresh)
        except UNAVAILABLE as exc:
            self.fetches += 1
            try:
                value = fetch()
            except self.failures as down:
                raise NothingCached(
                    f"the {what} is down and nothing is cached for {item} (Valkey is unreachable)",
                    hint=f"{_reason(down)}; Valkey: {_reason(exc)}",
                ) from None
            return Served(item, value, "origin", 0.0, note="Valkey unavailable", called_origin=True)
        envelope = _decode(cached)
        if envelope is not None:
            return Served(item, envelope["value"], "cache", self._age(envelope))
        good_key, hold_key = self.keys.cached_item_good(item), self.keys.cached_item_hold(item)
        good_raw, hold_raw = self.client.mget([good_key, hold_key])
        good, hold = _decode(good_raw), _decode_hold(hold_raw)
        if hold is not None:
            return self._fallback(item, good, what, hold, called=False)
        self.fetches += 1
        try:
            value = fetch()
        except self.failures as exc:
            error = _reason(exc)
            hold = {"error": error, "at": self.clock(), "retry_after_s": self.retry_after_s}
            self.client.set(hold_key, _dump(hold), px=max(1, round(self.retry_after_s * 1000)))
            return self._fallback(item, good, what, hold, called=True)
        envelope = {"fetched_at": self.clock(), "value": value}
        text = _dump(envelope)
        pipe = self.pipeline(self.client)
        pipe.set(fresh, text, ex=ttl)
        if stale_ttl > 0:
            pipe.set(good_key, text, ex=stale_ttl)
        pipe.delete(hold_key)
        pipe.execute()
        return Served(item, value, "origin", 0.0, called_origin=True)

    def _age(self, envelope: dict[str, Any]) -> float:
        return max(0.0, self.clock() - float(envelope["fetched_at"]))

    def _fallback(
        self,
        item: str,
        good: dict[str, Any] | None,
        what: str,
        hold: dict[str, Any],
        *,
        called: bool,
    ) -> Served:
        since = max(0.0, self.clock() - float(hold.get("at", 0)))
        left = max(0.0, float(hold.get("retry_after_s", 0)) - since)
        why = f"{hold.get('error', 'failed')}; {since:.1f} s ago"
        if good is None:
            raise NothingCached(
                f"the {what} is down and nothing is cached for {item}",
                hint=f"{why}; the next call to it is in {left:.1f} s",
            )
        retry = f"next try in {left:.1f} s" if not called else f"retry after {left:.1f} s"
        return Served(
            item, good["value"], "stale", self._age(good), f"{why}; {retry}", called_origin=called
        )


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _decode(raw: Any) -> dict[str, Any] | None:
    """A cached envelope, or None for nothing (or something not ours: a miss)."""
    if raw is None:
        return None
    try:
        envelope = json.loads(raw)
        float(envelope["fetched_at"])
        envelope["value"]  # must be there
    except (ValueError, KeyError, TypeError):
        return None
    return envelope if isinstance(envelope, dict) else None


def _decode_hold(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        hold = json.loads(raw)
    except ValueError:
        hold = None
    return hold if isinstance(hold, dict) else {"error": "the origin failed"}


def _reason(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, FlightcacheError) else str(exc)
    return text.split("\n", 1)[0][:160] or type(exc).__name__


# -- the sources of 001's Module 2, each with the TTL of its data class ----------------
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


# -- the origins ----------------------------------------------------------------------
def airport_coords(db: Any, origin: str, destination: str) -> dict[str, dict[str, Any]]:
    """The two airports of a route by IATA code; UsageError naming a code not found."""
    result = db.fetch(
        query(db.dialect, "universal_airport_coords"),
        {"origin": origin, "destination": destination},
    )
    found = {str(r["iata"]).strip(): r for r in rows_as_dicts(result.columns, result.rows)}
    missing = [code for code in (origin, destination) if code not in found]
    if missing:
        codes = [
            str(r[0]).strip()
            for r in db.fetch(query(db.dialect, "universal_airport_some_codes")).rows
        ]
        raise UsageError(
            f"no airport with IATA code {missing[0]!r} (or it has no coordinates in airport_geo)",
            hint="pass a code such as " + (", ".join(codes) or "FRA"),
        )
    return found


def route_distance(db: Any, origin: str, destination: str) -> dict[str, Any]:
    """001's route:distance value, computed: the great-circle distance from airport_geo."""
    found = airport_coords(db, origin, destination)
    a, b = found[origin], found[destination]
    km = great_circle_km(a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    return {
        "from": origin,
        "to": destination,
        "km": round(km, 1),
        "miles": round(km / KM_PER_MILE),
        "nautical_miles": round(km / KM_PER_NM),
        "from_city": a["city"],
        "to_city": b["city"],
        "domestic": a["country"] == b["country"],
    }


def daily_bookings(db: Any, day: Any) -> dict[str, Any]:
    """001's stats:daily:bookings for one day: total, domestic, international."""
    result = db.fetch(query(db.dialect, "universal_daily_bookings"), {"day": day})
    [row] = rows_as_dicts(result.columns, result.rows)
    return {"day": str(day), **{k: int(v or 0) for k, v in row.items()}}


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


def summary(value: Any, keys: Sequence[str] = ()) -> str:
    """A short text of a cached value for an outcome line."""
    if isinstance(value, list):
        return f"{len(value)} rows"
    if isinstance(value, dict):
        shown = keys or list(value)[:4]
        return ", ".join(f"{k}={value[k]}" for k in shown if k in value)
    return str(value)[:80]
