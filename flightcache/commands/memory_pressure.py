"""`flightcache memory-pressure`: Valkey at maxmemory: OOM, eviction, MEMORY DOCTOR, SLOWLOG."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt
from flightcache.commands.eviction import MaxmemoryOpt, YesOpt, maxmemory_bytes, require_consent
from flightcache.demos.memory_pressure import (
    ROWS_MAX,
    ROWS_MIN,
    SLOWER_THAN_MAX,
    SLOWER_THAN_MIN,
    Options,
)


def memory_pressure(
    ctx: typer.Context,
    maxmemory: MaxmemoryOpt = None,
    rows: Annotated[
        int,
        typer.Option(
            "--rows", min=ROWS_MIN, max=ROWS_MAX, help="Bookings read to fill the cache with."
        ),
    ] = Options.rows,
    slower_than: Annotated[
        int,
        typer.Option(
            "--slower-than",
            min=SLOWER_THAN_MIN,
            max=SLOWER_THAN_MAX,
            help="slowlog-log-slower-than during the SLOWLOG part, in microseconds.",
        ),
    ] = Options.slower_than,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    keep: KeepOpt = False,
) -> None:
    """Memory saturation: INFO memory, OOM at maxmemory, eviction, MEMORY DOCTOR, SLOWLOG.

    Sets a small maxmemory with noeviction and fills Valkey with real booking rows
    until it refuses writes (the exact OOM error); a cache-aside read then serves
    from the database instead of failing. Then allkeys-lru, volatile-ttl and
    allkeys-lfu: writes succeed and evicted_keys rises. MEMORY DOCTOR at the limit;
    SLOWLOG with a lowered threshold and two slow commands. Every setting changed
    is put back, however the demo ends; SLOWLOG RESET only on flightcache's own
    Valkey. Against a Valkey flightcache did not start it needs --yes.

    Examples:

    \b
      flightcache memory-pressure
      flightcache memory-pressure --maxmemory 8mb --slower-than 500
      flightcache --valkey-url valkey://127.0.0.1:6379 memory-pressure --yes --json
    """
    from flightcache.app import App
    from flightcache.commands import _demo
    from flightcache.console import err, styled
    from flightcache.demos.memory_pressure import demo

    limit = maxmemory_bytes(maxmemory)
    application: App = ctx.obj
    require_consent(
        application.settings,
        yes,
        command="memory-pressure",
        changes="maxmemory, maxmemory-policy and slowlog-log-slower-than",
        why="at the limit every client's writes are refused or evicted, and a lowered"
        " slowlog threshold fills the shared slow log",
    )
    err.print(
        styled(
            "[yellow]note:[/yellow] memory-pressure acts on the whole server: while it runs, other"
            " clients' writes may be refused (OOM) or their keys evicted"
        ),
        soft_wrap=True,
    )
    _demo.run(
        ctx,
        "memory-pressure",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=1,
        keep=keep,
        options=Options(
            maxmemory=limit,
            rows=rows,
            slower_than=slower_than,
            own_server=application.settings.embedded_valkey,
        ),
    )
