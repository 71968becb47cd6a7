"""The sessions page of `flightcache serve`: 001's Module 4 in a real web app.

HTTP-level on both databases (the ``web`` fixture; a second TestClient is the second
device), and in a real browser against the real ``flightcache serve``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest

from flightcache.keys import Keys
from tests.web_helpers import Served, wait_for, web_config

CSRF_FIELD = re.compile(r'name=csrf value="([^"]+)"')


def _csrf(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, html[:2000]
    return found.group(1)


def _login(client: Any, passenger: int | str | None = None, device: str = "web") -> Any:
    """Log ``client`` in from the login form; the response to the POST (not followed)."""
    page = client.get("/sessions/")
    assert page.status_code == 200, page.text
    form = {"csrf": _csrf(page.text), "device": device}
    form["passenger"] = str(passenger) if passenger is not None else _suggested(page.text)
    return client.post("/sessions/login", data=form, follow_redirects=False)


def _suggested(html: str) -> str:
    found = re.search(r'id=ses-passenger inputmode=numeric value="(\d+)"', html)
    assert found, html[:2000]
    return found.group(1)


def _post(client: Any, path: str, **fields: str) -> Any:
    """A form of the page at ``path`` with the session's CSRF token from the page."""
    csrf = fields.pop("csrf", None)
    if csrf is None:
        csrf = _csrf(client.get("/sessions/").text)
    return client.post(f"/sessions/{path}", data={"csrf": csrf, **fields}, follow_redirects=False)


def _valkey(web: Any) -> Any:
    return web.services.valkey


def _key(web: Any, token: str) -> str:
    return Keys(web.prefix).session(token)


def _hash(web: Any) -> dict[str, str]:
    token = web.client.cookies.get("fc_session")
    assert token, "logged in"
    found: dict[str, str] = _valkey(web).hgetall(_key(web, token))
    return found


@pytest.fixture
def second(web: Any) -> Iterator[Any]:
    """Another browser on the same app: its own cookie jar."""
    from starlette.testclient import TestClient

    with TestClient(web.client.app, base_url="http://127.0.0.1") as other:
        assert other.get(f"/?token={web.token}").status_code == 200
        yield other


def test_login_cookie_holds_only_the_token(web: Any, loaded: Any) -> None:
    login = web.get("/sessions/")
    assert login.status_code == 200 and "id=ses-login" in login.text
    answer = _login(web.client)
    assert answer.status_code == 303 and answer.headers["location"] == "/sessions/"
    cookie = answer.headers["set-cookie"]
    token = web.client.cookies.get("fc_session")
    assert cookie.startswith(f"fc_session={token};")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/sessions" in cookie
    assert "Secure" not in cookie  # served over http
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
    session = _hash(web)
    assert session["user_id"] == _suggested(login.text)
    assert {"username", "login_time", "csrf_token", "session_fingerprint", "devices"} <= set(
        session
    )
    assert session["devices"] == "web" and session["ip_address"] == "testclient"
    assert 0 < _valkey(web).pttl(_key(web, token)) <= 1800 * 1000
    page = web.get("/sessions/")
    assert session["username"] in page.text and token not in page.text
    # the page view slid the expiry: one more page view in the hash
    assert int(_hash(web)["page_views"]) == int(session["page_views"]) + 1


@pytest.mark.safety(9)
def test_cookie_is_secure_over_tls(loaded: Any, db_url: Any, valkey_server: Any) -> None:
    from starlette.testclient import TestClient

    from flightcache.web.app import create_app

    config = dataclasses.replace(
        web_config(db_url, valkey_server, "fctest:secure:"), secure_cookies=True
    )
    with TestClient(create_app(config), base_url="https://127.0.0.1") as client:
        assert client.get(f"/?token={config.token}").status_code == 200
        answer = _login(client)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        token = client.cookies.get("fc_session")
        assert _post(client, "logout").status_code == 303
        assert not client.app.state.services.valkey.exists(Keys("fctest:secure:").session(token))


def test_the_state_shows_the_hash_and_does_not_slide_it(web: Any, loaded: Any) -> None:
    _login(web.client)
    token = web.client.cookies.get("fc_session")
    _valkey(web).pexpire(_key(web, token), 60_000)
    state = web.get("/sessions/state").json()
    assert 0 < state["pttl_ms"] <= 60_000  # reading is not activity
    assert dict(state["fields"]) == _hash(web)
    assert state["key"].startswith(web.prefix + "session:") and token not in state["key"]
    assert state["key"].endswith(token[:8] + "…")
    assert state["day_key"].startswith(web.prefix + "active:sessions:")
    assert state["day_count"] == 1
    web.get("/sessions/")  # a page view slides it back to the full lifetime
    assert _valkey(web).pttl(_key(web, token)) > 1790 * 1000


