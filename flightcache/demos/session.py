"""The `flightcache session` demo: 001's Module 4 on a real passenger and real flights.

A passenger logs in, searches and selects a flight, goes through checkout with a
seat held for a moment (per-field expiry, where the server has it), submits a
form with the right CSRF token and a forged one, shows the token from another
browser, slides the expiry, continues on a phone, is counted in the day's set,
and logs out. The same session is stored in a database table, and reading it
there is timed against reading it from Valkey.

The pattern is :mod:`flightcache.patterns.session` (with ``session_checks`` for the
CSRF and fingerprint checks, ``session_hold`` for the seat hold, ``session_day`` for
the day's set, and ``session_database`` for the table); this module narrates it and
imports them inside the steps, so that the command can read :class:`Options` without
loading the clients at ``--help`` time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError, FlightcacheError

if TYPE_CHECKING:
    from flightcache.demos.base import DemoContext, Record, Step
    from flightcache.patterns.session import SessionStore, User
    from flightcache.patterns.session_checks import SessionChecks
    from flightcache.patterns.session_database import SessionTable
    from flightcache.patterns.session_hold import SessionHolds

HOLD_S = 1.0  # the seat hold; about ten minutes in a real checkout
MIN_TTL_S = 300  # the session must outlive the longest timing run, which does not slide it
MAX_TTL_S = 86_400
WEB = ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "de-DE")
PHONE = ("FlightcacheApp/3.2 (iPhone; iOS 17.5)", "de-DE")
OTHER = ("curl/8.5.0", "")
WEB_IP, PHONE_IP, OTHER_IP = "192.0.2.10", "198.51.100.7", "203.0.113.5"  # RFC 5737


@dataclass(frozen=True)
class Options:
    """What `flightcache session` takes; the command's defaults are these."""

    user: int | None = None  # the passenger who logs in; None: the first booking's
    ttl: int = 1800  # seconds after the last activity: patterns.session.DEFAULT_TTL_S


@dataclass
class _Visit:
    """What the steps share: the two stores, the browsers, and the session so far."""

    store: SessionStore
    checks: SessionChecks  # the CSRF and fingerprint checks, the devices
    holds: SessionHolds  # the seat hold
    table: SessionTable
    ttl: int
    web: str  # the fingerprints of the three browsers
    phone: str
    other: str
    user: User | None = None
    token: str = ""
    csrf: str = ""
    flight: dict[str, Any] = field(default_factory=dict)
    day: str = ""

    @property
    def who(self) -> User:
        assert self.user is not None, "the login step runs first"
        return self.user


def demo(ctx: DemoContext) -> Iterator[Record]:
    """Login to logout, one step each; the two timings before the logout."""
    from flightcache.lua import script
    from flightcache.patterns.session import SessionStore
    from flightcache.patterns.session_checks import SessionChecks, fingerprint
    from flightcache.patterns.session_database import SessionTable, default_passenger
    from flightcache.patterns.session_hold import SessionHolds

    options: Options = ctx.options
    ttl = options.ttl
    store = SessionStore(ctx.valkey, ctx.keys, ttl_s=ttl, pipeline=ctx.tracer.pipeline)
    table = SessionTable(ctx.db, ttl_s=ttl)
    web, phone, other = fingerprint(*WEB), fingerprint(*PHONE), fingerprint(*OTHER)
    visit = _Visit(store, SessionChecks(store), SessionHolds(store), table, ttl, web, phone, other)
    user_id = options.user if options.user is not None else default_passenger(ctx.db)
    with ctx.tracer.paused():
        script("session_write").load(ctx.valkey)  # so that the steps show EVALSHA alone

    yield _login(ctx, visit, user_id)
    yield _validate(ctx, visit)
    yield _booking(ctx, visit)
    yield from _seat_hold(ctx, visit)
    yield _passenger_details(ctx, visit)
    yield from _csrf(ctx, visit)
    yield _slide(ctx, visit)
    yield _phone(ctx, visit)
    yield _day_set(ctx, visit)
    yield _database_copy(ctx, visit)
    yield _valkey_away(ctx, visit)
    yield from _timings(ctx, visit)
    yield _logout(ctx, visit)
    yield _read_after_logout(ctx, visit)


