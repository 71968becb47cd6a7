"""`flightcache exercise`: self-paced exercises with checks that run for real.

``start`` copies an exercise to a folder the learner owns, ``check`` runs its
checks against the configured database and Valkey, ``solution`` shows the
reference; progress is remembered in the state directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flightcache.commands._demo import JsonOpt
from flightcache.errors import ExitCode

if TYPE_CHECKING:
    from flightcache.app import App
    from flightcache.exercises.catalogue import Exercise
    from flightcache.exercises.progress import ExerciseProgress
    from flightcache.exercises.runner import ExerciseReport

DEFAULT_DIR = Path("flightcache-exercises")

app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Self-paced exercises: complete a function, then let real checks judge it.",
)

NameArg = Annotated[
    str, typer.Argument(help="Exercise name (flightcache exercise list shows them).")
]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        envvar="FLIGHTCACHE_EXERCISES_DIR",
        show_envvar=True,
        help="Your exercises folder. Default: where `start` put the file,"
        " else ./flightcache-exercises.",
    ),
]


def _progress(ctx: typer.Context) -> ExerciseProgress:
    from flightcache.exercises.progress import ExerciseProgress

    application: App = ctx.obj
    return ExerciseProgress(application.settings.state_dir)


def _learner_file(progress: ExerciseProgress, exercise: Exercise, directory: Path | None) -> Path:
    if directory is not None:
        return (directory / exercise.filename).absolute()
    entry = progress.entries.get(exercise.name)
    if entry is not None:
        return Path(entry.file)
    return (DEFAULT_DIR / exercise.filename).absolute()


@app.command("list")
def list_exercises(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the exercises, each with its topic and your progress.

    Status is "not started", "started" or "passed" (every check passed once);
    "last check" is the score of your latest `flightcache exercise check`.

    Examples:

    \b
      flightcache exercise list
      flightcache exercise list --json
    """
    from flightcache.console import out, table
    from flightcache.exercises.catalogue import EXERCISES

    progress = _progress(ctx)
    rows = []
    for exercise in EXERCISES.values():
        entry = progress.entries.get(exercise.name)
        rows.append(
            {
                "name": exercise.name,
                "topic": exercise.topic,
                "status": progress.status(exercise.name),
                "last_check": entry.last_check if entry else "",
                "file": entry.file if entry else "",
            }
        )
    if as_json:
        out.print_json(json.dumps({"exercises": rows, "progress_file": str(progress.path)}))
        return
    out.print(
        table(
            "exercises",
            ["name", "topic", "status", "last check"],
            [[r["name"], r["topic"], r["status"], r["last_check"] or "-"] for r in rows],
        )
    )
    out.print("start one: flightcache exercise start NAME", style="dim")


@app.command("start")
def start(
    ctx: typer.Context,
    name: NameArg,
    directory: DirOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace your file with a fresh copy (the old one is kept as .bak)."
        ),
    ] = False,
) -> None:
    """Copy an exercise into your exercises folder, ready to edit.

    The file lands in ./flightcache-exercises/ (or --dir, or
    FLIGHTCACHE_EXERCISES_DIR). Write your code between its `# START <name>` and
    `# END <name>` markers, then run `flightcache exercise check NAME`. An
    existing file is never overwritten unless --force.

    Examples:

    \b
      flightcache exercise start cache-aside
      flightcache exercise start sessions --dir ~/work/exercises
      flightcache exercise start leaderboard --force
    """
    import shutil

    from flightcache.console import out
    from flightcache.errors import ConfigError, UsageError
    from flightcache.exercises.catalogue import get, starter_path

    exercise = get(name)
    folder = (directory or DEFAULT_DIR).expanduser().absolute()
    target = folder / exercise.filename
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists: your work on {exercise.name} is not overwritten",
            hint=f"check it with `flightcache exercise check {exercise.name}`, or pass --force"
            " for a fresh copy (the old file is kept as .bak)",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.copy2(target, target.with_name(target.name + ".bak"))
        shutil.copyfile(starter_path(exercise), target)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target}: {exc.strerror}",
            hint="choose a folder you can write with --dir",
        ) from None
    _progress(ctx).started(exercise.name, target)
    out.print(f"started {exercise.name}: {target}")
    out.print(
        f"write your code between '{exercise.start_marker}' and '{exercise.end_marker}',"
        f" then run: flightcache exercise check {exercise.name}"
    )