def _book(web: Any) -> dict[str, str]:
    """Search, pick the first flight, hold the first seat offered, confirm."""
    page = web.get("/sessions/").text
    origin = re.search(r'name=origin value="([A-Z]{3})"', page)
    destination = re.search(r'name=destination value="([A-Z]{3})"', page)
    day = re.search(r'name=day type=date value="([0-9-]+)"', page)
    assert origin and destination and day, page
    search = {"origin": origin[1], "destination": destination[1], "day": day[1]}
    assert _post(web.client, "search", **search).status_code == 303
    assert _hash(web)["checkout_step"] == "flight_search"
    page = web.get("/sessions/").text
    flight = re.search(r'name=flight_id value="(\d+)"', page)
    assert flight, page
    assert _post(web.client, "flight", flight_id=flight[1]).status_code == 303
    assert _hash(web)["selected_flight_id"] == flight[1]
    page = web.get("/sessions/").text
    seat = re.search(r'<option value="([0-9]+[A-F])">', page)
    assert seat, page
    assert _post(web.client, "seat", seat=seat[1]).status_code == 303
    return {"flight_id": flight[1], "seat": seat[1]}


def _bookings(db: Any, flight_id: str) -> list[tuple[Any, ...]]:
    found = db.fetch(
        "SELECT booking_id, seat, passenger_id FROM booking WHERE flight_id = %(f)s"
        " AND seat IS NOT NULL ORDER BY booking_id",
        {"f": int(flight_id)},
    )
    return [(int(r[0]), str(r[1]).strip(), int(r[2])) for r in found.rows]


def test_booking_flow_lives_in_the_session_and_writes_the_booking(web: Any, loaded: Any) -> None:
    _login(web.client)
    token = web.client.cookies.get("fc_session")
    chosen = _book(web)
    session = _hash(web)
    assert session["checkout_step"] == "seat_selection" and session["progress"] == "40"
    assert session["seat_hold"].endswith(":" + chosen["seat"])
    hold_ms = _valkey(web).execute_command("HPTTL", _key(web, token), "FIELDS", 1, "seat_hold")
    assert 0 < hold_ms[0] <= 600_000  # the hold expires on its own
    before = _bookings(loaded, chosen["flight_id"])
    assert _post(web.client, "confirm").status_code == 303
    session = _hash(web)
    assert session["checkout_step"] == "confirmed" and session["booked_seat"] == chosen["seat"]
    after = _bookings(loaded, chosen["flight_id"])
    new = [row for row in after if row not in before]
    assert new == [(int(session["booking_id"]), chosen["seat"], int(session["user_id"]))]
    page = web.get("/sessions/").text
    assert f"Booked: booking {session['booking_id']}" in page


@pytest.mark.safety(8)
def test_forged_or_missing_csrf_is_refused_and_nothing_changes(web: Any, loaded: Any) -> None:
    _login(web.client)
    chosen = _book(web)
    real = _csrf(web.get("/sessions/").text)
    before = _hash(web)
    bookings = _bookings(loaded, chosen["flight_id"])
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    for csrf in (forged, "", "x" * 32):
        for path, fields in (("confirm", {}), ("seat", {"seat": "1A"}), ("logout", {})):
            refused = _post(web.client, path, csrf=csrf, **fields)
            assert refused.status_code == 403, (path, refused.text[:300])
            assert "the CSRF token does not match the session" in refused.text
            assert "Traceback" not in refused.text
            assert _hash(web) == before  # not even the page views moved
    no_field = web.client.post("/sessions/confirm", data={}, follow_redirects=False)
    assert no_field.status_code == 403
    assert _hash(web) == before
    assert _bookings(loaded, chosen["flight_id"]) == bookings
    assert _post(web.client, "confirm", csrf=real).status_code == 303  # the real one works


