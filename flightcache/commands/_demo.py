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

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flightcache.app import App
    from flightcache.patterns.base import Demo, Record

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


def run(
    ctx: typer.Context,
    name: str,
    demo: Demo,
    *,
    as_json: bool,
    pause: bool,
    repeat: int,
    keep: bool = False,
    options: dict[str, Any] | None = None,
    valkey_optional: bool = False,
    needs_data: bool = True,
) -> None:
    """Run ``demo`` against the configured servers and render what it yields."""
    from flightcache.console import err, out, render_record, styled
    from flightcache.errors import ConnectionFailed
    from flightcache.keys import Keys
    from flightcache.patterns.base import DemoContext, Step
    from flightcache.trace import Tracer
    from flightcache.valkey_client import close, delete_matching, unchecked

    application: App = ctx.obj
    db = application.database()
    client: Any = None
    try:
        if needs_data:
            from flightcache.data.load import require_dataset

            require_dataset(db)
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
            options={**(options or {}), "valkey_up": valkey_up},
        )
        if valkey_up:
            with tracer.paused():
                delete_matching(client, keys.match())  # leftovers of an earlier --keep
        records: list[dict[str, Any]] = []
        number = 0
        try:
            for record in _wrapped(demo(demo_ctx), application):
                if as_json:
                    records.append(record.as_dict())
                    continue
                if isinstance(record, Step):
                    number += 1
                    if pause and number > 1:
                        pause = _wait_for_enter()
                render_record(record, number)
        finally:
            for cleanup in reversed(demo_ctx.cleanups):
                cleanup()
            if valkey_up and not keep:
                with tracer.paused():
                    try:
                        delete_matching(client, keys.match())
                    except Exception as exc:  # Valkey gone mid-demo: say what stays behind
                        err.print(
                            styled("[yellow]could not delete {}:[/yellow] {}", keys.match(), exc)
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


def _wrapped(records: Iterator[Record], application: App) -> Iterator[Record]:
    """The demo's records, with a Valkey failure turned into one clear line."""
    import valkey.exceptions

    from flightcache.valkey_client import wrap

    try:
        yield from records
    except valkey.exceptions.ValkeyError as exc:
        raise wrap(exc, application.valkey_url()) from None


def _wait_for_enter() -> bool:
    """Wait for Enter; on end of input stop pausing (False)."""
    from flightcache.console import err

    try:
        err.input("[dim]Enter for the next step[/dim] ")
    except EOFError:
        return False
    return True
