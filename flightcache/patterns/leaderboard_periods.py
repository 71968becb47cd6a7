"""The one period helper of the leaderboards: which time slice a board counts.

Read path: a period's name ends its board's key (``{lb:<board>}:daily:2025-06-02``);
:func:`parse_period` turns what a user typed into a :class:`Period`, and a rolling
window (``24h``, ``3d``, ``7d``) names the hourly or daily periods it is the union of.
Write path: :func:`booking_periods` lists the periods one booking counts in; each
period's TTL (:data:`TTL`) is its retention, so old periods expire on their own.
Failure mode: a period that does not parse is a one-line :class:`UsageError` with the
forms that do; a window asked for without the dataset's clock is refused, never guessed.
Nothing here touches Valkey or the database.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from flightcache.errors import UsageError

DAY = 86_400
TTL = {"hourly": 2 * DAY, "daily": 7 * DAY, "monthly": 60 * DAY, "yearly": 730 * DAY}
WINDOW_TTL = 300  # a window is derived: rebuilt from its parts when it has expired
WINDOWS = {"24h": ("hourly", 24), "3d": ("daily", 3), "7d": ("daily", 7)}
_FORMATS = {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}


@dataclass(frozen=True)
class Period:
    """``all``, ``hourly:2025-06-02T13``, ``daily:2025-06-02``, ``monthly:2025-06``,
    ``yearly:2025`` or a window ``window:24h`` / ``3d`` / ``7d`` (ending at ``end``).
    Its name ends the board's key; it counts departures from ``start`` (inclusive) to
    ``end`` (exclusive)."""

    name: str
    kind: str
    start: dt.datetime
    end: dt.datetime

    @property
    def ttl(self) -> int | None:
        return WINDOW_TTL if self.kind == "window" else TTL.get(self.kind)

    def parts(self) -> list[Period]:
        """The hourly or daily periods a window is the union of, oldest first."""
        unit, count = WINDOWS[self.name.split(":", 1)[1]]
        if unit == "hourly":
            last = self.end - dt.timedelta(hours=1)
            return [hourly(last - dt.timedelta(hours=i)) for i in reversed(range(count))]
        last_day = (self.end - dt.timedelta(seconds=1)).date()
        return [daily(last_day - dt.timedelta(days=i)) for i in reversed(range(count))]


def hourly(at: dt.datetime) -> Period:
    start = at.replace(minute=0, second=0, microsecond=0)
    return Period(f"hourly:{start:%Y-%m-%dT%H}", "hourly", start, start + dt.timedelta(hours=1))


def daily(day: dt.date) -> Period:
    start = dt.datetime.combine(day, dt.time())
    return Period(f"daily:{day:%Y-%m-%d}", "daily", start, start + dt.timedelta(days=1))


def monthly(day: dt.date) -> Period:
    start = dt.datetime(day.year, day.month, 1)
    end = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1)
    return Period(f"monthly:{start:%Y-%m}", "monthly", start, end)


def yearly(day: dt.date) -> Period:
    return Period(
        f"yearly:{day.year}", "yearly", dt.datetime(day.year, 1, 1), dt.datetime(day.year + 1, 1, 1)
    )


ALL = Period("all", "all", dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))


def parse_period(text: str, clock: dt.datetime | None = None) -> Period:
    """A period as typed: ``all``, ``daily:2025-06-02`` (or just ``2025-06-02``),
    ``monthly:2025-06``, ``yearly:2025``, ``hourly:2025-06-02T13``, ``24h``/``3d``/``7d``."""
    text = text.strip()
    if text == "all":
        return ALL
    bare = text.removeprefix("window:")
    if bare in WINDOWS:
        if clock is None:
            raise UsageError("a time window needs the dataset's clock")
        end = clock.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        unit, count = WINDOWS[bare]
        if unit == "daily":
            end = dt.datetime.combine(clock.date() + dt.timedelta(days=1), dt.time())
            return Period(f"window:{bare}", "window", end - dt.timedelta(days=count), end)
        return Period(f"window:{bare}", "window", end - dt.timedelta(hours=count), end)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text = "daily:" + text
    kind, _, value = text.partition(":")
    fmt = _FORMATS.get(kind)
    try:
        if fmt is None:
            raise ValueError(kind)
        at = dt.datetime.strptime(value, fmt)
    except ValueError:
        raise UsageError(
            f"period {text!r} does not parse",
            hint="use all, daily:2025-06-02, monthly:2025-06, yearly:2025,"
            " hourly:2025-06-02T13, 24h, 3d or 7d",
        ) from None
    if kind == "hourly":
        return hourly(at)
    return {"daily": daily, "monthly": monthly, "yearly": yearly}[kind](at.date())


def booking_periods(departure: dt.datetime) -> list[Period]:
    """The airport-bookings periods one booking counts in."""
    day = departure.date()
    return [hourly(departure), daily(day), monthly(day), yearly(day), ALL]


def as_datetime(value: Any) -> dt.datetime:
    """A departure as the database returns it (a datetime or its ISO text), naive."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))
