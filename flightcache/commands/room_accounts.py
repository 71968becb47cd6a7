"""`flightcache room add`, `room remove`, `room list`: the attendees' accounts on the
instructor's servers (the logic is flightcache.room.accounts)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flightcache.app import App
from flightcache.commands._options import positive

if TYPE_CHECKING:
    from flightcache.room import Attendee
    from flightcache.room.accounts import Account, Room

Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder of the attendees' config files (default: the state directory's room/).",
    ),
]


def _room(application: App, out: Path | None, host: str | None = None, jobs: int = 1) -> Room:
    from flightcache.room.accounts import CONFIG_DIR, Room

    folder = out if out is not None else application.settings.state_dir / CONFIG_DIR
    settings = application.settings
    if host is None and (settings.embedded_db or settings.embedded_valkey):
        host = application.stack.listening()  # `up --listen`: where the room reaches it
    return Room(
        application.db_url(),
        application.valkey_url(),
        folder.expanduser().absolute(),
        host=host,
        jobs=jobs,
    )


def _card(account: Account) -> str:
    """One attendee's card: the only place their passwords are printed."""
    name = account.attendee.name
    rows = [
        f"┌─ flightcache room: {name} " + "─" * max(4, 56 - len(name)),
        f"│ room        {name}",
        f"│ key prefix  {account.attendee.key_prefix}",
        "│ set these two (or use the config file below):",
        f"│   FLIGHTCACHE_DB_URL={account.db_url.url(redact=False)}",
        f"│   FLIGHTCACHE_VALKEY_URL={account.valkey_url.url(redact=False)}",
        f"│   FLIGHTCACHE_KEY_PREFIX={account.attendee.key_prefix}",
        f"│   FLIGHTCACHE_ROOM={name}",
    ]
    if account.config_file is not None:
        rows.append(f"│ or: FLIGHTCACHE_CONFIG={account.config_file} flightcache doctor")
    rows.append("└" + "─" * 70)
    return "\n".join(rows) + "\n"


def add(
    ctx: typer.Context,
    attendees: Annotated[
        list[str] | None,
        typer.Argument(help="Attendee names: a lowercase letter, then letters, digits or _."),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            callback=positive,
            max=500,
            help="Add N attendees named attendee01, attendee02, ... after the highest there.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="The host the cards name: your address in the room (default: the address"
            " of `flightcache up --listen`, else the host of your own URLs).",
        ),
    ] = None,
    out: Out = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            callback=positive,
            max=16,
            help="Attendees made at once, each on its own database connection.",
        ),
    ] = 2,
    cards: Annotated[
        bool,
        typer.Option("--cards/--no-cards", help="Print a card per attendee (with passwords)."),
    ] = True,
) -> None:
    """Add attendees: per attendee a database account and a Valkey ACL user on your servers.

    Run it with your own URLs (a database holding the loaded dataset, a Valkey user that
    may run ACL SETUSER). Each attendee gets a PostgreSQL schema (MySQL/MariaDB: a
    database) and a role that owns only it, reading the shared dataset through views
    and writing their own copies of the tables the demos write; a Valkey user confined
    to the keys and channels under room:NAME:, without the commands that change the
    server for everybody (so the eviction and memory-pressure demos refuse, in one
    line). SCAN still shows every attendee's key names, not their values.

    A card per attendee is printed (the only place their passwords appear) and a config
    file written (0600): FLIGHTCACHE_CONFIG=alice.toml flightcache ... just works. An
    add that was killed is completed by the next one.

    Examples:

    \b
      flightcache room add alice bob
      flightcache room add --count 40 --host 192.168.1.10 --out ./cards
      FLIGHTCACHE_CONFIG=./cards/alice.toml flightcache cache-aside
    """
    from flightcache.console import load_progress
    from flightcache.errors import UsageError
    from flightcache.room import Attendee, check_name, numbered
    from flightcache.room.accounts import NotAdded

    application: App = ctx.obj
    if bool(attendees) == (count is not None):
        raise UsageError(
            "name the attendees, or give --count N (not both)",
            hint="e.g. `flightcache room add alice bob` or `flightcache room add --count 40`",
        )
    names = [check_name(n) for n in attendees or []]
    room = _room(application, out, host, jobs)
    if count is not None:
        names = numbered(count, start=room.next_number())
    progress = load_progress()
    with progress:
        task = progress.add_task("attendees", total=len(names))

        def step(what: str, attendee: Attendee) -> None:
            if what == "ready":
                progress.advance(task)

        def planned(total: int) -> None:
            progress.update(task, total=total)

        failure: NotAdded | None = None
        try:
            accounts, skipped = room.add(
                [Attendee(n) for n in names], progress=step, planned=planned
            )
        except NotAdded as exc:  # the cards of those made still count: their passwords
            failure, accounts, skipped = exc, exc.accounts, exc.skipped
    _show(accounts, skipped, room, cards=cards)
    if failure is not None:
        raise failure


