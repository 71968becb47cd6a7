"""`flightcache doctor`, `sql`, `valkey` and `monitor`: tools around the servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from flightcache.app import App
from flightcache.commands._options import positive
from flightcache.errors import ExitCode, FlightcacheError


@dataclass
class DoctorCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _doctor_checks(application: App) -> list[DoctorCheck]:
    from flightcache.console import human_bytes
    from flightcache.measure.duration import human_ns

    checks: list[DoctorCheck] = []
    try:
        settings = application.settings
    except FlightcacheError as exc:
        return [DoctorCheck("configuration", False, exc.message, exc.hint or "")]
    src = settings.sources
    checks.append(
        DoctorCheck(
            "configuration",
            True,
            f"database from {src.get('db_url')}, valkey from {src.get('valkey_url')}, "
            f"state in {settings.state_dir}"
            + (
                f"; room account {settings.room} (from {src.get('room')}): commands record"
                f" what they run under {settings.key_prefix}room: for the instructor"
                if settings.room
                else ""
            ),
        )
    )

    # -- database ------------------------------------------------------------------
    db = None
    try:
        url = application.db_url()
        db = application.database()
        version = db.server_version()
        times = []
        for _ in range(25):
            t0 = time.perf_counter_ns()
            db.fetch("SELECT 1")
            times.append(time.perf_counter_ns() - t0)
        times.sort()
        checks.append(DoctorCheck("database", True, f"{url} - {db.dialect} {version}"))
        checks.append(
            DoctorCheck(
                "database round trip",
                True,
                f"{human_ns(times[len(times) // 2])} (median of 25 SELECT 1)",
            )
        )
    except FlightcacheError as exc:
        checks.append(DoctorCheck("database", False, exc.message, exc.hint or ""))
    if db is not None:
        from flightcache.data.load import require_dataset

        try:
            found = require_dataset(db)
            what = (
                f"scale {found.scale}, seed {found.seed}"
                if found.source == "generated"
                else str(found.source)
            )
            checks.append(
                DoctorCheck(
                    "dataset",
                    True,
                    f"{what}: {found.rows.get('flight', 0):,} flights, "
                    f"{found.rows.get('booking', 0):,} bookings",
                )
            )
        except FlightcacheError as exc:
            checks.append(DoctorCheck("dataset", False, exc.message, exc.hint or ""))
        finally:
            db.close()

    # -- valkey --------------------------------------------------------------------
    try:
        from flightcache.valkey_client import (
            close,
            config_value,
            info,
            parser_name,
            primaries,
            round_trip_ns,
        )

        vurl = application.valkey_url()
        client = application.valkey()
        try:
            nodes = primaries(client)
            server = info(nodes[0], "server")
            memory = info(nodes[0], "memory")
            valkey_version = server.get("valkey_version") or server.get("redis_version")
            kind = f"cluster of {len(nodes)} primaries" if vurl.cluster else "standalone"
            checks.append(DoctorCheck("valkey", True, f"{vurl} - Valkey {valkey_version}, {kind}"))
            if "valkey_version" not in server:
                checks[-1] = DoctorCheck(
                    "valkey",
                    False,
                    f"{vurl} answers, but it is Redis {valkey_version}, not Valkey",
                    "point FLIGHTCACHE_VALKEY_URL at a Valkey, or unset it for the embedded one",
                )
            # INFO says it too, and a room account may not run CONFIG GET
            policy = memory.get("maxmemory_policy") or config_value(nodes[0], "maxmemory-policy")
            maxmem = int(memory.get("maxmemory", 0))
            checks.append(
                DoctorCheck(
                    "valkey memory",
                    True,
                    f"used {human_bytes(int(memory.get('used_memory', 0)))}, maxmemory "
                    f"{human_bytes(maxmem) if maxmem else 'unlimited'}, policy {policy}",
                )
            )
            checks.append(
                DoctorCheck(
                    "valkey round trip",
                    True,
                    f"{human_ns(round_trip_ns(client))} (median of 25 PING)",
                )
            )
            parser = parser_name(client)
            fast = "Libvalkey" in parser
            checks.append(
                DoctorCheck(
                    "client parser",
                    fast,
                    parser,
                    "" if fast else "pip install 'valkey[libvalkey]' for the C reply parser",
                )
            )
        finally:
            close(client)
    except FlightcacheError as exc:
        checks.append(DoctorCheck("valkey", False, exc.message, exc.hint or ""))
    return checks


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the database, the dataset and Valkey; each failed check says its fix.

    Exits with 1 when any check fails.

    Examples:

    \b
      flightcache doctor
      flightcache doctor --json
    """
    from flightcache.console import out, styled, table

    checks = _doctor_checks(ctx.obj)
    failed = [c for c in checks if not c.ok]
    if as_json:
        out.print_json(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}))
    else:
        out.print(
            table(
                "flightcache doctor",
                ["check", "", "detail", "fix"],
                [
                    [
                        c.name,
                        styled("[green]ok[/green]" if c.ok else "[red]FAIL[/red]"),
                        c.detail,
                        c.fix,
                    ]
                    for c in checks
                ],
            )
        )
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def sql(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None, typer.Argument(help="Extra arguments for mycli or pgcli.")
    ] = None,
) -> None:
    """Open mycli or pgcli on the configured database.

    The password travels in the environment (MYSQL_PWD, PGPASSWORD), never on
    the command line.

    Examples:

    \b
      flightcache sql
      flightcache sql -- -e "SELECT COUNT(*) FROM flight"    # mycli runs one statement
    """
    from flightcache.config import shell_options

    application: App = ctx.obj
    url = application.db_url()
    tool = "mycli" if url.kind == "mysql" else "pgcli"
    exe = Path(sys.executable).parent / tool
    found = str(exe) if exe.exists() else shutil.which(tool)
    if not found:
        raise FlightcacheError(f"{tool} is not installed", hint=f"pip install {tool}")
    env = dict(os.environ)
    # flightcache hands the password over itself: keep the clients from asking a
    # system keyring for one (noise on a laptop without one) or storing ours in it
    env.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    if url.kind == "mysql":
        env["MYSQL_PWD"] = url.password
        cmd = [found, "-h", url.host, "-P", str(url.port), "-u", url.user, "-D", url.database]
    else:
        env["PGPASSWORD"] = url.password
        cmd = [found, "-h", url.host, "-p", str(url.port), "-U", url.user, "-d", url.database]
    extra, params_env = shell_options(url)  # TLS and the like: handed over or refused
    env.update(params_env)
    cmd += extra
    result = subprocess.run([*cmd, *(args or [])], env=env, check=False)
    raise typer.Exit(result.returncode)


