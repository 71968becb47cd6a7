"""`flightcache session`: 001's session life cycle on hashes, narrated and timed."""

from __future__ import annotations

from typing import Annotated

import typer

from flightcache.commands import _demo
from flightcache.demos.session import MAX_TTL_S, MIN_TTL_S, Options


def session(
    ctx: typer.Context,
    user: Annotated[
        int | None,
        typer.Option(
            "--user",
            min=1,
            help="Passenger id who logs in. Default: the passenger of the first booking.",
        ),
    ] = Options.user,
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl",
            min=MIN_TTL_S,
            max=MAX_TTL_S,
            help="Session lifetime after the last activity, seconds (001: 1800). At least"
            " 300, so that the session outlives the longest timing run.",
        ),
    ] = Options.ttl,
    as_json: _demo.JsonOpt = False,
    pause: _demo.PauseOpt = False,
    repeat: _demo.RepeatOpt = 50,
    keep: _demo.KeepOpt = False,
    yes: _demo.RowsYesOpt = False,
) -> None:
    """Sessions: a login as a hash with a sliding expiry, from login to logout.

    A real passenger logs in (a token from `secrets`, a CSRF token, the
    browser's fingerprint; HSET and PEXPIRE in one script); searches and selects
    a real flight; goes through checkout with a seat held in a field that
    expires on its own (HSETEX, on Valkey 9); submits a form with the right CSRF
    token and a forged one; shows the token from another browser; slides the
    expiry; continues on a phone; is counted in the day's set (SADD, SCARD);
    and logs out (DEL, SREM). Valkey going away during a read is shown too.
    The same session is stored in a database table, and reading it there is
    timed against HGETALL. That table (flightcache_session) is created in a
    database flightcache did not load only with --yes; its row goes at the end.

    Examples:

    \b
      flightcache session
      flightcache session --user 42 --ttl 600
      flightcache session --repeat 500 --json
    """
    from flightcache.demos.session import demo

    _demo.run(
        ctx,
        "session",
        demo,
        as_json=as_json,
        pause=pause,
        repeat=repeat,
        keep=keep,
        options=Options(user=user, ttl=ttl),
        changes_rows=True,
        yes=yes,
    )
