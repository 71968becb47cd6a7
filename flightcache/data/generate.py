"""Generated FlughafenDB-shaped data, deterministic for a scale and a seed.

Airports are real (codes, names, cities, coordinates from the airportsdata
package, MIT licensed); airlines, fleets, schedules, flights, passengers and
bookings are made up with the shapes that make caching interesting: a few hub
airports and large airlines carry most traffic (Zipf-like weights), flights follow
the weekly schedule, a booking's seat is unique within its flight and a flight
never holds more bookings than its airplane has seats, and frequent flyers book
many flights.

Everything comes from one ``random.Random(seed)`` consumed in a fixed order, and
the dates are fixed, so the same scale and seed give the same rows on every
machine and in both databases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate
from typing import Any

from flightcache.db import Point

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Scale:
    name: str
    airports: int
    airlines: int
    schedules: int
    days: int
    passengers: int
    bookings: int
    employees: int
    weather_stations: int
    about: str


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("tiny", 120, 8, 160, 14, 2_000, 15_000, 50, 2, "seconds; for tests"),
        Scale("small", 600, 25, 1_200, 28, 12_000, 250_000, 300, 4, "a quick look"),
        Scale(
            "workshop",
            2_500,
            60,
            3_000,
            60,
            36_000,
            1_000_000,
            1_000,
            6,
            "the default: expensive queries take a fifth of a second or more",
        ),
        Scale(
            "full",
            7_500,
            113,
            9_800,
            110,
            36_000,
            55_000_000,
            1_000,
            10,
            "FlughafenDB's own size: ~750k flights, ~55M bookings; slow to load",
        ),
    )
}
DEFAULT_SCALE = "workshop"
DEFAULT_SEED = 42
START_DATE = dt.date(2025, 6, 2)  # a Monday

# Busy hubs, placed first in the popularity ranking (IATA codes are public facts).
HUBS = (
    "ATL",
    "DXB",
    "DFW",
    "LHR",
    "HND",
    "DEN",
    "IST",
    "LAX",
    "ORD",
    "DEL",
    "CDG",
    "JFK",
    "AMS",
    "FRA",
    "MAD",
    "SIN",
    "ICN",
    "CAN",
    "PEK",
    "PVG",
    "BKK",
    "HKG",
    "SFO",
    "MUC",
    "BCN",
    "YYZ",
    "DOH",
    "SYD",
    "GRU",
    "MEX",
    "VIE",
    "ZRH",
    "CPH",
    "FCO",
    "SEA",
    "MIA",
)

# (identifier, description, smallest, largest seat count): common airliner types.
AIRPLANE_TYPES = (
    ("Airbus A220-300", "narrow-body twin jet", 120, 160),
    ("Airbus A319", "narrow-body twin jet", 110, 156),
    ("Airbus A320", "narrow-body twin jet", 150, 186),
    ("Airbus A320neo", "narrow-body twin jet, new engine option", 150, 194),
    ("Airbus A321", "narrow-body twin jet, stretched", 180, 220),
    ("Airbus A321neo", "narrow-body twin jet, stretched, new engine option", 180, 244),
    ("Airbus A330-300", "wide-body twin jet", 250, 300),
    ("Airbus A350-900", "wide-body twin jet", 280, 350),
    ("Airbus A380-800", "wide-body four-engine double-deck jet", 480, 615),
    ("Boeing 737-700", "narrow-body twin jet", 120, 149),
    ("Boeing 737-800", "narrow-body twin jet", 160, 189),
    ("Boeing 737 MAX 8", "narrow-body twin jet", 162, 210),
    ("Boeing 757-200", "narrow-body twin jet", 180, 228),
    ("Boeing 767-300ER", "wide-body twin jet", 210, 269),
    ("Boeing 777-300ER", "wide-body twin jet", 300, 396),
    ("Boeing 787-9", "wide-body twin jet", 250, 296),
    ("Embraer E175", "regional twin jet", 76, 88),
    ("Embraer E195-E2", "regional twin jet", 120, 146),
    ("Bombardier CRJ900", "regional twin jet", 76, 90),
    ("ATR 72-600", "regional twin turboprop", 68, 78),
    ("De Havilland Dash 8-400", "regional twin turboprop", 68, 90),
)

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Felix",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Klara",
    "Lukas",
    "Maria",
    "Noah",
    "Olga",
    "Paul",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Uwe",
    "Vera",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Aiko",
    "Bjorn",
    "Chen",
    "Dmitri",
    "Emma",
    "Fatima",
    "Giulia",
    "Hannah",
    "Ivan",
    "Julia",
    "Kenji",
    "Leila",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Rafael",
    "Sofia",
    "Tomas",
    "Amara",
    "Lars",
    "Mina",
    "Diego",
    "Ewa",
    "Hiro",
    "Ingrid",
    "Jamal",
    "Kofi",
    "Lucia",
    "Marek",
    "Nora",
    "Pablo",
)
LAST_NAMES = (
    "Schmidt",
    "Mueller",
    "Garcia",
    "Smith",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Novak",
    "Jensen",
    "Silva",
    "Tanaka",
    "Kim",
    "Wang",
    "Ivanova",
    "Haddad",
    "Okafor",
    "Patel",
    "Nguyen",
    "Cohen",
    "Larsen",
    "Moreau",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Schulz",
    "Lopez",
    "Martin",
    "Bernard",
    "Costa",
    "Ferrari",
    "Bianchi",
    "Horvat",
    "Nagy",
    "Popescu",
    "Yilmaz",
    "Demir",
    "Khan",
    "Singh",
    "Sato",
    "Suzuki",
    "Lee",
    "Park",
    "Chen",
    "Li",
    "Zhang",
    "Andersson",
    "Nielsen",
    "Virtanen",
    "Brown",
    "Taylor",
    "Wilson",
    "Evans",
    "Walker",
    "Murphy",
    "Kelly",
    "Santos",
    "Pereira",
)
STREETS = (
    "Hauptstrasse",
    "Bahnhofstrasse",
    "Main Street",
    "High Street",
    "Rue de la Paix",
    "Via Roma",
    "Calle Mayor",
    "Parkweg",
    "Lindenallee",
    "Harbour Road",
    "Kirchgasse",
    "Station Road",
    "Gartenweg",
    "Oak Avenue",
    "Seeweg",
    "Market Square",
)
AIRLINE_SUFFIXES = ("Airways", "Air", "Airlines", "Express", "Aviation", "Connect", "Jet")
DEPARTMENTS = ("Marketing", "Buchhaltung", "Management", "Logistik", "Flugfeld")
WEATHER = (
    "Nebel-Schneefall",
    "Schneefall",
    "Regen",
    "Regen-Schneefall",
    "Nebel-Regen",
    "Nebel-Regen-Gewitter",
    "Gewitter",
    "Nebel",
    "Regen-Gewitter",
)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere of radius 6371 km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


def seat_label(index: int) -> str:
    """Seat 0 is 1A, 5 is 1F, 6 is 2A: six seats a row."""
    return f"{index // 6 + 1}{'ABCDEF'[index % 6]}"


@dataclass
class _Airport:
    id: int
    iata: str
    icao: str
    name: str
    city: str
    country: str
    lat: float
    lon: float


@dataclass
class _Schedule:
    flightno: str
    src: int
    dst: int
    dep_min: int
    dur_min: int
    airline: int
    days: tuple[int, ...]
    airplane: int
    capacity: int
    km: float
    popularity: float


@dataclass
class Dataset:
    """Generated rows, table by table; big tables are produced lazily."""

    scale: Scale
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    _airports: list[_Airport] = field(default_factory=list)
    _small: dict[str, list[Row]] = field(default_factory=dict)
    _schedules: list[_Schedule] = field(default_factory=list)
    _flights: list[tuple[int, int, float, int]] = field(default_factory=list)
    _per_flight: list[int] = field(default_factory=list)
    _pax_cum: list[float] = field(default_factory=list)

    def rows(self, table: str) -> Iterator[Row]:
        if table in self._small:
            return iter(self._small[table])
        if table == "flight":
            return self._flight_rows()
        if table == "flight_log":
            return self._flight_log_rows()
        if table == "booking":
            return self._booking_rows()
        raise KeyError(table)

    # -- lazily produced tables ---------------------------------------------
    def _flight_rows(self) -> Iterator[Row]:
        fid = 0
        for day in range(self.scale.days):
            date = START_DATE + dt.timedelta(days=day)
            midnight = dt.datetime.combine(date, dt.time())
            weekday = date.weekday()
            for s in self._schedules:
                if weekday not in s.days:
                    continue
                fid += 1
                dep = midnight + dt.timedelta(minutes=s.dep_min)
                arr = dep + dt.timedelta(minutes=s.dur_min)
                yield (fid, s.flightno, s.src, s.dst, dep, arr, s.airline, s.airplane)

    def _flight_log_rows(self) -> Iterator[Row]:
        rng = random.Random(self.seed * 7919 + 3)
        fid = 0
        for day in range(self.scale.days):
            date = START_DATE + dt.timedelta(days=day)
            midnight = dt.datetime.combine(date, dt.time())
            weekday = date.weekday()
            for s in self._schedules:
                if weekday not in s.days:
                    continue
                fid += 1
                # late airlines (higher ids are smaller, less punctual carriers) slip more often
                if rng.random() >= 0.04 + 0.10 * (s.airline / self.scale.airlines):
                    continue
                delay = int(rng.expovariate(1 / 35)) + 5
                dep = midnight + dt.timedelta(minutes=s.dep_min)
                arr = dep + dt.timedelta(minutes=s.dur_min)
                late = dt.timedelta(minutes=delay)
                logged = dep - dt.timedelta(hours=2)
                yield (
                    logged,
                    "ops",
                    fid,
                    s.flightno,
                    s.flightno,
                    s.src,
                    s.dst,
                    s.src,
                    s.dst,
                    dep,
                    arr,
                    dep + late,
                    arr + late,
                    s.airplane,
                    s.airplane,
                    s.airline,
                    s.airline,
                    f"delayed {delay} min",
                )

    def _booking_rows(self) -> Iterator[Row]:
        rng = random.Random(self.seed * 104729 + 11)
        cum = self._pax_cum
        passengers = len(cum)
        bid = 0
        ids = range(1, passengers + 1)
        labels = [seat_label(i) for i in range(max((f[1] for f in self._flights), default=0))]
        rand = rng.random
        for (fid, capacity, km, _), count in zip(self._flights, self._per_flight, strict=True):
            if count == 0:
                continue
            seats = rng.sample(range(capacity), count)
            riders = rng.choices(ids, cum_weights=cum, k=count)
            if len(set(riders)) < count:  # nobody sits on one flight twice
                seen: set[int] = set()
                for i, pid in enumerate(riders):
                    while pid in seen:
                        pid = rng.randrange(passengers) + 1
                    seen.add(pid)
                    riders[i] = pid
            base = 40.0 + km * 0.09
            for seat, pid in zip(seats, riders, strict=True):
                bid += 1
                yield (bid, fid, labels[seat], pid, round(base * (0.65 + rand() * 1.1), 2))


def _zipf(n: int, s: float, offset: int = 1) -> list[float]:
    """Zipf-like weights 1/(rank+offset)^s; a larger offset flattens the head."""
    return [1.0 / (rank + offset) ** s for rank in range(n)]


def generate(scale_name: str = DEFAULT_SCALE, seed: int = DEFAULT_SEED) -> Dataset:
    """Plan a dataset: small tables are built now, big ones stream when read.

    One step per group of tables, in a fixed order: each draws from the one ``rng``, so
    the order of the steps is part of what makes a seed give the same rows."""
    import airportsdata

    scale = SCALES[scale_name]
    rng = random.Random(seed)
    ds = Dataset(scale=scale, seed=seed)
    hub_count = _plan_airports(ds, rng, airportsdata.load("IATA"))
    airport_weight = _zipf(len(ds._airports), 1.0)
    pick_airport = partial(_pick, list(accumulate(airport_weight)), rng)
    airline_base = _plan_airlines(ds, rng, hub_count, pick_airport)
    airline_weight = _zipf(scale.airlines, 1.1)
    schedules_per_airline = [
        max(1, round(scale.schedules * w / sum(airline_weight))) for w in airline_weight
    ]
    fleets = _plan_fleets(ds, rng, schedules_per_airline)
    weights = _Weights(airport_weight, airline_weight)
    _plan_schedules(ds, rng, schedules_per_airline, airline_base, fleets, weights, pick_airport)
    _plan_flights(ds, rng)
    _plan_reachable(ds)
    _plan_passengers(ds, rng, pick_airport)
    _plan_employees(ds, rng)
    _plan_weather(ds, rng)
    for table, rows in ds._small.items():
        ds.counts[table] = len(rows)
    return ds


def _pick(cumulative: list[float], rng: random.Random) -> int:
    """An index drawn by the weights whose running sums are ``cumulative``."""
    return bisect_left(cumulative, rng.random() * cumulative[-1])


@dataclass(frozen=True)
class _Weights:
    """How popular each airport and each airline is (Zipf-like, by rank)."""

    airports: list[float]
    airlines: list[float]


def _plan_airports(ds: Dataset, rng: random.Random, source: dict[str, Any]) -> int:
    """Airports: hubs first, then a deterministic sample of the rest; how many hubs."""
    scale = ds.scale
    codes = sorted(c for c, a in source.items() if len(a["icao"]) == 4 and a["name"] and a["iata"])
    hubs = [c for c in HUBS if c in source]
    rest = [c for c in codes if c not in set(hubs)]
    picked = hubs + rng.sample(rest, max(0, min(len(rest), scale.airports - len(hubs))))
    picked = picked[: scale.airports]
    for i, code in enumerate(picked, start=1):
        a = source[code]
        ds._airports.append(
            _Airport(
                i,
                code,
                a["icao"],
                a["name"][:50],
                (a["city"] or "")[:50],
                a["country"],
                float(a["lat"]),
                float(a["lon"]),
            )
        )
    airports = ds._airports
    ds._small["airport"] = [(a.id, a.iata, a.icao, a.name) for a in airports]
    ds._small["airport_geo"] = [
        (a.id, a.name, a.city, a.country, f"{a.lat:.8f}", f"{a.lon:.8f}", Point(a.lon, a.lat))
        for a in airports
    ]
    return len(hubs)


def _plan_airlines(
    ds: Dataset, rng: random.Random, hub_count: int, pick_airport: Callable[[], int]
) -> list[int]:
    """Airlines: a Zipf-sized market, based at hubs; each airline's base airport index."""
    airports = ds._airports
    iatas: set[str] = set()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    airline_rows: list[Row] = []
    airline_base: list[int] = []
    for i in range(1, ds.scale.airlines + 1):
        while True:
            code = rng.choice(alphabet) + rng.choice(alphabet + "0123456789")
            if code not in iatas:
                iatas.add(code)
                break
        base = airports[min(pick_airport(), len(airports) - 1) if i > 8 else (i - 1) % hub_count]
        name = f"{base.city or base.name} {rng.choice(AIRLINE_SUFFIXES)}"[:30]
        airline_rows.append((i, code, name, base.id))
        airline_base.append(base.id - 1)
    ds._small["airline"] = airline_rows
    return airline_base


