"""The bench's scenarios: each a few lines over the pattern classes the demos narrate.

A scenario is one function registered with :func:`scenario`. It is called once per
client, with that client's own connections in an :class:`Env`, and returns the
client's :class:`~flightcache.bench.engine.Workload`: the paths to time (the
database alone first, then the cached path), each an operation on key ``i`` of a
keyspace. It is also called once before any client, with ``env.main`` true: that
call fills caches, builds boards and registers what must be undone afterwards
(``env.on_teardown``). Everything it writes to Valkey lives under ``env.keys``, a
scope of its own that the bench deletes before and after.

To add a scenario, write one more decorated function here (or in any module that
is imported before the bench runs), e.g.::

    @scenario("user-sessions", title="User sessions", row="User Sessions", ...)
    def user_sessions(env: Env) -> Workload:
        store = SessionStore(env.valkey, env.keys)      # the pattern class
        ...
        return Workload({"database": Path(db_read, db_write),
                         "cache": Path(store_read, store_write)}, keyspace=n)
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.bench.engine import Path, Workload
from flightcache.errors import DataError, UsageError
from flightcache.keys import Keys
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.undo import Undo


@dataclass
class Env:
    """One client's connections (``client`` -1: the setup call), all Valkey keys under
    ``keys``. ``db`` counts the statements it runs."""

    db: Any
    valkey: Any
    keys: Keys
    client: int
    teardowns: list[Callable[[], None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    undo: Undo | None = None  # the setup call's: where a killed run's rows are recorded

    @property
    def main(self) -> bool:
        return self.client < 0

    def on_teardown(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once after every client has finished (setup call only)."""
        self.teardowns.append(fn)

    def will_change(self, undo_query: str, **params: Any) -> Callable[[], None]:
        """Record, before a change of rows that a teardown takes back, the named query
        that takes it back should the run be killed first (the next run replays it);
        returns what forgets the record once the teardown has done so."""
        if self.undo is None:
            return lambda: None
        entry = self.undo.record(undo_query, params)
        undo = self.undo
        return lambda: undo.done(entry)

    def note(self, text: str) -> None:
        """Something the setup found that a reader of the results should know."""
        self.notes.append(text)

    def rows(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.db.fetch(query(self.db.dialect, name), params).rows
        return rows


Build = Callable[[Env], Workload]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    about: str  # what each path does, in a sentence or two
    build: Build
    baseline: str = "database"  # the path without a cache (001's "Without Cache")
    contender: str = "cache"  # the cached path ("With Cache")
    row: str | None = None  # the row of 001's summary table it measures
    module: str = "Module 1"  # else, where the workshop teaches what it measures
    writes: bool = False  # does --read-ratio apply?
    changes_rows: bool = True  # do its writes change database rows (False: Valkey's only)
    read_ratio: float = 1.0  # its default read ratio
    seconds: float = 10.0  # default measured seconds
    slice: float | None = None  # its own slice length, unless --slice is given
    default: bool = True  # in the default set
    check: bool = False  # a self-check of the harness, not a caching pattern


REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, **fields: Any) -> Callable[[Build], Build]:
    """Register ``build`` as scenario ``name`` (fields as in :class:`Scenario`)."""

    def register(build: Build) -> Build:
        if name in REGISTRY:
            raise ValueError(f"scenario {name!r} registered twice")
        REGISTRY[name] = Scenario(name=name, build=build, **fields)
        return build

    return register


def get(name: str) -> Scenario:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown scenario {name!r}; known: {', '.join(REGISTRY)}",
            hint="`flightcache bench list` describes them",
        ) from None


def default_set() -> list[str]:
    return [s.name for s in REGISTRY.values() if s.default]


def _settle(env: Env, table: str) -> Callable[[], None]:
    """A teardown for a scenario that wrote ``table``: VACUUM (ANALYZE) on PostgreSQL,
    ANALYZE TABLE on MariaDB, so the next scenario and the next run find it as the
    background workers would in time (measured: without it, each PostgreSQL run found
    its queries on booking slower than the last: the day's GROUP BY 10.7, 11.7, 12.3 ms)."""
    statement = query(env.db.dialect, f"bench_settle_{table}")

    def settle() -> None:
        env.db.execute(statement)

    return settle


