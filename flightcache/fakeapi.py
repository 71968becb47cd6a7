"""A slow, flaky stand-in for third-party APIs, served over real HTTP on 127.0.0.1.

001's Module 2 caches the answers of external services: a weather API, a
flight-tracking API and an airport services API. flightcache cannot call real
ones, so :class:`FakeApi` serves three of its own, from a background thread on a
free port of the loopback interface:

    GET /weather/<IATA>             the weather at an airport now (changes every 10 min)
    GET /flights/<FLIGHTNO>         where a scheduled flight is now (changes every minute)
    GET /airports/<IATA>/services   restaurants, shops, lounges, wifi (changes once a day)

Answers are JSON computed from a :class:`ApiSnapshot` of the database (airports with
their coordinates and traffic, the weekly flight schedule) and the clock: the same
request in the same time bucket gets the same answer, a later bucket a new one.
Latitude sets the temperature, the schedule says whether a flight is boarding or
airborne, traffic sets how many shops an airport has.

Faults on demand: every request first waits ``latency_ms``, then fails with 503
with probability ``failure_rate`` (a seeded generator, so a run repeats). Both
can be changed while the server runs. An unknown code answers 404.
Every connection has a timeout (a client that sends nothing, or half a request,
is dropped after ``REQUEST_TIMEOUT_S``). :meth:`FakeApi.stop` wakes requests that
are still waiting, cuts the connections still open, closes the socket and joins
every thread, so nothing is left running and stopping never waits on a client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from flightcache.sqlfiles import query

WEATHER_BUCKET_S = 600  # a weather report is renewed every 10 minutes
FLIGHT_BUCKET_S = 60  # a flight's position every minute
SERVICES_BUCKET_S = 86_400  # an airport's services once a day
BOARDING_MIN = 40  # boarding opens this long before departure
LANDED_MIN = 30  # a flight shows as landed this long after arrival
REQUEST_TIMEOUT_S = 10.0  # a connection idle this long is dropped

Clock = Callable[[], float]


@dataclass(frozen=True)
class Airport:
    iata: str
    name: str
    city: str
    country: str
    latitude: float | None
    longitude: float | None
    flights: int  # scheduled flights from or to it


@dataclass(frozen=True)
class ScheduledFlight:
    flightno: str
    airline: str
    origin: str
    destination: str
    departure_min: int  # minutes after midnight
    arrival_min: int


@dataclass(frozen=True)
class ApiSnapshot:
    """What the APIs know: a copy taken from the database when the server starts."""

    airports: dict[str, Airport]
    flights: dict[str, ScheduledFlight]

    @classmethod
    def load(cls, db: Any) -> ApiSnapshot:
        """Read airports and the schedule through ``db`` (a Database or TracedDatabase)."""
        airports = {}
        for iata, name, city, country, latitude, longitude, flights_count in db.fetch(
            query(db.dialect, "universal_api_airports")
        ).rows:
            code = str(iata).strip()
            airports[code] = Airport(
                code,
                str(name or ""),
                str(city or ""),
                str(country or ""),
                None if latitude is None else float(latitude),
                None if longitude is None else float(longitude),
                int(flights_count),
            )
        flights = {}
        for flightno, airline, origin, destination, departure, arrival in db.fetch(
            query(db.dialect, "universal_api_flights")
        ).rows:
            code = str(flightno).strip()
            flights[code] = ScheduledFlight(
                code,
                str(airline or "").strip(),
                str(origin).strip(),
                str(destination).strip(),
                int(departure),
                int(arrival),
            )
        return cls(airports, flights)


# -- the answers: pure functions of the snapshot, the request and the clock ------------
def _seeded(*parts: Any) -> random.Random:
    seed = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clock_time(minutes: int) -> str:
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def weather(airport: Airport, now: float) -> dict[str, Any]:
    """The weather at ``airport``: cooler towards the poles, warmest mid-afternoon."""
    bucket = int(now // WEATHER_BUCKET_S)
    chance = _seeded("weather", airport.iata, bucket)
    latitude, longitude = airport.latitude or 0.0, airport.longitude or 0.0
    solar_hour = (bucket * WEATHER_BUCKET_S / 3600 + longitude / 15) % 24
    daily = 4.0 - abs(solar_hour - 15) / 2.5  # +4 at 15:00 local sun time, -4 at 03:00
    temperature = round(28 - 0.45 * abs(latitude) + daily + chance.uniform(-3, 3), 1)
    conditions = ["sunny", "partly cloudy", "cloudy", "rain", "fog"]
    conditions.append("snow" if temperature < 1 else "thunderstorm")
    condition = chance.choices(conditions, weights=[5, 4, 3, 2, 1, 1])[0]
    visibility = {
        "fog": chance.randint(1, 3),
        "rain": chance.randint(4, 9),
        "snow": chance.randint(2, 6),
    }
    return {
        "airport": airport.iata,
        "observed_at": _iso(bucket * WEATHER_BUCKET_S),
        "temp_c": temperature,
        "condition": condition,
        "visibility_km": visibility.get(condition, chance.randint(10, 20)),
        "wind_kmh": chance.randint(0, 45),
        "humidity_pct": chance.randint(30, 95),
    }


def flight_status(flight: ScheduledFlight, now: float) -> dict[str, Any]:
    """Where a flight of the weekly schedule is at ``now`` (schedule times read as UTC)."""
    bucket = int(now // FLIGHT_BUCKET_S)
    day = dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()
    delay = _seeded("delay", flight.flightno, day).choice([0, 0, 0, 0, 0, 5, 10, 15, 25, 40, 75])
    departure = flight.departure_min + delay
    overnight = 1440 if flight.arrival_min <= flight.departure_min else 0
    arrival = flight.arrival_min + overnight + delay
    clock = int(now % 86_400 // 60)
    if clock + 1440 < arrival + LANDED_MIN:  # an overnight flight seen after midnight
        clock += 1440
    chance = _seeded("position", flight.flightno, bucket)
    altitude = speed = 0
    progress = 0.0
    if departure - BOARDING_MIN <= clock < departure:
        status = "boarding"
    elif departure <= clock < arrival:
        status = "airborne"
        progress = (clock - departure) / max(1, arrival - departure)
        climb = min(1.0, (clock - departure) / 20, (arrival - clock) / 25)  # 20 min up, 25 down
        altitude = round(climb * chance.randint(33, 39) * 10) * 100
        speed = round(180 + climb * chance.randint(250, 300))
    elif arrival <= clock < arrival + LANDED_MIN:
        status, progress = "landed", 1.0
    else:
        status = "scheduled"
    return {
        "flight": flight.flightno,
        "airline": flight.airline,
        "from": flight.origin,
        "to": flight.destination,
        "status": status,
        "departure": _clock_time(flight.departure_min),
        "arrival": _clock_time(flight.arrival_min),
        "delay_min": delay,
        "eta": _clock_time(arrival),
        "altitude_ft": altitude,
        "speed_kt": speed,
        "progress_pct": round(100 * progress),
        "as_of": _iso(bucket * FLIGHT_BUCKET_S),
    }


def services(airport: Airport, now: float) -> dict[str, Any]:
    """What an airport offers: the busier it is, the more of everything."""
    bucket = int(now // SERVICES_BUCKET_S)
    chance = _seeded("services", airport.iata, bucket)
    size = 1 + airport.flights**0.5
    return {
        "airport": airport.iata,
        "name": airport.name,
        "restaurants": round(size * 3) + chance.randint(0, 4),
        "shops": round(size * 2) + chance.randint(0, 4),
        "lounges": round(size / 2) + chance.randint(0, 1),
        "wifi": "free" if _seeded("wifi", airport.iata).random() < 0.8 else "paid",
        "updated": dt.datetime.fromtimestamp(bucket * SERVICES_BUCKET_S, dt.UTC).date().isoformat(),
    }


# -- the server -----------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every request thread
    block_on_close = True
    api: FakeApi

    def server_activate(self) -> None:
        self.open_connections: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.open_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.open_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Shut every open connection, so that a handler blocked reading returns now."""
        with self.open_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a slow answer is what a timeout looks like


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.api.request_timeout)  # its reads and writes

    def do_GET(self) -> None:  # the name http.server calls
        status, body = self.server.api.answer(self.path)
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up waiting, or the server is stopping

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on the demo's terminal


