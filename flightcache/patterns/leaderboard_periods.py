"""Periods of a leaderboard: all time, an hour, a day, a month, a year, or a rolling
window (24 h, 3 d, 7 d) that is the union of hourly or daily periods.

A period names its key (``<prefix>{lb:<board>}:<name>``), the range of departures it
counts (``start`` inclusive, ``end`` exclusive) and its TTL.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from flightcache.errors import UsageError

DAY = 86_400
TTL = {"hourly": 2 * DAY, "daily": 7 * DAY, "monthly": 60 * DAY, "yearly": 730 * DAY}
WINDOW_TTL = 300  # a window is derived: rebuilt from its parts when it has expired
WINDOWS = {"24h": ("hourly", 24), "3d": ("daily", 3), "7d": ("daily", 7)}
ALL_START = dt.datetime(1900, 1, 1)
ALL_END = dt.datetime(2200, 1, 1)


@dataclass(frozen=True)
class Period:
    """``all``, ``hourly:2025-06-02T13``, ``daily:2025-06-02``, ``monthly:2025-06``,
    ``yearly:2025`` or a window ``window:24h`` / ``3d`` / ``7d`` (ending at ``end``)."""

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


ALL = Period("all", "all", ALL_START, ALL_END)

_FORMATS = {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}


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
        if WINDOWS[bare][0] == "daily":
            end = dt.datetime.combine(clock.date() + dt.timedelta(days=1), dt.time())
        return Period(f"window:{bare}", "window", end - _span(bare), end)
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


def _span(window: str) -> dt.timedelta:
    unit, count = WINDOWS[window]
    return dt.timedelta(hours=count) if unit == "hourly" else dt.timedelta(days=count)