def _keyspace(rows: list[Any], what: str) -> list[Any]:
    if not rows:
        raise DataError(f"the database has no {what} to benchmark", hint="flightcache data load")
    return rows


# -- 001's summary table -------------------------------------------------------------------
@scenario(
    "airline-routes",
    title="Airline route analysis",
    row="Airline Route Analysis",
    about="database: 001's route analysis query (airline_route_analysis); cache: "
    "CacheAside.get of the same query, a hit (GET + JSON decode)",
    seconds=20.0,  # the query takes ~0.4-0.8 s: 40 slices of it, for a steady p50
)
def airline_routes(env: Env) -> Workload:
    from flightcache.named_queries import get as named
    from flightcache.patterns.cache_aside import CacheAside

    q = named("airline_route_analysis")
    sql = q.sql(env.db.dialect)
    aside = CacheAside(env.valkey, env.db, env.keys)
    if env.main:
        first = aside.get(q, {})
        env.note(f"{len(first.rows)} rows, {first.bytes:,} bytes of JSON cached")

    def database(i: int) -> Any:
        return env.db.fetch(sql, {})

    return Workload({"database": Path(database), "cache": Path(lambda i: aside.get(q, {}))})


ROUTE_DAYS = 100


@scenario(
    "flight-search",
    title="Flight search",
    row="Flight Search",
    about=f"database: flight_search on one of {ROUTE_DAYS} routes and days; cache: "
    "CacheAside.get of the same search, all cached before the run",
)
def flight_search(env: Env) -> Workload:
    from flightcache.named_queries import get as named
    from flightcache.patterns.cache_aside import CacheAside

    q = named("flight_search")
    sql = q.sql(env.db.dialect)
    searches = [
        {"origin": o, "destination": d, "day": _date(day)}
        for o, d, day in _keyspace(env.rows("bench_route_days", limit=ROUTE_DAYS), "flights")
    ]
    aside = CacheAside(env.valkey, env.db, env.keys)
    if env.main:
        found = sum(len(aside.get(q, p).rows) for p in searches)
        env.note(f"{len(searches)} searches cached ({found:,} flights in all)")

    def database(i: int) -> Any:
        return env.db.fetch(sql, searches[i])

    return Workload(
        {"database": Path(database), "cache": Path(lambda i: aside.get(q, searches[i]))},
        keyspace=len(searches),
    )


def _date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


SESSIONS = 1000


@scenario(
    "user-sessions",
    title="User sessions",
    row="User Sessions",
    about=f"{SESSIONS} sessions of real passengers, each in Valkey and in the"
    " flightcache_session table. A read: database: SessionTable.read (SELECT by token,"
    " expiry checked, JSON decoded); cache: SessionStore.get (HGETALL, validated). A"
    " write is a page view that slides the expiry: database: SessionTable.request"
    " (SELECT, then UPDATE and COMMIT); cache: SessionStore.request (HGETALL, then one"
    " script: HSET, HINCRBY, PEXPIRE)",
    writes=True,
    read_ratio=1.0,
)
def user_sessions(env: Env) -> Workload:
    from flightcache.patterns.session import SessionStore
    from flightcache.patterns.session_checks import fingerprint
    from flightcache.patterns.session_database import SessionTable, other_passengers

    store = SessionStore(env.valkey, env.keys)
    table = SessionTable(env.db)
    if env.main:
        table.ensure()
        users = other_passengers(env.db, 0, SESSIONS)  # every passenger id is above 0
        if not users:
            raise DataError(
                "the database has no passengers to log in", hint="flightcache data load"
            )
        browser = fingerprint("flightcache-bench/1.0", "en")
        mark = f"fcbench-{secrets.token_hex(3)}-"  # begins this run's tokens, and only its
        sweep = {"pattern": mark + "%"}
        forget_undo = env.will_change("bench_sessions_remove", **sweep)
        tokens = [
            store.login(user, ip="192.0.2.1", fingerprint=browser, mark=mark) for user in users
        ]
        for token in tokens:
            table.save(token, store.get(token))
        env.valkey.rpush(env.keys.bench_tokens(), *tokens)

        def forget() -> None:
            env.db.execute(query(env.db.dialect, "bench_sessions_remove"), sweep)
            forget_undo()

        env.on_teardown(forget)
        env.note(f"{len(tokens)} sessions logged in, each in Valkey and in flightcache_session")
    tokens = [str(t) for t in env.valkey.lrange(env.keys.bench_tokens(), 0, -1)]

    # A session read is not a cache lookup (there is no database behind the hash to
    # fall back to), so no path reports hits; a missing session raises NotLoggedIn.
    def db_read(i: int) -> None:
        table.read(tokens[i])

    def db_view(i: int) -> None:
        table.request(tokens[i])

    def valkey_read(i: int) -> None:
        store.get(tokens[i])

    def valkey_view(i: int) -> None:
        store.request(tokens[i])

    return Workload(
        {"database": Path(db_read, db_view), "cache": Path(valkey_read, valkey_view)},
        keyspace=len(tokens),
    )