def _login(ctx: DemoContext, visit: _Visit, user_id: int) -> Step:
    from flightcache.patterns.session_database import passenger

    store, ttl = visit.store, visit.ttl
    with ctx.step(
        f"Log in: passenger {user_id} from the database",
        "the token is 192 random bits from `secrets`. One script (EVALSHA) HSETs the session:"
        " user, login time, IP, a CSRF token, the browser's fingerprint; HINCRBY page_views;"
        f" PEXPIRE {ttl * 1000} ms. It writes only if the token is new. SADD counts it today",
    ) as step:
        user = passenger(ctx.db, user_id)  # an unknown id fails here, before any write
        token = store.login(user, ip=WEB_IP, fingerprint=visit.web)
        visit.user, visit.token = user, token
        pttl = store.pttl(token)
        step.data = {
            "token": token,
            "key": store.key(token),
            "user_id": user.user_id,
            "pttl_ms": pttl,
        }
        step.outcome = (
            f"logged in as {user.name} <{user.email}>; token {token[:10]}... in the cookie;"
            f" the session lives {ttl} s after the last activity (PTTL {pttl:,} ms)"
        )
    return step


def _validate(ctx: DemoContext, visit: _Visit) -> Step:
    with ctx.step(
        "Validate the session: HGETALL",
        "every request reads the whole session in one round trip, and checks that the"
        " browser's fingerprint is one the session accepts",
    ) as step:
        session = visit.checks.get(visit.token, fingerprint=visit.web)
        visit.csrf = session["csrf_token"]
        step.data = {"fields": sorted(session)}
        step.outcome = (
            f"{len(session)} fields: {session['username']}, logged in {session['login_time']}"
            f" from {session['ip_address']}; fingerprint accepted"
        )
    return step


def _booking(ctx: DemoContext, visit: _Visit) -> Step:
    from flightcache.named_queries import bind
    from flightcache.named_queries import get as get_query

    with ctx.step(
        "Booking flow: search flights, select one",
        "the search runs on the database (001's flight search); what the user searched"
        " for and picked is kept in the session, so the next page knows it",
    ) as step:
        search = get_query("flight_search")
        params = bind(ctx.db, search, {})
        found = ctx.db.fetch(search.sql(ctx.db.dialect), params)
        if not found.rows:
            raise DataError(
                "the flight search found no flights", hint="run `flightcache data load`"
            )
        flight = dict(zip(found.columns, found.rows[0], strict=True))
        flight["flightno"] = str(flight["flightno"]).strip()  # char(8): PostgreSQL pads it
        visit.flight = flight
        price = flight.get("lowest_price")
        visit.store.update(
            visit.token,
            {
                "search_origin": params["origin"],
                "search_destination": params["destination"],
                "search_date": str(params["day"]),
                "search_count": 1,
                "selected_flight": flight["flightno"],
                "selected_flight_id": flight["flight_id"],
                "seat_preference": "aisle",
                "class": "economy",
                "total_price": f"{price:.2f}" if price is not None else "",
                "checkout_step": "flight_selected",
                "progress": 20,
            },
        )
        step.rows = len(found.rows)
        step.data = {"flight_id": flight["flight_id"], "flightno": flight["flightno"]}
        step.outcome = (
            f"{len(found.rows)} flight(s) {params['origin']} -> {params['destination']} on"
            f" {params['day']}; selected {flight['flightno']} departing"
            f" {flight['departure']} ({flight['free_seats']} seats free); kept in the session"
        )
    return step


