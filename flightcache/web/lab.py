"""The cache lab: one named query, straight from the database and through cache-aside.

Read path: ``POST /api/lab/run`` runs the query N times on the database and N times
through :class:`~flightcache.patterns.cache_aside.CacheAside` (the class `flightcache
cache-aside` narrates), the two alternating which goes first. Each call is timed by
:func:`flightcache.measure.timing.time_call` and each p50/p99 is
:func:`~flightcache.measure.timing.percentile`: the code behind the CLI's timing tables.
The answer streams as JSON lines, one per round with p50 and p99 of the run so far,
so the page's chart moves while the run goes on.

Write path: the cache-aside reads SET the query's key with the lab's TTL, in a scope of
the lab's own (``<prefix>web-lab:``). ``expire`` shortens a key of that scope to 1 ms
(PEXPIRE), ``flush`` deletes that scope only (SCAN MATCH + UNLINK on every primary, so
on a Valkey Cluster too).

Failure mode: bad input is a 422 before anything runs; Valkey or the database down at
the start is a 503 naming it. The database going away during a run ends the stream
with an error line; Valkey going away does not: cache-aside falls back to the
database, and each round says who served it.
"""

from __future__ import annotations

import bisect
import html
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from flightcache.errors import UsageError
from flightcache.keys import Keys
from flightcache.measure.timing import Stats, percentile, time_call
from flightcache.named_queries import NAMED_QUERIES, bind, get
from flightcache.web.pages import page, register_page
from flightcache.web.services import Unavailable

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.named_queries import Query as NamedQuery
    from flightcache.patterns.cache_aside import CacheAside, Lookup
    from flightcache.web.services import Services

SCOPE = "web-lab"  # the lab's keys: <prefix>web-lab:query:<name>:<digest>
RUNS_MIN, RUNS_MAX, RUNS_DEFAULT = 1, 2000, 50
TTL_MIN, TTL_MAX, TTL_DEFAULT = 1, 30 * 86_400, 60  # seconds; the CLI's limits
BATCH_SECONDS = 0.1  # a run streams what it has at least this often
MEASURED_BY = (
    "flightcache/measure/timing.py: time_call (perf_counter_ns around one call) for every"
    " request, percentile (nearest rank) for p50 and p99 - the code behind the timing"
    " tables of `flightcache cache-aside` and `flightcache bench`"
)

_WARM: weakref.WeakKeyDictionary[Database, set[str]] = weakref.WeakKeyDictionary()
_WARM_LOCK = threading.Lock()

router = APIRouter(tags=["cache lab"])
register_page("/lab", "Cache lab", "a named query from the database and through cache-aside")

Value = Annotated[str, StringConstraints(max_length=100)]


class RunIn(BaseModel):
    query: str = Field(max_length=100, description="A named query (GET /api/lab/queries)")
    params: dict[Value, Value] = Field(
        default_factory=dict, max_length=10, description="NAME: VALUE; missing ones from the data"
    )
    runs: int = Field(RUNS_DEFAULT, ge=RUNS_MIN, le=RUNS_MAX, description="Requests per path")
    ttl: int = Field(TTL_DEFAULT, ge=TTL_MIN, le=TTL_MAX, description="TTL of the key, seconds")


class KeyIn(BaseModel):
    key: str = Field(max_length=300, description="A key of the lab's scope")


def lab_keys(services: Services) -> Keys:
    return services.keys.scope(SCOPE)


def _lab_key(services: Services, key: str) -> str:
    """``key`` if it is a query key of the lab's scope; 422 otherwise."""
    if not key.startswith(lab_keys(services).prefix + "query:"):
        raise UsageError(
            f"{key!r} is not a key of the cache lab", hint="the lab touches only its own"
        )
    return key


# -- one run ----------------------------------------------------------------------------------
@dataclass
class Samples:
    """One path's samples in the order they came, and the same kept sorted."""

    samples: list[int] = field(default_factory=list)
    ordered: list[int] = field(default_factory=list)

    def add(self, ns: int) -> dict[str, int]:
        self.samples.append(ns)
        bisect.insort(self.ordered, ns)
        return {"p50": percentile(self.ordered, 50), "p99": percentile(self.ordered, 99)}


@dataclass
class Run:
    query: NamedQuery
    params: dict[str, Any]
    runs: int
    ttl: int
    key: str = ""
    database: Samples = field(default_factory=Samples)
    cache: Samples = field(default_factory=Samples)
    hits: int = 0

    @property
    def done(self) -> int:
        return len(self.cache.samples)


