"""`flightcache query`: the catalogue of expensive queries that Module 1 caches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from flightcache.app import App
    from flightcache.db import Database
    from flightcache.named_queries import Query

app = typer.Typer(
    help="The expensive FlughafenDB queries the workshop caches: list, show, run, explain.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Query name (see `flightcache query list`).")]
ParamsArg = Annotated[
    list[str] | None, typer.Argument(help="Parameters as NAME=VALUE; defaults come from the data.")
]


@app.command("list")
def list_queries() -> None:
    """List the queries with their parameters.

    Examples:

    \b
      flightcache query list
    """
    from flightcache.console import out, table
    from flightcache.named_queries import NAMED_QUERIES

    rows = [
        [q.name, q.title, ", ".join(f"{p.name} ({p.kind})" for p in q.params) or "-"]
        for q in NAMED_QUERIES.values()
    ]
    out.print(table("queries", ["name", "what it answers", "parameters"], rows))


@app.command()
def show(
    ctx: typer.Context,
    name: NameArg,
    dialect: Annotated[
        str | None,
        typer.Option("--dialect", help="mysql or postgresql (default: the configured database's)."),
    ] = None,
) -> None:
    """Print a query's SQL and its parameters.

    Examples:

    \b
      flightcache query show airline_route_analysis
      flightcache query show flight_search --dialect mysql
    """
    from flightcache.console import out
    from flightcache.errors import UsageError
    from flightcache.named_queries import get

    q = get(name)
    if dialect is None:
        application: App = ctx.obj
        dialect = application.db_url().kind
    if dialect not in ("mysql", "postgresql"):
        raise UsageError(f"unknown dialect {dialect!r}", hint="use mysql or postgresql")
    out.print(f"-- {q.name}: {q.title}", style="bold", highlight=False)
    for p in q.params:
        out.print(f"-- %({p.name})s  {p.kind}: {p.help}", style="dim", highlight=False)
    out.print(q.sql(dialect), markup=False, highlight=False, soft_wrap=True)


@app.command()
def run(
    ctx: typer.Context,
    name: NameArg,
    params: ParamsArg = None,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, max=1000, help="Run it this many times and time it.")
    ] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to print.")] = 20,
) -> None:
    """Run a query on the configured database and time it.

    Examples:

    \b
      flightcache query run airline_route_analysis
      flightcache query run flight_search origin=FRA destination=JFK day=2025-06-03
      flightcache query run passenger_bookings passenger_id=42 --repeat 20
    """
    from flightcache.console import out, table
    from flightcache.measure.duration import human_ns
    from flightcache.measure.timing import compare

    with _bound_query(ctx, name, params) as (db, q, bound):
        sql = q.sql(db.dialect)
        result = db.fetch(sql, bound)
        shown = [[_cell(v) for v in row] for row in result.rows[:limit]]
        title = f"{q.name} ({', '.join(f'{k}={v}' for k, v in bound.items())})" if bound else q.name
        out.print(table(title, result.columns, shown))
        more = f", {len(result.rows) - limit:,} not shown" if len(result.rows) > limit else ""
        out.print(f"{len(result.rows):,} rows{more}; {human_ns(result.elapsed_ns)} on {db.dialect}")
        if repeat > 1:
            [stats] = compare({q.name: lambda: db.fetch(sql, bound)}, repeat=repeat, warmup=1)
            out.print(
                f"{stats.n} runs after 1 warm-up: p50 {human_ns(stats.p50)}, "
                f"p95 {human_ns(stats.p95)}, min {human_ns(stats.min)}"
            )


@app.command()
def explain(ctx: typer.Context, name: NameArg, params: ParamsArg = None) -> None:
    """Show the database's plan for a query (EXPLAIN).

    Examples:

    \b
      flightcache query explain airline_route_analysis
      flightcache query explain flight_search origin=FRA destination=JFK
    """
    from flightcache.console import out, table

    with _bound_query(ctx, name, params) as (db, q, bound):
        result = db.fetch("EXPLAIN " + q.sql(db.dialect), bound)
        if result.columns == ["QUERY PLAN"]:  # PostgreSQL: one text line per row
            for (line,) in result.rows:
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            out.print(table(f"EXPLAIN {q.name}", result.columns, [list(r) for r in result.rows]))


@contextmanager
def _bound_query(
    ctx: typer.Context, name: str, params: list[str] | None
) -> Iterator[tuple[Database, Query, dict[str, Any]]]:
    """The database, the query and its parameters, checked before any server is asked."""
    from flightcache.data.load import require_dataset
    from flightcache.named_queries import bind, get, parse_assignments

    q = get(name)
    given = parse_assignments(params or [])
    application: App = ctx.obj
    db = application.database()
    try:
        require_dataset(db)
        yield db, q, bind(db, q, given)
    finally:
        db.close()


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value)
