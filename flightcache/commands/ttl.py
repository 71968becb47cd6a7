"""`flightcache ttl`: a TTL per data class, and what jitter does to the expiry cliff."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt
from flightcache.demos.ttl import (
    KEYS_MAX,
    TTL_MAX,
    WATCH_KEYS_MAX,
    WATCH_TTL_MAX,
    Options,
    demo,
)


def ttl(
    ctx: typer.Context,
    keys: Annotated[
        int, typer.Option("--keys", help="Keys per batch (one without, one with jitter).")
    ] = Options.keys,
    ttl_s: Annotated[
        int, typer.Option("--ttl", help="Base TTL of the batches, in seconds.")
    ] = Options.ttl,
    jitter: Annotated[
        float, typer.Option("--jitter", help="Jitter in percent of the TTL, 0 to 100.")
    ] = Options.jitter,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the jitter: same seed, same TTLs.")
    ] = Options.seed,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Wait for the keys to expire and count them each second."),
    ] = Options.watch,
    as_json: JsonOpt = False,
    pause: PauseOpt = False,
    repeat: RepeatOpt = 50,
    keep: KeepOpt = False,
) -> None:
    """TTL per data class, and jitter against the expiry cliff.

    Caches one real value of each data class (airports 24 h, popular routes 1 h,
    delays 5 min, weather 60 s) and reads back TTL and PTTL. Then writes a batch of
    keys with one TTL and a batch with jittered TTLs, reads every PTTL and draws
    when they expire: without jitter they all go in the same second.

    Examples:

    \b
      flightcache ttl
      flightcache ttl --keys 10000 --ttl 3600 --jitter 5
      flightcache ttl --keys 2000 --ttl 10 --watch
    """
    from flightcache.commands import _demo
    from flightcache.errors import ConfigError
    from flightcache.patterns.ttl import JITTER_MAX_PERCENT

    if not 1 <= keys <= KEYS_MAX:
        raise ConfigError(
            f"--keys {keys} is out of range: a batch holds 1 to {KEYS_MAX:,} keys",
            hint="try --keys 1000",
        )
    if not 1 <= ttl_s <= TTL_MAX:
        raise ConfigError(
            f"--ttl {ttl_s} is out of range: a TTL is 1 to {TTL_MAX:,} seconds",
            hint="try --ttl 60",
        )
    if not 0 <= jitter <= JITTER_MAX_PERCENT:
        raise ConfigError(
            f"--jitter {jitter:g} is out of range:"
            f" jitter is 0 to {JITTER_MAX_PERCENT} percent of the TTL",
            hint="try --jitter 10",
        )
    if watch and (ttl_s > WATCH_TTL_MAX or keys > WATCH_KEYS_MAX):
        raise ConfigError(
            f"--watch waits until the keys expire: it takes --ttl up to {WATCH_TTL_MAX} s"
            f" and --keys up to {WATCH_KEYS_MAX:,}",
            hint="try --ttl 10 --watch",
        )
    _demo.run(
        ctx,
        "ttl",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(keys=keys, ttl=ttl_s, jitter=jitter, seed=seed, watch=watch),
    )
