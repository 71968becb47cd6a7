"""The sessions page: 001's Module 4 as a real web app, on ``patterns/session``'s store.

A passenger logs in; the cookie ``fc_session`` holds only the token (HttpOnly,
SameSite=Lax, Secure over TLS), everything else lives in the session hash. The
booking flow (search, flight, seat, confirm) keeps its state there: each step HSETs
where the user is, the seat is held in a field that expires on its own
(``session_hold``), and the last step INSERTs the booking (``session_database``).
Every form is a POST carrying the session's CSRF token in a hidden field, checked
with ``session_checks`` (the app-wide header check is exempt under /sessions/, so
this check is the protection); every page view slides the expiry. Beside the app,
the hash as Valkey holds it, read by the page's script from ``/sessions/state``,
which does not slide the expiry, so the countdown runs down.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from flightcache.errors import DataError, FlightcacheError, UsageError
from flightcache.patterns.session import (
    DEFAULT_TTL_S,
    NotLoggedIn,
    SessionStore,
    SessionUnavailable,
)
from flightcache.patterns.session_checks import (
    CsrfMismatch,
    FingerprintMismatch,
    SessionChecks,
    fingerprint,
)
from flightcache.patterns.session_database import (
    SeatTaken,
    book_seat,
    default_passenger,
    free_seats,
    passenger,
)
from flightcache.patterns.session_day import count_active
from flightcache.patterns.session_hold import SessionHolds
from flightcache.web.pages import page, register_page
from flightcache.web.security import CSRF_COOKIE, ensure_csrf_cookie
from flightcache.web.services import Services, Unavailable

router = APIRouter(prefix="/sessions", include_in_schema=False)
register_page(
    "/sessions/",
    "Sessions",
    "log in as a passenger, book a seat in steps kept in the session hash, watch the hash",
)

COOKIE = "fc_session"
HOLD_S = 600  # the seat hold: ten minutes to confirm
FORM_MAX_BYTES = 16_384
IDLE_LEFT_S = 20  # "pretend I was idle": the session has this long left
SEAT = re.compile(r"^[1-9][0-9]{0,2}[A-F]$")
IATA = re.compile(r"^[A-Z]{3}$")
DEVICE = re.compile(r"^[A-Za-z0-9 _-]{1,24}$")
MESSAGES = {
    "expired": "Your session expired or was logged out: log in again.",
    "ended": "That form belonged to a session that has ended (logged out or expired):"
    " nothing was changed. Log in again.",
    "login": "Log in first: this browser holds no session.",
    "out": "Logged out: the session hash is deleted in Valkey and the cookie cleared.",
}
STEPS = (("search", "Search"), ("flight", "Flight"), ("seat", "Seat"), ("confirm", "Confirm"))


class Refused(FlightcacheError):
    """A request this page refuses, with its HTTP status."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Gone(Exception):
    """The session behind the cookie is gone: redirect to the login with ``code``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Visit:
    """One request of a logged-in browser: the pattern's objects and its session."""

    services: Services
    store: SessionStore
    checks: SessionChecks
    holds: SessionHolds
    token: str
    session: dict[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _pattern(services: Services) -> tuple[SessionStore, SessionChecks, SessionHolds]:
    """The store, its checks and its holds for one app (HSETEX support asked once)."""
    store = SessionStore(services.valkey, services.keys, ttl_s=DEFAULT_TTL_S)
    return store, SessionChecks(store), SessionHolds(store)


async def form_fields(request: Request) -> dict[str, str]:
    """The POSTed form (application/x-www-form-urlencoded), each field's first value;
    413 for a body no form of this page comes near."""
    raw = await request.body()
    if len(raw) > FORM_MAX_BYTES:
        raise HTTPException(413, f"a form of this page is under {FORM_MAX_BYTES} bytes")
    body = raw.decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


Form = Depends(form_fields)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _browser(request: Request) -> str:
    """The browser's fingerprint as the pattern computes it."""
    headers = request.headers
    return fingerprint(headers.get("user-agent", ""), headers.get("accept-language", ""))


@contextmanager
def _valkey(services: Services) -> Iterator[None]:
    """The pattern's SessionUnavailable, and Valkey's own errors, as a 503."""
    try:
        with services.valkey_errors():
            yield
    except SessionUnavailable as exc:
        raise Unavailable("Valkey", exc.message) from None


def _redirect(code: str = "", *, clear: bool = False, secure: bool = False) -> Response:
    response = RedirectResponse("/sessions/" + (f"?m={code}" if code else ""), status_code=303)
    if clear:
        response.delete_cookie(COOKIE, path="/sessions", httponly=True, samesite="lax",
                               secure=secure)  # fmt: skip
    return response


def _sid(token: str) -> str:
    """A name for a session that is not its token (the token stays in its cookie)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _masked_key(store: SessionStore, token: str) -> str:
    return store.key(token)[: -len(token)] + token[:8] + "…"


# -- rendering -----------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _form(action: str, csrf: str, inner: str, button: str, name: str = "") -> str:
    """A POST form with the session's CSRF token in a hidden field."""
    named = f" id=ses-form-{name}" if name else ""
    return (
        f'<form method=post action="/sessions/{action}" class=ses-form{named}>'
        f'<input type=hidden name=csrf value="{_e(csrf)}">{inner}'
        f"<button type=submit>{_e(button)}</button></form>"
    )


def _message(text: str) -> str:
    shown = f" {_e(text)}" if text else ""
    return f'<p id=ses-message class="ses-msg" role=status>{shown.strip()}</p>'


def _login_page(request: Request, services: Services, text: str, status: int = 200) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE, "")
    with services.database() as db:
        suggested = default_passenger(db)
    body = (
        _message(text)
        + '<form method=post action="/sessions/login" class="ses-form ses-login" id=ses-login>'
        f'<input type=hidden name=csrf value="{_e(csrf)}">'
        "<label>Passenger id <input name=passenger id=ses-passenger inputmode=numeric"
        f' value="{suggested}" required></label>'
        '<label>Device <input name=device id=ses-device value="web" maxlength=24></label>'
        "<button type=submit>Log in</button></form>"
        f"<p class=muted>Passenger {suggested} has booked before; any passenger id of the"
        " loaded database logs in. The server draws a 192-bit token, writes the session"
        " hash with one script (HSET, HINCRBY, PEXPIRE) and sends back only the token,"
        " in an HttpOnly cookie. Log in again from another browser to see two devices.</p>"
    )
    return _framed(request, body, status)


