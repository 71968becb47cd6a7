"""`flightcache workshop`: the chapters, an instructor's runner, and the non-stop tour.

The runner invokes the same commands a learner types, in this process and with
the global options already given (``--db-url``, ``--valkey-url``, ...), so the
tour runs against exactly the servers the rest of flightcache uses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.errors import ExitCode
from flightcache.measure.duration import human_seconds

if TYPE_CHECKING:
    from flightcache.app import App
    from flightcache.workshop import ChapterProgress

app = typer.Typer(
    help="""The workshop: chapters with their minutes and your progress, and a runner.

With no subcommand, lists the chapters.

Examples:

\b
  flightcache workshop
  flightcache workshop show 1
  flightcache workshop run 1
  flightcache workshop tour
""",
    invoke_without_command=True,
    rich_markup_mode=None,
)


def _progress(ctx: typer.Context) -> ChapterProgress:
    from flightcache.workshop import ChapterProgress

    application: App = ctx.obj
    return ChapterProgress(application.settings.state_dir / "workshop-progress.json")


@app.callback()
def listing(ctx: typer.Context) -> None:
    """List the chapters with their minutes, demos and your progress."""
    if ctx.invoked_subcommand is not None:
        return
    from flightcache.console import out, table
    from flightcache.workshop import PATHS, chapters

    progress = _progress(ctx)
    every = chapters()
    rows = [
        [
            str(c.number),
            c.title,
            str(c.minutes) if c.minutes else "",
            str(len(c.demos)) if c.demos else "",
            progress.status(c),
        ]
        for c in every
    ]
    out.print(table("The workshop", ["#", "chapter", "min", "demos", "progress"], rows))
    paths = []
    for path in PATHS:
        numbers = ", ".join(str(c.number) for c in path.chapters(every))
        paths.append([path.name, numbers, str(path.minutes(every)), path.about])
    out.print(table("Paths through it", ["path", "chapters", "min", "for"], paths))
    out.print(
        "`flightcache workshop show N` reads a chapter,"
        " `flightcache workshop run N` steps through its demos.",
        style="dim",
    )


@app.command()
def show(
    ctx: typer.Context,
    chapter: Annotated[str, typer.Argument(help="Chapter number or name, e.g. 1 or leaderboards.")],
) -> None:
    """Render a chapter in the terminal (and remember that you read it).

    Examples:

    \b
      flightcache workshop show 1
      flightcache workshop show leaderboards
    """
    from rich.markdown import Markdown

    from flightcache.console import out
    from flightcache.workshop import find
    from flightcache.workshop_diagrams import for_terminal

    found = find(chapter)
    out.print(Markdown(for_terminal(found.body)))  # Mermaid diagrams drawn as text
    _progress(ctx).mark(found.slug, "read")


@app.command()
def run(
    ctx: typer.Context,
    chapter: Annotated[str, typer.Argument(help="Chapter number or name, e.g. 1.")],
    pause: Annotated[
        bool,
        typer.Option(
            "--pause/--no-pause", help="Wait for Enter between demos and between their steps."
        ),
    ] = True,
) -> None:
    """Run a chapter's demos in order, pausing between steps.

    Each demo is the command the chapter shows, run against the configured
    servers; with --pause (the default) it waits for Enter between steps and
    between demos, at the instructor's pace.

    Examples:

    \b
      flightcache workshop run 1
      flightcache workshop run leaderboards --no-pause
    """
    from flightcache.console import err, out
    from flightcache.errors import UsageError
    from flightcache.workshop import find

    found = find(chapter)
    if not found.demos:
        raise UsageError(
            f"chapter {found.number} ({found.title}) has no demos to run",
            hint=f"read it with `flightcache workshop show {found.number}`",
        )
    progress = _progress(ctx)
    out.print(f"{found.label} ({found.minutes} min, {len(found.demos)} demos)", style="bold")
    for i, demo in enumerate(found.demos, 1):
        if pause and i > 1:
            try:
                err.input(f"[dim]Enter for demo {i}/{len(found.demos)}[/dim] ")
            except EOFError:
                pause = False
        out.rule(f"demo {i}/{len(found.demos)}: flightcache {' '.join(demo)}")
        code = invoke(ctx, demo, pause=pause)
        if code:
            raise typer.Exit(code)
        progress.ran(found.slug, demo)


@app.command()
def tour(
    ctx: typer.Context,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat", min=1, max=1000, help="Samples per contender in each demo's timings."
        ),
    ] = 10,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary/--no-summary",
            help="End with 001's summary table, measured by `flightcache bench run`.",
        ),
    ] = True,
    bench_duration: Annotated[
        float | None,
        typer.Option(
            "--bench-duration",
            min=0.5,
            max=3600,
            help="Measured seconds per summary row. Default: each scenario's own.",
        ),
    ] = None,
) -> None:
    """Run every chapter's demos without pausing; end with the workshop's summary table.

    A chapter's demo that fails is reported and the tour goes on; the exit code
    says whether every demo passed. The summary table is 001's "Performance
    Improvements Achieved", each row timed on this stack by `flightcache bench
    run` (database path and cache path interleaved in one run). Demos that
    change server settings (eviction, memory pressure) run only on the servers
    flightcache started itself, or with their own --yes given in the chapter.

    Examples:

    \b
      flightcache workshop tour
      flightcache workshop tour --repeat 30
      flightcache workshop tour --no-summary
    """
    from flightcache.bench.scenarios import REGISTRY
    from flightcache.console import out, table
    from flightcache.workshop import chapters

    progress = _progress(ctx)
    results: list[list[str]] = []
    started = time.monotonic()
    for chapter in chapters():
        if not chapter.in_tour:
            continue
        for demo in chapter.demos:
            line = "flightcache " + " ".join(demo)
            out.rule(f"{chapter.number}: {line}")
            began = time.monotonic()
            code = invoke(ctx, demo, repeat=repeat)
            took = human_seconds(time.monotonic() - began)
            results.append([str(chapter.number), line, "ok" if code == 0 else f"exit {code}", took])
            if code == 0:
                progress.ran(chapter.slug, demo)
    out.print(table("The tour", ["chapter", "demo", "result", "time"], results))
    failed = sum(1 for r in results if r[2] != "ok")
    out.print(
        f"{len(results)} demos in {human_seconds(time.monotonic() - started)}, {failed} failed",
        style="red" if failed else "green",
    )
    if summary:
        rows = [s.name for s in REGISTRY.values() if s.row]
        out.rule("The workshop's summary table, measured on this stack: flightcache bench run")
        extra = ("--duration", str(bench_duration)) if bench_duration else ()
        code = invoke(ctx, ("bench", "run", *rows, "--no-histogram", *extra))
        if code:
            failed += 1
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def invoke(
    ctx: typer.Context,
    argv: tuple[str, ...],
    *,
    pause: bool = False,
    repeat: int | None = None,
) -> int:
    """Run ``flightcache <argv>`` under the root's options, as if typed; its exit code.

    ``--pause`` and ``--repeat`` are added only to commands that take them. Errors
    are printed as the CLI prints them and become the code, so a tour goes on.
    """
    application: App = ctx.obj
    if application.run is None:
        from flightcache.errors import FlightcacheError

        raise FlightcacheError("this command runs others only under the flightcache CLI")
    given = application.options
    args: list[str] = []
    for flag, value in (
        ("--db-url", given.db_url),
        ("--valkey-url", given.valkey_url),
        ("--state-dir", given.state_dir),
        ("--config", given.config_file),
        ("--key-prefix", given.key_prefix),
    ):
        if value is not None:
            args += [flag, str(value)]
    if ctx.find_root().params.get("traceback"):
        args.append("--traceback")
    demo = list(argv)
    names = _options_of(ctx, demo)
    if pause and "--pause" in names:
        demo.append("--pause")
    if repeat is not None and "--repeat" in names and "--repeat" not in demo:
        demo += ["--repeat", str(repeat)]
    return application.run(args + demo)


def _options_of(ctx: typer.Context, argv: list[str]) -> set[str]:
    """The option names of the command that ``argv`` names (following sub-groups)."""
    root = ctx.find_root()
    command: Any = root.command
    for word in argv:
        if word.startswith("-") or not hasattr(command, "get_command"):
            break
        found = command.get_command(root, word)
        if found is None:
            return set()
        command = found
    return {opt for param in command.params for opt in getattr(param, "opts", [])}
