"""Seed 004's leaderboard API over flightcache's boards (OpenAPI at ``/docs``).

Read path: ``top``, ``rank`` and ``around`` read the board's sorted set with
:class:`~flightcache.patterns.leaderboard.LeaderboardReads`; a board that is absent is
first rebuilt from the database by :meth:`Leaderboards.ensure` (seed 004 rebuilds its
cache from PostgreSQL at start; here each board is rebuilt when first read).
Write path: ``POST /api/scores`` is :meth:`Leaderboards.add_score`: the write-through
script on every period of the board that exists, in Valkey only (see its docstring).
Failure mode: a Valkey or database that is down is a 503 naming it; the database is
opened only when a board must be rebuilt or a window needs the dataset's clock, so a
board Valkey holds is served with the database down.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from flightcache.patterns.leaderboard import BOARDS, N_MAX, RankedMember, board_keys
from flightcache.patterns.leaderboard_periods import Period
from flightcache.patterns.leaderboard_sync import Leaderboards

if TYPE_CHECKING:
    import datetime as dt

    from flightcache.web.services import Services

router = APIRouter(prefix="/api", tags=["leaderboards"])

CLOCK_SECONDS = 60.0  # the dataset's clock (its latest departure) is read at most this often
INCREMENT_MAX = 1_000_000
SPAN_MAX = 100
MEMBER_FORMATS = {  # BoardDefinition.member -> what a member of such a board looks like
    "airport IATA": (r"[A-Z0-9]{3}", "a 3-character IATA code such as ATL"),
    "airline IATA": (r"[A-Z0-9]{2}", "a 2-character IATA code such as LH"),
    "passenger_id": (r"[1-9][0-9]{0,9}", "a passenger_id such as 42"),
    "route FROM:TO": (r"[A-Z0-9]{3}:[A-Z0-9]{3}", "two IATA codes such as FRA:JFK"),
}
Window = Literal["all", "24h", "3d", "7d"]
BoardPath = Annotated[str, Path(description="A board: " + ", ".join(BOARDS))]
MemberPath = Annotated[str, Path(description="A member: an IATA code, a passenger_id, FROM:TO")]
WindowQuery = Annotated[
    Window, Query(description="all-time, or the last 24 hours / 3 days / 7 days of the data")
]


# -- what goes in and out (the schemas /docs shows) ------------------------------------------
class ScoreIn(BaseModel):
    board: str = Field(
        description="A board whose score is a count or a sum", examples=["airport-bookings"]
    )
    member: str = Field(description="A member already on the board", examples=["ATL"])
    increment: int = Field(ge=1, le=INCREMENT_MAX, description="Added to the member's score")


class ScoreOut(BaseModel):
    board: str
    member: str
    increment: int
    scores: dict[str, float | None] = Field(
        description="Each period's new score; null for a period key that does not exist"
    )


class Entry(BaseModel):
    rank: int = Field(description="Competition rank: 1 + the members with a higher score")
    member: str
    score: float


class TopOut(BaseModel):
    board: str
    window: Window
    period: str = Field(description="The period key the answer came from")
    source: str = Field(description="valkey, or how the board was rebuilt first")
    entries: list[Entry]


class RankOut(BaseModel):
    board: str
    window: Window
    member: str
    score: float
    rank: int = Field(description="Competition rank: members with equal scores share it")
    percentile: float = Field(description="% of the board's members scoring strictly lower")
    count: int = Field(description="Members on the board")


class AroundOut(BaseModel):
    board: str
    window: Window
    member: str
    entries: list[Entry]


class ErrorOut(BaseModel):
    error: str


class DownOut(BaseModel):
    error: str
    down: str = Field(description='"Valkey" or "the database"')


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown board, or a member not on it"},
    422: {"model": ErrorOut, "description": "Bad input, said in one line"},
    503: {"model": DownOut, "description": "Valkey or the database is down"},
}


# -- the boards of one request ------------------------------------------------------------
class _LazyDatabase:
    """This thread's database connection, opened on first use and only then, so that a
    board Valkey holds is read with the database down; every call maps a connection
    failure to a 503 naming the database."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def dialect(self) -> str:
        with self.services.database() as db:
            return db.dialect

    def fetch(self, sql: str, params: Any = None) -> Any:
        with self.services.database() as db:
            return db.fetch(sql, params)


class _DatasetClock:
    """The dataset's clock per worker, read again after :data:`CLOCK_SECONDS`."""

    def __init__(self) -> None:
        self.value: dt.datetime | None = None
        self.read_at = 0.0
        self.lock = threading.Lock()

    def get(self, read: Callable[[], dt.datetime]) -> dt.datetime:
        with self.lock:
            if self.value is not None and time.monotonic() - self.read_at < CLOCK_SECONDS:
                return self.value
        value = read()
        with self.lock:
            self.value, self.read_at = value, time.monotonic()
        return value


class _Boards(Leaderboards):
    """:class:`Leaderboards` whose clock is the worker's: read from the database only
    when a window or a write needs it, and then at most once a minute."""

    def __init__(self, db: Any, valkey: Any, keys: Any, shared: _DatasetClock) -> None:
        super().__init__(db, valkey, keys)
        self.shared = shared

    def clock(self) -> dt.datetime:
        return self.shared.get(super().clock)