def _framed(request: Request, body: str, status: int) -> Response:
    """The page in the common frame, with its script, answered with ``status``."""
    response = page(request, "Sessions", body, ["sessions.js"])
    response.status_code = status
    return response


def _steps(current: str) -> str:
    items = "".join(
        f'<li class="{"ses-now" if key == current else ""}">{_e(name)}</li>' for key, name in STEPS
    )
    return f"<ol class=ses-steps id=ses-steps>{items}</ol>"


def _search_step(visit: Visit, db: Any) -> str:
    from flightcache.named_queries import bind
    from flightcache.named_queries import get as get_query

    session = visit.session
    defaults = bind(db, get_query("flight_search"), {})
    origin = session.get("search_origin") or defaults["origin"]
    destination = session.get("search_destination") or defaults["destination"]
    day = session.get("search_date") or defaults["day"]
    inner = (
        f'<label>From <input name=origin value="{_e(origin)}" size=4 maxlength=3></label>'
        f'<label>To <input name=destination value="{_e(destination)}" size=4 maxlength=3>'
        f'</label><label>Day <input name=day type=date value="{_e(day)}"></label>'
    )
    return "<h2>1. Search flights</h2>" + _form("search", session["csrf_token"], inner,
                                                "Search", "search")  # fmt: skip


def _flight_step(visit: Visit, flights: list[dict[str, Any]]) -> str:
    session = visit.session
    if not flights:
        return "<h2>2. Pick a flight</h2><p>No flights on that route and day.</p>"
    options = "".join(
        f'<label class=ses-choice><input type=radio name=flight_id value="{f["flight_id"]}"'
        f"{' checked' if i == 0 else ''}> {_e(f['flightno'])} {_e(f['departure'])},"
        f" {f['free_seats']} seats free</label>"
        for i, f in enumerate(flights)
    )
    return "<h2>2. Pick a flight</h2>" + _form("flight", session["csrf_token"], options,
                                               "Select flight", "flight")  # fmt: skip


