"""Keeping the leaderboards in step with the database, which is always right.

Read path: :meth:`Leaderboards.ensure` answers from Valkey when the board is there,
else rebuilds it first (a window by ZUNIONSTORE of its hourly or daily parts).
Write path: write-through (INSERT the booking, COMMIT, then one script runs ZINCRBY and
EXPIRE on every period key of the board that exists), event-driven (XADD a booking
event, a consumer group applies it once per booking), periodic rebuild (pipelined ZADD
into a temporary key, RENAME over the board, so no reader sees a half-built board).
After a change the new score is PUBLISHed on the board's update channel.
Failure mode: a booking whose increment is lost (Valkey down after the COMMIT: the
write raises :class:`BoardsMissed`, or a rebuild that read the database just before
it) is counted again by the next rebuild; an increment never creates a board.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import valkey.exceptions

from flightcache.errors import ConnectionFailed, DataError, UsageError
from flightcache.keys import Keys
from flightcache.lua import script
from flightcache.patterns.leaderboard import BOARDS, LeaderboardReads, check_n, definition
from flightcache.patterns.leaderboard_periods import (
    ALL,
    WINDOW_TTL,
    WINDOWS,
    Period,
    as_datetime,
    booking_periods,
    parse_period,
)
from flightcache.sqlfiles import query
from flightcache.valkey_client import primaries

SHOWN = 8  # members in the one traced ZADD of a rebuild; the others go untraced
EVENTS_GROUP = "boards"
NOT_ADDITIVE = frozenset({"airline-ontime"})  # a percentage: adding to it means nothing
Recorded = Callable[[int], None]
"""Called with a new booking's id inside its transaction, before the COMMIT."""


class BoardsMissed(ConnectionFailed):
    """The database took a write and Valkey did not: the boards are behind until a rebuild."""


@dataclass
class Rebuilt:
    key: str
    members: int
    temporary: str


@dataclass
class Booked:
    booking_id: int
    flight_id: int
    member: str
    departure: dt.datetime
    scores: dict[str, float | None] = field(default_factory=dict)  # period -> new score


