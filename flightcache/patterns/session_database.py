"""Sessions in a database table, for the comparison, and the passengers who log in.

:class:`SessionTable` keeps the sessions of :mod:`flightcache.patterns.session` the way
a web framework's database session store does: one row per token in
``flightcache_session``, the session as JSON, an expiry each read checks.

Read path: SELECT by token with the expiry checked, the JSON decoded. Write path: a
page view reads, then UPDATEs the row with last_activity, page_views + 1 and a new
expiry (one commit). Failure mode: an expired row stays until it is deleted; reads
ignore it (NotLoggedIn).

The passengers who log in, and the checkout's last step: :func:`free_seats` reads the
seats a flight has left, :func:`book_seat` INSERTs the booking with the seat the
session held and COMMITs; the UNIQUE (flight_id, seat) refuses a seat another
checkout booked meanwhile (:class:`SeatTaken`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from flightcache.errors import DataError, RejectedValue
from flightcache.patterns.session import DEFAULT_TTL_S, NotLoggedIn, User, iso
from flightcache.sqlfiles import query, statements

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase


def _utc(timestamp: float) -> dt.datetime:
    """A Unix time as the naive UTC datetime both tables store."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None)


class SessionTable:
    """The same sessions in ``flightcache_session``, as a framework's database store
    keeps them: one row per token, the session as JSON, an expiry each read checks."""

    TABLE = "flightcache_session"

    def __init__(
        self,
        db: Database | TracedDatabase,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.clock = clock

    def _sql(self, name: str) -> str:
        return query(self.db.dialect, name)

    def ensure(self) -> None:
        """CREATE TABLE IF NOT EXISTS (and its index), from sql/<dialect>/flightcache.sql."""
        for statement in statements(self.db.dialect, "flightcache.sql"):
            if self.TABLE in statement:
                self.db.execute(statement)

    def save(self, token: str, session: Mapping[str, str]) -> None:
        self.db.execute(
            self._sql("session_db_insert"),
            {
                "token": token,
                "user_id": int(session["user_id"]),
                "data": json.dumps(dict(session), separators=(",", ":")),
                "expires_at": _utc(self.clock() + self.ttl_s),
            },
        )

    def read(self, token: str) -> dict[str, str]:
        """SELECT by token with the expiry checked, JSON decoded; NotLoggedIn if none."""
        found = self.db.fetch(
            self._sql("session_db_read"), {"token": token, "now": _utc(self.clock())}
        )
        if not found.rows:
            raise NotLoggedIn(token)
        session: dict[str, str] = json.loads(found.rows[0][1])
        if not session.get("user_id") or not session.get("csrf_token"):
            raise NotLoggedIn(token)
        return session

    def request(self, token: str) -> dict[str, str]:
        """What one page view does here: read, then write the session back with
        last_activity, page_views + 1 and a new expiry (UPDATE, one commit)."""
        session = self.read(token)
        now = self.clock()
        changed = {
            **session,
            "last_activity": iso(now),
            "page_views": str(int(session.get("page_views", "0")) + 1),
        }
        self.db.execute(
            self._sql("session_db_slide"),
            {
                "token": token,
                "data": json.dumps(changed, separators=(",", ":")),
                "expires_at": _utc(now + self.ttl_s),
            },
        )
        return session

    def delete(self, token: str) -> None:
        self.db.execute(self._sql("session_db_delete"), {"token": token})


# -- who logs in ---------------------------------------------------------------------
def passenger(db: Database | TracedDatabase, passenger_id: int) -> User:
    """The passenger as a User; DataError, with the ids that exist, if there is none."""
    found = db.fetch(query(db.dialect, "session_passenger"), {"passenger_id": passenger_id})
    if not found.rows:
        span = db.fetch(query(db.dialect, "session_passenger_range")).rows
        lowest, highest = span[0] if span else (None, None)
        raise DataError(
            f"no passenger with id {passenger_id}",
            hint=f"passenger ids run from {lowest} to {highest}"
            if lowest is not None
            else "the passenger table is empty: run `flightcache data load`",
        )
    found_id, first, last, email = found.rows[0]
    return User(int(found_id), f"{first} {last}".strip(), str(email or ""))


def default_passenger(db: Database | TracedDatabase) -> int:
    """A passenger who has booked: the passenger of the first booking."""
    rows = db.fetch(query(db.dialect, "sample_passenger")).rows
    if not rows:
        rows = db.fetch(query(db.dialect, "passenger_first")).rows
    if not rows or rows[0][0] is None:
        raise DataError("there are no passengers", hint="run `flightcache data load`")
    return int(rows[0][0])


def other_passengers(db: Database | TracedDatabase, passenger_id: int, n: int) -> list[User]:
    """Up to ``n`` passengers other than ``passenger_id``."""
    rows = db.fetch(
        query(db.dialect, "session_other_passengers"), {"passenger_id": passenger_id, "n": n}
    ).rows
    return [passenger(db, int(row[0])) for row in rows]


# -- the checkout's last step ---------------------------------------------------------
class SeatTaken(DataError):
    """The seat was booked by someone else between the hold and the booking."""


def free_seats(db: Database | TracedDatabase, flight_id: int, capacity: int) -> list[str]:
    """The flight's seats (1A, 1B, ..., six a row) that no booking holds, in order."""
    from flightcache.data.generate import seat_label

    rows = db.fetch(query(db.dialect, "session_booked_seats"), {"flight_id": flight_id}).rows
    booked = {str(row[0]).strip() for row in rows}
    return [seat_label(i) for i in range(capacity) if seat_label(i) not in booked]


# region: book
def book_seat(
    db: Database | TracedDatabase, flight_id: int, passenger_id: int, seat: str, price: float
) -> int:
    """INSERT the booking with its seat and COMMIT; the new booking_id. SeatTaken when
    the UNIQUE (flight_id, seat) refuses it: another checkout booked the seat first."""
    try:
        with db.transaction():
            db.execute(
                query(db.dialect, "session_booking_add"),
                {"flight_id": flight_id, "seat": seat, "passenger_id": passenger_id,
                 "price": price},
            )  # fmt: skip
            return int(db.fetch(query(db.dialect, "last_insert_id")).rows[0][0])
    except RejectedValue:
        raise SeatTaken(
            f"seat {seat} on flight {flight_id} was booked by someone else meanwhile",
            hint="pick another seat",
        ) from None


# endregion: book