@pytest.mark.safety(8)
def test_bad_input_gets_a_clear_message(web: Any, loaded: Any) -> None:
    refusals = []
    page = web.get("/sessions/")
    csrf = _csrf(page.text)
    for passenger, status, said in (
        ("999999999", 404, "no passenger with id 999999999"),
        ("abc", 422, "a passenger id is a whole number"),
        ("", 422, "a passenger id is a whole number"),
    ):
        answer = web.client.post("/sessions/login", data={"csrf": csrf, "passenger": passenger})
        refusals.append(answer)
        assert answer.status_code == status and said in answer.text, answer.text[:500]
    huge = web.client.post("/sessions/login", data={"csrf": csrf, "passenger": "1" * 20_000})
    assert huge.status_code == 413 and "Traceback" not in huge.text
    forged_login = web.client.post("/sessions/login", data={"csrf": "x" * 32, "passenger": "1"})
    assert forged_login.status_code == 403 and "token of the login form" in forged_login.text
    assert "fc_session" not in web.client.cookies
    _login(web.client)
    chosen = _book(web)
    taken_by_me = chosen["seat"]
    for path, fields, status, said in (
        ("search", {"origin": "F1", "destination": "JFK", "day": "2025-06-02"}, 422, "IATA"),
        ("search", {"origin": "FRA", "destination": "JFK", "day": "June"}, 422, "a date like"),
        ("flight", {"flight_id": "-1"}, 422, "is not one the search found"),
        ("seat", {"seat": "99Z"}, 422, "is not a seat"),
        ("seat", {"seat": "<b>1A"}, 422, "is not a seat"),
        ("logout-other", {"session": "nope"}, 404, "no other session of yours"),
    ):
        answer = _post(web.client, path, **fields)
        refusals.append(answer)
        assert answer.status_code == status and said in answer.text, (path, answer.text[:500])
    assert _post(web.client, "confirm").status_code == 303
    # the seat is booked now: holding it again is refused (it is no longer free)
    _post(web.client, "flight", flight_id=chosen["flight_id"])
    answer = _post(web.client, "seat", seat=taken_by_me)
    assert answer.status_code == 409 and f"seat {taken_by_me} is taken" in answer.text
    assert _post(web.client, "confirm").status_code == 409  # no seat held any more
    for answer in refusals:
        assert "Traceback" not in answer.text and "<b>1A" not in answer.text


@pytest.mark.safety(8)
def test_logout_deletes_the_key_and_a_replayed_form_is_refused(web: Any, loaded: Any) -> None:
    _login(web.client)
    token = web.client.cookies.get("fc_session")
    key = _key(web, token)
    csrf = _csrf(web.get("/sessions/").text)
    day_key = web.get("/sessions/state").json()["day_key"]
    assert _valkey(web).sismember(day_key, token)
    out = _post(web.client, "logout", csrf=csrf)
    assert out.status_code == 303 and out.headers["location"] == "/sessions/?m=out"
    assert 'fc_session=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    assert not _valkey(web).exists(key) and not _valkey(web).sismember(day_key, token)
    assert "fc_session" not in web.client.cookies
    assert "Logged out" in web.get(out.headers["location"]).text
    # the old form again, with the old cookie (kept by someone): nothing behind it
    web.client.cookies.set("fc_session", token, path="/sessions")
    replay = _post(web.client, "search", csrf=csrf, origin="FRA", destination="JFK", day="x")
    assert replay.status_code == 303 and replay.headers["location"] == "/sessions/?m=ended"
    assert not _valkey(web).exists(key)  # nothing brought back
    shown = web.get(replay.headers["location"])
    assert "belonged to a session that has ended" in shown.text
    # and with no cookie at all
    web.client.cookies.clear()
    web.get(f"/?token={web.token}")
    blind = web.client.post("/sessions/confirm", data={"csrf": csrf}, follow_redirects=False)
    assert blind.headers["location"] == "/sessions/?m=login"


