"""`flightcache stampede`: a herd of clients on one expensive key, defence by defence."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands import _demo
from flightcache.demos.stampede import (
    MAX_CLIENTS,
    MAX_DB_POOL,
    MAX_EXPIRIES,
    MAX_REBUILD_MS,
    MAX_THINK_MS,
    Options,
)


def stampede(
    ctx: typer.Context,
    clients: Annotated[
        int,
        typer.Option(
            "--clients",
            min=1,
            max=MAX_CLIENTS,
            help=f"Concurrent clients (threads) in the herd. At most {MAX_CLIENTS}: past a few"
            " hundred threads the run measures Python's scheduler, not the cache.",
        ),
    ] = Options.clients,
    rebuild_ms: Annotated[
        int,
        typer.Option(
            "--rebuild-ms",
            min=0,
            max=MAX_REBUILD_MS,
            help="How long the database sleeps in each rebuild of the key, ms.",
        ),
    ] = Options.rebuild_ms,
    expiries: Annotated[
        int, typer.Option("--expiries", min=1, max=MAX_EXPIRIES, help="Expiries per defence.")
    ] = Options.expiries,
    beta: Annotated[
        float,
        typer.Option("--beta", help="XFetch's beta, > 0: above 1 recomputes earlier."),
    ] = Options.beta,
    think_ms: Annotated[
        int,
        typer.Option(
            "--think-ms",
            min=1,
            max=MAX_THINK_MS,
            help="Mean pause between a client's reads, ms.",
        ),
    ] = Options.think_ms,
    db_pool: Annotated[
        int,
        typer.Option(
            "--db-pool",
            min=1,
            max=MAX_DB_POOL,
            help="Database connections the herd shares (a pool).",
        ),
    ] = Options.db_pool,
    as_json: _demo.JsonOpt = False,
    pause: _demo.PauseOpt = False,
    keep: _demo.KeepOpt = False,
) -> None:
    """Stampede prevention: a herd of clients on one expensive key as it expires.

    Every client reads the key in a loop while it expires, under five defences
    side by side: none (every client that misses rebuilds), a lock (SET NX PX
    with an owner token, released by a compare-and-delete script, the lease
    renewed while a slow rebuild runs), XFetch probabilistic early expiration
    (Vattani et al., VLDB 2015), XFetch with the lock, and serve-stale while one
    client refreshes. Per defence: database queries per expiry, read latency
    p50/p99/max, stale reads, errors, and the exact commands one client sent.
    Ends with a dead lock holder, a release by a non-owner and a rebuild slower
    than its lease.

    Examples:

    \b
      flightcache stampede
      flightcache stampede --clients 100 --rebuild-ms 500 --expiries 5
      flightcache stampede --beta 2 --json
    """
    from flightcache.demos.stampede import demo

    options = Options(
        clients=clients,
        rebuild_ms=rebuild_ms,
        expiries=expiries,
        beta=beta,
        think_ms=think_ms,
        db_pool=db_pool,
    )
    options.check()  # --beta has no typer bound: > 0, and not NaN
    _demo.run(
        ctx,
        "stampede",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=1,  # no timing table: the herd's reads are the samples
        keep=keep,
        options=options,
    )