BOARD_FLIGHTS = 200


@scenario(
    "leaderboard",
    title="Leaderboard updates",
    row="Leaderboard Updates",
    about="a booking, then the day's top 10 airports. database: Leaderboards.book_only"
    " (INSERT, COMMIT) + sql_top (GROUP BY the day's bookings); sorted set:"
    " Leaderboards.apply (one script: ZINCRBY) + top (ZREVRANGE) of the daily board."
    " A read is the top 10 alone",
    contender="sorted set",
    writes=True,
    read_ratio=0.0,
)
def leaderboard(env: Env) -> Workload:
    from flightcache.patterns.leaderboard_periods import daily
    from flightcache.patterns.leaderboard_sync import Leaderboards

    boards = Leaderboards(env.db, env.valkey, env.keys)
    found = _keyspace(env.rows("bench_flights", limit=BOARD_FLIGHTS), "flights")
    flights = [(int(f), _datetime(d), str(m)) for f, d, m in found]
    day = daily(flights[0][1].date())
    flights = [f for f in flights if f[1].date() == flights[0][1].date()]  # on the board
    if env.main:
        env.on_teardown(_settle(env, "booking"))  # after every client deleted its bookings
        env.valkey.set(env.keys.bench_value("passenger"), _bench_passenger(env))
        built = boards.rebuild("airport-bookings", day)
        env.note(f"board airport-bookings ({day.name}) rebuilt: {built.members:,} airports")
    passenger = int(env.valkey.get(env.keys.bench_value("passenger")))
    booked: list[int] = []

    def sql_read(i: int) -> None:
        boards.sql_top(day, 10)

    def sql_write(i: int) -> None:
        booked.append(boards.book_only(flights[i][0], passenger).booking_id)
        boards.sql_top(day, 10)

    def zset_read(i: int) -> None:
        boards.top("airport-bookings", day, 10)

    def zset_write(i: int) -> None:
        _, departure, member = flights[i]
        boards.apply(member, departure, 1)
        boards.top("airport-bookings", day, 10)

    def close() -> None:  # the bookings this client inserted
        statement = query(env.db.dialect, "booking_remove")
        for booking_id in booked:
            env.db.execute(statement, {"booking_id": booking_id})

    return Workload(
        {"database": Path(sql_read, sql_write), "sorted set": Path(zset_read, zset_write)},
        keyspace=len(flights),
        close=close,
    )


