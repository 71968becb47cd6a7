"""`flightcache data ...`: schema, generated data, the real dump, what is loaded."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, groupby
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.app import App
from flightcache.data.tables import COLUMNS

if TYPE_CHECKING:
    from flightcache.data.load import LoadReport
    from flightcache.db import Database

app = typer.Typer(
    help="Create the FlughafenDB schema, load data, and see what is loaded.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

SCALES = ("tiny", "small", "workshop", "full")  # the keys of data.generate.SCALES

# The options that say what a load may do to the tables already there.
Replace = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Replace the FlughafenDB tables flightcache loaded here before: names them and"
        " asks first (--yes skips the question).",
    ),
]
Beside = Annotated[
    bool,
    typer.Option(
        "--beside",
        "--force",
        help="Load into a database that holds other tables too; they are left untouched.",
    ),
]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask before replacing.")]


def confirm(action: str, *, yes: bool) -> None:
    """Ask before ``action`` on the terminal; refuse, in one line, when there is none."""
    from flightcache.errors import DataError

    if yes:
        return
    if not sys.stdin.isatty():
        raise DataError(
            f"not asking on a terminal, so not done: {action}",
            hint="run it in a terminal to be asked, or pass --yes",
        )
    from flightcache.config import scrub
    from flightcache.console import clean

    # the action names the database's URL: shown like all output, password as ***
    typer.confirm(clean(scrub(f"{action}?")), abort=True)


def confirm_replace(db: Database, *, replace: bool, yes: bool) -> None:
    """With --replace over a complete dataset: name what will be emptied, and ask."""
    from flightcache.data.load import info, replaced_tables

    if not (replace and info(db).complete):
        return  # nothing loaded to replace, or an interrupted load to repair
    tables = ", ".join(f"{t} ({n:,} rows)" for t, n in replaced_tables(db) if n)
    confirm(f"replace the FlughafenDB tables in {db.url.url()}: {tables}", yes=yes)


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise typer.BadParameter(
            f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", param_hint="--scale"
        )


def _summary(report: LoadReport, what: str) -> None:
    from flightcache.console import out, styled, table
    from flightcache.measure.duration import human_seconds

    rows: list[list[object]] = [
        [name, f"{n:,}", human_seconds(secs), f"{n / secs:,.0f}" if secs > 0 else "-"]
        for name, n, secs in report.tables
    ]
    total = sum(n for _, n, _ in report.tables)
    rows.append(
        [
            styled("[bold]total[/bold]"),
            f"{total:,}",
            human_seconds(report.seconds),
            f"{total / report.seconds:,.0f}" if report.seconds else "-",
        ]
    )
    out.print(table(what, ["table", "rows", "time", "rows/s"], rows))
    for name, n in report.skipped.items():
        out.print(
            f"[yellow]{n:,} row(s) of {name} were not stored:[/yellow] the database skipped them"
            " with a warning (duplicate keys or values it cannot hold)"
        )


def run_generated_load(
    db: Database, scale: str, seed: int, *, replace: bool, force: bool, yes: bool = False
) -> None:
    """Load a generated dataset with one progress bar per table, then a summary."""
    from rich.progress import TaskID

    from flightcache.console import load_progress, out
    from flightcache.data.load import load_generated, preflight

    preflight(db, replace=replace, force=force)  # refuse before any progress bar is drawn
    confirm_replace(db, replace=replace, yes=yes)
    tasks: dict[str, TaskID] = {}
    with load_progress() as bars:

        def progress(table: str, done: int, expected: int | None) -> None:
            if table not in tasks:
                tasks[table] = bars.add_task(table, total=expected)
            bars.update(tasks[table], completed=done)

        report = load_generated(db, scale, seed, replace=replace, force=force, progress=progress)
        for task in tasks.values():  # flight_log's size is known only at its end
            done = bars.tasks[task].completed
            bars.update(task, total=done, completed=done)
    if report.repaired:
        out.print("the previous load had been interrupted; it is now complete", style="yellow")
    _summary(report, f"loaded scale {scale} (seed {seed}) into {db.url}")


@app.command()
def schema(ctx: typer.Context) -> None:
    """Create FlughafenDB's 14 tables in the configured database.

    Tables that exist already are kept. Tables with FlughafenDB names that
    flightcache did not create stop the command; it never drops them.

    Example:

    \b
      flightcache --db-url mysql://root@127.0.0.1/flughafendb data schema
    """
    from flightcache.console import out
    from flightcache.data.load import create_schema

    application: App = ctx.obj
    db = application.database(create=True)
    try:
        created = create_schema(db)
    finally:
        db.close()
    if created:
        out.print(f"created {len(created)} tables in {db.url}: {', '.join(created)}")
    else:
        out.print(f"the schema is already complete in {db.url}")


@app.command()
def load(
    ctx: typer.Context,
    scale: Annotated[
        str, typer.Option("--scale", help="tiny, small, workshop (default) or full.")
    ] = "workshop",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same rows.")] = 42,
    replace: Replace = False,
    beside: Beside = False,
    yes: Yes = False,
) -> None:
    """Generate FlughafenDB-shaped data and bulk-load it.

    Real airports; made-up airlines, schedules, flights, passengers and bookings,
    skewed toward hubs and big airlines. Deterministic for a scale and a seed. An
    interrupted load never looks complete: the next `data load` repairs it.

    A database that holds other tables needs --beside (they stay as they are);
    a dataset already loaded needs --replace, which names the tables it empties
    and asks first. Tables flightcache did not create are never dropped.

    Examples:

    \b
      flightcache data load
      flightcache data load --scale tiny --seed 7 --replace --yes
    """
    check_scale(scale)
    application: App = ctx.obj
    db = application.database(create=True, loader=True)
    try:
        run_generated_load(db, scale, seed, replace=replace, force=beside, yes=yes)
    finally:
        db.close()


def _read_whole(paths: list[Path], label: str) -> None:
    """Read the whole dump once, with a progress bar, so that it fails before any change."""
    from flightcache.console import bytes_progress
    from flightcache.data.dump import read_dump

    with bytes_progress() as bars:
        task = bars.add_task(f"checking {label}", total=None, rows=0)
        rows = 0

        def on_progress(done: int, total: int) -> None:
            bars.update(task, completed=done, total=total or None, rows=f"{rows:,}")

        for batch in read_dump(paths, on_progress=on_progress):
            rows += len(batch.rows)


@app.command("import")
def import_dump(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="The FlughafenDB MySQL dump, .sql or .sql.gz; or every part of a split"
            " one (flughafendb_large.sql.gz.part-*), in order.",
            metavar="DUMP",
            show_default=False,
        ),
    ],
    replace: Replace = False,
    beside: Beside = False,
    yes: Yes = False,
) -> None:
    """Import the real FlughafenDB MySQL dump (plain or gzipped) into either database.

    Into PostgreSQL the dump is translated on the fly, and emptying the old tables
    and loading the new rows are one transaction: a dump that turns out broken
    leaves the old data. On MySQL, when there is a dataset to replace, the whole
    dump is read once before anything changes. A dump cut short is refused. Rows
    MySQL skips with only a warning are counted and reported.

    Examples:

    \b
      flightcache data import ~/Downloads/flughafendb_large.sql.gz
      flightcache data import ~/Downloads/flughafendb_large.sql.gz.part-*
      flightcache data import dump.sql --replace --yes
    """
    from flightcache.console import bytes_progress, out
    from flightcache.data.dump import RowBatch, mysql_point_to_lonlat, read_dump
    from flightcache.data.load import create_schema, load_tables, preflight
    from flightcache.db import Point
    from flightcache.errors import DataError

    application: App = ctx.obj
    seen = {"rows": 0, "done": 0, "total": 0}
    label = paths[0].name if len(paths) == 1 else paths[0].name.rpartition(".part")[0]

    def on_progress(done: int, total: int) -> None:
        seen["done"], seen["total"] = done, total

    batches = read_dump(paths, on_progress=on_progress)
    first = next(iter(batches), None)  # the file is identified before the database is touched
    if first is None:
        raise DataError(f"{label} holds no FlughafenDB rows")
    db = application.database(create=True, loader=True)
    try:
        before = preflight(db, replace=replace, force=beside)  # before any progress bar
        confirm_replace(db, replace=replace, yes=yes)
        if before.present and db.dialect != "postgresql":
            # MySQL empties a table for good at once: the whole dump must read first
            batches.close()
            _read_whole(paths, label)
            batches = read_dump(paths, on_progress=on_progress)
            first = next(batches)
        create_schema(db)
        with bytes_progress() as bars:
            task = bars.add_task(f"reading {label}", total=None, rows=0)

            def rows_of(run: Iterable[RowBatch]) -> Iterator[Sequence[Any]]:
                """The rows of consecutive batches of one table, points decoded."""
                for batch in run:
                    geo = (
                        batch.columns.index("geolocation") if "geolocation" in batch.columns else -1
                    )
                    seen["rows"] += len(batch.rows)
                    bars.update(
                        task,
                        completed=seen["done"],
                        total=seen["total"] or None,
                        rows=f"{seen['rows']:,}",
                    )
                    for row in batch.rows:
                        point = row[geo] if geo >= 0 else None
                        if isinstance(point, (bytes, bytearray)):
                            lon, lat = mysql_point_to_lonlat(bytes(point))
                            row = (*row[:geo], Point(lon, lat), *row[geo + 1 :])
                        yield row

            def sources() -> Iterator[tuple[str, Sequence[str], Iterable[Sequence[Any]], None]]:
                # one bulk load per run of a table, not one per batch
                for table, run in groupby(chain([first], batches), key=lambda b: b.table):
                    yield table, COLUMNS[table], rows_of(run), None

            report = load_tables(db, sources(), meta={"source": f"import:{label}"})
    finally:
        db.close()
    _summary(report, f"imported {label} into {db.url}")
    out.print("FlughafenDB by Stefan Proell, Eva Zangerle and Wolfgang Gassler, CC BY 4.0")


@app.command()
def info(
    ctx: typer.Context,
    exact: Annotated[
        bool, typer.Option("--exact", help="Count rows now instead of using the load's record.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the loaded dataset: scale, seed, source, state and rows per table.

    Exits non-zero when no complete dataset is loaded.

    Example:

    \b
      flightcache data info --exact
    """
    from flightcache.console import out, table
    from flightcache.data.load import info as dataset_info
    from flightcache.data.load import require_dataset

    application: App = ctx.obj
    db = application.database()
    try:
        found = dataset_info(db, exact=exact)
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "database": str(db.url),
                        "state": found.state,
                        "source": found.source,
                        "scale": found.scale,
                        "seed": found.seed,
                        "rows": found.rows,
                        "loaded_at": found.loaded_at,
                        "load_seconds": found.load_seconds,
                        "other_tables": found.foreign_tables,
                        "complete": found.complete,
                    }
                )
            )
        else:
            title = f"{db.url}: " + (
                f"{found.source} scale {found.scale}, seed {found.seed}"
                if found.source == "generated"
                else str(found.source or "no dataset")
            )
            out.print(
                table(title, ["table", "rows"], [[t, f"{n:,}"] for t, n in found.rows.items()])
            )
            if found.loaded_at:
                out.print(
                    f"state {found.state}; loaded {found.loaded_at} in {found.load_seconds} s"
                )
            if found.foreign_tables:
                out.print(f"other tables here: {', '.join(found.foreign_tables)}")
        require_dataset(db)
    finally:
        db.close()


@app.command()
def drop(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Drop the FlughafenDB tables flightcache created (never any other table).

    Example:

    \b
      flightcache data drop --yes
    """
    from flightcache.console import out
    from flightcache.data.load import drop_schema

    application: App = ctx.obj
    db = application.database()
    try:
        confirm(f"drop the FlughafenDB tables flightcache created in {db.url.url()}", yes=yes)
        dropped = drop_schema(db)
    finally:
        db.close()
    out.print(f"dropped {len(dropped)} tables from {db.url}")
