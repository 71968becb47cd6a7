"""What every demo command shares: its options, opening the servers, rendering.

A demo command is thin: it parses its own options, then hands a pattern
module's demo generator to :func:`run`, which opens the database and Valkey,
traces them, renders each record (rich, or JSON with ``--json``), waits for
Enter between steps with ``--pause``, and deletes the demo's keys at the end
unless ``--keep`` says otherwise.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.undo import signals_end_here

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from flightcache.app import App
    from flightcache.demos.base import Demo, Record

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the steps and figures as one JSON document.")
]
PauseOpt = Annotated[
    bool, typer.Option("--pause", help="Wait for Enter between steps (an instructor's pace).")
]
RepeatOpt = Annotated[
    int,
    typer.Option("--repeat", min=1, max=100_000, help="Samples per contender in timing tables."),
]
KeepOpt = Annotated[
    bool, typer.Option("--keep", help="Leave the demo's keys in Valkey to inspect afterwards.")
]
ParamsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Query parameters as NAME=VALUE; defaults come from the data."),
]
QueryOpt = Annotated[
    str, typer.Option("--query", "-q", help="Query to cache (see `flightcache query list`).")
]
RowsYesOpt = Annotated[
    bool,
    typer.Option(
        "--yes",
        help="Allow changing rows (put back at the end) of a database flightcache did not load.",
    ),
]


def require_ours(found: Any, db: Any, command: str, yes: bool) -> None:
    """A demo that changes rows runs on a database flightcache loaded, unless --yes."""
    from flightcache.errors import DataError

    if yes or found.owner == "flightcache":
        return
    raise DataError(
        f"flightcache {command} changes rows of {db.url.url()}, a database flightcache did"
        " not load",
        hint="it puts them back at the end; pass --yes if that is fine, or use a database"
        " loaded with `flightcache data load`",
    )


@signals_end_here()
def run(
    ctx: typer.Context,
    name: str,
    demo: Demo,
    *,
    as_json: bool,
    pause: bool,
    repeat: int,
    keep: bool = False,
    options: Any = None,
    valkey_optional: bool = False,
    needs_data: bool = True,
    changes_rows: bool = False,
    yes: bool = False,
) -> None:
    """Run ``demo`` against the configured servers and render what it yields.

    ``changes_rows``: the demo changes rows of the dataset (and puts them back), so it
    refuses a database flightcache did not load unless ``yes``. SIGTERM and SIGHUP end
    the demo like Ctrl-C does: its cleanups run before the process exits.
    """
    from flightcache.console import err, out, render_record, styled
    from flightcache.demos.base import DemoContext, Step
    from flightcache.errors import ConnectionFailed, FlightcacheError
    from flightcache.keys import Keys
    from flightcache.trace import Tracer
    from flightcache.undo import Undo, repair_rows, signals_held
    from flightcache.valkey_client import close, delete_matching, unchecked

    application: App = ctx.obj
    db = application.database()
    client: Any = None
    try:
        dataset = ""
        if needs_data:
            from flightcache.data.load import require_dataset

            found = require_dataset(db)
            dataset = found.loaded_at or ""
            if changes_rows:
                require_ours(found, db, name, yes)
        state_dir = application.settings.state_dir
        for line in repair_rows(state_dir, db, dataset):
            err.print(styled("[yellow]{}[/yellow]", line), soft_wrap=True)
        try:
            client = application.valkey()
            valkey_up = True
        except ConnectionFailed as exc:
            if not valkey_optional:
                raise
            err.print(
                styled(
                    "[yellow]Valkey is down:[/yellow] {}; the demo shows the fallback", exc.message
                )
            )
            client = unchecked(application.valkey_url())
            valkey_up = False
        tracer = Tracer()
        tracer.instrument(client)
        keys = Keys(application.settings.key_prefix).scope(name)
        demo_ctx = DemoContext(
            db=tracer.database(db),
            valkey=client,
            keys=keys,
            tracer=tracer,
            repeat=repeat,
            options=options,
            valkey_up=valkey_up,
            undo=Undo(state_dir, db.url, dataset),
        )
        if valkey_up:
            with tracer.paused():
                delete_matching(client, keys.match())  # leftovers of an earlier --keep
        records: list[dict[str, Any]] = []
        number = 0
        steps = _wrapped(demo(demo_ctx), application)
        try:
            for record in steps:
                if as_json:
                    records.append(record.as_dict())
                    continue
                if isinstance(record, Step):
                    number += 1
                    if pause and number > 1:
                        pause = _wait_for_enter()
                render_record(record, number)
        finally:
            with signals_held(), tracer.paused():
                failed = []
                try:
                    steps.close()  # a demo stopped between steps runs its own finally now
                except Exception as exc:
                    failed.append(str(exc).split("\n", 1)[0])
                failed += demo_ctx.run_cleanups()
                for line in failed:
                    err.print(
                        styled("[yellow]could not put back:[/yellow] {}", line), soft_wrap=True
                    )
                if valkey_up and not keep:
                    try:
                        delete_matching(client, keys.match())
                    except Exception as exc:  # Valkey gone mid-demo: say what stays behind
                        err.print(
                            styled("[yellow]could not delete {}:[/yellow] {}", keys.match(), exc)
                        )
        if failed:
            raise FlightcacheError(
                f"{len(failed)} step(s) putting back what the demo changed failed",
                hint="the lines above say which; run the demo again to retry them",
            )
        if as_json:
            document = {
                "demo": name,
                "database": db.dialect,
                "valkey": str(application.valkey_url()),
                "key_prefix": keys.prefix,
                "records": records,
            }
            out.print_json(json.dumps(document, default=str))
        elif keep:
            out.print(f"keys kept: {keys.match()}", style="dim")
    finally:
        if client is not None:
            close(client)
        db.close()


def _wrapped(records: Iterator[Record], application: App) -> Generator[Record, None, None]:
    """The demo's records, with a Valkey failure turned into one clear line."""
    from flightcache.valkey_client import valkey_errors

    with valkey_errors(application.valkey_url):
        yield from records


def _wait_for_enter() -> bool:
    """Wait for Enter; on end of input stop pausing (False)."""
    from flightcache.console import err

    try:
        err.input("[dim]Enter for the next step[/dim] ")
    except EOFError:
        return False
    return True