@app.command("check")
def check(
    ctx: typer.Context,
    name: NameArg,
    directory: DirOpt = None,
    timeout: Annotated[
        int, typer.Option("--timeout", min=1, max=300, help="Seconds each check may run.")
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Run an exercise's checks on your file, against the live database and Valkey.

    Each check calls your functions with real clients and reports passed or
    failed, with what is wrong, a hint, and the line of your file. Your code runs
    in a separate process with resource limits, each check with a time limit,
    under a key prefix of its own (a Valkey ACL user allowed nothing else and no
    dangerous command, where the server permits) and, for SQL, a database role
    that reads the dataset and writes only its own scratch tables; touching other
    keys fails the run. Checks delete their keys, the ACL user and the role, and
    sweep what a killed run left. Exit code 1 when a check failed.

    Examples:

    \b
      flightcache exercise check cache-aside
      flightcache exercise check write-behind --timeout 30
      flightcache exercise check leaderboard --json
    """
    from flightcache.errors import UsageError
    from flightcache.exercises.catalogue import get
    from flightcache.exercises.runner import run

    application: App = ctx.obj
    exercise = get(name)
    progress = _progress(ctx)
    file = _learner_file(progress, exercise, directory)
    if not file.is_file():
        raise UsageError(
            f"you have not started {exercise.name}: {file} does not exist",
            hint=f"run `flightcache exercise start {exercise.name}`",
        )
    db = None
    try:
        if exercise.uses_db:
            db = application.database()
            if exercise.needs_data:
                from flightcache.data.load import require_dataset

                require_dataset(db)
        report = run(
            exercise,
            file,
            valkey_url=application.valkey_url(),
            db=db,
            key_prefix=application.settings.key_prefix,
            timeout=timeout,
            state_dir=application.settings.state_dir,
        )
    finally:
        if db is not None:
            db.close()
    done, total = report.score
    progress.checked(exercise.name, file, done, total)
    if as_json:
        from flightcache.console import out

        out.print_json(json.dumps(report.as_dict()))
    else:
        _render(report, progress)
    if not report.passed:
        raise typer.Exit(ExitCode.FAILED)


def _render(report: ExerciseReport, progress: ExerciseProgress) -> None:
    from flightcache.console import out, styled
    from flightcache.exercises.catalogue import EXERCISES

    if report.swept:
        out.print("removed what a killed check run left: " + ", ".join(report.swept), style="dim")
    out.print(styled("[bold]{}[/bold]: {}", report.exercise, report.file))
    previous: tuple[str, str, str] | None = None
    for result in report.results:
        if result.passed:
            out.print(styled("  [green]✓ passed[/green]  {}", result.title))
            continue
        out.print(styled("  [red]✗ failed[/red]  {}", result.title))
        said = (result.message, result.hint, result.where)
        if said == previous:
            out.print("      the same as above", style="dim")
            continue
        previous = said
        out.print(f"      {result.message}", soft_wrap=True)
        if result.hint:
            out.print(styled("      [dim]hint:[/dim] {}", result.hint), soft_wrap=True)
        if result.where:
            out.print(styled("      [dim]at[/dim] {}", result.where), soft_wrap=True)
    if report.output.strip():
        out.print("your code printed:", style="dim")
        out.print(report.output.rstrip(), style="dim", soft_wrap=True)
    done, total = report.score
    colour = "green" if report.passed else "red"
    out.print(f"{done}/{total} checks passed", style=colour)
    out.print(report.note, style="dim")
    if report.passed:
        following = [n for n in EXERCISES if progress.status(n) != "passed"]
        if following:
            out.print(f"next: flightcache exercise start {following[0]}")


@app.command("solution")
def solution(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Show it without asking.")] = False,
) -> None:
    """Show an exercise's reference solution, after asking whether you are sure.

    Prints the code that goes between the exercise's markers. Working it out
    yourself teaches more; the checks' hints say what is wrong without giving it
    away. --yes skips the question (needed when stdin is not a terminal).

    Examples:

    \b
      flightcache exercise solution cache-aside
      flightcache exercise solution stampede-lock --yes
    """
    from rich.syntax import Syntax

    from flightcache.console import out
    from flightcache.errors import UsageError
    from flightcache.exercises.catalogue import get, solution_code

    exercise = get(name)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "showing a solution asks for confirmation, and stdin is not a terminal",
                hint=f"pass --yes: flightcache exercise solution {exercise.name} --yes",
            )
        if not typer.confirm(
            f"Show the reference solution of {exercise.name}? Working it out teaches more",
            default=False,
        ):
            out.print("not shown")
            return
    code = solution_code(exercise)
    _progress(ctx).solution_shown(exercise.name)
    out.print(f"{exercise.start_marker}", style="dim")
    out.print(Syntax(code.rstrip(), "python", theme="ansi_dark", background_color="default"))
    out.print(f"{exercise.end_marker}", style="dim")