def test_an_expired_session_goes_back_to_the_login(web: Any, loaded: Any) -> None:
    _login(web.client)
    token = web.client.cookies.get("fc_session")
    _valkey(web).pexpire(_key(web, token), 1)
    wait_for(lambda: not _valkey(web).exists(_key(web, token)), 5, what="the expiry")
    answer = web.get("/sessions/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/sessions/?m=expired"
    assert "fc_session" not in web.client.cookies  # the redirect cleared the cookie
    shown = web.get(answer.headers["location"])
    assert "Your session expired" in shown.text and "id=ses-login" in shown.text
    assert web.get("/sessions/state").status_code == 401
    assert not _valkey(web).exists(_key(web, token))  # the page view did not revive it


def test_idle_cuts_the_ttl_and_a_view_slides_it_back(web: Any, loaded: Any) -> None:
    _login(web.client)
    token = web.client.cookies.get("fc_session")
    assert _post(web.client, "idle").status_code == 303
    assert 0 < _valkey(web).pttl(_key(web, token)) <= 20_000
    web.get("/sessions/")
    assert _valkey(web).pttl(_key(web, token)) > 1790 * 1000


def test_a_second_device_is_listed_and_logged_out_from_the_first(
    web: Any, second: Any, loaded: Any
) -> None:
    _login(web.client, device="laptop")
    user = _hash(web)["user_id"]
    assert _login(second, user, device="phone").status_code == 303
    phone = second.cookies.get("fc_session")
    assert phone != web.client.cookies.get("fc_session")
    page = web.get("/sessions/").text
    rows = re.findall(r'<tr data-session="([0-9a-f]{12})">', page)
    assert len(rows) == 2 and "phone" in page and "laptop" in page
    assert phone not in page
    other = [sid for sid in rows if f'name=session value="{sid}"' in page]
    assert len(other) == 1  # only the other one has a logout button
    assert _post(web.client, "logout-other", session=other[0]).status_code == 303
    assert not _valkey(web).exists(_key(web, phone))
    assert second.get("/sessions/", follow_redirects=False).headers["location"] == (
        "/sessions/?m=expired"
    )
    assert len(re.findall(r"<tr data-session=", web.get("/sessions/").text)) == 1


@pytest.mark.safety(8)
def test_a_stolen_cookie_from_another_browser_is_refused(
    web: Any, second: Any, loaded: Any
) -> None:
    _login(web.client)
    token = web.client.cookies.get("fc_session")
    before = _hash(web)
    second.cookies.set("fc_session", token, path="/sessions")
    stolen = second.get("/sessions/", headers={"user-agent": "curl/8.5.0"})
    assert stolen.status_code == 403 and "fingerprint differs" in stolen.text
    assert second.get("/sessions/state", headers={"user-agent": "curl/8.5.0"}).status_code == 401
    assert _hash(web) == before


@pytest.mark.safety(7)
def test_valkey_down_is_a_503_naming_it(loaded: Any, db_url: Any, valkey_server: Any) -> None:
    """A Valkey nobody listens on: the page says so, and nothing is a stack trace."""
    import socket

    from starlette.testclient import TestClient

    from flightcache.web.app import create_app

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = dataclasses.replace(
        web_config(db_url, valkey_server, "fctest:down:"), valkey_url=f"valkey://127.0.0.1:{port}"
    )
    with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
        assert client.get(f"/?token={config.token}").status_code == 200
        page = client.get("/sessions/")
        answer = client.post(
            "/sessions/login",
            data={"csrf": _csrf(page.text), "passenger": _suggested(page.text)},
        )
        assert answer.status_code == 503 and "Valkey" in answer.json()["error"]
        client.cookies.set("fc_session", "A" * 32, path="/sessions")
        assert client.get("/sessions/").status_code == 503


# -- in a real browser ---------------------------------------------------------------
def _submit(browser: Any, form_id: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()


def _text(browser: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, selector)
    return str(found[0].text) if found else ""


@pytest.mark.slow
def test_browser_login_booking_forged_csrf_logout(served: Served, browser: Any) -> None:
    browser.get(served.url)
    browser.get(served.base + "/sessions/")
    wait_for(lambda: _text(browser, "#ses-login button"), what="the login form")
    _submit(browser, "ses-login")
    name = wait_for(lambda: _text(browser, "#ses-user"), what="logged in")
    # the script fills the hash beside the app, and the countdown runs
    wait_for(lambda: name in _text(browser, "#ses-hash"), what="the hash in the page")
    assert "csrf_token" in _text(browser, "#ses-hash")
    first = wait_for(lambda: re.fullmatch(r"(\d+):(\d\d)", _text(browser, "#ses-countdown")))
    assert 28 <= int(first[1]) <= 30
    wait_for(lambda: _text(browser, "#ses-pttl").endswith(")"), what="the PTTL")

    _submit(browser, "ses-form-search")
    wait_for(lambda: _text(browser, "#ses-form-flight"), what="the flights")
    _submit(browser, "ses-form-flight")
    wait_for(lambda: _text(browser, "#ses-form-seat"), what="the seats")
    _submit(browser, "ses-form-seat")
    wait_for(lambda: "seat_hold" in _text(browser, "#ses-hash"), what="the seat hold")
    wait_for(lambda: " ms" in _text(browser, "#ses-hold-pttl"), what="the hold's HPTTL")

    # a forged token: another value in the hidden field, then submit: refused
    browser.execute_script(
        "document.querySelector('#ses-form-confirm input[name=csrf]').value = 'forged'"
        " + 'x'.repeat(26);"
    )
    _submit(browser, "ses-form-confirm")
    wait_for(
        lambda: "CSRF token does not match" in _text(browser, "#ses-message"),
        what="the refusal",
    )
    assert not _text(browser, "#ses-booked")
    _submit(browser, "ses-form-confirm")  # the page came back with the real token
    booked = wait_for(lambda: _text(browser, "#ses-booked"), what="the booking")
    assert booked.startswith("Booked: booking ")
    wait_for(lambda: "confirmed" in _text(browser, "#ses-hash"), what="checkout_step")

    _submit(browser, "ses-form-logout")
    wait_for(lambda: "Logged out" in _text(browser, "#ses-message"), what="logged out")
    assert _text(browser, "#ses-login button") == "Log in"
    assert browser.get_cookie("fc_session") is None