def _round(run: Run, db: Database, pattern: CacheAside, sql: str) -> dict[str, Any]:
    """One request on each path, timed; the line the page gets for it."""
    lookups: list[Lookup] = []

    def database() -> None:
        db.fetch(sql, run.params)

    def cache() -> None:
        lookups.append(pattern.get(run.query, run.params))

    if run.done % 2 == 0:
        database_ns, cache_ns = time_call(database), time_call(cache)
    else:
        cache_ns, database_ns = time_call(cache), time_call(database)
    lookup = lookups[0]
    run.hits += lookup.hit
    return {
        "type": "round",
        "round": run.done + 1,
        "database_ns": database_ns,
        "cache_ns": cache_ns,
        "database": run.database.add(database_ns),
        "cache": run.cache.add(cache_ns),
        "hit": lookup.hit,
        "served_by": lookup.source,
        "rows": len(lookup.rows),
    }


def _warm_up(db: Database, run: Run, sql: str) -> None:
    """EXPLAIN the query once on a connection that has not planned it yet. The pool's
    threads each hold a connection, and a run moves between them: a fresh connection's
    first query pays for loading the server's catalog of the tables it reads (a few to
    tens of ms), a cost of how the lab pools connections, not of the database path.
    EXPLAIN plans without running, so it pays that cost in a few ms, untimed."""
    with _WARM_LOCK:
        done = _WARM.setdefault(db, set())
        if run.query.name in done:
            return
        done.add(run.query.name)
    db.fetch("EXPLAIN " + sql, run.params)


def _batch(services: Services, run: Run, seconds: float, limit: int) -> list[dict[str, Any]]:
    """Rounds for about ``seconds`` (at least one, at most ``limit``), on this thread's
    connection: a run hops between the pool's threads, so it holds none across batches."""
    from flightcache.patterns.cache_aside import CacheAside

    lines: list[dict[str, Any]] = []
    with services.database() as db, services.valkey_errors():
        pattern = CacheAside(services.valkey, db, lab_keys(services), ttl=run.ttl)
        run.key = pattern.key(run.query, run.params)  # named before any clock starts
        sql = run.query.sql(db.dialect)
        _warm_up(db, run, sql)
        deadline = time.perf_counter() + seconds
        while run.done < run.runs and len(lines) < limit:
            lines.append(_round(run, db, pattern, sql))
            if time.perf_counter() >= deadline:
                break
    return lines


def _start(services: Services, body: RunIn) -> tuple[Run, list[dict[str, Any]]]:
    """Check the request, bind the parameters, and run the first round: what can be
    refused is refused here, with a status code, before the stream begins."""
    query = get(body.query)
    with services.valkey_errors():
        services.valkey.ping()
    with services.database() as db:
        params = bind(db, query, body.params)
    run = Run(query, params, body.runs, body.ttl)
    first = _batch(services, run, 0.0, 1)
    start = {
        "type": "start",
        "query": query.name,
        "params": {name: _text(value) for name, value in params.items()},
        "key": run.key,
        "runs": run.runs,
        "ttl": run.ttl,
        "measured_by": MEASURED_BY,
    }
    return run, [start, *first]


def _finish(services: Services, run: Run) -> dict[str, Any]:
    pttl = _pttl(services, run.key)
    return {
        "type": "done",
        "key": run.key,
        "pttl_ms": pttl,
        "ttl": run.ttl,
        "hits": run.hits,
        "reads": run.done,
        "hit_ratio": run.hits / run.done,
        "database": Stats.of("database", run.database.samples).as_dict(),
        "cache": Stats.of("cache-aside", run.cache.samples).as_dict(),
    }


def _pttl(services: Services, key: str) -> int:
    """PTTL in milliseconds: -2 when the key is gone, -1 when it has no TTL."""
    with services.valkey_errors():
        reply: Any = services.valkey.pttl(key)
    return int(reply)


def _lines(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items)


async def _stream(services: Services, run: Run, first: list[dict[str, Any]]) -> AsyncIterator[str]:
    yield _lines(first)
    try:
        while run.done < run.runs:
            yield _lines(await run_in_threadpool(_batch, services, run, BATCH_SECONDS, 500))
        yield _lines([await run_in_threadpool(_finish, services, run)])
    except Unavailable as exc:
        yield _lines([{"type": "error", "error": str(exc), "down": exc.which}])


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# -- the endpoints ------------------------------------------------------------------------------
def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post("/api/lab/run")
async def run_lab(request: Request, body: RunIn) -> StreamingResponse:
    """Run a named query ``runs`` times on each path; JSON lines: ``start``, one ``round``
    each (the two timings, p50/p99 so far, hit or miss), then ``done`` (the key's PTTL,
    the hit ratio, the full statistics) or ``error``."""
    services = _services(request)
    run, first = await run_in_threadpool(_start, services, body)
    return StreamingResponse(_stream(services, run, first), media_type="application/x-ndjson")


