"""The live leaderboard page (seed 002): a board that moves in place, pushed by pub/sub.

``/ws/board?board=&window=`` subscribes to the board's update channel (the simulator
and the write-through path PUBLISH one event per score change there) in a thread of
its own, on the shared client, so a Valkey Cluster works as for `leaderboard live`.
Events go to the event loop; the socket re-reads the top N (``LeaderboardReads``) and
pushes it, at most every :data:`MIN_GAP_S`, right away when the last push is older.
Rank arrows compare each push with the one before. Closing the socket ends the thread
and its subscription. The Start button runs `leaderboard simulate`'s
:class:`~flightcache.bench.leaderboard.Simulator` in a thread, bounded, one at a time
across workers (a Valkey key holds the run), stopped when the app stops.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from flightcache.errors import UsageError
from flightcache.patterns.leaderboard import BOARDS, board_keys, definition
from flightcache.patterns.leaderboard_periods import ALL, WINDOWS, Period
from flightcache.web.services import Services, Unavailable

Page = Callable[[Request, str, str, Sequence[str]], HTMLResponse]

MIN_GAP_S = 0.1  # pushes at most this often; an event after a quiet spell goes at once
IDLE_PUSH_S = 1.0  # a push this often anyway: events/s falls back to 0, arrows fade
MOVE_SHOWN_S = 3.0  # an arrow stays this long after a move, so that it can be seen
RATE_WINDOW_S = 2.0  # events per second over the last seconds
TOP = 10
MAX_RATE = 500.0  # bookings/s the page may ask for
MAX_SECONDS = 300.0
CHOICES = ("all", *WINDOWS)

PAGE = (
    "/board",
    "Live leaderboard",
    "seed 002: a board pushed through Valkey pub/sub and a websocket, rank arrows, events/s",
)


def _services(request: Request | WebSocket) -> Services:
    services: Services = request.app.state.services
    return services


def check_window(window: str) -> str:
    if window not in CHOICES:
        raise UsageError(f"unknown window {window!r}", hint="windows: " + ", ".join(CHOICES))
    return window


class BoardView:
    """One viewer's board: which events concern it, the top N, rank changes, events/s."""

    def __init__(self, services: Services, board: str, window: str, top: int = TOP) -> None:
        self.services = services
        self.board = definition(board).name
        self.window = check_window(window)
        self.top = top
        self.keys = board_keys(services.config.key_prefix)
        self.period: Period = ALL
        self.follows: set[str] = {"all"}
        self.previous: dict[str, int] = {}
        self.moves: dict[str, tuple[int | None, float]] = {}
        self.recent: deque[float] = deque()
        self.events = 0
        self.pushes = 0

    def _boards(self, db: Any) -> Any:
        from flightcache.patterns.leaderboard_sync import Leaderboards

        return Leaderboards(db, self.services.valkey, self.keys)

    def prepare(self) -> None:
        """The window's period (ending at the dataset's clock) and the periods it follows."""
        if self.window == "all":
            return
        with self.services.database() as db, self.services.valkey_errors():
            self.period = self._boards(db).period(self.window)
        self.follows = {p.name for p in self.period.parts()}

    def event(self, data: str) -> dict[str, Any] | None:
        """An update event when it concerns this view (counted), else None."""
        try:
            payload = json.loads(data)
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("period") not in self.follows:
            return None
        if not payload.get("rebuilt"):  # a rebuild redraws, but is no score event
            self.events += 1
            self.recent.append(time.monotonic())
        return payload

    def rate(self) -> float:
        cut = time.monotonic() - RATE_WINDOW_S
        while self.recent and self.recent[0] < cut:
            self.recent.popleft()
        return len(self.recent) / RATE_WINDOW_S

    def snapshot(self) -> dict[str, Any]:
        """Read the top N (a missing board is rebuilt; a window is re-unioned from its
        parts) and compare each member's place with the previous snapshot."""
        with self.services.database() as db, self.services.valkey_errors():
            boards = self._boards(db)
            if self.period.kind == "window":
                boards.window(self.board, self.period)
            else:
                boards.ensure(self.board, self.period)
            ranked = boards.top(self.board, self.period, self.top)
        now = time.monotonic()
        first = self.pushes == 0
        rows = []
        for place, row in enumerate(ranked, start=1):
            before = self.previous.get(row.member)
            change = 0 if first else (None if before is None else before - place)
            if change != 0:
                self.moves[row.member] = (change, now)
            shown, when = self.moves.get(row.member, (0, 0.0))
            rows.append({"rank": row.rank, "member": row.member, "score": row.score,
                         "change": shown if now - when < MOVE_SHOWN_S else 0})  # fmt: skip
        self.previous = {r["member"]: place for place, r in enumerate(rows, start=1)}
        self.pushes += 1
        return {
            "board": self.board,
            "title": BOARDS[self.board].title,
            "window": self.window,
            "key": boards.key(self.board, self.period),
            "channel": self.keys.board_updates(self.board),
            "rows": rows,
            "events": self.events,
            "events_per_s": self.rate(),
        }