def _passenger_details(ctx: DemoContext, visit: _Visit) -> Step:
    with ctx.step(
        "Checkout: passenger details (progress 60)",
        "001's multi-step checkout: each step HSETs where the user is, so a reload or"
        " another device resumes there",
    ) as step:
        visit.store.update(
            visit.token,
            checkout_step="passenger_details",
            progress=60,
            passenger_count=1,
            primary_passenger=visit.who.name,
        )
        step.outcome = "checkout_step passenger_details, progress 60 %"
    return step


def _csrf(ctx: DemoContext, visit: _Visit) -> Iterator[Record]:
    """The form with the session's CSRF token, a forged one, and a stolen cookie."""
    from flightcache.patterns.session_checks import CsrfMismatch, FingerprintMismatch

    checks, token, csrf = visit.checks, visit.token, visit.csrf
    with ctx.step(
        "Submit the form: the CSRF token matches",
        "the form carries the session's CSRF token; HGET csrf_token and compare in constant time",
    ) as step:
        checks.check_csrf(token, csrf)
        step.outcome = "the form's token is the session's: accepted"
    yield step

    tampered = csrf[:-1] + ("A" if csrf[-1] != "A" else "B")
    yield _refused(
        ctx,
        "A forged form: tampered CSRF token",
        "another site makes the browser post a form: it has the cookie, not the token",
        lambda: checks.check_csrf(token, tampered),
        CsrfMismatch,
    )
    yield _refused(
        ctx,
        "A stolen token from another browser: fingerprint check",
        f"the same cookie sent by {OTHER[0]} from {OTHER_IP}: its fingerprint is not one the"
        " session accepts",
        lambda: checks.get(token, fingerprint=visit.other),
        FingerprintMismatch,
    )


