"""The room: one instructor's Valkey and database shared by many attendees.

Each attendee has a name (``alice``, ``attendee07``) from which everything of theirs
is named, so that ``room remove`` finds all of it and nothing else:

* a PostgreSQL schema, or a MySQL/MariaDB database, and a role that owns only it,
  both ``fcroom_<name>``;
* a Valkey ACL user ``fcroom_<name>`` whose keys and channels are confined to the
  key prefix ``room:<name>:``.

The instructor's database keeps the list (``flightcache_room``, see
:mod:`flightcache.room.registry`). An attendee's flightcache knows it runs under a
room account by the ``room`` key of its config file (or ``FLIGHTCACHE_ROOM``): then,
and only then, every command records what it did under the attendee's prefix
(:mod:`flightcache.room.activity`), which ``room status`` reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flightcache.errors import UsageError

MAX_NAME = 30
_NAME = re.compile(rf"^[a-z][a-z0-9_]{{0,{MAX_NAME - 1}}}$")
OBJECT_PREFIX = "fcroom_"  # schema / database, role / user, Valkey ACL user
KEY_PREFIX = "room:"  # then the name and a colon


def check_name(name: str) -> str:
    """``name`` if it can name an attendee, else a UsageError saying what can."""
    if not _NAME.match(name):
        raise UsageError(
            f"{name!r} cannot name an attendee",
            hint=f"use a lowercase letter, then up to {MAX_NAME - 1} lowercase letters,"
            " digits or _ (it names a schema, a role and a Valkey user): e.g. alice, attendee07",
        )
    return name


def numbered(count: int, start: int = 1) -> list[str]:
    """``--count N``: attendee01, attendee02, ... (three digits past 99)."""
    width = max(2, len(str(start + count - 1)))
    return [f"attendee{n:0{width}d}" for n in range(start, start + count)]


@dataclass(frozen=True)
class Attendee:
    """One attendee and the names of everything that is theirs."""

    name: str

    def __post_init__(self) -> None:
        check_name(self.name)

    @property
    def db_object(self) -> str:
        """The PostgreSQL schema or MySQL/MariaDB database that holds their tables."""
        return f"{OBJECT_PREFIX}{self.name}"

    @property
    def db_user(self) -> str:
        """The database role (PostgreSQL) or user (MySQL/MariaDB) that owns only it."""
        return f"{OBJECT_PREFIX}{self.name}"

    @property
    def valkey_user(self) -> str:
        return f"{OBJECT_PREFIX}{self.name}"

    @property
    def key_prefix(self) -> str:
        return f"{KEY_PREFIX}{self.name}:"