class Subscription:
    """The board's update channel, read in a thread that hands each message to the loop."""

    def __init__(self, services: Services, channel: str, loop: asyncio.AbstractEventLoop,
                 queue: asyncio.Queue[str]) -> None:  # fmt: skip
        self.stop = threading.Event()
        with services.valkey_errors():
            client: Any = services.valkey
            self.pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(channel)
        self.loop, self.queue = loop, queue
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, name="board-subscription", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                message = self.pubsub.get_message(timeout=0.2)
                if message is not None and message.get("type") in ("message", "smessage"):
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, str(message["data"]))
        except Exception as exc:  # Valkey went away: the socket closes with the reason
            self.failure = f"Valkey is unavailable: {type(exc).__name__}: {exc}"
            self.loop.call_soon_threadsafe(self.queue.put_nowait, "")
        finally:
            try:
                self.pubsub.close()
            except Exception:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


async def _pump(websocket: WebSocket, view: BoardView, sub: Subscription,
                queue: asyncio.Queue[str]) -> None:  # fmt: skip
    """Push a snapshot after each burst of events, no more often than MIN_GAP_S."""
    last_push = 0.0
    while True:
        batch: list[dict[str, Any]] = []
        try:
            data = await asyncio.wait_for(queue.get(), timeout=IDLE_PUSH_S)
        except TimeoutError:
            data = None
        while True:
            if data == "" and sub.failure:
                raise Unavailable("Valkey", sub.failure)
            if data:
                payload = view.event(data)
                if payload is not None:
                    batch.append(payload)
            wait = last_push + MIN_GAP_S - time.monotonic()
            if queue.empty() and wait > 0:
                await asyncio.sleep(wait)  # the throttle: collect what comes meanwhile
            if queue.empty():
                break
            data = queue.get_nowait()
        snap = await run_in_threadpool(view.snapshot)
        snap["updates"] = [
            {"member": e.get("member"), "score": e.get("score"), "period": e.get("period")}
            for e in batch[-500:]
        ]
        await websocket.send_json(snap)
        last_push = time.monotonic()


