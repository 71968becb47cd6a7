"""`flightcache up`, `down` and `status`: the embedded stack."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flightcache.app import App
from flightcache.commands._options import port
from flightcache.commands.data import SCALES
from flightcache.errors import ExitCode


def up(
    ctx: typer.Context,
    cluster: Annotated[
        int | None,
        typer.Option("--cluster", min=1, max=16, help="Run Valkey as an N-node local cluster."),
    ] = None,
    standalone: Annotated[
        bool, typer.Option("--standalone", help="Run Valkey as one node (undoes --cluster).")
    ] = False,
    valkey_port: Annotated[
        int | None,
        typer.Option("--valkey-port", callback=port, help="Valkey port (default: a free one)."),
    ] = None,
    pg_port: Annotated[
        int | None,
        typer.Option("--pg-port", callback=port, help="PostgreSQL port (default: a free one)."),
    ] = None,
    scale: Annotated[
        str,
        typer.Option(
            "--scale", help=f"Dataset to load when the database is empty: {', '.join(SCALES)}."
        ),
    ] = "workshop",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated dataset.")] = 42,
    no_load: Annotated[
        bool, typer.Option("--no-load", help="Start the servers, load nothing.")
    ] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="ADDRESS",
            help="Also listen on this IPv4 address of this machine, for a room"
            " (`local`: 127.0.0.1 only again). Kept until changed.",
        ),
    ] = None,
) -> None:
    """Start the embedded Valkey and PostgreSQL; load the dataset if the database is empty.

    Servers keep running after the command ends, so every later command shares
    them; `up` again does nothing but report. Both listen on 127.0.0.1 only and
    want passwords that `up` generates and keeps in the state directory (0600);
    flightcache reads them itself. A URL you configured
    (FLIGHTCACHE_DB_URL, FLIGHTCACHE_VALKEY_URL) replaces that embedded server.

    For a room (`flightcache room add`), --listen ADDRESS makes both servers listen
    on that address of this machine too, so attendees' laptops reach them; every
    login still needs a password (the attendees get their own, confined accounts).

    Examples:

    \b
      flightcache up
      flightcache up --cluster 3     # Valkey as a 3-node cluster
      flightcache up --scale tiny --no-load
      flightcache up --listen 192.168.1.20   # the instructor's server for a room
    """
    from flightcache.commands.data import check_scale, run_generated_load
    from flightcache.console import err, out, styled
    from flightcache.data.load import info
    from flightcache.measure.duration import human_ns
    from flightcache.platforms import advice, gaps

    application: App = ctx.obj
    check_scale(scale)
    settings = application.settings
    if cluster is not None and standalone:
        raise typer.BadParameter("--cluster and --standalone exclude each other")
    wanted = [
        s
        for s, on in (("valkey", settings.embedded_valkey), ("postgres", settings.embedded_db))
        if on
    ]
    missing = gaps(wanted)
    start_valkey = settings.embedded_valkey and "valkey" not in missing
    start_postgres = settings.embedded_db and "postgres" not in missing
    # both URLs configured: nothing starts, but the state directory is still checked
    # (and refused when it holds someone else's files), where the stack can run at all
    check_only = not wanted and not gaps(["valkey"])
    if start_valkey or start_postgres or check_only:
        if listen is not None:
            from flightcache.stack import check_listen

            listen = check_listen(listen)
        if settings.valkey_url is None and settings.db_url is None:
            out.print(f"state directory: {settings.state_dir}")
        report = application.stack.up(
            listen=listen,
            cluster=0 if standalone else cluster,
            valkey_port=valkey_port,
            pg_port=pg_port,
            start_valkey=start_valkey,
            start_postgres=start_postgres,
        )
        for step, seconds in report.steps:
            out.print(styled("  {} [dim]({})[/dim]", step, human_ns(seconds * 1e9)))
    if "postgres" not in missing:
        db_url = application.db_url()
        out.print(f"database: {db_url}" + ("" if settings.embedded_db else " (configured)"))
    if "valkey" not in missing:
        out.print(
            f"valkey:   {application.valkey_url()}"
            + ("" if settings.embedded_valkey else " (configured)")
        )
    room = application.stack.listening() if start_valkey or start_postgres else None
    if room:
        err.print(
            styled(
                "[yellow]listening on {} too:[/yellow] the room's laptops reach the embedded"
                " servers there, each login with its password; `flightcache up --listen local`"
                " undoes it",
                room,
            )
        )
    if missing:
        err.print(styled("[yellow]{}[/yellow]", advice(missing)), soft_wrap=True)
    if no_load or "postgres" in missing:
        if len(missing) == len(wanted) and wanted:
            raise typer.Exit(ExitCode.STACK)  # nothing could start: say so in the exit code
        return
    db = application.database(create=True, loader=True)
    try:
        found = info(db)
        if found.complete:
            rows = found.rows.get("booking", 0)
            out.print(
                f"dataset: {found.source} {found.scale or ''} ({rows:,} bookings) already loaded"
            )
            return
        if found.foreign_tables and not found.present:
            err.print(
                styled("[yellow]not loading:[/yellow] {} holds other tables; ", db_url)
                + "run `flightcache data load --force` to load beside them"
            )
            return
        run_generated_load(db, scale, seed, replace=True, force=False)
    finally:
        db.close()


def down(ctx: typer.Context) -> None:
    """Stop the embedded servers. Their data stays for the next `up`.

    Only the servers flightcache started in the state directory are signalled:
    their pidfile, executable and start time must agree.

    Example:

    \b
      flightcache down
    """
    from flightcache.console import out

    application: App = ctx.obj
    stopped = application.stack.down()
    if stopped:
        for what in stopped:
            out.print(f"stopped {what}")
    else:
        out.print("nothing was running")


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what runs where: pid, port, version, data directory, memory.

    Example:

    \b
      flightcache status --json
    """
    from flightcache.console import human_bytes, out, styled, table

    application: App = ctx.obj
    settings = application.settings
    rows = application.stack.status()
    if as_json:
        payload = {
            "state_dir": str(settings.state_dir),
            "db_url": str(settings.db_url) if settings.db_url else None,
            "valkey_url": str(settings.valkey_url) if settings.valkey_url else None,
            "servers": [
                {
                    "name": r.name,
                    "running": r.running,
                    "pid": r.pid,
                    "port": r.port,
                    "version": r.version,
                    "data_dir": str(r.data_dir),
                    "memory_bytes": r.memory,
                    "note": r.note,
                }
                for r in rows
            ],
        }
        out.print_json(json.dumps(payload))
        return
    out.print(
        table(
            f"embedded stack in {settings.state_dir}",
            ["server", "state", "pid", "port", "version", "data directory", "memory"],
            [
                [
                    r.name,
                    styled("[green]running[/green]" if r.running else "[red]stopped[/red]"),
                    r.pid,
                    r.port,
                    r.version,
                    r.data_dir,
                    human_bytes(r.memory),
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        if r.running and r.note:
            out.print(styled("[yellow]{}:[/yellow] {}", r.name, r.note))
    for key, label in (("db_url", "database"), ("valkey_url", "valkey")):
        value = getattr(settings, key)
        source = settings.sources.get(key, "")
        if value is not None:
            out.print(f"{label}: {value} (from {source}; the embedded one is not used)")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Stack")(up)
    app.command(rich_help_panel="Stack")(down)
    app.command(rich_help_panel="Stack")(status)