class FakeApi:
    """The three external services on ``http://127.0.0.1:<free port>``.

    ``latency_ms`` and ``failure_rate`` may be changed while it runs; ``requests``
    counts the requests it has received. A connection that sends nothing for
    ``request_timeout`` seconds is dropped.
    """

    def __init__(
        self,
        snapshot: ApiSnapshot,
        *,
        latency_ms: float = 0.0,
        failure_rate: float = 0.0,
        seed: int = 1,
        clock: Clock = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        check(latency_ms, failure_rate)
        if not 0 < request_timeout < float("inf"):
            raise ValueError(f"the request timeout must be above 0 s, not {request_timeout}")
        self.request_timeout = request_timeout
        self.snapshot = snapshot
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.clock = clock
        self.requests = 0
        self._host, self._port = host, port
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake API is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> FakeApi:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.api = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"flightcache-fakeapi-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: waiting requests and idle connections are cut short, every
        thread joined."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.cut_connections()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def configure(
        self, *, latency_ms: float | None = None, failure_rate: float | None = None
    ) -> None:
        """Change the latency or the failure rate of the running service."""
        latency = self.latency_ms if latency_ms is None else latency_ms
        rate = self.failure_rate if failure_rate is None else failure_rate
        check(latency, rate)
        with self._lock:
            self.latency_ms, self.failure_rate = latency, rate

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one GET, after the latency and the failure draw."""
        with self._lock:
            self.requests += 1
            fail = self._random.random() < self.failure_rate
        if self.latency_ms > 0 and self._stopping.wait(self.latency_ms / 1000):
            return 503, {"error": "the service is shutting down"}
        if fail:
            return 503, {"error": "service unavailable (a failure injected on purpose)"}
        return self.route(path)

    def route(self, path: str) -> tuple[int, dict[str, Any]]:
        parts = [unquote(p) for p in path.split("?", 1)[0].strip("/").split("/")]
        now = self.clock()
        airports, flights = self.snapshot.airports, self.snapshot.flights
        if len(parts) == 2 and parts[0] == "weather":
            found = airports.get(parts[1].upper())
            if found:
                return 200, weather(found, now)
            return 404, {"error": f"no airport {parts[1]!r}"}
        if len(parts) == 2 and parts[0] == "flights":
            flight = flights.get(parts[1].upper())
            if flight:
                return 200, flight_status(flight, now)
            return 404, {"error": f"no scheduled flight {parts[1]!r}"}
        if len(parts) == 3 and parts[0] == "airports" and parts[2] == "services":
            found = airports.get(parts[1].upper())
            if found:
                return 200, services(found, now)
            return 404, {"error": f"no airport {parts[1]!r}"}
        return 404, {"error": f"no such endpoint: {path}"}


def check(latency_ms: float, failure_rate: float) -> None:
    """ValueError unless the latency is >= 0 and the failure rate in 0..1."""
    if not latency_ms >= 0:
        raise ValueError(f"latency must be 0 ms or more, not {latency_ms}")
    if not 0 <= failure_rate <= 1:
        raise ValueError(f"the failure rate must be between 0 and 1, not {failure_rate}")
