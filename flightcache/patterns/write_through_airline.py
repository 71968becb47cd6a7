"""The airline row that write-through caches, on the database side.

Its row is read by id as the strings a hash holds, its name is checked before a
write (``airline.airlinename`` is varchar(30) in both schemas), and
:func:`rename_in_database` is the same UPDATE with no cache at all: the baseline
that the demo and the bench time write-through against, and how they put a name
back when Valkey is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightcache.errors import DataError
from flightcache.sqlfiles import query

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

NAME_MAX = 30  # airline.airlinename is varchar(30) in both schemas


def check_name(name: str) -> str:
    """The name as the column will hold it, or a DataError that says why not."""
    if not name.strip():
        raise DataError("an airline name cannot be empty", hint="give a name of 1 to 30 characters")
    if len(name) > NAME_MAX:
        raise DataError(
            f"the airline name {name!r} has {len(name)} characters;"
            f" airline.airlinename holds at most {NAME_MAX}",
            hint=f"give a name of at most {NAME_MAX} characters",
        )
    return name


def renamed(name: str, mark: str) -> str:
    """``name`` with ``mark`` appended, cut so that it fits the column."""
    suffix = f" ({mark})"
    return name[: NAME_MAX - len(suffix)].rstrip() + suffix


def row_dict(columns: list[str], row: tuple[Any, ...]) -> dict[str, str]:
    """A database row as the hash holds it: every field a string, NULL as ""."""
    return {c: "" if v is None else str(v) for c, v in zip(columns, row, strict=True)}


def read_airline(db: Database | TracedDatabase, airline_id: int) -> dict[str, str]:
    """The airline row from the database (the read a cache hit saves)."""
    found = db.fetch(query(db.dialect, "airline_by_id"), {"airline_id": airline_id})
    if not found.rows:
        raise DataError(f"no airline with id {airline_id}")
    return row_dict(found.columns, found.rows[0])


def rename_in_database(db: Database | TracedDatabase, airline_id: int, name: str) -> None:
    """The rename with no cache at all: the baseline a write-through write pays on."""
    rename = query(db.dialect, "airline_rename")
    with db.transaction():
        db.execute(rename, {"name": check_name(name), "airline_id": airline_id})