def _seat_step(visit: Visit, seats: list[str]) -> str:
    session = visit.session
    if not seats:
        return "<h2>3. Pick a seat</h2><p>This flight is full: pick another flight.</p>"
    aisle = [s for s in seats if s[-1] in "CD"]
    options = "".join(
        f'<option value="{_e(s)}">{_e(s)}{" (aisle)" if s in aisle else ""}</option>'
        for s in sorted(seats, key=lambda s: (s not in aisle, seats.index(s)))
    )
    inner = f"<label>Seat <select name=seat id=ses-seat>{options}</select></label>"
    held = (
        f"held for {HOLD_S // 60} minutes in the session field seat_hold (HSETEX ... PX)"
        if visit.holds.supported
        else "kept in the session field seat_hold (this Valkey has no per-field expiry)"
    )
    return (
        f"<h2>3. Pick a seat on {_e(session.get('selected_flight', ''))}</h2>"
        + _form("seat", session["csrf_token"], inner, "Hold seat", "seat")
        + f"<p class=muted>The seat is {held}.</p>"
    )


def _confirm_step(visit: Visit) -> str:
    session = visit.session
    hold = session.get("seat_hold", "")
    if not hold:
        return "<h2>4. Confirm</h2><p>The seat hold ran out: pick a seat again.</p>"
    flight, _, seat = hold.partition(":")
    inner = (
        f"<p>{_e(session.get('username', ''))}, flight {_e(flight)}, seat {_e(seat)},"
        f" {_e(session.get('total_price', ''))} EUR.</p>"
    )
    return "<h2>4. Confirm</h2>" + _form("confirm", session["csrf_token"], inner, "Book",
                                         "confirm")  # fmt: skip


def _booking(visit: Visit) -> tuple[str, str]:
    """The booking flow's current step (from ``checkout_step``) and its HTML."""
    session = visit.session
    step = session.get("checkout_step", "")
    with visit.services.database() as db:
        html_out = _search_step(visit, db)
        if step == "confirmed":
            return "confirm", html_out + (
                f"<p class=ses-booked id=ses-booked>Booked: booking {_e(session['booking_id'])},"
                f" flight {_e(session.get('selected_flight', ''))}, seat"
                f" {_e(session.get('booked_seat', ''))}.</p>"
            )
        if step in ("flight_search", "flight_selected", "seat_selection") and session.get(
            "search_date"
        ):
            html_out += _flight_step(visit, _search(db, session))
        if step in ("flight_selected", "seat_selection"):
            html_out += _seat_step(visit, _seats(db, session))
        if step == "seat_selection":
            html_out += _confirm_step(visit)
    current = {"flight_search": "flight", "flight_selected": "seat"}.get(step, "search")
    return ("confirm" if step == "seat_selection" else current), html_out