def _slide(ctx: DemoContext, visit: _Visit) -> Step:
    store, token = visit.store, visit.token
    with ctx.step(
        "Activity slides the expiry",
        f"as if the user had been idle for {visit.ttl // 3} s, PEXPIRE cuts the TTL; the next"
        " page view's script sets last_activity, HINCRBY page_views 1 and PEXPIREs the full"
        " lifetime again",
    ) as step:
        ctx.valkey.pexpire(store.key(token), store.ttl_ms - store.ttl_ms // 3)
        before = store.pttl(token)
        views = store.touch(token)
        after = store.pttl(token)
        step.ok = after > before
        step.data = {"pttl_before": before, "pttl_after": after, "page_views": views}
        step.outcome = f"PTTL {before:,} ms -> {after:,} ms; page_views {views}"
    return step


def _phone(ctx: DemoContext, visit: _Visit) -> Step:
    with ctx.step(
        "Continue on the phone: one session, two devices",
        "after the phone proved who it is (say, scanned a code the browser shows), the script"
        " adds it to devices, its fingerprint to the accepted ones, sets last_device and"
        " sync_timestamp",
    ) as step:
        devices = visit.checks.add_device(visit.token, "mobile", visit.phone)
        shared = visit.checks.get(visit.token, fingerprint=visit.phone)
        step.data = {"devices": devices, "last_device": shared["last_device"]}
        step.outcome = (
            f"devices {shared['devices']}, last_device {shared['last_device']}, sync_timestamp"
            f" {shared['sync_timestamp']}; the phone's requests are accepted, checkout resumes"
            f" at {shared['checkout_step']}"
        )
    return step


def _day_set(ctx: DemoContext, visit: _Visit) -> Step:
    from flightcache.patterns.session_database import other_passengers
    from flightcache.patterns.session_day import day_of

    store = visit.store
    visit.day = day = day_of(store.clock())
    with ctx.step(
        "Who is logged in today: the day's set",
        "two more passengers log in; each login SADDs its token to today's set (EXPIREAT a day"
        " after the day ends), SCARD counts them",
    ) as step:
        others = other_passengers(ctx.db, visit.who.user_id, 2)
        for other in others:
            store.login(other, ip=OTHER_IP, fingerprint=visit.web)
        count = store.active_count(day)
        step.data = {"day": day, "count": count}
        step.outcome = (
            f"{', '.join(other.name for other in others)} logged in too; SCARD"
            f" {store.keys.sessions_active(day)}: {count}"
        )
    return step


def _database_copy(ctx: DemoContext, visit: _Visit) -> Step:
    table, token = visit.table, visit.token
    with ctx.step(
        "The same session in a database table",
        "for the comparison: flightcache_session keeps it as a framework's database store"
        " does, one row per token, the session as JSON, an expiry each read checks",
    ) as step:
        table.ensure()
        ctx.put_back("session_db_delete", {"token": token}, how=lambda: table.delete(token))
        stored = visit.store.get(token)
        table.save(token, stored)
        from_db = table.read(token)
        step.ok = from_db == stored
        step.outcome = (
            f"INSERT, then SELECT by token with the expiry checked: the same {len(from_db)}"
            f" fields: {from_db == stored}"
        )
    return step


def _valkey_away(ctx: DemoContext, visit: _Visit) -> Step:
    from flightcache.patterns.session import SessionStore, SessionUnavailable
    from flightcache.valkey_client import unreachable

    broken = ctx.tracer.instrument(unreachable())
    ctx.on_exit(broken.close)
    return _refused(
        ctx,
        "Valkey goes away during a read",
        "a client to a port nobody listens on stands in for a Valkey that crashed: the"
        " session cannot be read, and the user must be told so, not logged out",
        lambda: SessionStore(broken, ctx.keys, ttl_s=visit.ttl).get(visit.token),
        SessionUnavailable,
        then="; nothing crashed, nothing was cleared",
    )


def _timings(ctx: DemoContext, visit: _Visit) -> Iterator[Record]:
    """The same session read, and a page view, timed on both stores; the hash as it is."""
    from flightcache.demos.base import Table

    store, table, token = visit.store, visit.table, visit.token
    yield ctx.compare(
        "read and validate one session: database vs Valkey",
        {
            "database: SELECT by token, expiry checked": lambda: table.read(token),
            "Valkey: HGETALL": lambda: store.get(token),
        },
        note="both return the same session as a dict: the database row's JSON decoded, the"
        " hash as valkey-py parses it; both checked for a user and a CSRF token",
    )
    yield ctx.compare(
        "a page view with sliding expiry: database vs Valkey",
        {
            "database: SELECT, then UPDATE (a commit)": lambda: table.request(token),
            "Valkey: HGETALL, then the script (PEXPIRE)": lambda: store.request(token),
        },
        note="each page view reads the session and writes last_activity, page_views and a new"
        " expiry back: two round trips on either side; the database's UPDATE commits",
    )
    final = store.get(token)
    yield Table(
        "the session hash before logout",
        ["field", "value"],
        [[name, _short(value)] for name, value in sorted(final.items())],
    )


def _logout(ctx: DemoContext, visit: _Visit) -> Step:
    store, day = visit.store, visit.day
    with ctx.step(
        "Log out: DEL and SREM",
        "the hash goes at once (DEL), the token leaves the day's set (SREM); the database"
        " copy is deleted too",
    ) as step:
        before_count = store.active_count(day)
        existed = store.logout(visit.token)
        visit.table.delete(visit.token)
        after_count = store.active_count(day)
        step.ok = existed and after_count == before_count - 1
        step.data = {"count_before": before_count, "count_after": after_count}
        step.outcome = f"session deleted: {existed}; SCARD {before_count} -> {after_count}"
    return step


def _read_after_logout(ctx: DemoContext, visit: _Visit) -> Step:
    from flightcache.patterns.session import NotLoggedIn

    with ctx.step(
        "Read after logout",
        "the cookie still holds the token, but there is no session behind it",
    ) as step:
        answers: list[str] = []
        for read in (visit.store.get, visit.table.read):
            try:
                read(visit.token)
                answers.append("a session (this must not happen)")
            except NotLoggedIn as exc:
                answers.append(exc.message)
        step.data = {"valkey": answers[0], "database": answers[1]}
        step.fails_on_purpose(shown=not any("must not happen" in a for a in answers))
        step.outcome = f"Valkey: {answers[0]}; database: {answers[1]}"
    return step


def _refused(
    ctx: DemoContext,
    title: str,
    why: str,
    attempt: Callable[[], object],
    refusal: type[FlightcacheError],
    *,
    then: str = "",
) -> Step:
    """A step that shows a request refused on purpose: ok is False, the error is the outcome."""
    with ctx.step(title, why) as step:
        step.ok = False
        try:
            attempt()
            step.outcome = "accepted (this must not happen)"
        except refusal as exc:
            step.fails_on_purpose()
            step.outcome = exc.message + then
            step.data = {"rejected": True, "error": exc.message}
    return step


def _seat_hold(ctx: DemoContext, visit: _Visit) -> Iterator[Record]:
    """Hold a free seat in a field that expires on its own, where the server can."""
    store, holds, token, flight = visit.store, visit.holds, visit.token, visit.flight
    if not holds.supported:
        with ctx.step(
            "Seat hold with per-field expiry: skipped",
            "COMMAND INFO HSETEX says this server has no per-field hash expiry (Valkey 9.0"
            " brought HSETEX, HEXPIRE, HTTL)",
        ) as step:
            step.data = {"supported": False}
            step.outcome = (
                "skipped: on this server a hold needs a key of its own with its own TTL,"
                " beside the session"
            )
        yield step
        return
    flightno = flight["flightno"]
    with ctx.step(
        f"Checkout: hold a seat on {flightno} for {HOLD_S:g} s (per-field expiry)",
        "HSETEX ... XX PX gives one field an expiry of its own, only if the session exists;"
        " the session's own TTL is untouched. A real hold lasts minutes; 1 s here so the"
        " demo need not wait",
    ) as step:
        seat = _free_seat(ctx, int(flight["flight_id"]), int(flight["capacity"] or 0))
        store.update(token, checkout_step="seat_selection", progress=40)
        hold = f"{flightno}:{seat or 'any'}"
        holds.hold(token, "seat_hold", hold, HOLD_S)
        field_ms, session_ms = holds.field_pttl(token, "seat_hold"), store.pttl(token)
        step.data = {
            "supported": True,
            "hold": hold,
            "field_pttl_ms": field_ms,
            "session_pttl_ms": session_ms,
        }
        step.outcome = (
            f"seat {seat or '(flight full: any seat)'} held: HPTTL {field_ms:,} ms for the hold,"
            f" PTTL {session_ms:,} ms for the session"
        )
    yield step

    with ctx.step(
        "The hold runs out, the session stays",
        f"{HOLD_S:g} s later: HGETALL no longer returns the field, HPTTL says it is gone (-2)",
    ) as step:
        time.sleep(HOLD_S + 0.1)
        session = store.get(token)
        field_ms, session_ms = holds.field_pttl(token, "seat_hold"), store.pttl(token)
        step.ok = "seat_hold" not in session and session_ms > 0
        step.data = {
            "fields": sorted(session),
            "field_pttl_ms": field_ms,
            "session_pttl_ms": session_ms,
        }
        step.outcome = (
            f"seat_hold gone (HPTTL {field_ms}); the other {len(session)} fields stay,"
            f" the session has {session_ms:,} ms left"
        )
    yield step


def _free_seat(ctx: DemoContext, flight_id: int, capacity: int) -> str | None:
    from flightcache.patterns.session_database import free_seats

    free = free_seats(ctx.db, flight_id, capacity)
    aisle = [seat for seat in free if seat[-1] in "CD"]  # six abreast: C and D are aisle
    return (aisle or free)[0] if free else None


def _short(value: str, limit: int = 48) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."