class Leaderboards(LeaderboardReads):
    """Every board of one key scope, rebuilt from ``db``, read and written on ``valkey``:
    the reads of :class:`LeaderboardReads`, plus the dataset's clock, the rebuild, the
    write-through and the event stream that keep the boards in step with ``db``."""

    def __init__(self, db: Any, valkey: Any, keys: Keys, tracer: Any = None) -> None:
        super().__init__(valkey, keys, tracer)
        self.db = db
        self._clock: dt.datetime | None = None

    def clock(self) -> dt.datetime:
        """The dataset's now: its latest departure (windows end there)."""
        if self._clock is None:
            rows = self.db.fetch(query(self.db.dialect, "leaderboard_clock")).rows
            if not rows or rows[0][0] is None:
                raise DataError("the flight table is empty", hint="run flightcache data load")
            self._clock = as_datetime(rows[0][0])
        return self._clock

    def period(self, text: str) -> Period:
        bare = text.strip().removeprefix("window:")
        return parse_period(text, self.clock() if bare in WINDOWS else None)

    # -- the database side ------------------------------------------------------------
    def from_db(self, name: str, period: Period) -> list[tuple[str, float]]:
        """The whole board as the database computes it, best first."""
        params = {"start": period.start, "end": period.end}
        rows = self.db.fetch(query(self.db.dialect, definition(name).sql), params).rows
        return [(str(m), float(s)) for m, s in rows]

    def sql_top(self, period: Period, n: int) -> list[tuple[str, float]]:
        """airport-bookings' top N by GROUP BY (the SQL side of the comparison)."""
        params = {"start": period.start, "end": period.end, "limit": check_n(n)}
        rows = self.db.fetch(
            query(self.db.dialect, "leaderboard_airport_bookings_top"), params
        ).rows
        return [(str(m), float(s)) for m, s in rows]

    def sql_rank(self, name: str, period: Period, score: float) -> int:
        """The competition rank of ``score`` computed by the database, the same rule."""
        sql = (
            "SELECT 1 + COUNT(*) AS board_rank FROM ("
            + query(self.db.dialect, definition(name).sql)
            + ") s WHERE s.score > %(score)s"
        )
        params = {"start": period.start, "end": period.end, "score": score}
        return int(self.db.fetch(sql, params).rows[0][0])

    # -- update paths -------------------------------------------------------------------
    # region: rebuild
    def rebuild(self, name: str, period: Period) -> Rebuilt:
        """Periodic rebuild: SQL, pipelined ZADD into a temporary key, RENAME over the board."""
        if period.kind == "window":
            raise UsageError("a window is built from its parts", hint="read it with top")
        rows = self.from_db(name, period)
        key = self.key(name, period)
        temporary = self.keys.board(name, f"{period.name}:building:{uuid.uuid4().hex[:8]}")
        if not rows:
            self.valkey.delete(key)
            return Rebuilt(key, 0, temporary)
        pipe = self._pipeline()
        pipe.zadd(temporary, dict(rows[:SHOWN]))  # the first command is traced, the rest not
        with self.tracer.paused() if self.tracer is not None else nullcontext():
            rest = rows[SHOWN:]
            for start in range(0, len(rest), 500):
                pipe.zadd(temporary, dict(rest[start : start + 500]))
                if start and start % 10_000 == 0:
                    pipe.execute()  # keep one round trip at 20 commands
        pipe.expire(temporary, 600)  # a crashed rebuild leaves nothing for long
        pipe.execute()
        self.valkey.rename(temporary, key)  # atomic: readers see the old board or the new
        if period.ttl:
            self.valkey.expire(key, period.ttl)
        else:
            self.valkey.persist(key)
        self._publish(name, None, None, period, rebuilt=True)
        return Rebuilt(key, len(rows), temporary)

    # endregion: rebuild

    def ensure(self, name: str, period: Period) -> str:
        """Where the board's answer comes from: it is in Valkey, or rebuilt first."""
        key = self.key(name, period)
        if period.kind == "window":
            if self.valkey.exists(key):
                return "valkey"
            self.window(name, period)
            return "window rebuilt (ZUNIONSTORE)"
        if self.valkey.exists(key):
            return "valkey"
        self.rebuild(name, period)
        return "database (board was missing, rebuilt)"

    def window(self, name: str, period: Period) -> tuple[str, list[str]]:
        """ZUNIONSTORE of the window's hourly or daily keys, each rebuilt when missing."""
        parts = period.parts()
        keys = [self.key(name, p) for p in parts]
        for part, key in zip(parts, keys, strict=True):
            if not self.valkey.exists(key):
                self.rebuild(name, part)
        dest = self.key(name, period)
        self.valkey.zunionstore(dest, keys)
        self.valkey.expire(dest, WINDOW_TTL)
        return dest, keys

    def book(
        self, flight_id: int, passenger_id: int, *, recorded: Recorded | None = None
    ) -> Booked:
        """Write-through: INSERT the booking, COMMIT, then count it on every board period."""
        booked = self.book_only(flight_id, passenger_id, recorded=recorded)
        try:
            booked.scores = self.apply(booked.member, booked.departure, 1)
        except valkey.exceptions.ValkeyError as exc:
            raise BoardsMissed(
                f"booking {booked.booking_id} is committed, but the boards missed it: {exc}",
                hint="the database is right; flightcache leaderboard rebuild airport-bookings"
                " brings the boards back in line",
            ) from None
        return booked

    def book_only(
        self, flight_id: int, passenger_id: int, *, recorded: Recorded | None = None
    ) -> Booked:
        """INSERT one booking (price 99.00, no seat) and COMMIT; no board is touched.
        ``recorded(booking_id)`` runs before the COMMIT (a demo records the undo there)."""
        departure, member = self._flight(flight_id)
        found = self.db.fetch(
            query(self.db.dialect, "passenger_by_id"), {"passenger_id": passenger_id}
        ).rows
        if not found:
            raise DataError(
                f"passenger {passenger_id} does not exist",
                hint="pick a passenger_id from the passenger table",
            )
        with self.db.transaction():
            self.db.execute(
                query(self.db.dialect, "booking_add"),
                {"flight_id": flight_id, "passenger_id": passenger_id, "price": 99.0},
            )
            booking_id = int(self.db.fetch(query(self.db.dialect, "last_insert_id")).rows[0][0])
            if recorded is not None:
                recorded(booking_id)
        return Booked(booking_id, flight_id, member, departure)

    def cancel(self, booked: Booked) -> dict[str, float | None]:
        """Write-through of a cancellation: DELETE the booking, ZINCRBY -1."""
        self.db.execute(query(self.db.dialect, "booking_remove"), {"booking_id": booked.booking_id})
        return self.apply(booked.member, booked.departure, -1)

    def apply(self, member: str, departure: dt.datetime, delta: int) -> dict[str, float | None]:
        """ZINCRBY + EXPIRE on the airport-bookings periods that exist, in one script."""
        scores = self.apply_event(member, departure, delta, "")
        assert scores is not None  # only an event id can be a repeat
        return scores

    # region: apply
    def apply_event(
        self, member: str, departure: dt.datetime, delta: int, event: str
    ) -> dict[str, float | None] | None:
        """:meth:`apply`, once per ``event`` id: None when it was applied before."""
        periods = booking_periods(departure)
        keys = [self.keys.board_applied("airport-bookings")]
        keys += [self.key("airport-bookings", p) for p in periods]
        ttls = [p.ttl or 0 for p in periods]
        replies = script("leaderboard_apply")(self.valkey, keys, [member, delta, event, *ttls])
        if replies is None:
            return None
        scores: dict[str, float | None] = {}
        for p, reply in zip(periods, list(replies) + [None] * len(periods), strict=False):
            scores[p.name] = None if reply is None else float(reply)
            if reply is not None:
                self._publish("airport-bookings", member, float(reply), p)
        return scores

    # endregion: apply

    def add_score(self, name: str, member: str, amount: int) -> dict[str, float | None] | None:
        """Seed 004's score submission: ``amount`` added to a member already on the board,
        by the write-through script, on the periods of the board that exist (for
        airport-bookings those of a booking at the dataset's clock, else the all-time
        board). The board is rebuilt first when absent; None when the member is not on it.
        Valkey only: the next rebuild from the database, which is always right, drops it."""
        board = definition(name)
        if name in NOT_ADDITIVE or board.signed:
            raise UsageError(
                f"{name} scores ({board.score}) are computed by the database;"
                " an increment has no meaning there",
                hint="submit scores to a board that counts or sums: " + ", ".join(
                    n for n in BOARDS if n not in NOT_ADDITIVE and not BOARDS[n].signed),
            )  # fmt: skip
        if amount < 1:
            raise UsageError(f"increment {amount} is not positive", hint="pass 1 or more")
        self.ensure(name, ALL)
        if self.valkey.zscore(self.key(name, ALL), member) is None:
            return None
        if name == "airport-bookings":
            return self.apply(member, self.clock(), amount)
        keys = [self.keys.board_applied(name), self.key(name, ALL)]
        replies = script("leaderboard_apply")(self.valkey, keys, [member, amount, "", 0])
        score = float(replies[0]) if replies and replies[0] is not None else None
        if score is not None:
            self._publish(name, member, score, ALL)
        return {ALL.name: score}

    def emit(self, booking_id: int, member: str, departure: dt.datetime, delta: int = 1) -> str:
        """Event-driven, producer side: XADD one booking event to the stream."""
        fields = {"booking_id": booking_id, "member": member,
                  "departure": departure.isoformat(), "delta": delta}  # fmt: skip
        return str(self.valkey.xadd(self.keys.board_events(), fields))

    def consume(self, consumer: str = "boards-1", batch: int = 100) -> int:
        """Event-driven, consumer side: XREADGROUP, apply each event once, XACK.

        Returns the events applied; a redelivered one (same booking and delta) is acked
        without being applied again."""
        stream = self.keys.board_events()
        try:
            self.valkey.xgroup_create(stream, EVENTS_GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: the group exists
            if "BUSYGROUP" not in str(exc):
                raise
        applied = 0
        for start in ("0", ">"):  # own pending entries first (a crashed run), then new ones
            while True:
                reply = self.valkey.xreadgroup(
                    EVENTS_GROUP, consumer, {stream: start}, count=check_n(batch, "batch")
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                for entry_id, data in entries:
                    if data:
                        when = dt.datetime.fromisoformat(data["departure"])
                        delta = int(data.get("delta", 1))
                        event = f"{data['booking_id']}:{delta:+d}"
                        if self.apply_event(data["member"], when, delta, event) is not None:
                            applied += 1
                    self.valkey.xack(stream, EVENTS_GROUP, entry_id)
        return applied

    def pending_events(self) -> int:
        """Events not applied yet: delivered but not acked, plus not yet delivered."""
        stream = self.keys.board_events()
        if not self.valkey.exists(stream):
            return 0
        groups = {g["name"]: g for g in self.valkey.xinfo_groups(stream)}
        group = groups.get(EVENTS_GROUP)
        if group is None:  # nothing consumed yet: everything waits
            return int(self.valkey.xlen(stream))
        lag = group.get("lag")
        if lag is None:  # the server cannot tell: count what follows the last delivered id
            lag = len(self.valkey.xrange(stream, min="(" + group["last-delivered-id"]))
        return int(group["pending"]) + int(lag)

    def cleanup(self, name: str, keep_days: int, today: dt.date) -> list[str]:
        """SCAN the board's daily keys and delete those older than ``keep_days``."""
        pattern = self.keys.board(name, "daily:*").replace("{", "\\{").replace("}", "\\}")
        deleted = []
        for node in primaries(self.valkey):
            for key in node.scan_iter(match=pattern, count=100):
                day = dt.date.fromisoformat(key.rsplit(":", 1)[1])
                if (today - day).days >= keep_days:
                    self.valkey.delete(key)
                    deleted.append(key)
        return sorted(deleted)

    def _flight(self, flight_id: int) -> tuple[dt.datetime, str]:
        rows = self.db.fetch(
            query(self.db.dialect, "leaderboard_booking_flight"), {"flight_id": flight_id}
        ).rows
        if not rows:
            raise DataError(
                f"flight {flight_id} does not exist", hint="pick a flight_id from the flight table"
            )
        _, departure, iata = rows[0]
        if iata is None:
            raise DataError(
                f"flight {flight_id} leaves from an airport without an IATA code",
                hint="pick another flight",
            )
        return as_datetime(departure), str(iata)

    def _publish(self, name: str, member: str | None, score: float | None, period: Period,
                 *, rebuilt: bool = False) -> None:  # fmt: skip
        event: dict[str, Any] = {"member": member, "score": score, "period": period.name}
        if rebuilt:
            event["rebuilt"] = True
        self.valkey.publish(self.keys.board_updates(name), json.dumps(event))
