"""The room page of `flightcache serve`: `room status` on the projector."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import keys_left
from tests.web_helpers import Served, wait_for


def _attendees(db_url: Any, *names: str) -> list[Any]:
    from flightcache.db import connect
    from flightcache.room import Attendee
    from flightcache.room.registry import ensure_table, mark_ready, register

    made = [Attendee(n) for n in names]
    db = connect(db_url)
    try:
        ensure_table(db)
        for a in made:
            register(db, a)
            mark_ready(db, a)
    finally:
        db.close()
    return made


@pytest.fixture
def admin(valkey_server: Any) -> Any:
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    yield client
    close(client)


def test_status_lists_the_registry_with_each_record(web: Any, db_url: Any, admin: Any) -> None:
    from flightcache.keys import Keys
    from flightcache.room.activity import record

    assert web.get("/room/status").json()["attendees"] == []  # no room made here yet
    seen, idle = _attendees(db_url, f"w{uuid.uuid4().hex[:8]}", f"x{uuid.uuid4().hex[:8]}")
    try:
        record(admin, Keys(seen.key_prefix), ["leaderboard", "top", "airline-bookings"], 0)
        doc = web.get("/room/status").json()
        rows = {r["attendee"]: r for r in doc["attendees"]}
        assert rows[seen.name]["command"] == "leaderboard top airline-bookings"
        assert rows[seen.name]["chapter"].startswith("3. ")
        assert rows[idle.name]["last_seen"] is None and doc["exercises"] >= 7
        assert web.get("/room").status_code == 200
    finally:
        for key in keys_left(admin, seen.key_prefix):
            admin.delete(key)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_room_page_follows_the_attendees_in_a_real_browser(
    served: Served, browser: Any, db_url: Any, admin: Any
) -> None:
    from flightcache.keys import Keys
    from flightcache.room.activity import record

    (a,) = _attendees(db_url, f"y{uuid.uuid4().hex[:8]}")
    try:
        browser.get(served.url)
        browser.get(served.base + "/room")
        row = f"tr[data-attendee='{a.name}']"
        wait_for(lambda: "never" in browser.find_element("css selector", row).text, what="the row")
        record(admin, Keys(a.key_prefix), ["exercise", "check", "sessions"], 1, "2 checks failed")
        text = wait_for(
            lambda: (t := browser.find_element("css selector", row).text) and "s ago" in t and t,
            timeout=6,
            what="the page to show the new record",
        )
        assert "exercise check sessions (exit 1)" in text and "2 checks failed" in text
        assert browser.find_element("id", "room-empty").get_attribute("hidden") is not None
    finally:
        for key in keys_left(admin, a.key_prefix):
            admin.delete(key)