@contextmanager
def _boards(request: Request) -> Iterator[Leaderboards]:
    services: Services = request.app.state.services
    clock: _DatasetClock | None = getattr(request.app.state, "api_clock", None)
    if clock is None:
        clock = request.app.state.api_clock = _DatasetClock()
    with services.valkey_errors():
        keys = board_keys(services.config.key_prefix)
        yield _Boards(_LazyDatabase(services), services.valkey, keys, clock)


@contextmanager
def _board(request: Request, board: str, window: str) -> Iterator[tuple[Leaderboards, Period, str]]:
    """The boards, the window's period, and where its answer comes from: Valkey, or the
    database when the board was absent and has just been rebuilt (``ensure``)."""
    with _boards(request) as boards:
        period = boards.period(window)
        source = boards.ensure(board, period)
        yield boards, period, source


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=404)


def _unknown_board(name: str) -> JSONResponse | None:
    if name in BOARDS:
        return None
    return _not_found(f"unknown board {name!r}; boards: {', '.join(BOARDS)}")


def _bad_member(name: str, member: str) -> JSONResponse | None:
    pattern, example = MEMBER_FORMATS[BOARDS[name].member]
    if re.fullmatch(pattern, member):
        return None
    shown = member if len(member) <= 40 else member[:40] + "…"
    return JSONResponse(
        {"error": f"member {shown!r} is not a member of {name}: expected {example}"},
        status_code=422,
    )


def _not_ranked(name: str, member: str, window: str) -> JSONResponse:
    return _not_found(f"{member!r} is not on {name} ({window}): it has no score there")


def _entries(members: list[RankedMember]) -> list[Entry]:
    return [Entry(rank=m.rank, member=m.member, score=m.score) for m in members]


# -- the endpoints ------------------------------------------------------------------------------
@router.post("/scores", response_model=ScoreOut, responses=ERRORS)
def add_score(score: ScoreIn, request: Request) -> Any:
    """Add to a member's score (seed 004's score submission).

    The board must count or sum something (airline-ontime and airport-delay are a
    percentage and an average: 422). The member must already be on the board (404):
    boards come from the database, and an API call does not invent airports. The
    increment goes, in one script, to every period key of the board that exists: for
    airport-bookings the all-time board and the hour, day, month and year of the
    dataset's clock, as a booking does through write-through; for the other boards the
    all-time board. It is written to Valkey only: the database stays the source of
    truth, so the next rebuild of a board (or the expiry of a period) drops it.

    An API client sends the access token (cookie, or `Authorization: Bearer <token>`)
    and, on this POST, the CSRF pair: `GET /api/csrf` sets the `fc_csrf` cookie and
    returns its value; send it back as that cookie and as the `X-CSRF-Token` header."""
    refused = _unknown_board(score.board) or _bad_member(score.board, score.member)
    if refused is not None:
        return refused
    with _boards(request) as boards:
        scores = boards.add_score(score.board, score.member, score.increment)
    if scores is None:
        return _not_ranked(score.board, score.member, "all")
    return ScoreOut(board=score.board, member=score.member, increment=score.increment,
                    scores=scores)  # fmt: skip


@router.get("/leaderboards/{board}/top", response_model=TopOut, responses=ERRORS)
def top(
    board: BoardPath,
    request: Request,
    n: Annotated[int, Query(ge=1, le=N_MAX, description="How many members")] = 10,
    window: WindowQuery = "all",
) -> Any:
    """The n highest members (ZREVRANGE WITHSCORES), ties sharing a rank."""
    refused = _unknown_board(board)
    if refused is not None:
        return refused
    with _board(request, board, window) as (boards, period, source):
        entries = boards.top(board, period, n)
    return TopOut(board=board, window=window, period=period.name, source=source,
                  entries=_entries(entries))  # fmt: skip


@router.get("/leaderboards/{board}/rank/{member}", response_model=RankOut, responses=ERRORS)
def rank(board: BoardPath, member: MemberPath, request: Request,
         window: WindowQuery = "all") -> Any:  # fmt: skip
    """A member's score, competition rank (ZCOUNT of higher scores + 1) and percentile."""
    refused = _unknown_board(board) or _bad_member(board, member)
    if refused is not None:
        return refused
    with _board(request, board, window) as (boards, period, _):
        standing = boards.standing(board, period, member)
    if standing is None:
        return _not_ranked(board, member, window)
    return RankOut(board=board, window=window, member=member, score=standing.score,
                   rank=standing.rank, percentile=standing.percentile,
                   count=standing.count)  # fmt: skip


@router.get("/leaderboards/{board}/around/{member}", response_model=AroundOut, responses=ERRORS)
def around(
    board: BoardPath,
    member: MemberPath,
    request: Request,
    span: Annotated[int, Query(ge=1, le=SPAN_MAX, description="Members either side")] = 5,
    window: WindowQuery = "all",
) -> Any:
    """The members ranked just above and below a member (seed 003's nearby users)."""
    refused = _unknown_board(board) or _bad_member(board, member)
    if refused is not None:
        return refused
    with _board(request, board, window) as (boards, period, _):
        entries = boards.around(board, period, member, span)
    if entries is None:
        return _not_ranked(board, member, window)
    return AroundOut(board=board, window=window, member=member, entries=_entries(entries))
