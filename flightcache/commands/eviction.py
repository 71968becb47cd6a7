"""`flightcache eviction`: the same workload under a small maxmemory, policy by policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt
from flightcache.commands._options import positive
from flightcache.demos.eviction import KEYS_MAX, REQUESTS_MAX, Options
from flightcache.errors import FlightcacheError

if TYPE_CHECKING:
    from flightcache.config import Settings


MaxmemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--maxmemory",
        help="maxmemory per primary during the demo: bytes, 512kb, 4mb, 1gb."
        " Default: its used_memory + 4mb.",
    ),
]
YesOpt = Annotated[
    bool,
    typer.Option("--yes", help="Allow reconfiguring a Valkey that flightcache did not start."),
]


def maxmemory_bytes(text: str | None) -> int | None:
    """--maxmemory in bytes (None: the default); a usage error when it is not a size."""
    from flightcache.patterns.eviction import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--maxmemory") from None


def require_consent(
    settings: Settings,
    yes: bool,
    *,
    command: str = "eviction",
    changes: str = "maxmemory and maxmemory-policy",
    why: str = "eviction acts on the whole server, so other keys there could be evicted while it"
    " runs",
) -> None:
    """Reconfigure only flightcache's own Valkey, unless the user said --yes."""
    if settings.embedded_valkey or yes:
        return
    raise FlightcacheError(
        f"flightcache {command} changes {changes} of {settings.valkey_url},"
        " a Valkey that flightcache did not start",
        hint=f"{why} (the settings are put back afterwards); pass --yes if that is fine, or run"
        " it against the embedded stack (`flightcache up`, no --valkey-url)",
    )


def eviction(
    ctx: typer.Context,
    policies: Annotated[
        str,
        typer.Option("--policies", help="Comma-separated maxmemory policies to compare."),
    ] = ",".join(Options.policies),
    maxmemory: MaxmemoryOpt = None,
    keys: Annotated[
        int,
        typer.Option(
            "--keys", callback=positive, help="Bookings to write, one key each.", max=KEYS_MAX
        ),
    ] = Options.keys,
    requests: Annotated[
        int,
        typer.Option(
            "--requests", callback=positive, help="Reads replayed per policy.", max=REQUESTS_MAX
        ),
    ] = Options.requests,
    skew: Annotated[
        float, typer.Option("--skew", callback=positive, help="Zipf exponent of the reads.")
    ] = Options.skew,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of fill order and reads.")
    ] = Options.seed,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 500,
    keep: KeepOpt = False,
) -> None:
    """Compare eviction policies under a small maxmemory: hit ratio, evictions, OOM errors.

    Sets maxmemory just above what Valkey uses now, writes many more bookings than
    fit, and replays the same Zipf-skewed reads (GET; on a miss SET again) under
    each policy. Per policy: hit ratio, evicted_keys (INFO stats), writes refused
    with OOM (noeviction), keys kept and used_memory. maxmemory and
    maxmemory-policy are put back afterwards, however the demo ends. Eviction acts
    on the whole server, so against a Valkey flightcache did not start it needs --yes.

    Examples:

    \b
      flightcache eviction
      flightcache eviction --policies allkeys-lru,allkeys-lfu --skew 0.9
      flightcache eviction --maxmemory 8mb --keys 60000 --json
      flightcache --valkey-url valkey://127.0.0.1:6379 eviction --yes
    """
    from flightcache.app import App
    from flightcache.commands import _demo
    from flightcache.console import err, styled
    from flightcache.demos.eviction import demo
    from flightcache.patterns.eviction import parse_policies

    try:
        chosen = parse_policies(policies)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policies") from None
    limit = maxmemory_bytes(maxmemory)

    application: App = ctx.obj
    require_consent(application.settings, yes)
    err.print(
        styled(
            "[yellow]note:[/yellow] eviction acts on the whole server: while this runs, any key on"
            " it may be evicted or refused, not only flightcache's"
        ),
        soft_wrap=True,
    )
    _demo.run(
        ctx,
        "eviction",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(
            policies=tuple(chosen),
            maxmemory=limit,
            keys=keys,
            requests=requests,
            skew=skew,
            seed=seed,
        ),
    )
