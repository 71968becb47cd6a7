"""The root Typer app: global options, the sub-apps, and the one error boundary.

Every error a person can act on is a FlightcacheError raised somewhere below; it
is caught here only, printed as one red line and a hint on stderr, and turned
into the class's exit code. No traceback unless ``--traceback``.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flightcache import __version__
from flightcache.app import App, GlobalOptions
from flightcache.commands import bench as bench_commands
from flightcache.commands import cache_aside as cache_aside_commands
from flightcache.commands import data as data_commands
from flightcache.commands import eviction as eviction_commands
from flightcache.commands import exercise as exercise_commands
from flightcache.commands import hit_ratio as hit_ratio_commands
from flightcache.commands import leaderboard as leaderboard_commands
from flightcache.commands import query as query_commands
from flightcache.commands import room as room_commands
from flightcache.commands import room_accounts as room_accounts_commands
from flightcache.commands import room_pack as room_pack_commands
from flightcache.commands import room_status as room_status_commands
from flightcache.commands import stack as stack_commands
from flightcache.commands import tools as tool_commands
from flightcache.commands import workshop as workshop_commands
from flightcache.commands import write_behind as write_behind_commands
from flightcache.commands.invalidation import invalidation as invalidation_command
from flightcache.commands.memory import memory as memory_command
from flightcache.commands.memory_pressure import memory_pressure as memory_pressure_command
from flightcache.commands.near_cache import near_cache as near_cache_command
from flightcache.commands.nested_doll import nested_doll
from flightcache.commands.serve import serve as serve_command
from flightcache.commands.session import session as session_command
from flightcache.commands.stampede import stampede as stampede_command
from flightcache.commands.ttl import ttl as ttl_command
from flightcache.commands.universal import universal as universal_command
from flightcache.commands.write_through import write_through
from flightcache.errors import ExitCode, FlightcacheError

HELP = """Caching with Valkey in front of FlughafenDB, run for real and timed.

With no URLs configured, flightcache runs its own Valkey and PostgreSQL
(`flightcache up`). Point it elsewhere with FLIGHTCACHE_DB_URL and
FLIGHTCACHE_VALKEY_URL, or the flags below.

Examples:

\b
  flightcache up                 # start the embedded stack, load the dataset
  flightcache doctor             # check every connection
  flightcache --db-url mysql://root@127.0.0.1/flughafendb data info
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flightcache {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url",
            envvar="FLIGHTCACHE_DB_URL",
            help="Database URL: mysql://, mariadb:// or postgresql://."
            " Default: the embedded PostgreSQL.",
            show_envvar=True,
        ),
    ] = None,
    valkey_url: Annotated[
        str | None,
        typer.Option(
            "--valkey-url",
            envvar="FLIGHTCACHE_VALKEY_URL",
            help="Valkey URL: valkey://, valkeys://, unix:// or valkey+cluster://."
            " Default: the embedded Valkey.",
            show_envvar=True,
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            envvar="FLIGHTCACHE_STATE_DIR",
            help="Where the embedded servers keep their data.",
            show_envvar=True,
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="FLIGHTCACHE_CONFIG",
            help="Config file (TOML: db_url, valkey_url, state_dir).",
            show_envvar=True,
        ),
    ] = None,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            "--key-prefix",
            envvar="FLIGHTCACHE_KEY_PREFIX",
            help="Prefix of every Valkey key flightcache writes. Default: fc:",
            show_envvar=True,
        ),
    ] = None,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the Python traceback of an error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    global _RUNNING
    ctx.obj = _RUNNING = App(
        GlobalOptions(db_url, valkey_url, state_dir, config_file, key_prefix), run=main
    )


_RUNNING: App | None = None  # the App of the command being run, for the room's record


stack_commands.register(app)
tool_commands.register(app)
app.add_typer(data_commands.app, name="data")
MODULE_1 = "Module 1: query caching"
app.add_typer(query_commands.app, name="query", rich_help_panel=MODULE_1)
app.command("cache-aside", rich_help_panel=MODULE_1)(cache_aside_commands.cache_aside)
app.command("write-through", rich_help_panel=MODULE_1)(write_through)
app.add_typer(write_behind_commands.app, name="write-behind", rich_help_panel=MODULE_1)
app.command("nested-doll", rich_help_panel=MODULE_1)(nested_doll)
app.command("ttl", rich_help_panel=MODULE_1)(ttl_command)
app.command("memory", rich_help_panel=MODULE_1)(memory_command)
app.command("hit-ratio", rich_help_panel=MODULE_1)(hit_ratio_commands.hit_ratio)
app.command("eviction", rich_help_panel=MODULE_1)(eviction_commands.eviction)
app.command("universal", rich_help_panel="Module 2: universal caching")(universal_command)
app.add_typer(
    leaderboard_commands.app, name="leaderboard", rich_help_panel="Module 3: leaderboards"
)
app.command("session", rich_help_panel="Module 4: sessions")(session_command)
ADVANCED = "Advanced topics"
app.command("memory-pressure", rich_help_panel=ADVANCED)(memory_pressure_command)
app.command("invalidation", rich_help_panel=ADVANCED)(invalidation_command)
app.command("stampede", rich_help_panel=ADVANCED)(stampede_command)
app.command("near-cache", rich_help_panel=ADVANCED)(near_cache_command)
app.add_typer(bench_commands.app, name="bench", rich_help_panel="Benchmarks")
app.add_typer(workshop_commands.app, name="workshop", rich_help_panel="Workshop")
app.command("serve", rich_help_panel="Workshop")(serve_command)
app.add_typer(exercise_commands.app, name="exercise", rich_help_panel="Workshop")
room_pack_commands.register(room_commands.app)
room_accounts_commands.register(room_commands.app)
room_status_commands.register(room_commands.app)
app.add_typer(room_commands.app, name="room", rich_help_panel="Workshop")