def _plan_fleets(
    ds: Dataset, rng: random.Random, schedules_per_airline: list[int]
) -> list[list[tuple[int, int]]]:
    """Airplane types and each airline's fleet: (airplane id, seats) per airline."""
    ds._small["airplane_type"] = [
        (i, ident, f"{ident}: {desc}, {lo}-{hi} seats")
        for i, (ident, desc, lo, hi) in enumerate(AIRPLANE_TYPES, start=1)
    ]
    fleets: list[list[tuple[int, int]]] = []
    airplane_rows: list[Row] = []
    for airline, count in enumerate(schedules_per_airline, start=1):
        types = rng.sample(range(len(AIRPLANE_TYPES)), k=min(4, len(AIRPLANE_TYPES)))
        fleet: list[tuple[int, int]] = []
        for _ in range(max(2, count // 3)):
            t = rng.choice(types)
            _, _, lo, hi = AIRPLANE_TYPES[t]
            capacity = rng.randint(lo, hi)
            airplane_rows.append((len(airplane_rows) + 1, capacity, t + 1, airline))
            fleet.append((len(airplane_rows), capacity))
        fleets.append(fleet)
    ds._small["airplane"] = airplane_rows
    return fleets


_EVERY_DAY = tuple(range(7))
_WEEKDAYS = (0, 1, 2, 3, 4)


def _plan_schedules(
    ds: Dataset,
    rng: random.Random,
    schedules_per_airline: list[int],
    airline_base: list[int],
    fleets: list[list[tuple[int, int]]],
    weights: _Weights,
    pick_airport: Callable[[], int],
) -> None:
    """The weekly schedules: routes from each airline's base and between popular airports."""
    airports = ds._airports
    airline_rows = ds._small["airline"]
    schedule_rows: list[Row] = []
    for airline, count in enumerate(schedules_per_airline, start=1):
        numbers = rng.sample(range(100, 10000), count)
        for number in numbers:
            src = airline_base[airline - 1] if rng.random() < 0.55 else pick_airport()
            dst = pick_airport()
            while dst == src:
                dst = pick_airport()
            origin, dest = airports[src], airports[dst]
            km = great_circle_km(origin.lat, origin.lon, dest.lat, dest.lon)
            duration = min(18 * 60, max(40, int(km / 13.5) + 35))
            roll = rng.random()
            if roll < 0.5:
                days = _EVERY_DAY
            elif roll < 0.8:
                days = _WEEKDAYS
            else:
                days = tuple(sorted(rng.sample(range(7), rng.randint(2, 4))))
            plane, capacity = rng.choice(fleets[airline - 1])
            dep_min = rng.randrange(5 * 60, 23 * 60, 5)
            arr_min = (dep_min + duration) % (24 * 60)
            flightno = f"{airline_rows[airline - 1][1]}{number}"
            popularity = (weights.airports[src] * weights.airports[dst]) ** 0.35 * (
                weights.airlines[airline - 1] ** 0.3
            )
            ds._schedules.append(
                _Schedule(
                    flightno,
                    origin.id,
                    dest.id,
                    dep_min,
                    duration,
                    airline,
                    days,
                    plane,
                    capacity,
                    km,
                    popularity,
                )
            )
            schedule_rows.append(
                (
                    flightno,
                    origin.id,
                    dest.id,
                    dt.time(dep_min // 60, dep_min % 60),
                    dt.time(arr_min // 60, arr_min % 60),
                    airline,
                    *(1 if d in days else 0 for d in range(7)),
                )
            )
    ds._small["flightschedule"] = schedule_rows


def _plan_flights(ds: Dataset, rng: random.Random) -> None:
    """Flights (planned here, rows streamed later) and how many bookings each gets."""
    scale = ds.scale
    weights: list[float] = []
    for day in range(scale.days):
        weekday = (START_DATE + dt.timedelta(days=day)).weekday()
        season = 1.0 + 0.25 * math.sin(2 * math.pi * day / 28)
        for s in ds._schedules:
            if weekday in s.days:
                ds._flights.append((len(ds._flights) + 1, s.capacity, s.km, s.airline))
                weights.append(s.popularity * season * (0.6 + 0.8 * rng.random()))
    scale_factor = scale.bookings / sum(weights)
    ds._per_flight = [
        min(cap, int(w * scale_factor + rng.random()))
        for (_, cap, _, _), w in zip(ds._flights, weights, strict=True)
    ]
    ds.counts["flight"] = len(ds._flights)
    ds.counts["booking"] = sum(ds._per_flight)
    ds.counts["flight_log"] = -1  # not known until streamed


def _plan_reachable(ds: Dataset) -> None:
    """airport_reachable: hops from the first hub over the schedule graph."""
    airports = ds._airports
    graph: dict[int, set[int]] = {}
    for s in ds._schedules:
        graph.setdefault(s.src, set()).add(s.dst)
    hops = {airports[0].id: 0}
    queue = deque([airports[0].id])
    while queue:
        here = queue.popleft()
        for there in sorted(graph.get(here, ())):
            if there not in hops:
                hops[there] = hops[here] + 1
                queue.append(there)
    ds._small["airport_reachable"] = sorted(hops.items())


def _plan_passengers(ds: Dataset, rng: random.Random, pick_airport: Callable[[], int]) -> None:
    """Passengers and their details: frequent flyers first in a Zipf-like distribution."""
    scale = ds.scale
    airports = ds._airports
    passports = rng.sample(range(10**8), scale.passengers)
    passenger_rows: list[Row] = []
    detail_rows: list[Row] = []
    for pid in range(1, scale.passengers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        passenger_rows.append((pid, f"P{passports[pid - 1]:08d}", first, last))
        home = airports[pick_airport()]
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(365 * 66))
        detail_rows.append(
            (
                pid,
                born,
                rng.choice("MFMF "),
                f"{rng.choice(STREETS)} {rng.randint(1, 199)}",
                home.city or home.name,
                rng.randint(1000, 32000),
                home.country,
                f"{first}.{last}{pid}@example.com".lower(),
                f"+{rng.randint(10**9, 10**10 - 1)}",
            )
        )
    ds._small["passenger"] = passenger_rows
    ds._small["passengerdetails"] = detail_rows
    ds._pax_cum = list(accumulate(_zipf(scale.passengers, 1.0, offset=scale.passengers // 12)))


def _plan_employees(ds: Dataset, rng: random.Random) -> None:
    """Employees of the first hub, with a login and a password hash."""
    home = ds._airports[0]
    employee_rows: list[Row] = []
    for eid in range(1, ds.scale.employees + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        born = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(365 * 40))
        username = f"{first[0]}{last}{eid}".lower()[:20]
        secret = hashlib.md5(f"{ds.seed}:{eid}".encode(), usedforsecurity=False).hexdigest()
        employee_rows.append(
            (
                eid,
                first,
                last,
                born,
                rng.choice("MF"),
                f"{rng.choice(STREETS)} {rng.randint(1, 99)}",
                home.city or home.name,
                rng.randint(1000, 32000),
                home.country,
                f"{username}@flughafen.example",
                f"+{rng.randint(10**9, 10**10 - 1)}",
                f"{rng.uniform(1800, 9000):.2f}",
                rng.choice(DEPARTMENTS),
                username,
                secret,
            )
        )
    ds._small["employee"] = employee_rows


def _plan_weather(ds: Dataset, rng: random.Random) -> None:
    """Hourly weather at each station, every day of the dataset."""
    weather_rows: list[Row] = []
    for day in range(ds.scale.days):
        date = START_DATE + dt.timedelta(days=day)
        for hour in range(24):
            for station in range(1, ds.scale.weather_stations + 1):
                temp = 12 + 10 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.uniform(-4, 4)
                weather_rows.append(
                    (
                        date,
                        dt.time(hour),
                        station,
                        f"{max(-99.9, min(99.9, temp)):.1f}",
                        f"{rng.uniform(30, 100):.1f}",
                        f"{rng.uniform(990, 1035):.2f}",
                        f"{rng.uniform(0, 60):.2f}",
                        rng.choice(WEATHER) if rng.random() < 0.4 else None,
                        rng.randrange(0, 360, 10),
                    )
                )
    ds._small["weatherdata"] = weather_rows
