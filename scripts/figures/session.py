"""`flightcache session`'s figure: reading a session from Valkey vs a table.

    .venv/bin/python scripts/figures session [--scale small] [--sessions 10000] [--reads 5000]

On each database it logs ``--sessions`` real passengers in through SessionStore
(one hash each, 30-minute sliding expiry) and stores the same sessions in
flightcache_session (removed again at the end). Then, interleaved in one run,
each sample reading the session of a random one of them:

- read and validate: SELECT by token with the expiry checked (JSON decoded) vs
  HGETALL (the issue's figure: Valkey at least 20x faster at p50);
- a page view with sliding expiry: SELECT, then UPDATE (a commit) vs HGETALL,
  then the write script (HINCRBY, PEXPIRE);
- the floor of each side: `SELECT 1` and PING, one round trip doing nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from figures.shared import KEY_PREFIX, Figure, Setup
from flightcache.db import Database
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.patterns.session import SessionStore, User
from flightcache.patterns.session_checks import fingerprint
from flightcache.patterns.session_database import SessionTable, other_passengers
from flightcache.valkey_client import close, info, parser_name
from flightcache.valkey_client import connect as valkey_connect

TARGET = 20.0
CHECKOUT = {
    "search_origin": "FRA",
    "search_destination": "JFK",
    "search_date": "2025-06-02",
    "search_count": 1,
    "selected_flight": "LH400",
    "selected_flight_id": 1,
    "seat_preference": "aisle",
    "class": "economy",
    "total_price": "498.00",
    "checkout_step": "passenger_details",
    "progress": 60,
    "passenger_count": 1,
}


def _us(ns: float) -> str:
    return f"{ns / 1e3:8.1f} µs"


def _on_random(fn: Callable[[str], Any], tokens: list[str], seed: int) -> Callable[[], Any]:
    """``fn`` of a random token per call; the same seed gives the same tokens in order."""
    rng = random.Random(seed)
    return lambda: fn(tokens[rng.randrange(len(tokens))])


def _durability(db: Database) -> str:
    if db.dialect == "mysql":
        names = ("innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin")
        row = db.fetch("SELECT " + ", ".join(f"@@{n}" for n in names)).rows[0]
        return ", ".join(f"{n}={v}" for n, v in zip(names, row, strict=True))
    values = [str(db.fetch(f"SHOW {name}").rows[0][0]) for name in ("synchronous_commit", "fsync")]
    return f"synchronous_commit={values[0]}, fsync={values[1]}"


def _table(title: str, stats: list[Stats]) -> None:
    print(f"  {title}")
    for s in stats:
        print(f"    {s.label:<46} p50 {_us(s.p50)}  p95 {_us(s.p95)}  p99 {_us(s.p99)}  (n={s.n})")


def bench(setup: Setup, kind: str, client: Any, args: argparse.Namespace) -> dict[str, float]:
    db = setup.open(kind)
    try:
        print(f"\n== {kind} {db.server_version()} ({args.scale}); {_durability(db)}")
        users = other_passengers(db, 0, args.sessions)  # every passenger id is above 0
        return _measure(db, client, users, args)
    finally:
        db.close()


def _measure(
    db: Database, client: Any, users: list[User], args: argparse.Namespace
) -> dict[str, float]:
    keys = Keys(KEY_PREFIX).scope("session")
    store = SessionStore(client, keys)
    table = SessionTable(db)
    table.ensure()
    browser = fingerprint("bench-browser/1.0", "en")
    t0 = time.perf_counter()
    tokens = [store.login(user, ip="192.0.2.1", fingerprint=browser) for user in users]
    for token in tokens:  # mid-checkout, as in the demo: about 25 fields
        store.update(token, CHECKOUT)
        table.save(token, store.get(token))
    sample = store.get(tokens[0])
    print(
        f"  {len(tokens):,} sessions of real passengers in both, {len(sample)} fields"
        f" (~{sum(len(k) + len(v) for k, v in sample.items())} bytes) each;"
        f" set up in {time.perf_counter() - t0:.0f} s"
    )

    runs = {
        "read and validate one session": {
            "database: SELECT by token, expiry checked": _on_random(table.read, tokens, 1),
            "Valkey: HGETALL": _on_random(store.get, tokens, 1),
        },
        "a page view with sliding expiry": {
            "database: SELECT, then UPDATE (a commit)": _on_random(table.request, tokens, 2),
            "Valkey: HGETALL, then the script (PEXPIRE)": _on_random(store.request, tokens, 2),
        },
        "one round trip doing nothing": {
            "database: SELECT 1": lambda: db.fetch("SELECT 1"),
            "Valkey: PING": client.ping,
        },
    }
    figures: dict[str, float] = {}
    for title, contenders in runs.items():
        slow, fast = compare(contenders, repeat=args.reads, warmup=200)
        _table(title, [slow, fast])
        figures[title] = slow.p50 / fast.p50
    read, page, floor = figures.values()
    verdict = "reached" if read >= TARGET else "NOT reached"
    print(
        f"  read + validate: Valkey {read:.1f}x faster at p50 (target {TARGET:.0f}x: {verdict});"
        f" page view {page:.1f}x; round-trip floor {floor:.1f}x"
    )
    for token in tokens:
        store.logout(token)
        table.delete(token)  # the shared database keeps no sessions between runs
    return figures


def run(setup: Setup, args: argparse.Namespace) -> int | None:
    url = setup.valkey()
    kinds = [db.kind for db in setup.databases()]
    with contextlib.ExitStack() as stack:
        client = valkey_connect(url)
        stack.callback(close, client)
        version = info(client, "server").get("valkey_version", "?")
        print(f"Valkey {version} at {url}, reply parser {parser_name(client)}")
        for kind in kinds:
            bench(setup, kind, client, args)
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=5_000, help="samples per contender")


FIGURES = [
    Figure(
        "session",
        "`flightcache session`: a session read and a page view, table vs Valkey hash",
        run,
        arguments,
        scale="small",
    )
]