async def _until_closed(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def board_router(page: Page, register_page: Callable[[str, str, str], None]) -> APIRouter:
    """The page, its socket and the simulator's buttons. ``page`` and ``register_page``
    are the app's (passed in: this module does not import the app that imports it)."""
    register_page(*PAGE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        runner: SimulatorRun | None = getattr(app.state, "board_simulator", None)
        if runner is not None:
            await run_in_threadpool(runner.stop_here)

    router = APIRouter(lifespan=lifespan)

    @router.get("/board", response_class=HTMLResponse, include_in_schema=False)
    def board_page(request: Request) -> HTMLResponse:
        return page(request, "Live leaderboard", _body(), ["board.js"])

    @router.get("/board/top", tags=["pages"])
    def board_top(
        request: Request, board: str = "airport-bookings", window: str = "all"
    ) -> dict[str, Any]:
        """The board's top 10 for a window, as the live page's first frame shows it."""
        view = BoardView(_services(request), board, window)
        view.prepare()
        return view.snapshot()

    @router.websocket("/ws/board")
    async def board_socket(
        websocket: WebSocket,
        board: str = Query("airport-bookings"),
        window: str = Query("all"),
    ) -> None:
        await websocket.accept()
        services = _services(websocket)
        queue: asyncio.Queue[str] = asyncio.Queue()
        sub: Subscription | None = None
        try:
            view = BoardView(services, board, window)
            await run_in_threadpool(view.prepare)
            sub = await run_in_threadpool(
                Subscription, services, view.keys.board_updates(view.board),
                asyncio.get_running_loop(), queue,
            )  # fmt: skip
            await _serve_socket(websocket, view, sub, queue)
        except UsageError as exc:
            await _close(websocket, 1008, exc.message)
        except Unavailable as exc:
            await _close(websocket, 1011, str(exc))
        except WebSocketDisconnect:
            pass
        finally:
            if sub is not None:
                sub.stop.set()  # at once: the await below is skipped when the task is cancelled
                await run_in_threadpool(sub.close)

    _simulator_routes(router)
    return router


async def _serve_socket(websocket: WebSocket, view: BoardView, sub: Subscription,
                        queue: asyncio.Queue[str]) -> None:  # fmt: skip
    """Push until the browser goes away (or the pump fails)."""
    await websocket.send_json(await run_in_threadpool(view.snapshot) | {"updates": []})
    pump = asyncio.create_task(_pump(websocket, view, sub, queue))
    closed = asyncio.create_task(_until_closed(websocket))
    done, _ = await asyncio.wait({pump, closed}, return_when=asyncio.FIRST_COMPLETED)
    for task in (pump, closed):
        if task not in done:
            task.cancel()
    for task in done:
        task.result()  # the pump's Unavailable is the socket's close reason


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code=code, reason=reason[:120])  # a close reason fits 123 bytes
    except RuntimeError:  # already closed
        pass


# -- the Start / Stop buttons: the CLI's simulator in a thread ----------------------------
class SimulateRequest(BaseModel):
    rate: float = Field(50.0, gt=0, le=MAX_RATE, description="bookings per second, about")
    seconds: float = Field(30.0, gt=0, le=MAX_SECONDS, description="how long to run")


@dataclass
class SimulatorRun:
    """The simulator this worker runs, if any; the Valkey key says whether any runs."""

    services: Services
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str = ""
    report: Any = None
    error: str | None = None

    @property
    def valkey(self) -> Any:
        return self.services.valkey

    @property
    def key(self) -> str:
        return self.services.keys.board_simulator()

    def start(self, rate: float, seconds: float) -> dict[str, Any] | None:
        """Start a run in a thread; None when one runs already (here or in another worker)."""
        from flightcache.bench.leaderboard import Simulator
        from flightcache.data.load import require_dataset
        from flightcache.db import connect

        valkey = self.valkey
        run_id = uuid.uuid4().hex[:12]
        doc = {"id": run_id, "rate": rate, "seconds": seconds, "started": time.time()}
        with self.services.valkey_errors():
            if not valkey.set(self.key, json.dumps(doc), nx=True, px=int((seconds + 10) * 1000)):
                return None
        try:
            db = connect(self.services.db_url, connect_timeout=3.0)
        except Exception as exc:
            valkey.delete(self.key)
            raise Unavailable("the database", str(exc)) from None
        try:
            found = require_dataset(db)
            if found.owner != "flightcache":
                raise UsageError(
                    "the simulator adds bookings to a database flightcache did not load",
                    hint="run `flightcache leaderboard simulate --yes` in a terminal instead",
                )
            sim = Simulator(db, valkey, board_keys(self.services.config.key_prefix))
        except BaseException:
            db.close()
            valkey.delete(self.key)
            raise
        self.stop = threading.Event()
        self.run_id, self.report, self.error = run_id, sim.report, None
        batch = max(1, min(20, int(rate / 20)))  # ~20 commits a second: small steps
        self.thread = threading.Thread(
            target=self._run, args=(sim, rate, batch, seconds), name="board-simulator", daemon=True
        )
        self.thread.start()
        return doc

    def _run(self, sim: Any, rate: float, batch: int, seconds: float) -> None:
        def progress(report: Any) -> None:  # stop when the key is gone (Stop, any worker)
            if self._ours() is False:
                self.stop.set()

        try:
            sim.run(rate, batch, seconds, progress, progress_every=0.2, stop=self.stop)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            sim.board.close()
            sim.db.close()
            try:
                if self._ours():
                    self.valkey.delete(self.key)
            except Exception:
                pass

    def _ours(self) -> bool | None:
        """Does the key still name this run? None when Valkey does not answer."""
        try:
            raw = self.valkey.get(self.key)
        except Exception:
            return None
        return raw is not None and json.loads(raw).get("id") == self.run_id

    def stop_any(self) -> bool:
        """Stop the running simulator, in this worker or another; False: none ran."""
        with self.services.valkey_errors():
            existed = bool(self.valkey.delete(self.key))
        running_here = self.stop_here()
        return existed or running_here

    def stop_here(self) -> bool:
        thread = self.thread
        if thread is None or not thread.is_alive():
            return False
        self.stop.set()
        thread.join(timeout=10)
        return True

    def status(self) -> dict[str, Any]:
        with self.services.valkey_errors():
            raw = self.valkey.get(self.key)
        running = json.loads(raw) if raw else None
        here = self.thread is not None and self.thread.is_alive()
        doc: dict[str, Any] = {"running": running is not None or here, "run": running}
        if self.report is not None:
            doc["bookings"] = self.report.bookings
            doc["events"] = self.report.events
            doc["valkey_failures"] = self.report.valkey_failures
        doc["error"] = self.error
        return doc


def _runner(request: Request) -> SimulatorRun:
    state = request.app.state
    runner: SimulatorRun | None = getattr(state, "board_simulator", None)
    if runner is None:
        runner = state.board_simulator = SimulatorRun(_services(request))
    return runner


def _simulator_routes(router: APIRouter) -> None:
    @router.post("/board/simulate/start", tags=["pages"])
    def simulate_start(request: Request, body: SimulateRequest) -> Response:
        """Start `leaderboard simulate` (bookings stay in the database); one at a time:
        409 while one runs."""
        started = _runner(request).start(body.rate, body.seconds)
        if started is None:
            return JSONResponse({"error": "a simulator is running already: stop it first"}, 409)
        return JSONResponse(started)

    @router.post("/board/simulate/stop", tags=["pages"])
    def simulate_stop(request: Request) -> dict[str, Any]:
        """Stop the simulator the page started (in whichever worker runs it)."""
        return {"stopped": _runner(request).stop_any()}

    @router.get("/board/simulate", tags=["pages"])
    def simulate_status(request: Request) -> dict[str, Any]:
        """Whether a simulator runs, and what this worker's last run wrote."""
        return _runner(request).status()


def _body() -> str:
    boards = "".join(
        f'<option value="{name}">{name}: {b.title}</option>' for name, b in BOARDS.items()
    )
    windows = "".join(f'<option value="{w}">{w}</option>' for w in CHOICES)
    return (
        "<p>The top 10, pushed through a websocket whenever the board's pub/sub channel"
        " says a score changed (at most every 100 ms). Run"
        " <code>flightcache leaderboard simulate</code> in a terminal, or Start below;"
        " the simulated bookings stay in the database. Only airport-bookings has a writer;"
        " the simulator counts daily and all-time boards, so 24h (hourly parts) moves only"
        " with the write-through path.</p>"
        '<form id=board-form class=board-controls onsubmit="return false">'
        f"<label>board <select id=board-name>{boards}</select></label> "
        f"<label>window <select id=board-window>{windows}</select></label> "
        "<label>rate <input id=board-rate type=number min=1 max=500 value=50>/s</label> "
        "<label>for <input id=board-seconds type=number min=1 max=300 value=30> s</label> "
        "<button id=board-start type=button>Start</button> "
        "<button id=board-stop type=button>Stop</button></form>"
        "<p class=board-meta><span id=board-key></span> · <span id=board-rate-now>0</span>"
        " events/s · <span id=board-events>0</span> events · <span id=board-status>"
        "connecting…</span> · simulator: <span id=board-sim>idle</span></p>"
        "<table id=board-table class=board-table><thead><tr><th class=num>#</th><th></th>"
        "<th>member</th><th class=num>score</th></tr></thead><tbody id=board-rows></tbody></table>"
    )
