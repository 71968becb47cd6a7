"""The FlughafenDB tables as flightcache loads them: names, columns, load order.

The columns match sql/mysql/schema.sql and sql/postgres/schema.sql, in order.
FlughafenDB is by Stefan Proell, Eva Zangerle and Wolfgang Gassler (CC BY 4.0).
"""

from __future__ import annotations

COLUMNS: dict[str, tuple[str, ...]] = {
    "airport": ("airport_id", "iata", "icao", "name"),
    "airport_geo": (
        "airport_id",
        "name",
        "city",
        "country",
        "latitude",
        "longitude",
        "geolocation",
    ),
    "airport_reachable": ("airport_id", "hops"),
    "airline": ("airline_id", "iata", "airlinename", "base_airport"),
    "airplane_type": ("type_id", "identifier", "description"),
    "airplane": ("airplane_id", "capacity", "type_id", "airline_id"),
    "flightschedule": (
        "flightno",
        "from",
        "to",
        "departure",
        "arrival",
        "airline_id",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ),
    "flight": (
        "flight_id",
        "flightno",
        "from",
        "to",
        "departure",
        "arrival",
        "airline_id",
        "airplane_id",
    ),
    "flight_log": (
        "log_date",
        "user",
        "flight_id",
        "flightno_old",
        "flightno_new",
        "from_old",
        "to_old",
        "from_new",
        "to_new",
        "departure_old",
        "arrival_old",
        "departure_new",
        "arrival_new",
        "airplane_id_old",
        "airplane_id_new",
        "airline_id_old",
        "airline_id_new",
        "comment",
    ),
    "passenger": ("passenger_id", "passportno", "firstname", "lastname"),
    "passengerdetails": (
        "passenger_id",
        "birthdate",
        "sex",
        "street",
        "city",
        "zip",
        "country",
        "emailaddress",
        "telephoneno",
    ),
    "booking": ("booking_id", "flight_id", "seat", "passenger_id", "price"),
    "employee": (
        "employee_id",
        "firstname",
        "lastname",
        "birthdate",
        "sex",
        "street",
        "city",
        "zip",
        "country",
        "emailaddress",
        "telephoneno",
        "salary",
        "department",
        "username",
        "password",
    ),
    "weatherdata": (
        "log_date",
        "time",
        "station",
        "temp",
        "humidity",
        "airpressure",
        "wind",
        "weather",
        "winddirection",
    ),
}

# Parents before children, so that foreign keys hold at every step of a load.
LOAD_ORDER: tuple[str, ...] = (
    "airport",
    "airport_geo",
    "airport_reachable",
    "airline",
    "airplane_type",
    "airplane",
    "flightschedule",
    "flight",
    "flight_log",
    "passenger",
    "passengerdetails",
    "booking",
    "employee",
    "weatherdata",
)

TABLES: frozenset[str] = frozenset(COLUMNS)

# Tables with an identity / AUTO_INCREMENT key, and that key.
IDENTITY: dict[str, str] = {
    "airport": "airport_id",
    "airline": "airline_id",
    "airplane_type": "type_id",
    "airplane": "airplane_id",
    "flight": "flight_id",
    "passenger": "passenger_id",
    "booking": "booking_id",
    "employee": "employee_id",
}

# flightcache's own bookkeeping table (sql/*/flightcache.sql); never a FlughafenDB table.
META_TABLE = "flightcache_meta"
# Every table whose name starts with this is flightcache's own (the meta table, the
# write-behind demo's tables): never a "foreign" table, dropped by `data drop`.
OWN_PREFIX = "flightcache_"
