"""The room page: `flightcache room status` for the instructor's projector.

``/room/status`` answers the same rows as ``room status --json``: every attendee of
the instructor's registry with what their commands recorded. The page asks for
them every two seconds and draws the table with ``textContent`` only (names and
error lines are attendees' text).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from flightcache.web.pages import page, register_page
from flightcache.web.services import Services

router = APIRouter()
register_page("/room", "Room", "each attendee of a shared server: last seen, chapter, exercises")

BODY = """
<div class="panel">
  <p class=muted>Every attendee <code>flightcache room add</code> made, with what their
  commands recorded: the same table as <code>flightcache room status --watch</code>.
  <span id=room-updated></span></p>
  <table class=room id=room-table>
    <thead><tr><th>attendee</th><th>last seen</th><th>last command</th><th>chapter</th>
    <th>exercises passed</th><th>failed</th></tr></thead>
    <tbody id=room-rows></tbody>
  </table>
  <p id=room-empty class=muted hidden>No attendees yet: add them with
  <code>flightcache room add NAME...</code> or <code>--count N</code>.</p>
</div>
"""


@router.get("/room", response_class=HTMLResponse, include_in_schema=False)
def room_page(request: Request) -> HTMLResponse:
    return page(request, "Room", BODY, ["room.js"])


@router.get("/room/status", tags=["room"])
async def room_status(request: Request) -> dict[str, Any]:
    """Each attendee with their record (``room status --json``), and the server's clock."""
    import time

    from flightcache.exercises.catalogue import EXERCISES
    from flightcache.room.activity import room

    services: Services = request.app.state.services

    def collect() -> list[dict[str, Any]]:
        with services.database() as db, services.valkey_errors():
            return room(db, services.valkey)

    rows = await run_in_threadpool(collect)
    return {"now": time.time(), "exercises": len(EXERCISES), "attendees": rows}