def format_reply(reply: Any, indent: int = 0) -> str:
    """A reply the way valkey-cli prints it."""
    if reply is None:
        return "(nil)"
    if isinstance(reply, bool):
        return "(integer) 1" if reply else "(integer) 0"
    if isinstance(reply, int):
        return f"(integer) {reply}"
    if isinstance(reply, float):
        return f"(double) {reply}"
    if isinstance(reply, Exception):
        return f"(error) {reply}"
    if isinstance(reply, bytes):
        if reply in (b"OK", b"PONG", b"QUEUED"):
            return reply.decode()
        from flightcache.trace import escape

        return '"' + escape(reply) + '"'
    if isinstance(reply, str):
        return reply if reply in ("OK", "PONG", "QUEUED") else f'"{reply}"'
    if isinstance(reply, dict):
        reply = [x for kv in reply.items() for x in kv]
    if isinstance(reply, (list, tuple, set)):
        items = list(reply)
        if not items:
            return "(empty array)"
        width = len(str(len(items)))
        lines = []
        for i, item in enumerate(items, start=1):
            prefix = f"{i:>{width}}) "
            body = format_reply(item, indent + len(prefix))
            pad = " " * indent if i > 1 else ""
            lines.append(pad + prefix + body)
        return "\n".join(lines)
    return str(reply)