def _devices(visit: Visit) -> str:
    csrf = visit.session["csrf_token"]
    rows = []
    mine = visit.store.sessions_of(int(visit.session["user_id"]))
    for token, fields in sorted(mine.items(), key=lambda kv: kv[1].get("login_time", "")):
        this = token == visit.token
        action = (
            "<b>this browser</b>"
            if this
            else _form("logout-other", csrf,
                       f'<input type=hidden name=session value="{_sid(token)}">', "Log it out")
        )  # fmt: skip
        cells = (fields.get("last_device", ""), fields.get("login_time", ""),
                 fields.get("last_activity", ""), fields.get("ip_address", ""))  # fmt: skip
        rows.append(
            f'<tr data-session="{_sid(token)}">'
            + "".join(f"<td>{_e(c)}</td>" for c in cells)
            + f"<td>{action}</td></tr>"
        )
    return (
        "<h2>Your sessions</h2><table class=ses-devices id=ses-devices><thead><tr>"
        "<th>device</th><th>logged in</th><th>last activity</th><th>IP</th><th></th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _app_page(request: Request, visit: Visit, text: str = "", status: int = 200) -> Response:
    session, store = visit.session, visit.store
    current, flow = _booking(visit)
    pttl = store.pttl(visit.token)
    csrf = session["csrf_token"]
    left = f"{IDLE_LEFT_S} s"
    body = (
        _message(text) + "<div class=ses-grid><section class=ses-app>"
        f"<p class=ses-who>Logged in as <b id=ses-user>{_e(session.get('username', ''))}</b>"
        f" (passenger {_e(session.get('user_id', ''))}) on device"
        f" <b>{_e(session.get('last_device', ''))}</b>. The session ends in"
        f' <b id=ses-countdown data-pttl="{pttl}">{max(0, pttl) // 1000} s</b> unless you'
        f" do something: every page view and form slides it back to {store.ttl_s / 60:g}"
        " minutes.</p>"
        + _steps(current)
        + flow
        + _devices(visit)
        + "<div class=ses-actions>"
        + _form("idle", csrf, "", f"Pretend I was idle (leave {left})", "idle")
        + _form("logout", csrf, "", "Log out", "logout")
        + "</div></section>"
        "<section class=ses-valkey id=ses-valkey><h2>The session in Valkey</h2>"
        "<p>HGETALL <code id=ses-key></code>, PTTL <b id=ses-pttl>…</b></p>"
        "<table class=ses-hash><thead><tr><th>field</th><th>value</th></tr></thead>"
        "<tbody id=ses-hash></tbody></table>"
        "<p>seat_hold HPTTL <b id=ses-hold-pttl>–</b></p>"
        "<p>SCARD <code id=ses-day-key></code>: <b id=ses-day-count>…</b></p>"
        "<p class=muted>Read every second without sliding the expiry, so the PTTL runs"
        " down; the key shows the token's first 8 characters only: the token itself stays"
        " in the HttpOnly cookie, out of reach of any script.</p></section></div>"
    )
    return _framed(request, body, status)


# -- the booking flow's data ---------------------------------------------------------
def _search(db: Any, session: Mapping[str, str]) -> list[dict[str, Any]]:
    from flightcache.named_queries import get as get_query

    search = get_query("flight_search")
    params = {
        "origin": session.get("search_origin", ""),
        "destination": session.get("search_destination", ""),
        "day": session.get("search_date", ""),
    }
    found = db.fetch(search.sql(db.dialect), params)
    flights = [dict(zip(found.columns, row, strict=True)) for row in found.rows]
    for flight in flights:
        flight["flightno"] = str(flight["flightno"]).strip()  # char(8): PostgreSQL pads it
    return flights


def _selected(db: Any, session: Mapping[str, str]) -> dict[str, Any]:
    chosen = session.get("selected_flight_id", "")
    for flight in _search(db, session):
        if str(flight["flight_id"]) == chosen:
            return flight
    raise Refused(409, "no flight is selected: search and pick a flight first")


def _seats(db: Any, session: Mapping[str, str]) -> list[str]:
    flight = _selected(db, session)
    return free_seats(db, int(flight["flight_id"]), int(flight["capacity"] or 0))


# -- the actions: each a POST with the session's CSRF token --------------------------
def _do_search(visit: Visit) -> None:
    form = visit.form
    origin = form.get("origin", "").strip().upper()
    destination = form.get("destination", "").strip().upper()
    for name, code in (("origin", origin), ("destination", destination)):
        if not IATA.match(code):
            raise Refused(422, f"{name} must be an airport's three-letter IATA code, not"
                          f" {code[:12]!r}")  # fmt: skip
    from flightcache.named_queries import convert
    from flightcache.named_queries import get as get_query

    day = convert(get_query("flight_search").params[2], form.get("day", "").strip())
    fields = {"search_origin": origin, "search_destination": destination,
              "search_date": str(day)}  # fmt: skip
    with visit.services.database() as db:
        count = len(_search(db, fields))
    visit.store.update(visit.token, {**fields, "search_count": count,
                                     "checkout_step": "flight_search", "progress": 10})  # fmt: skip


def _do_flight(visit: Visit) -> None:
    raw = visit.form.get("flight_id", "").strip()
    with visit.services.database() as db:
        flights = {str(f["flight_id"]): f for f in _search(db, visit.session)}
    flight = flights.get(raw)
    if flight is None:
        raise Refused(422, f"flight {raw[:20]!r} is not one the search found",
                      hint="pick one of the flights listed")  # fmt: skip
    price = flight.get("lowest_price")
    visit.store.update(visit.token, {
        "selected_flight": flight["flightno"], "selected_flight_id": flight["flight_id"],
        "class": "economy", "total_price": f"{price if price is not None else 99:.2f}",
        "checkout_step": "flight_selected", "progress": 20,
    })  # fmt: skip


def _do_seat(visit: Visit) -> None:
    seat = visit.form.get("seat", "").strip().upper()
    if not SEAT.match(seat):
        raise Refused(422, f"{seat[:12]!r} is not a seat: a row and a letter A-F, like 12C")
    with visit.services.database() as db:
        free = _seats(db, visit.session)
    if seat not in free:
        raise Refused(409, f"seat {seat} is taken or not on this flight",
                      hint="pick one of the seats listed")  # fmt: skip
    hold = f"{visit.session['selected_flight']}:{seat}"
    visit.store.update(visit.token, checkout_step="seat_selection", progress=40)
    if visit.holds.supported:
        visit.holds.hold(visit.token, "seat_hold", hold, HOLD_S)
    else:
        visit.store.update(visit.token, seat_hold=hold)


def _do_confirm(visit: Visit) -> None:
    session = visit.session
    hold = session.get("seat_hold", "")
    if session.get("checkout_step") != "seat_selection" or not hold:
        raise Refused(409, "there is no seat held to book: the hold ran out or no seat was"
                      " picked", hint="pick a seat again")  # fmt: skip
    seat = hold.partition(":")[2]
    with visit.services.database() as db:
        flight = _selected(db, session)
        try:
            booking = book_seat(db, int(flight["flight_id"]), int(session["user_id"]), seat,
                                float(session.get("total_price") or 99))  # fmt: skip
        except SeatTaken as exc:
            raise Refused(409, exc.message, exc.hint or "") from None
    visit.store.update(visit.token, checkout_step="confirmed", progress=100,
                       booking_id=booking, booked_seat=seat)  # fmt: skip


def _do_idle(visit: Visit) -> None:
    """As if the user had been away: PEXPIRE leaves IDLE_LEFT_S; the next view slides it."""
    with _valkey(visit.services):
        visit.store.valkey.pexpire(visit.store.key(visit.token), IDLE_LEFT_S * 1000)


def _do_logout_other(visit: Visit) -> None:
    wanted = visit.form.get("session", "")
    for token in visit.store.sessions_of(int(visit.session["user_id"])):
        if token != visit.token and hmac.compare_digest(_sid(token), wanted):
            visit.store.logout(token)
            return
    raise Refused(404, "no other session of yours by that name: it has ended already")


def _act(request: Request, form: Mapping[str, str], action: Callable[[Visit], None]) -> Response:
    """A POST: the session's CSRF token checked first, then the browser, then ``action``;
    a 303 back to the page, or the page with what was refused (nothing changed)."""
    services = _services(request)
    secure = services.config.secure_cookies
    token = request.cookies.get(COOKIE, "")
    if not token:
        return _redirect("login")
    with _valkey(services):
        store, checks, holds = _pattern(services)
        visit = Visit(services, store, checks, holds, token, form=form)
        try:
            checks.check_csrf(token, form.get("csrf", ""))  # HGET csrf_token, constant time
            visit.session = checks.get(token, fingerprint=_browser(request))
            action(visit)
        except NotLoggedIn:
            return _redirect("ended", clear=True, secure=secure)
        except (CsrfMismatch, FingerprintMismatch) as exc:
            return _refused_page(request, visit, 403, f"{exc.message}: {exc.hint}")
        except Refused as exc:
            return _refused_page(request, visit, exc.status, _said(exc))
        except UsageError as exc:
            return _refused_page(request, visit, 422, _said(exc))
    return _redirect()


def _said(exc: FlightcacheError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _refused_page(request: Request, visit: Visit, status: int, text: str) -> Response:
    """The page again, with what was refused; it reads the session without sliding it."""
    try:
        visit.session = visit.store.get(visit.token)
    except NotLoggedIn:
        return _redirect("ended", clear=True, secure=visit.services.config.secure_cookies)
    return _app_page(request, visit, "Refused: " + text, status)


# -- the routes ----------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def sessions_page(request: Request) -> Response:
    """Login when this browser has no session; else the app (the view slides the expiry)."""
    services = _services(request)
    if not request.cookies.get(CSRF_COOKIE):  # the login form needs it: come back with it
        response: Response = RedirectResponse(str(request.url.path), status_code=303)
        ensure_csrf_cookie(request, response, services.config.secure_cookies)
        return response
    text = MESSAGES.get(request.query_params.get("m", ""), "")
    token = request.cookies.get(COOKIE, "")
    if not token:
        return _login_page(request, services, text)
    with _valkey(services):
        store, checks, holds = _pattern(services)
        visit = Visit(services, store, checks, holds, token)
        try:
            visit.session = checks.get(token, fingerprint=_browser(request))
            store.touch(token)  # the page view: last_activity, page_views + 1, PEXPIRE
        except NotLoggedIn:
            secure = services.config.secure_cookies
            if not text:  # to the login, with the message
                return _redirect("expired", clear=True, secure=secure)
            response = _login_page(request, services, text)  # a cookie that did not go
            response.delete_cookie(COOKIE, path="/sessions", httponly=True, samesite="lax",
                                   secure=secure)  # fmt: skip
            return response
        except FingerprintMismatch as exc:
            response = _login_page(request, services, f"{exc.message}: {exc.hint}", 403)
            response.delete_cookie(COOKIE, path="/sessions")
            return response
        return _app_page(request, visit, text)


@router.get("/state")
def sessions_state(request: Request) -> Response:
    """The session hash as Valkey holds it (HGETALL, PTTL, HPTTL of the hold), not slid."""
    services = _services(request)
    token = request.cookies.get(COOKIE, "")
    with _valkey(services):
        store, checks, holds = _pattern(services)
        try:
            session = checks.get(token, fingerprint=_browser(request))
        except (NotLoggedIn, FingerprintMismatch) as exc:
            return JSONResponse({"error": exc.message, "ended": True}, status_code=401)
        day = session.get("login_time", "")[:10]
        day_key = services.keys.sessions_active(day)
        return JSONResponse({
            "key": _masked_key(store, token),
            "pttl_ms": store.pttl(token),
            "ttl_s": store.ttl_s,
            "fields": sorted(session.items()),
            "hold_pttl_ms": holds.field_pttl(token, "seat_hold") if holds.supported else None,
            "day_key": day_key,
            "day_count": count_active(services.valkey, services.keys, day),
        })  # fmt: skip


@router.post("/login")
def sessions_login(request: Request, form: dict[str, str] = Form) -> Response:
    """Log in: the form's token must be this browser's fc_csrf cookie (a login form has
    no session yet); then the passenger from the database, then the store's login."""
    services = _services(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, form.get("csrf", "")):
        return _login_page(request, services, "Refused: the token of the login form is not this"
                           " browser's (a forged or stale form): reload the page", 403)  # fmt: skip
    raw, device = form.get("passenger", "").strip(), form.get("device", "web").strip()
    if not raw.isdigit() or len(raw) > 9:
        return _login_page(request, services, f"Refused: a passenger id is a whole number,"
                           f" not {raw[:20]!r}", 422)  # fmt: skip
    if not DEVICE.match(device):
        return _login_page(request, services, "Refused: a device name is 1 to 24 letters,"
                           " digits, spaces, - or _", 422)  # fmt: skip
    try:
        with services.database() as db:
            user = passenger(db, int(raw))
    except DataError as exc:
        return _login_page(request, services, "Refused: " + _said(exc), 404)
    with _valkey(services):
        store = _pattern(services)[0]
        host = request.client.host if request.client else ""
        token = store.login(user, ip=host, fingerprint=_browser(request), device=device)
    response = _redirect()
    response.set_cookie(COOKIE, token, path="/sessions", httponly=True, samesite="lax",
                        secure=services.config.secure_cookies)  # fmt: skip
    return response


@router.post("/logout")
def sessions_logout(request: Request, form: dict[str, str] = Form) -> Response:
    """DEL the session and SREM it from the day's set; the cookie cleared."""
    outcome = _act(request, form, lambda visit: None)
    if outcome.status_code != 303 or outcome.headers["location"] != "/sessions/":
        return outcome
    services = _services(request)
    with _valkey(services):
        _pattern(services)[0].logout(request.cookies.get(COOKIE, ""))
    return _redirect("out", clear=True, secure=services.config.secure_cookies)


def _post(path: str, action: Callable[[Visit], None]) -> None:
    def endpoint(request: Request, form: dict[str, str] = Form) -> Response:
        return _act(request, form, action)

    endpoint.__name__ = "sessions_" + path.replace("-", "_")
    router.post("/" + path)(endpoint)


for _path, _action in (
    ("search", _do_search),
    ("flight", _do_flight),
    ("seat", _do_seat),
    ("confirm", _do_confirm),
    ("idle", _do_idle),
    ("logout-other", _do_logout_other),
):
    _post(_path, _action)