def command_table() -> str:
    """The README's command table, made from the commands' own help: one row per
    command, its help panel, and the first paragraph of its help (cog writes it into
    README.md; ``tests/test_readme.py`` fails when the two differ)."""
    root: Any = typer.main.get_command(app)
    rows = ["| command | part | what it does |", "|---|---|---|"]

    def walk(command: Any, path: list[str], panel: str) -> None:
        panel = getattr(command, "rich_help_panel", None) or panel
        subcommands = getattr(command, "commands", None)
        if subcommands is None or (path and command.invoke_without_command):
            summary = " ".join((command.help or "").split("\n\n")[0].split())
            if not summary:
                raise ValueError(f"flightcache {' '.join(path)} has no help text")
            summary = summary.replace("|", "\\|")
            rows.append(f"| `flightcache {' '.join(path)}` | {panel} | {summary} |")
        for name, sub in (subcommands or {}).items():
            if not sub.hidden:
                walk(sub, [*path, name], panel)

    walk(root, [], "")
    return "\n".join(rows) + "\n"


def _library_error(exc: Exception) -> FlightcacheError | None:
    """A driver's exception that has one meaning whatever command met it (Valkey's NOPERM
    on a room account), as the flightcache error that says so; None for the rest."""
    if "valkey" not in sys.modules:
        return None
    from flightcache.valkey_client import as_error

    return as_error(exc)


def _wants_traceback(argv: list[str]) -> bool:
    return "--traceback" in argv or os.environ.get("FLIGHTCACHE_TRACEBACK") == "1"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. On a room account, record what ran."""
    global _RUNNING
    args = list(sys.argv[1:] if argv is None else argv)
    outer, _RUNNING = _RUNNING, None  # `workshop run` calls main for each demo
    error: list[str] = []
    code: int = ExitCode.INTERNAL
    try:
        code = _main(args, error)
        return code
    finally:
        ran, _RUNNING = _RUNNING, outer
        if ran is not None:
            _record_for_room(ran, args, code, error[0] if error else "")


def _record_for_room(ran: App, args: list[str], code: int, error: str) -> None:
    """Record the command for ``room status``, if it ran under a room account (its
    settings read, or an error of its own, and the settings naming a room); never
    fails the command. ``--help`` and mistyped options are not recorded."""
    settings = ran.__dict__.get("settings")  # resolved: the command got that far
    if settings is None and error:  # it stopped before, with an error worth showing
        try:
            settings = ran.settings
        except Exception:  # a config that does not resolve names no room either
            return
    if settings is None or settings.room is None:
        return
    from flightcache.keys import Keys
    from flightcache.room.activity import RECORD_TIMEOUT_S, command_words, record
    from flightcache.valkey_client import close, connect

    try:
        client = connect(ran.valkey_url(), timeout=RECORD_TIMEOUT_S)
        try:
            words = command_words(typer.main.get_command(app), args)
            record(client, Keys(settings.key_prefix), words, int(code), error)
        finally:
            close(client)
    except Exception as exc:  # the command's result stands, whatever Valkey does
        from flightcache.config import scrub
        from flightcache.console import err, styled

        err.print(styled("[dim]not recorded for the room: {}[/dim]", scrub(str(exc))[:160]))


def _main(args: list[str], error: list[str]) -> int:
    try:
        result = app(args=args, prog_name="flightcache", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value
        # typer's vendored click errors carry show() (usage line and hint); the base does not
        # the message may quote what was typed (a URL with its password, escape codes):
        # it is scrubbed and cleaned like everything else flightcache prints
        from flightcache.config import scrub
        from flightcache.console import clean

        show = getattr(exc, "show", None)
        if callable(show):
            text = io.StringIO()
            show(file=text)
            message = text.getvalue()
        else:
            message = f"error: {exc.format_message()}\n"
        sys.stderr.write(clean(scrub(message)))
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        from flightcache.console import err

        err.print("interrupted", style="yellow")
        return ExitCode.INTERRUPTED
    except FlightcacheError as exc:
        if _wants_traceback(args):
            raise
        from flightcache.console import print_error

        error.append(exc.message)
        print_error(exc)
        return exc.exit_code
    except Exception as exc:  # the last line of defence: never a bare traceback
        if _wants_traceback(args):
            raise
        known = _library_error(exc)
        if known is not None:
            from flightcache.console import print_error

            error.append(known.message)
            print_error(known)
            return known.exit_code
        from flightcache.config import scrub
        from flightcache.console import err, styled

        err.print(
            styled(
                "[bold red]internal error:[/bold red] {}: {}", type(exc).__name__, scrub(str(exc))
            ),
            soft_wrap=True,
        )
        err.print(styled("[dim]hint:[/dim] rerun with --traceback and report it"))
        error.append(f"internal error: {type(exc).__name__}: {scrub(str(exc))}")
        return ExitCode.INTERNAL
    code = int(result) if isinstance(result, int) else 0
    if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into Exit(130) and returns its code
        from flightcache.console import err

        err.print("interrupted", style="yellow")
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