@router.get("/api/lab/queries")
def queries(request: Request) -> dict[str, Any]:
    """The named queries with their parameters and defaults (read from the data), and the
    limits of a run."""
    services = _services(request)
    listed = []
    with services.database() as db:
        for query in NAMED_QUERIES.values():
            defaults = bind(db, query, {})
            listed.append(
                {
                    "name": query.name,
                    "title": query.title,
                    "params": [
                        {
                            "name": p.name,
                            "kind": p.kind,
                            "help": p.help,
                            "default": _text(defaults[p.name]),
                        }
                        for p in query.params
                    ],
                }
            )
    return {
        "queries": listed,
        "runs": {"min": RUNS_MIN, "max": RUNS_MAX, "default": RUNS_DEFAULT},
        "ttl": {"min": TTL_MIN, "max": TTL_MAX, "default": TTL_DEFAULT},
        "scope": lab_keys(services).prefix,
        "measured_by": MEASURED_BY,
    }


@router.get("/api/lab/ttl")
def ttl(
    request: Request, key: Annotated[str, Query(max_length=300, description="A key of the lab")]
) -> dict[str, Any]:
    """The key's PTTL in milliseconds: -2 when it is gone, -1 when it has no TTL."""
    services = _services(request)
    key = _lab_key(services, key)
    return {"key": key, "pttl_ms": _pttl(services, key)}


@router.post("/api/lab/expire")
def expire(request: Request, body: KeyIn) -> dict[str, Any]:
    """PEXPIRE the key to 1 ms: it expires as its TTL would, and the next read misses."""
    services = _services(request)
    key = _lab_key(services, body.key)
    with services.valkey_errors():
        existed = bool(services.valkey.pexpire(key, 1))
    return {"key": key, "expired": existed}


@router.post("/api/lab/flush")
def flush(request: Request) -> dict[str, Any]:
    """Delete the lab's keys and no others: SCAN MATCH its scope, UNLINK, on every primary."""
    from flightcache.valkey_client import delete_matching

    services = _services(request)
    match = lab_keys(services).match()
    with services.valkey_errors():
        deleted = delete_matching(services.valkey, match)
    return {"deleted": deleted, "match": match}


@router.get("/lab", response_class=HTMLResponse, include_in_schema=False)
def lab_page(request: Request) -> HTMLResponse:
    body = _BODY.replace("{measured_by}", html.escape(MEASURED_BY))
    return page(request, "Cache lab", body, LAB_SCRIPTS)


LAB_SCRIPTS = ("vendor/uplot/uPlot.iife.min.js", "lab.js")
_BODY = """
<link rel=stylesheet href="/static/vendor/uplot/uPlot.min.css">
<form id=lab-form class="panel lab-form">
  <label>Query <select id=lab-query></select></label>
  <span id=lab-params></span>
  <label>Runs (N) <input id=lab-runs type=number required></label>
  <label>TTL, s <input id=lab-ttl-input type=number required></label>
  <button type=submit class=primary id=lab-run disabled>Run</button>
  <button type=button id=lab-stop disabled>Stop</button>
  <p id=lab-title class=muted></p>
</form>
<div class=row>
  <div class="panel lab-figure">
    <h2 class=db>Database, uncached</h2>
    <p>p50 <span id=lab-db-p50 class="figure db">–</span>
    p99 <span id=lab-db-p99 class=db>–</span></p>
  </div>
  <div class="panel lab-figure">
    <h2 class=cache>Through cache-aside</h2>
    <p>p50 <span id=lab-cache-p50 class="figure cache">–</span>
    p99 <span id=lab-cache-p99 class=cache>–</span></p>
  </div>
  <div class="panel lab-figure">
    <h2>Hit ratio</h2>
    <p><span id=lab-hit-ratio class=figure>–</span> <span id=lab-hits class=muted></span></p>
    <p id=lab-first class=muted></p>
  </div>
</div>
<div class=panel>
  <h2>Latency of every request, and p50 / p99 over the run's last N requests</h2>
  <div id=lab-chart class=lab-chart></div>
  <p id=lab-progress class=muted>The lab runs once when it opens.</p>
</div>
<div class=panel>
  <h2>The key</h2>
  <p><code id=lab-key>–</code></p>
  <p>TTL left <span id=lab-countdown class=figure>–</span></p>
  <p><button type=button id=lab-expire disabled>Expire the key</button>
  <button type=button id=lab-flush>Flush the lab's keys</button>
  <span id=lab-action class=muted></span></p>
</div>
<p class=muted>Each request on each path is timed by {measured_by}. The two paths take
turns going first; each server thread's database connection plans the query once (EXPLAIN,
untimed) before its first timed request, so that loading the server's catalog is not
charged to the database path. Cache-aside is
<code>flightcache/patterns/cache_aside.py</code>, the class
<code>flightcache cache-aside</code> runs; the lab's keys live under
<code id=lab-scope></code>, and the flush deletes those only.</p>
"""