def _bench_passenger(env: Env) -> int:
    """A passenger of the run's own (passportno FCB + 6 hex digits) for every booking:
    the board counts bookings per airport, so who books does not change the workload.
    Recorded first, so that a killed run's bookings and passenger go at the next run;
    the teardown removes what the clients left (none, unless one failed) and them."""
    mark = {"passportno": f"FCB{secrets.token_hex(3).upper()}"}
    forget = [
        env.will_change("bench_passenger_bookings_remove", **mark),
        env.will_change("bench_passenger_remove", **mark),
    ]
    with env.db.transaction():
        env.db.execute(query(env.db.dialect, "bench_passenger_add"), mark)
    passenger_id = int(env.rows("bench_passenger_id", **mark)[0][0])

    def remove() -> None:
        with env.db.transaction():
            env.db.execute(query(env.db.dialect, "bench_passenger_bookings_remove"), mark)
            env.db.execute(query(env.db.dialect, "bench_passenger_remove"), mark)
        for done in forget:
            done()

    env.on_teardown(remove)  # teardowns run last first: before the settle
    return passenger_id


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


# -- Module 1's patterns ---------------------------------------------------------------------
PASSENGERS = 200
ASIDE_TTL = 5  # seconds: short, so that keys expire during the run and misses recur


@scenario(
    "cache-aside",
    title="Cache-aside (passenger bookings)",
    about=f"database: passenger_bookings for one of {PASSENGERS:,} passengers; cache-aside:"
    f" CacheAside.get with a {ASIDE_TTL} s TTL, so keys expire during the run and misses"
    " (query + SET) count beside the hits; bare GET: valkey-py's GET of a copy of the"
    " same value that never expires, the floor of a hit",
    contender="cache-aside",
)
def cache_aside(env: Env) -> Workload:
    from flightcache.patterns.cache_aside import encode

    q, sql, ids, aside = _passenger_bookings(env, PASSENGERS, ASIDE_TTL)
    copies = [env.keys.bench_value(f"passenger_bookings:{p['passenger_id']}") for p in ids]
    if env.main:
        sizes = []
        for params, key in zip(ids, copies, strict=True):
            result = env.db.fetch(sql, params)
            value = encode(result.columns, result.rows)
            env.valkey.set(key, value)
            sizes.append(len(value.encode()))
        env.note(f"values of {min(sizes):,} to {max(sizes):,} bytes (the bare GET's copies)")

    def database(i: int) -> Any:
        return env.db.fetch(sql, ids[i])

    get = env.valkey.get
    return Workload(
        {
            "database": Path(database),
            "cache-aside": Path(lambda i: aside.get(q, ids[i])),
            "bare GET": Path(lambda i: get(copies[i]) is not None),
        },
        keyspace=len(ids),
    )


HIT_FLOOR_SIZES = (512, 1024, 2048, 4096)  # bytes of cached JSON
HIT_FLOOR_SAMPLE = 600  # passengers whose value is sized to find one per size