def _show(accounts: list[Account], skipped: list[str], room: Room, *, cards: bool) -> None:
    from flightcache.console import err, styled

    for line in skipped:
        err.print(styled("[yellow]{}[/yellow]", line), soft_wrap=True)
    for account in accounts:
        if account.repaired:
            err.print(
                styled(
                    "[yellow]{}: an earlier add was killed; made again[/yellow]",
                    account.attendee.name,
                )
            )
        if cards:
            sys.stdout.write(_card(account))
    sys.stdout.flush()
    if accounts:
        err.print(
            styled("{} attendee(s) added; config files in {}", len(accounts), str(room.out_dir)),
            soft_wrap=True,
        )


def remove(
    ctx: typer.Context,
    attendees: Annotated[list[str] | None, typer.Argument(help="Attendee names.")] = None,
    everyone: Annotated[
        bool, typer.Option("--all", help="Remove every attendee registered here.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
    out: Out = None,
) -> None:
    """Remove attendees and everything of theirs, and nothing else.

    Their schema or database and role or user, their Valkey ACL user on every primary,
    their keys (SCAN MATCH room:NAME:* and UNLINK on every primary) and their config
    file; then their row in the room's list. A half-added attendee (an add that was
    killed) is removed too.

    Examples:

    \b
      flightcache room remove alice
      flightcache room remove --all --yes
    """
    from flightcache.commands.data import confirm
    from flightcache.console import err, styled
    from flightcache.errors import UsageError
    from flightcache.room import check_name

    application: App = ctx.obj
    if bool(attendees) == everyone:
        raise UsageError(
            "name the attendees, or give --all (not both)",
            hint="e.g. `flightcache room remove alice` or `flightcache room remove --all`",
        )
    names = None if everyone else [check_name(n) for n in attendees or []]
    room = _room(application, out)
    chosen = room.removable(names)
    if not chosen and not room.half_added():
        err.print("nobody to remove")
        return
    shown = ", ".join(a.name for a in chosen) or "the half-added attendees"
    confirm(f"remove {shown} and everything of theirs from {room.db_url.url()}", yes=yes)

    def said(attendee: Attendee) -> None:
        err.print(styled("removed {}", attendee.name))

    done = room.remove(chosen, progress=said)
    err.print(styled("{} attendee(s) removed", len(done)))


def list_attendees(
    ctx: typer.Context,
    out: Out = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the attendees: ready or not, when added, and what of theirs exists.

    Examples:

    \b
      flightcache room list
      flightcache room list --json
    """
    from flightcache.console import out as console
    from flightcache.console import table

    application: App = ctx.obj
    room = _room(application, out)
    rows = room.list()
    if as_json:
        doc = [
            {
                "name": r.name,
                "state": r.state,
                "created_at": str(r.created_at) if r.created_at else None,
                "database": r.db_object,
                "database_user": r.db_user,
                "valkey_user_nodes": r.valkey_users,
                "primaries": r.primaries,
                "config_file": str(r.config_file) if r.config_file else None,
            }
            for r in rows
        ]
        console.print(json.dumps(doc, indent=2), soft_wrap=True)
        return
    if not rows:
        console.print("nobody in the room yet: `flightcache room add NAME...`")
        return
    yes_no = {True: "yes", False: "no"}
    console.print(
        table(
            f"the room on {room.db_url.url()}",
            ["attendee", "state", "added", "schema/db", "role/user", "ACL user", "config"],
            [
                [
                    r.name,
                    r.state,
                    str(r.created_at or "-"),
                    yes_no[r.db_object],
                    yes_no[r.db_user],
                    f"{r.valkey_users}/{r.primaries}",
                    str(r.config_file or "-"),
                ]
                for r in rows
            ],
        )
    )
    if any(r.state == "half-added" for r in rows):
        console.print(
            "half-added: an add that was killed; the next `room add` completes it,"
            " `room remove NAME` removes it"
        )


def register(app: typer.Typer) -> None:
    app.command("add")(add)
    app.command("remove")(remove)
    app.command("list")(list_attendees)
