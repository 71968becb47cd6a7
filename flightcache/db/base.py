"""What the two drivers share with the package: parameters, rows, points, timeouts.

``db/__init__.py`` opens connections through the drivers, and the drivers build on
these, so they live here, below both, and the package has no import cycle.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Params = Mapping[str, Any] | Sequence[Any] | None


class Point(NamedTuple):
    """A geographic point as FlughafenDB stores it: x is longitude, y latitude."""

    lon: float
    lat: float


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    rowcount: int = 0
    elapsed_ns: int = 0
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    """How long a connection waits, in seconds; None: no limit.

    Every connection has a connect timeout and a read timeout. Every connection
    but the data loader's has a statement timeout too, so that a demo or check
    never hangs on a query: the server cuts it and flightcache says so.
    """

    connect: float
    read: float | None
    statement: float | None


def text_field(value: Any) -> str | None:
    """A value as plain text for a bulk loader; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, (float, decimal.Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return str(value)


def chunked(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