def by_size(db: Any, q: Any, targets: tuple[int, ...]) -> list[tuple[dict[str, Any], int]]:
    """For each target size, the passenger_bookings parameters whose cached JSON is
    the closest in size of a spread sample of passengers, and that size."""
    from flightcache.patterns.cache_aside import encode

    ids = [
        int(r[0])
        for r in _keyspace(
            db.fetch(query(db.dialect, "candidate_passengers"), {"limit": 10**6}).rows,
            "passengers",
        )
    ]
    sql, sizes = q.sql(db.dialect), dict[int, int]()
    for pid in ids[:: max(1, len(ids) // HIT_FLOOR_SAMPLE)]:
        result = db.fetch(sql, {"passenger_id": pid})
        sizes[pid] = len(encode(result.columns, result.rows).encode())
    out = []
    for target in targets:
        pid = min(sizes, key=lambda p: abs(sizes[p] - target))
        out.append(({"passenger_id": pid}, sizes[pid]))
    return out


@scenario(
    "hit-floor",
    title="A cache-aside hit vs the GET under it",
    about="passenger_bookings for four passengers whose cached JSON is closest to"
    f" {', '.join(f'{s:,}' for s in HIT_FLOOR_SIZES)} bytes: for each, CacheAside.get"
    " (a hit: GET, JSON decode, the rows) and valkey-py's GET of the same key. What a"
    " hit costs beyond the GET is the decoding, which grows with the value",
    baseline=f"GET {HIT_FLOOR_SIZES[-1] // 1024} KB",
    contender=f"hit {HIT_FLOOR_SIZES[-1] // 1024} KB",
    module="Module 1",
    seconds=16.0,  # eight paths: two seconds each, for steady p50s
    default=False,
)
def hit_floor(env: Env) -> Workload:
    from flightcache.named_queries import get as named
    from flightcache.patterns.cache_aside import CacheAside

    q = named("passenger_bookings")
    aside = CacheAside(env.valkey, env.db, env.keys, ttl=3600)
    chosen_key = env.keys.bench_value("hit-floor:chosen")
    if env.main:
        chosen = by_size(env.db, q, HIT_FLOOR_SIZES)
        env.valkey.set(chosen_key, ",".join(str(p["passenger_id"]) for p, _ in chosen))
        for params, _ in chosen:
            env.valkey.delete(aside.key(q, params))
            aside.get(q, params)  # a miss now: every timed read hits
        env.note(
            "values of "
            + ", ".join(f"{size:,}" for _, size in chosen)
            + " bytes; a path's name gives the size it stands for"
        )
        env.on_teardown(lambda: env.valkey.delete(chosen_key))

    def bare(key: str) -> Path:
        return Path(lambda i: env.valkey.get(key) is not None)

    def hit(params: dict[str, Any]) -> Path:
        return Path(lambda i: aside.get(q, params))

    pids = str(env.valkey.get(chosen_key)).split(",")
    paths = {}
    for target, pid in zip(HIT_FLOOR_SIZES, pids, strict=True):
        params = {"passenger_id": int(pid)}
        label = f"{target / 1024:g} KB"
        paths[f"GET {label}"], paths[f"hit {label}"] = bare(aside.key(q, params)), hit(params)
    return Workload(paths)


def _passenger_bookings(env: Env, passengers: int, ttl: int) -> tuple[Any, str, list[Any], Any]:
    """passenger_bookings: the query, its SQL here, the parameters of the first
    ``passengers`` passengers, and a CacheAside over it with ``ttl``."""
    from flightcache.named_queries import get as named
    from flightcache.patterns.cache_aside import CacheAside

    q = named("passenger_bookings")
    ids = [
        {"passenger_id": int(r[0])}
        for r in _keyspace(env.rows("candidate_passengers", limit=passengers), "passengers")
    ]
    return q, q.sql(env.db.dialect), ids, CacheAside(env.valkey, env.db, env.keys, ttl=ttl)


@scenario(
    "write-through",
    title="Write-through (airlines)",
    about="a read is one airline row: SELECT vs WriteThrough.airline (HGETALL); a write"
    " renames it: rename_in_database (UPDATE, COMMIT) vs update_name (UPDATE, invalidate,"
    " COMMIT, HSET). Names alternate and are restored at the end",
    contender="write-through",
    writes=True,
    read_ratio=0.9,
)
def write_through(env: Env) -> Workload:
    from flightcache.patterns.write_through import WriteThrough
    from flightcache.patterns.write_through_airline import (
        read_airline,
        rename_in_database,
        renamed,
    )

    pattern = WriteThrough(env.db, env.valkey, env.keys)
    found = _keyspace(env.rows("bench_airline_ids", limit=1000), "airlines")
    # a run killed before its teardown left " (bench)" names behind: take them back off
    airlines = [(int(a), str(n).removesuffix(" (bench)")) for a, n in found]
    names = [(n, renamed(n, "bench")) for _, n in airlines]

    def restore() -> None:
        for airline_id, name in airlines:
            rename_in_database(env.db, airline_id, name)

    if env.main:
        env.on_teardown(_settle(env, "airline"))  # teardowns run last first: after restore
        env.on_teardown(restore)
        for airline_id, _ in airlines:
            pattern.airline(airline_id)  # the hashes, cached before the run
    turn = itertools.count()

    def sql_read(i: int) -> None:
        read_airline(env.db, airlines[i][0])

    def sql_write(i: int) -> None:
        rename_in_database(env.db, airlines[i][0], names[i][next(turn) & 1])

    def cached_write(i: int) -> None:
        pattern.update_name(airlines[i][0], names[i][next(turn) & 1])

    return Workload(
        {
            "database": Path(sql_read, sql_write),
            "write-through": Path(lambda i: pattern.airline(airlines[i][0])[1], cached_write),
        },
        keyspace=len(airlines),
    )


WRITE_BEHIND_FLIGHTS = 500


@scenario(
    "write-behind",
    title="Write-behind (bookings)",
    about="a write books one seat: book_write_through (database transaction, then"
    " HINCRBY) vs WriteBehind.book (one script: XADD + HINCRBY; the database later)."
    " A read is the flight's seats: SUM in the database vs HGET of the counter",
    baseline="write-through",
    contender="write-behind",
    writes=True,
    read_ratio=0.0,
)
def write_behind(env: Env) -> Workload:
    from flightcache.patterns import write_behind

    pattern = write_behind.WriteBehind(env.valkey, env.db, env.keys)
    direct = pattern.queue + "direct"  # book_write_through's rows
    flights = [
        int(r[0])
        for r in _keyspace(env.rows("bench_flights", limit=WRITE_BEHIND_FLIGHTS), "flights")
    ]
    pattern.require_flights(flights)  # ids cached: a write needs no database
    if env.main:
        write_behind.ensure_tables(env.db)
        pattern.load_script()
        env.on_teardown(_settle(env, "write_behind_seats"))
        env.on_teardown(lambda: write_behind.forget(env.db, direct))
        env.on_teardown(lambda: write_behind.forget(env.db, pattern.queue))
        env.note("the queue is not drained: this measures what a writer waits for")

    def sql_read(i: int) -> None:
        write_behind.db_total(env.db, direct, flights[i])

    def sql_write(i: int) -> None:
        pattern.book_write_through(flights[i], 1)

    def queued_read(i: int) -> None:
        pattern.booked(flights[i])

    def queued_write(i: int) -> None:
        pattern.book(flights[i], 1)

    return Workload(
        {
            "write-through": Path(sql_read, sql_write),
            "write-behind": Path(queued_read, queued_write),
        },
        keyspace=len(flights),
    )


DOLL_FLIGHTS = 500


@scenario(
    "nested-doll",
    title="Nested doll (flight view)",
    about=f"one of {DOLL_FLIGHTS} flights composed from four layers: NestedDoll."
    "compose_from_db (four queries) vs compose (one pipeline; a missing layer is"
    " rebuilt alone). Starts cold; a view with any layer rebuilt counts as a miss",
    contender="nested doll",
)
def nested_doll(env: Env) -> Workload:
    from flightcache.patterns.nested_doll import NestedDoll

    doll = NestedDoll(env.db, env.valkey, env.keys)
    found = _keyspace(env.rows("bench_flights", limit=DOLL_FLIGHTS), "flights")
    flights = [int(r[0]) for r in found]

    def database(i: int) -> None:
        doll.compose_from_db(flights[i])

    return Workload(
        {
            "database": Path(database),
            "nested doll": Path(lambda i: not doll.compose(flights[i]).misses()),
        },
        keyspace=len(flights),
    )


# -- Advanced topics -------------------------------------------------------------------------
NEAR_KEYS = 200
NEAR_TTL = 3600  # seconds: nothing expires during a run; only the writes change keys


@dataclass
class _Shared:
    """One process's near cache, shared by its client threads as an application's
    threads share one: built by the first client, closed by the last."""

    near: Any
    users: int = 0


_NEAR: dict[str, _Shared] = {}


class _Serialized:
    """A client's database, one statement at a time: the shared near cache's misses that
    reach the database come from every thread of the process."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.dialect = db.dialect
        self._lock = threading.Lock()

    def fetch(self, sql: str, params: Any = None) -> Any:
        with self._lock:
            return self.db.fetch(sql, params)


@scenario(
    "near-cache",
    title="Near cache vs a network GET",
    about=f"passenger_bookings for one of {NEAR_KEYS} passengers, cached in Valkey before"
    " the run. database: the query; cache-aside: CacheAside.get, a hit (GET + JSON"
    " decode); near-cache: NearCache.get (one per process, its threads share it), a hit"
    " from process memory, a miss a tracked GET kept for the next read; valkey GET: the"
    " bare GET of the same value. A write (--read-ratio below 1), on every path, is"
    " another client refreshing the key in Valkey (SET of the same JSON): the server"
    " invalidates the near cache's copy, so its hit ratio falls as writes rise",
    baseline="valkey GET",
    contender="near-cache",
    writes=True,
    changes_rows=False,
    read_ratio=1.0,
    module="advanced topics",
    default=False,  # run by name: the default set stays 001's rows and Module 1's
)
def near_cache(env: Env) -> Workload:
    q, sql, ids, aside = _passenger_bookings(env, NEAR_KEYS, NEAR_TTL)
    keys = [aside.key(q, p) for p in ids]
    if env.main:
        size = sum(aside.get(q, p).bytes for p in ids)
        env.note(f"{len(ids)} results cached, {size // len(ids):,} bytes of JSON each on average")
        env.note(
            "near-cache counters: raced, fetched values not kept (an invalidation came"
            " during the fetch, or a push was still unread when it ended); invalidations,"
            " keys named by the server's pushes"
        )
        return Workload({"database": Path(lambda i: None)}, keyspace=len(ids))
    values = [str(env.valkey.get(key)) for key in keys]
    shared, counters = _near_of_process(env)
    near = shared.near
    get, set_ = env.valkey.get, env.valkey.set

    def database(i: int) -> Any:
        return env.db.fetch(sql, ids[i])

    def write(i: int) -> None:  # another client refreshes key i: the near copy is invalidated
        set_(keys[i], values[i], ex=NEAR_TTL)

    def close() -> None:
        shared.users -= 1
        if not shared.users:
            _NEAR.pop(env.keys.prefix, None)
            near.close()

    return Workload(
        {
            "database": Path(database, write),
            "cache-aside": Path(lambda i: aside.get(q, ids[i]), write),
            "near-cache": Path(lambda i: near.get(q, ids[i]).from_memory, write, counters=counters),
            "valkey GET": Path(lambda i: get(keys[i]) is not None, write),
        },
        keyspace=len(ids),
        close=close,
    )


def _near_of_process(env: Env) -> tuple[_Shared, Callable[[], dict[str, int]] | None]:
    """This process's near cache (made by its first client), and for that first client
    alone what counts the store's raced fetches, invalidations, evictions and flushes."""
    from flightcache.patterns.near_cache import NearCache

    shared = _NEAR.get(env.keys.prefix)
    counters = None
    if shared is None:
        near = NearCache(env.valkey, _Serialized(env.db), env.keys, ttl=NEAR_TTL)  # type: ignore[arg-type]
        if not near.wait_ready():
            near.close()
            raise DataError(
                "the near cache's tracking connection did not come up within 5 s",
                hint="does the Valkey server take CLIENT TRACKING (RESP3, Valkey 7 or later)?",
            )
        shared = _NEAR[env.keys.prefix] = _Shared(near)
        store = near.store.counters

        def counters() -> dict[str, int]:
            return {
                "raced": store.raced,
                "invalidations": store.invalidations,
                "evictions": store.evictions,
                "flushes": store.flushes,
            }

    shared.users += 1
    return shared, counters


# -- the harness's own check -----------------------------------------------------------------
@scenario(
    "valkey-get",
    title="Bare Valkey GET",
    about="GET of a 100-byte value: through the bench's loop (timer, key draw, HDR"
    " record) vs valkey-py alone in a tight loop, in the same run; the ratio of their"
    " p50s shows what the harness adds",
    baseline="valkey-py loop",
    contender="bench",
    seconds=6.0,
    slice=0.05,  # turns this short interleave the two loops finely
    check=True,
)
def valkey_get(env: Env) -> Workload:
    key = env.keys.bench_value("get")
    if env.main:
        env.valkey.set(key, "x" * 100)
    get = env.valkey.get

    return Workload(
        {
            "valkey-py loop": Path(lambda i: None, tight=functools.partial(get, key)),
            "bench": Path(lambda i: get(key) is not None),
        }
    )
