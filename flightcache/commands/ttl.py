"""`flightcache ttl`: a TTL per data class, and what jitter does to the expiry cliff."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands._demo import JsonOpt, KeepOpt, PauseOpt, RepeatOpt

MAX_KEYS = 1_000_000
MAX_TTL = 30 * 86_400
WATCH_MAX_TTL = 120
WATCH_MAX_KEYS = 100_000


def ttl(
    ctx: typer.Context,
    keys: Annotated[
        int, typer.Option("--keys", help="Keys per batch (one without, one with jitter).")
    ] = 1000,
    ttl_s: Annotated[int, typer.Option("--ttl", help="Base TTL of the batches, in seconds.")] = 60,
    jitter: Annotated[
        float, typer.Option("--jitter", help="Jitter in percent of the TTL, 0 to 100.")
    ] = 10.0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the jitter: same seed, same TTLs.")
    ] = 1,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Wait for the keys to expire and count them each second."),
    ] = False,
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
    from flightcache.patterns.ttl import demo

    if not 1 <= keys <= MAX_KEYS:
        raise ConfigError(
            f"--keys {keys} is out of range: a batch holds 1 to {MAX_KEYS:,} keys",
            hint="try --keys 1000",
        )
    if not 1 <= ttl_s <= MAX_TTL:
        raise ConfigError(
            f"--ttl {ttl_s} is out of range: a TTL is 1 to {MAX_TTL:,} seconds",
            hint="try --ttl 60",
        )
    if not 0 <= jitter <= 100:
        raise ConfigError(
            f"--jitter {jitter:g} is out of range: jitter is 0 to 100 percent of the TTL",
            hint="try --jitter 10",
        )
    if watch and (ttl_s > WATCH_MAX_TTL or keys > WATCH_MAX_KEYS):
        raise ConfigError(
            f"--watch waits until the keys expire: it takes --ttl up to {WATCH_MAX_TTL} s"
            f" and --keys up to {WATCH_MAX_KEYS:,}",
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
        options={"keys": keys, "ttl": ttl_s, "jitter": jitter, "seed": seed, "watch": watch},
    )
