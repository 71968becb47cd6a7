"""The instructor's list of attendees: table ``flightcache_room`` in the instructor's
database (the shared dataset's), which flightcache creates and alone writes.

``room add`` registers an attendee before it creates anything of theirs, so a
killed ``add`` leaves a row that ``room remove`` (or the next ``add``) completes;
``room remove`` deletes the row after everything of theirs is gone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flightcache.room import Attendee
from flightcache.sqlfiles import query, statements


@dataclass(frozen=True)
class Registered:
    attendee: Attendee
    created_at: dt.datetime
    ready: bool  # False: ``room add`` has not finished (or was killed)


def ensure_table(db: Any) -> None:
    for statement in statements(db.dialect, "room.sql"):
        db.execute(statement)


def register(db: Any, attendee: Attendee) -> None:
    """Record ``attendee`` as being added (not ready); a second add of the same name
    leaves the row as it is."""
    db.execute(query(db.dialect, "room_register"), {"name": attendee.name})


def mark_ready(db: Any, attendee: Attendee) -> None:
    db.execute(query(db.dialect, "room_ready"), {"name": attendee.name})


def unregister(db: Any, attendee: Attendee) -> None:
    db.execute(query(db.dialect, "room_unregister"), {"name": attendee.name})


def attendees(db: Any) -> list[Registered]:
    """Everyone registered, by name; [] when no room was ever set up here."""
    if "flightcache_room" not in db.tables():
        return []
    rows = db.fetch(query(db.dialect, "room_attendees")).rows
    return [Registered(Attendee(str(r[0])), r[1], bool(r[2])) for r in rows]
