"""`flightcache room status`: per attendee, what their commands recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.commands._demo import JsonOpt
from flightcache.commands._options import positive

if TYPE_CHECKING:
    from flightcache.app import App


def ago(seconds: float | None, now: float) -> str:
    if seconds is None:
        return "never"
    gone = max(0.0, now - seconds)
    if gone < 90:
        return f"{gone:.0f} s ago"
    if gone < 90 * 60:
        return f"{gone / 60:.0f} min ago"
    return f"{gone / 3600:.1f} h ago"


def table(found: list[dict[str, Any]], now: float) -> Any:
    from rich.table import Table

    from flightcache.exercises.catalogue import EXERCISES

    total = len(EXERCISES)
    t = Table(title=f"the room: {len(found)} attendee(s)", title_justify="left")
    t.add_column("attendee", no_wrap=True)
    t.add_column("last seen", no_wrap=True)
    t.add_column("last command")
    t.add_column("chapter", max_width=22, overflow="ellipsis", no_wrap=True)
    t.add_column("exercises passed")
    t.add_column("failed")
    for r in found:
        name = r["attendee"] if r["ready"] else f"{r['attendee']} (being added)"
        command = r["command"] + ("" if r["exit"] in (None, 0) else f" (exit {r['exit']})")
        passed = f"{len(r['passed'])}/{total}" + (
            f": {', '.join(r['passed'])}" if r["passed"] else ""
        )
        failed = ""
        if r["failed"]:
            last = r["failed"][0]
            failed = f"{len(r['failed'])}, last: {last.get('command', '')}: {last.get('error', '')}"
        t.add_row(
            name,
            ago(r["last_seen"], now),
            command or "-",
            r["chapter"] or "-",
            passed,
            failed or "-",
        )
    if not found:
        t.caption = "no attendees: add them with `flightcache room add`"
    return t


def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", callback=positive, help="Seconds between refreshes (--watch)."),
    ] = 2.0,
    as_json: JsonOpt = False,
) -> None:
    """Show each attendee: last seen, the last command and chapter, exercises passed,
    the demos that failed.

    Read from what the attendees' own commands record in Valkey under their key
    prefix; commands record only under a room account (a config file with a `room`
    key, as `room add` writes). Run it with the instructor's URLs.

    Examples:

    \b
      flightcache room status
      flightcache room status --watch --interval 5
      flightcache room status --json
    """
    from flightcache.console import out
    from flightcache.room.activity import room
    from flightcache.valkey_client import close

    application: App = ctx.obj
    db = application.database()  # one connection each for the whole watch
    try:
        client = application.valkey()
        try:
            if as_json:
                out.print_json(json.dumps(room(db, client)))
            elif not watch:
                out.print(table(room(db, client), time.time()))
            else:
                _watch(lambda: table(room(db, client), time.time()), interval)
        finally:
            close(client)
    finally:
        db.close()


def _watch(draw: Callable[[], Any], interval: float) -> None:
    from rich.live import Live

    from flightcache.console import out

    try:
        with Live(draw(), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(draw(), refresh=True)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends


def register(app: typer.Typer) -> None:
    app.command("status")(status)