def valkey_command(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="A Valkey command and its arguments.")],
) -> None:
    """Run one Valkey command and print the reply as valkey-cli would.

    Examples:

    \b
      flightcache valkey PING
      flightcache valkey SET airlines:top_routes '[...]' EX 3600
      flightcache valkey CONFIG GET maxmemory-policy
    """
    import valkey.cluster
    import valkey.exceptions

    from flightcache.console import out
    from flightcache.valkey_client import close, valkey_errors

    application: App = ctx.obj
    url = application.valkey_url()
    client = application.valkey(decode=False)
    try:
        target: valkey.Valkey
        if not isinstance(client, valkey.cluster.ValkeyCluster):
            target = client
        else:
            # like `valkey-cli -c`: the node that owns the first key, else the seed node
            node = (
                client.get_node_from_key(command[1]) if len(command) > 1 else None
            ) or client.get_default_node()
            if node.valkey_connection is None:
                client.nodes_manager.initialize()
            target = node.valkey_connection
        target.response_callbacks.clear()
        with valkey_errors(url):
            try:
                reply = target.execute_command(*command)
            except valkey.exceptions.ResponseError as exc:
                out.print(format_reply(exc), markup=False, highlight=False)
                raise typer.Exit(ExitCode.FAILED) from None
        out.print(_render(reply), markup=False, highlight=False)
    finally:
        close(client)


def _render(reply: Any) -> str:
    if isinstance(reply, bytes) and b"\r\n" in reply:  # INFO and other text blobs
        return reply.decode(errors="replace").replace("\r\n", "\n").rstrip()
    return format_reply(reply)


def monitor(
    ctx: typer.Context,
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", callback=positive, help="Stop after this many seconds."),
    ] = None,
) -> None:
    """Stream every command Valkey receives (MONITOR): the workshop's third terminal.

    On a cluster it watches every primary and tags each line with the node.
    Ctrl-C stops it.

    Examples:

    \b
      flightcache monitor
      flightcache monitor --seconds 30
    """
    import valkey.exceptions

    from flightcache.console import out
    from flightcache.valkey_client import close, primaries, wrap

    application: App = ctx.obj
    url = application.valkey_url()
    client = application.valkey()
    nodes = primaries(client)
    stop = threading.Event()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def watch(node: Any, tag: str) -> None:
        try:
            with node.monitor() as mon:
                conn = mon.connection
                assert conn is not None
                while not stop.is_set():
                    # poll, so that Ctrl-C and --seconds are noticed on an idle server
                    # (a socket timeout inside read_response would drop the connection)
                    if not conn.can_read(timeout=0.25):
                        continue
                    # the raw line, quoted and escaped exactly as valkey-cli shows it
                    # (valkey-py's next_command() drops the quotes)
                    raw = conn.read_response()
                    if isinstance(raw, bytes):
                        raw = raw.decode("utf-8", errors="backslashreplace")
                    with lock:
                        out.print(tag + str(raw), markup=False, highlight=False, soft_wrap=True)
        except valkey.exceptions.ValkeyError as exc:
            if not stop.is_set():
                errors.append(exc)
                stop.set()

    out.print(f"watching {url} (Ctrl-C stops)", style="dim")
    threads = []
    for node in nodes:
        kwargs = node.connection_pool.connection_kwargs
        tag = f"[{kwargs.get('port')}] " if len(nodes) > 1 else ""
        thread = threading.Thread(target=watch, args=(node, tag), daemon=True)
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + seconds if seconds else None
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=2)
        close(client)
    if errors and isinstance(errors[0], valkey.exceptions.ValkeyError):
        raise wrap(errors[0], url)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Tools")(doctor)
    verbatim = {"ignore_unknown_options": True, "allow_interspersed_args": False}
    app.command(rich_help_panel="Tools", context_settings=verbatim)(sql)
    app.command("valkey", rich_help_panel="Tools", context_settings=verbatim)(valkey_command)
    app.command(rich_help_panel="Tools")(monitor)
