"""`flightcache data ...`: schema, generated data, the real dump, what is loaded."""

from __future__ import annotations

import json
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


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise typer.BadParameter(
            f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", param_hint="--scale"
        )


def _summary(report: LoadReport, what: str) -> None:
    from flightcache.console import out, styled, table

    rows: list[list[object]] = [
        [name, f"{n:,}", f"{secs:.2f} s", f"{n / secs:,.0f}" if secs > 0 else "-"]
        for name, n, secs in report.tables
    ]
    total = sum(n for _, n, _ in report.tables)
    rows.append(
        [
            styled("[bold]total[/bold]"),
            f"{total:,}",
            f"{report.seconds:.2f} s",
            f"{total / report.seconds:,.0f}" if report.seconds else "-",
        ]
    )
    out.print(table(what, ["table", "rows", "time", "rows/s"], rows))


def run_generated_load(db: Database, scale: str, seed: int, *, replace: bool, force: bool) -> None:
    """Load a generated dataset with one progress bar per table, then a summary."""
    from rich.progress import TaskID

    from flightcache.console import load_progress, out
    from flightcache.data.load import load_generated, preflight

    preflight(db, replace=replace, force=force)  # refuse before any progress bar is drawn
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
def schema(
    ctx: typer.Context,
    force: Annotated[
        bool,
        typer.Option("--force", help="Drop FlughafenDB tables that flightcache did not create."),
    ] = False,
) -> None:
    """Create FlughafenDB's 14 tables in the configured database.

    Tables that exist already are kept. Tables with FlughafenDB names that
    flightcache did not create stop the command, unless --force drops them.

    Example:

    \b
      flightcache --db-url mysql://root@127.0.0.1/flughafendb data schema
    """
    from flightcache.console import out
    from flightcache.data.load import create_schema

    application: App = ctx.obj
    db = application.database(create=True)
    try:
        created = create_schema(db, force=force)
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
    replace: Annotated[
        bool, typer.Option("--replace", help="Load over a dataset that is already loaded.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Load into a database that holds other tables too."),
    ] = False,
) -> None:
    """Generate FlughafenDB-shaped data and bulk-load it.

    Real airports; made-up airlines, schedules, flights, passengers and bookings,
    skewed toward hubs and big airlines. Deterministic for a scale and a seed. An
    interrupted load never looks complete: the next `data load` repairs it.

    Examples:

    \b
      flightcache data load
      flightcache data load --scale tiny --seed 7 --replace
    """
    check_scale(scale)
    application: App = ctx.obj
    db = application.database(create=True, loader=True)
    try:
        run_generated_load(db, scale, seed, replace=replace, force=force)
    finally:
        db.close()


@app.command("import")
def import_dump(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The FlughafenDB MySQL dump, .sql or .sql.gz.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Load over a dataset that is already loaded.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Load into a database that holds other tables too."),
    ] = False,
) -> None:
    """Import the real FlughafenDB MySQL dump (plain or gzipped) into either database.

    Into PostgreSQL the dump is translated on the fly. The file is checked before
    anything in the database changes.

    Example:

    \b
      flightcache data import ~/Downloads/flughafendb_large.sql.gz
    """
    from flightcache.console import bytes_progress, out
    from flightcache.data.dump import RowBatch, mysql_point_to_lonlat, read_dump
    from flightcache.data.load import create_schema, load_tables, preflight
    from flightcache.db import Point
    from flightcache.errors import DataError

    application: App = ctx.obj
    seen = {"rows": 0, "done": 0, "total": 0}

    def on_progress(done: int, total: int) -> None:
        seen["done"], seen["total"] = done, total

    batches = read_dump(path, on_progress=on_progress)
    first = next(iter(batches), None)  # the file is identified before the database is touched
    if first is None:
        raise DataError(f"{path} holds no FlughafenDB rows")
    db = application.database(create=True, loader=True)
    try:
        preflight(db, replace=replace, force=force)  # refuse before any progress bar is drawn
        create_schema(db, force=force)
        with bytes_progress() as bars:
            task = bars.add_task(f"reading {path.name}", total=None, rows=0)

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

            report = load_tables(db, sources(), meta={"source": f"import:{path.name}"})
    finally:
        db.close()
    _summary(report, f"imported {path.name} into {db.url}")
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
        if not yes:
            typer.confirm(f"drop the FlughafenDB tables in {db.url}?", abort=True)
        dropped = drop_schema(db)
    finally:
        db.close()
    out.print(f"dropped {len(dropped)} tables from {db.url}")
