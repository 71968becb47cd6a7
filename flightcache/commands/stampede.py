"""`flightcache stampede`: a herd of clients on one expensive key, defence by defence."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands import _demo

# the bounds repeat flightcache.patterns.stampede's, which is imported only when it runs
MAX_CLIENTS = 500
MAX_REBUILD_MS = 5000


def stampede(
    ctx: typer.Context,
    clients: Annotated[
        int,
        typer.Option(
            "--clients",
            min=1,
            max=MAX_CLIENTS,
            help="Concurrent clients (threads) in the herd. At most 500: past a few hundred"
            " threads the run measures Python's scheduler, not the cache.",
        ),
    ] = 50,
    rebuild_ms: Annotated[
        int,
        typer.Option(
            "--rebuild-ms",
            min=0,
            max=MAX_REBUILD_MS,
            help="How long the database sleeps in each rebuild of the key, ms.",
        ),
    ] = 200,
    expiries: Annotated[
        int, typer.Option("--expiries", min=1, max=100, help="Expiries per defence.")
    ] = 3,
    beta: Annotated[
        float,
        typer.Option("--beta", help="XFetch's beta, > 0: above 1 recomputes earlier."),
    ] = 1.0,
    think_ms: Annotated[
        int,
        typer.Option(
            "--think-ms", min=1, max=1000, help="Mean pause between a client's reads, ms."
        ),
    ] = 20,
    db_pool: Annotated[
        int,
        typer.Option(
            "--db-pool", min=1, max=100, help="Database connections the herd shares (a pool)."
        ),
    ] = 10,
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
    from flightcache.patterns.stampede import check_herd, demo

    check_herd(clients, rebuild_ms, beta, expiries)  # --beta has no typer bound: > 0
    _demo.run(
        ctx,
        "stampede",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=1,  # no timing table: the herd's reads are the samples
        keep=keep,
        options={
            "clients": clients,
            "rebuild_ms": rebuild_ms,
            "expiries": expiries,
            "beta": beta,
            "think_ms": think_ms,
            "db_pool": db_pool,
        },
    )
