"""`flightcache bench`: the database and the cache side by side, measured honestly."""

from __future__ import annotations

import dataclasses
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flightcache.commands._demo import RowsYesOpt, require_ours
from flightcache.commands._options import non_negative, positive
from flightcache.errors import ExitCode
from flightcache.measure.duration import human_ns, human_seconds

if TYPE_CHECKING:
    from rich.console import Console

    from flightcache.app import App
    from flightcache.bench.report import Report, ScenarioResult
    from flightcache.bench.run import ScenarioRun

HELP = """Benchmarks: every scenario's database path and cache path, side by side.

`flightcache bench` alone runs the default set (as `flightcache bench run`).

Examples:

\b
  flightcache bench
  flightcache bench list
  flightcache bench run airline-routes --duration 30 --json before.json
  flightcache bench compare before.json after.json
  flightcache bench report before.json --html before.html
"""

app = typer.Typer(help=HELP, no_args_is_help=False, rich_markup_mode=None)


@app.callback(invoke_without_command=True)
def bench(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        run(ctx)


@app.command("run")
def run(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SCENARIO]...",
            help="Scenarios to run (`all` for every one). Default: the default set, see"
            " `flightcache bench list`.",
        ),
    ] = None,
    clients: Annotated[
        int, typer.Option("--clients", help="Clients in all, each a thread (see --processes).")
    ] = 1,
    processes: Annotated[
        int,
        typer.Option("--processes", help="Spread the clients over this many processes."),
    ] = 1,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", help="Open loop: operations/s per path, latency from the scheduled start."
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", help="Measured seconds per scenario. Default: the scenario's own."
        ),
    ] = None,
    requests: Annotated[
        int | None, typer.Option("--requests", help="Operations per path (instead of seconds).")
    ] = None,
    warmup: Annotated[
        float, typer.Option("--warmup", help="Seconds of each path run first and discarded.")
    ] = 0.5,
    slice_s: Annotated[
        float | None,
        typer.Option(
            "--slice",
            help="Seconds each path runs before the next takes over. Default: 0.25"
            " (0.05 for valkey-get).",
        ),
    ] = None,
    read_ratio: Annotated[
        float | None,
        typer.Option(
            "--read-ratio", help="Share of reads where a scenario writes. Default: its own."
        ),
    ] = None,
    keys: Annotated[str, typer.Option("--keys", help="Key choice: uniform or zipf.")] = "uniform",
    zipf_s: Annotated[float, typer.Option("--zipf-s", help="Zipf exponent.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the key and read/write draws.")] = 1,
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the results as JSON (-: stdout)."),
    ] = None,
    csv_path: Annotated[
        str | None, typer.Option("--csv", metavar="PATH", help="Write one CSV row per path.")
    ] = None,
    markdown_path: Annotated[
        str | None, typer.Option("--markdown", metavar="PATH", help="Write a Markdown report.")
    ] = None,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds",
            help="Run the scenario list this many times, each scenario's --duration split"
            " over them, so a burst of other load on the machine hits every scenario a"
            " little rather than one a lot (1 with --requests).",
        ),
    ] = 3,
    histogram: Annotated[
        bool, typer.Option("--histogram/--no-histogram", help="Draw each latency distribution.")
    ] = True,
    yes: RowsYesOpt = False,
) -> None:
    """Run scenarios: each path timed in turns, HDR percentiles, exports.

    Every scenario runs its database path and its cache path in one run, taking
    turns in slices (--slice) so that drift hits both alike; the first --warmup
    seconds of each are discarded. Closed loop by default (each client issues
    its next operation when the last returns); with --rate, open loop: each
    latency counts from the operation's scheduled start (no coordinated
    omission) and the output says when the schedule could not be kept. Threads
    share one GIL: with --clients above a few, add --processes. The default set
    takes about 2 min 20 s on the workshop dataset. Ctrl-C stops early and
    prints what was measured (exit 130).

    Examples:

    \b
      flightcache bench run
      flightcache bench run flight-search --clients 8 --processes 2 --duration 20
      flightcache bench run cache-aside --keys zipf --zipf-s 1.2 --rate 500
      flightcache bench run all --requests 200 --markdown bench.md --json bench.json
    """
    from flightcache.bench.run import Target, make_load, resolve

    if not 1 <= rounds <= 100:
        from flightcache.errors import UsageError

        raise UsageError(
            f"--rounds must be 1 to 100, not {rounds}", hint="3 spreads each scenario over the run"
        )
    load = make_load(
        clients=clients, processes=processes, rate=rate, duration=duration, requests=requests,
        warmup=warmup, slice_s=slice_s, read_ratio=read_ratio, keys=keys, zipf_s=zipf_s,
        seed=seed,
    )  # fmt: skip
    scenarios = resolve(names or [])
    exports = _checked_exports(
        {"--json": json_path, "--csv": csv_path, "--markdown": markdown_path}
    )

    application: App = ctx.obj
    target = Target(
        application.db_url().url(redact=False),
        application.valkey_url().url(redact=False),
        application.settings.key_prefix,
    )
    from flightcache.valkey_client import valkey_errors

    with valkey_errors(application.valkey_url):
        report = _measure(
            application,
            target,
            scenarios,
            load,
            read_ratio,
            slice_s,
            rounds,
            _command_line(ctx),
            yes,
        )
    from flightcache.console import err, out

    _render(err if "-" in exports.values() else out, report, histogram=histogram)
    _write_exports(report, exports)
    if report.interrupted:
        raise typer.Exit(ExitCode.INTERRUPTED)


def _checked_exports(exports: dict[str, str | None]) -> dict[str, str | None]:
    """The export flags and their paths, checked before anything is measured: at most one
    goes to stdout (-), and every file can be written."""
    from flightcache.bench import report as rep

    to_stdout = [flag for flag, path in exports.items() if path == "-"]
    if len(to_stdout) > 1:
        from flightcache.errors import UsageError

        raise UsageError(
            f"{' and '.join(to_stdout)} both ask for stdout", hint="send one of them to a file"
        )
    for flag, path in exports.items():
        if path is not None:
            rep.check_writable(path, flag)
    return exports


def _write_exports(report: Report, exports: dict[str, str | None]) -> None:
    from flightcache.bench import report as rep
    from flightcache.console import err

    writers = {"--json": rep.to_json, "--csv": rep.to_csv, "--markdown": rep.to_markdown}
    for flag, path in exports.items():
        if path is not None:
            rep.write(path, writers[flag](report))
            if path != "-":
                err.print(f"wrote {path}", style="dim")


def _measure(
    application: App,
    target: Any,
    scenarios: list[Any],
    load: Any,
    read_ratio: float | None,
    slice_s: float | None,
    rounds: int,
    command: list[str],
    yes: bool = False,
) -> Report:
    """Check the servers, then the floor, then every scenario; Ctrl-C ends it early."""
    from flightcache.bench import report as rep
    from flightcache.bench.run import measure_floor, run_scenario, scenario_load
    from flightcache.console import err

    what = f"bench run ({', '.join(s.name for s in scenarios if s.writes and s.changes_rows)})"
    target, environment = _prepare(
        application, target, scenarios, load.clients * load.processes, command, what, yes
    )
    progress = _progress()
    rounds = 1 if load.requests is not None else max(1, rounds)
    runs: dict[str, ScenarioRun] = {}
    with _ctrl_c() as stop, progress:
        task = progress.add_task("self-check: the harness's floor", total=None)
        floor = measure_floor(stop)
        for turn, sc in itertools.product(range(rounds), scenarios):
            if stop.is_set():
                break
            label = f"{sc.name}" + (f" [{turn + 1}/{rounds}]" if rounds > 1 else "")
            progress.update(task, description=f"{label}: setting up", total=None)
            done = run_scenario(
                sc,
                target,
                scenario_load(sc, load, read_ratio, slice_s, rounds),
                stop=stop,
                progress=_shower(progress, task, label),
            )
            if done is None or not any(t.ops for t in done.outcome.tallies.values()):
                continue
            if sc.name in runs:
                runs[sc.name].add(done)
            else:
                runs[sc.name] = done
    report = rep.Report(
        environment,
        rep.settings(load, read_ratio=read_ratio, slice_s=slice_s, rounds=rounds),
        floor,
        [rep.scenario_result(runs[sc.name], floor) for sc in scenarios if sc.name in runs],
    )
    report.interrupted = stop.is_set()
    if report.interrupted:
        err.print("stopped early (Ctrl-C): what was measured follows", style="yellow")
    return report


def _prepare(
    application: App,
    target: Any,
    scenarios: list[Any],
    clients: int,
    command: list[str],
    what: str,
    yes: bool,
) -> tuple[Any, dict[str, Any]]:
    """Before anything is measured: the dataset there, the rows ours to change (where a
    scenario writes), connections enough, a killed run's rows put back, the tables
    settled. Returns the target with its state directory and what it all runs on."""
    from flightcache.bench import report as rep
    from flightcache.bench.run import check_connections
    from flightcache.console import err, styled
    from flightcache.data.load import SETTLE, require_dataset, settle
    from flightcache.undo import repair_rows
    from flightcache.valkey_client import close

    db = application.database()
    client: Any = None
    try:
        found = require_dataset(db)
        dataset = found.loaded_at or ""
        writers = [s.name for s in scenarios if s.writes and s.changes_rows]
        if writers:  # bookings, renames, sessions: put back at the end, but still rows
            require_ours(found, db, what, yes)
        check_connections(db, clients)
        # rows a killed run left (bookings, its passenger, sessions): put back first
        state_dir = application.settings.state_dir
        for line in repair_rows(state_dir, db, dataset):
            err.print(styled("[yellow]{}[/yellow]", line), soft_wrap=True)
        target = dataclasses.replace(target, state_dir=str(state_dir), dataset=dataset)
        # whatever wrote the tables last (a demo, a load, an earlier run) leaves work for
        # the background workers; done now, it cannot land inside one scenario's turns
        started = time.perf_counter()
        settle(db)
        settled = {"statement": SETTLE[db.dialect], "seconds": time.perf_counter() - started}
        client = application.valkey()
        environment = rep.environment(db, client, command)
        environment["database"]["settled"] = settled
    finally:
        if client is not None:
            close(client)
        db.close()
    return target, environment


@contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """An event that the first Ctrl-C sets (the run ends at the next slice and reports
    what it measured); a second Ctrl-C stops at once, whatever is under way."""
    stop = threading.Event()

    def interrupted(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _shower(progress: Any, task: Any, name: str) -> Any:
    """The engine's progress callback: the bar, or (not on a terminal) a line per phase."""
    from flightcache.console import err

    said: set[bool] = set()

    def show(done: int, total: int | None, path: str, warm: bool) -> None:
        what = f"{name}: {path}" + (" (warm-up)" if warm else "")
        progress.update(task, description=what, completed=done, total=total)
        if not err.is_terminal and warm not in said:
            said.add(warm)
            err.print(f"{name}: {'warming up' if warm else 'measuring'}", style="dim")

    return show


def _command_line(ctx: typer.Context) -> list[str]:
    """The command as it ran: every option given (or set by the environment), from the
    root's to this command's; passwords are scrubbed when it is recorded."""
    words: list[str] = []
    chain = []
    here: Any = ctx
    while here is not None:
        chain.append(here)
        here = here.parent
    for level in reversed(chain):
        if level.parent is not None:
            words.append(level.info_name or "")
        for param in level.command.params:
            value = level.params.get(param.name)
            if value is None or value is False or value == param.default or value == []:
                continue
            if param.param_type_name == "argument":
                words += [str(v) for v in (value if isinstance(value, list | tuple) else [value])]
            elif value is True:
                words.append(param.opts[0])
            else:
                words += [param.opts[0], str(value)]
    return words


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flightcache.console import err

    return Progress(
        TextColumn("{task.description:<42}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} slices"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


# -- rendering -----------------------------------------------------------------------------
def _render(console: Console, report: Report, *, histogram: bool) -> None:
    """Per scenario its figures and distribution; then 001's table, the self-check,
    the warnings and what it ran on."""
    from flightcache.console import styled

    st, env = report.settings, report.environment
    db, valkey = env["database"], env["valkey"]
    head = (
        f"flightcache bench: {st['mode']}, {st['clients']} client(s)"
        + (f" in {st['processes']} processes" if st["processes"] > 1 else "")
        + (f", {st['rate_per_path']:,.0f}/s per path" if st["rate_per_path"] else "")
        + f"; {db['dialect']} {db['version']}, Valkey {valkey['version']}"
        f" ({valkey['client_parser']}), dataset {db['dataset']['scale']}"
    )
    console.print(head, style="bold", soft_wrap=True)
    console.print()
    for s in report.scenarios:
        _render_scenario(console, s)
        if histogram:
            _render_distribution(console, s)
    _render_summary(console, report)
    _render_check(console, report)
    warnings = [(s.name, p.path, w) for s in report.scenarios for p in s.paths for w in p.warnings]
    for name, path, warning in warnings:
        console.print(
            styled("[yellow]warning[/yellow] {} / {}: {}", name, path, warning), soft_wrap=True
        )
    if warnings:
        console.print()
    console.print(
        f"ran on: flightcache {env['flightcache']}, {env['python']}, {env['cpu_count']} CPUs"
        f" ({env['cpus_usable']} usable); Valkey {valkey['version']} {valkey['mode']},"
        f" maxmemory-policy {valkey['maxmemory_policy']}; {db['dialect']} {db['version']},"
        f" {db['dataset']['source']} scale {db['dataset']['scale']}{_settled(db)};"
        f" {env['timestamp']}",
        style="dim",
        soft_wrap=True,
    )


def _settled(db: dict[str, Any]) -> str:
    settled = db.get("settled")  # absent from results saved before it was recorded
    if not settled:
        return ""
    return f", tables settled first ({settled['statement']}, {human_seconds(settled['seconds'])})"


def _render_scenario(console: Console, s: ScenarioResult) -> None:
    """A metric per row, a path per column: fits 80 columns whatever the paths."""
    from rich.table import Table

    from flightcache.bench.report import figure

    title = f"{s.name}: {s.title}"
    if any(p.writes.n for p in s.paths):
        title += f" (read ratio {s.read_ratio:g})"
    if s.interrupted:
        title += " (interrupted: what was measured until Ctrl-C)"
    console.print(title, style="bold")
    console.print(s.about, style="dim", soft_wrap=False)
    for note in s.notes:
        console.print(note, style="dim")
    if s.machine_busy is not None:
        console.print(
            f"the machine's CPUs were {s.machine_busy:.0%} busy meanwhile (the servers, this"
            " bench and anything else running)"
            + (f"; measured in {s.rounds} rounds" if s.rounds > 1 else ""),
            style="dim",
        )
    t = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    t.add_column("")
    for p in s.paths:
        t.add_column(p.path, justify="right")

    def row(label: str, cells: list[str]) -> None:
        t.add_row(label, *cells)

    paths = s.paths
    row("operations", [f"{p.all.n:,}" for p in paths])
    for label, attr in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999")):
        row(label, [figure(p, getattr(p.all, attr)) if p.all.n else "-" for p in paths])
    row("max", [figure(p, p.all.max) if p.all.n else "-" for p in paths])
    row("mean", [human_ns(p.all.mean) if p.all.n else "-" for p in paths])
    if any(p.reads.n and p.writes.n for p in paths):
        for kind in ("reads", "writes"):
            row(
                f"{kind} p50 / p99",
                [
                    f"{human_ns(getattr(p, kind).p50)} / {human_ns(getattr(p, kind).p99)}"
                    if getattr(p, kind).n
                    else "-"
                    for p in paths
                ],
            )
    row("ops/s", [f"{p.throughput:,.0f}" for p in paths])
    row("hit ratio", ["-" if p.hit_ratio is None else f"{p.hit_ratio:.1%}" for p in paths])
    row("db calls/op", [f"{p.db_calls_per_op:.2f}" for p in paths])
    for name in dict.fromkeys(n for p in paths for n in p.counters):  # the pattern's own
        row(name, [f"{p.counters[name]:,}" if name in p.counters else "-" for p in paths])
    if any(p.service is not None for p in paths):
        for label, attr in (("service p50 / p99", "service"), ("start lag p50 / p99", "lag")):
            row(
                label,
                [
                    f"{human_ns(getattr(p, attr).p50)} / {human_ns(getattr(p, attr).p99)}"
                    if getattr(p, attr) is not None
                    else "-"
                    for p in paths
                ],
            )
        row("late / abandoned", [f"{p.late:,} / {p.abandoned:,}" for p in paths])
    console.print(t)
    console.print()


def _render_summary(console: Console, report: Report) -> None:
    """001's closing table, measured: p50 and p99 without and with the cache."""
    from rich.table import Table

    from flightcache.bench.report import compared, figure, improvement_text

    t = Table(title="Performance improvements measured", title_justify="left", header_style="bold")
    for column, justify in (
        ("Query type", "left"),
        ("Without cache", "right"),
        ("p99", "right"),
        ("With cache", "right"),
        ("p99", "right"),
        ("Improvement", "right"),
    ):
        t.add_column(column, justify=justify)  # type: ignore[arg-type]
    rows = compared(report)
    for s, base, cont in rows:
        t.add_row(
            s.title,
            figure(base, base.all.p50),
            figure(base, base.all.p99),
            figure(cont, cont.all.p50),
            figure(cont, cont.all.p99),
            improvement_text(s),
        )
    if rows:
        console.print(t)
        console.print(
            "p50 unless marked; improvement: the p50 without the cache over the p50 with it."
            " !: not the server's figure, ≥: a lower bound (see the warnings)",
            style="dim",
        )
        console.print()


BAR = 24


def _edge(ns: int) -> str:
    """A 1-2-5 bucket edge: 50 µs, 100 µs, 2 ms."""
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns >= size:
            return f"{ns / size:g} {unit}"
    return f"{ns} ns"


def _render_distribution(console: Console, s: ScenarioResult) -> None:
    """One row per 1-2-5 bucket; one bar per path, each on its own scale, with its %."""
    from rich.table import Table
    from rich.text import Text

    from flightcache.bench import hdr

    histograms = {p.path: hdr.decode(p.histogram) for p in s.paths}
    bounds = hdr.span(histograms.values())
    if bounds is None:
        return
    edges = hdr.decade_edges(*bounds)
    counts = {name: hdr.bucket_counts(h, edges) for name, h in histograms.items()}
    t = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    t.add_column("latency ≥", justify="right", no_wrap=True)
    for name in counts:
        t.add_column(name, no_wrap=True)
    for i in range(len(edges) - 1):
        cells: list[Any] = [_edge(edges[i])]
        for row in counts.values():
            n, total, peak = row[i], sum(row) or 1, max(row) or 1
            bar = "█" * (max(1, round(n / peak * BAR)) if n else 0)
            cells.append(Text(bar, style="cyan") + Text(f" {n / total:.1%}" if n else ""))
        t.add_row(*cells)
    console.print(t)
    console.print(
        "share of each path's operations per latency bucket; each path's bars on its own scale",
        style="dim",
    )
    console.print()


def _render_check(console: Console, report: Report) -> None:
    from rich.table import Table

    from flightcache.bench.report import GET_RATIO_TARGET, HARNESS_BUDGET_NS
    from flightcache.console import styled

    check = report.self_check()
    t = Table(title="Self-check", title_justify="left", header_style="bold")
    for column in ("what", "measured", "target"):
        t.add_column(column)
    budget = "ok" if check["within_budget"] else "[red]OVER[/red]"
    t.add_row(
        "the harness's cost per operation",
        human_ns(check["per_op_ns"]),
        styled(f"under {human_ns(HARNESS_BUDGET_NS)}: {budget}"),
    )
    t.add_row(
        "an empty operation measures",
        f"p50 {human_ns(check['empty_op_p50_ns'])}",
        "the floor of what it resolves",
    )
    if "get_ratio" in check:
        ok = "ok" if check["get_ratio"] <= GET_RATIO_TARGET else "[red]OVER[/red]"
        t.add_row(
            "bare GET: bench p50 / valkey-py's",
            f"{check['get_ratio']:.2f}x",
            styled(f"at most {GET_RATIO_TARGET}x: {ok}"),
        )
    console.print(t)
    st = report.settings
    if st["threads_per_process"] > 1:
        console.print(
            f"{st['threads_per_process']} threads per process share one GIL: they measure"
            " the client's interpreter as much as the servers; --processes spreads them.",
            style="dim",
        )
    console.print()


# -- list and compare ----------------------------------------------------------------------
@app.command("list")
def list_scenarios(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the scenarios: name, 001 row, paths, default read ratio and duration.

    `flightcache bench run` with no names runs those marked default.

    Examples:

    \b
      flightcache bench list
      flightcache bench list --json
    """
    import json

    from flightcache.bench.scenarios import REGISTRY
    from flightcache.console import out, styled, table

    if as_json:
        doc = [
            {
                "name": s.name,
                "title": s.title,
                "row_001": s.row,
                "default": s.default,
                "paths": [s.baseline, s.contender],
                "writes": s.writes,
                "read_ratio": s.read_ratio if s.writes else 1.0,
                "seconds": s.seconds,
                "about": s.about,
            }
            for s in REGISTRY.values()
        ]
        out.print_json(json.dumps(doc))
        return
    rows = [
        [
            s.name,
            "yes" if s.default else "",
            s.row or ("self-check" if s.check else s.module),
            f"{s.baseline} | {s.contender}",
            f"{s.read_ratio:g}" if s.writes else "reads",
            f"{s.seconds:g} s",
        ]
        for s in REGISTRY.values()
    ]
    out.print(
        table(
            "bench scenarios",
            ["name", "default", "001 row", "paths", "read ratio", "duration"],
            rows,
        )
    )
    for s in REGISTRY.values():
        out.print(styled("[bold]{}[/bold]: {}", s.name, s.about), soft_wrap=False)


@app.command("curve")
def curve(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="[SCENARIO]", help="The scenario to run at every count.")
    ] = "user-sessions",
    clients: Annotated[
        str, typer.Option("--clients", help="Client counts, comma-separated.")
    ] = "1,8,32,128",
    modes: Annotated[
        str,
        typer.Option(
            "--modes",
            help="threads (every client a thread of one process), processes (spread over up"
            " to 4 processes per CPU), or both.",
        ),
    ] = "threads,processes",
    duration: Annotated[
        float,
        typer.Option("--duration", help="Measured seconds per point, shared by its paths."),
    ] = 4.0,
    warmup: Annotated[
        float, typer.Option("--warmup", help="Seconds of each path run first and discarded.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the key draws.")] = 1,
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the results as JSON (-: stdout)."),
    ] = None,
    yes: RowsYesOpt = False,
) -> None:
    """Run one scenario at rising concurrency: ops/s, p50, p99, database CPU per operation.

    Each client count runs once with every client a thread of one process and
    once with the clients spread over processes (one each, up to 4 per CPU), each
    path in turns as in `bench run`, closed loop: at the top of the curve, ops/s
    is the throughput at saturation. The database server's CPU seconds are read
    around every slice (PostgreSQL: each client's backend; MariaDB/MySQL: the
    whole server process), and valkey-server's, and divided by the operations:
    what one read costs each server. Only a server on this machine can be read.
    Ctrl-C stops early and prints what was measured (exit 130).

    Examples:

    \b
      flightcache bench curve
      flightcache bench curve user-sessions --clients 1,8,32,128 --json curve.json
      flightcache bench curve --modes threads --clients 1,4 --duration 2
    """
    import json

    from flightcache.bench import curve as cv
    from flightcache.bench import server_cpu
    from flightcache.bench.run import Target
    from flightcache.bench.scenarios import get as get_scenario
    from flightcache.console import err, out
    from flightcache.valkey_client import close, valkey_errors

    sc = get_scenario(name)
    options = cv.CurveOptions(
        cv.parse_clients(clients), cv.parse_modes(modes), duration, warmup, seed
    )
    list(cv.loads(options))  # every point's options checked before anything runs
    _checked_exports({"--json": json_path})
    application: App = ctx.obj
    target = Target(
        application.db_url().url(redact=False),
        application.valkey_url().url(redact=False),
        application.settings.key_prefix,
    )
    with valkey_errors(application.valkey_url):
        target, environment = _prepare(
            application, target, [sc], max(options.clients), _command_line(ctx),
            f"bench curve ({sc.name})", yes,
        )  # fmt: skip
        db, client = application.database(), None
        try:
            metered = server_cpu.describe(db)
            client = application.valkey()
            valkey_metered = server_cpu.valkey_meter(client, application.valkey_url(), 0)
        finally:
            db.close()
            if client is not None:
                close(client)
        progress = _progress()
        with _ctrl_c() as stop, progress:
            task = progress.add_task(f"{sc.name}: setting up", total=None)
            points, interrupted = cv.measure(
                sc, target, options, metered=metered is not None,
                valkey_metered=valkey_metered is not None, stop=stop,
                progress=lambda label: _shower(progress, task, f"{sc.name}, {label}"),
            )  # fmt: skip
    settings = {"clients": list(options.clients), "modes": list(options.modes),
                "duration_s": duration, "warmup_s": warmup, "seed": seed}  # fmt: skip
    result = cv.Curve(
        sc, environment, settings, metered, valkey_metered is not None, points, interrupted
    )
    if json_path != "-":
        _render_curve(out, result)
    if json_path is not None:
        from flightcache.bench import report as rep

        rep.write(json_path, json.dumps(result.as_dict(), indent=2, default=str) + "\n")
        if json_path != "-":
            err.print(f"wrote {json_path}", style="dim")
    if interrupted:
        err.print("stopped early (Ctrl-C): what was measured is above", style="yellow")
        raise typer.Exit(ExitCode.INTERRUPTED)


def _render_curve(console: Console, result: Any) -> None:
    """One row per point and path; then each path's best ops/s per mode (saturation)."""
    from rich.table import Table

    env = result.environment
    db = env["database"]
    t = Table(
        title=f"bench curve: {result.scenario.name} on {db['dialect']} {db['version']},"
        f" Valkey {env['valkey']['version']}; {env['cpu_count']} CPUs",
        title_justify="left",
    )
    columns = ("clients", "mode", "path", "ops/s", "p50", "p99", "DB CPU/op", "Valkey CPU/op",
               "load avg")  # fmt: skip
    for column in columns:
        t.add_column(column, justify="left" if column in ("mode", "path") else "right")
    for point in result.points:
        mode = point.mode if point.processes == 1 else f"{point.mode} ({point.processes})"
        for i, p in enumerate(point.paths):
            per_op, valkey = p.server_us_per_op, p.valkey_us_per_op
            t.add_row(
                str(point.clients) if i == 0 else "",
                mode if i == 0 else "",
                p.path,
                f"{p.per_s:,.0f}",
                human_ns(p.p50_ns),
                human_ns(p.p99_ns),
                "-" if per_op is None else f"{per_op:,.1f} µs",
                "-" if valkey is None else f"{valkey:,.1f} µs",
                f"{point.load_before:.2f}" if i == 0 else "",
            )
        t.add_section()
    console.print(t)
    for mode in dict.fromkeys(p.mode for p in result.points):
        best: dict[str, tuple[float, int]] = {}
        for point in (p for p in result.points if p.mode == mode):
            for p in point.paths:
                if p.per_s > best.get(p.path, (0.0, 0))[0]:
                    best[p.path] = (p.per_s, point.clients)
        said = ", ".join(f"{path} {v:,.0f}/s at {n}" for path, (v, n) in best.items())
        console.print(f"{mode}: the most ops/s measured: {said}", soft_wrap=True)
    what = result.metered or "not read (the server is not on this machine, or not readable)"
    console.print(f"DB CPU/op: the database server's CPU per operation; it covers {what}."
                  " Valkey CPU/op: the valkey-server process's."
                  " load avg: the machine's 1-minute load average before the point.",
                  style="dim", soft_wrap=True)  # fmt: skip


@app.command("compare")
def compare(
    before: Annotated[str, typer.Argument(metavar="A.json", help="The earlier run.")],
    after: Annotated[str, typer.Argument(metavar="B.json", help="The later run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Show what changed between two `bench run --json` files: p50, p99, ops/s.

    Matches scenarios and paths by name; refuses files that share no scenario or
    are not bench results. Lists what differs in what they ran on (versions,
    parser, dataset, settings), since that changes figures too.

    Examples:

    \b
      flightcache bench run --json before.json
      flightcache bench run --json after.json
      flightcache bench compare before.json after.json
    """
    import json

    from rich.text import Text

    from flightcache.bench import report as rep
    from flightcache.console import out

    a, b = rep.load(before), rep.load(after)
    result = rep.compare(a, b, before, after)
    if as_json:
        doc = {
            "a": before,
            "b": after,
            "changes": [
                {**c.__dict__, "percent": None if c.percent is None else round(c.percent, 2)}
                for c in result.changes
            ],
            "only_in_a": result.only_a,
            "only_in_b": result.only_b,
            "machine_cpu_busy": [{"scenario": n, "a": x, "b": y} for n, x, y in result.machine],
            "ran_on_differences": [{"what": w, "a": x, "b": y} for w, x, y in result.differences],
        }
        out.print_json(json.dumps(doc, default=str))
        return

    def cell(c: rep.Change) -> Text:
        if c.figure == "throughput":
            text = f"{c.before:,.0f} → {c.after:,.0f}"
        else:
            text = f"{human_ns(c.before)} → {human_ns(c.after)}"
        pct = c.percent
        if pct is None:
            return Text(text)
        style = "dim" if abs(pct) < 5 else "green" if c.better else "red"
        return Text(text + " ") + Text(f"{pct:+.1f}%", style=style)

    from rich.table import Table

    grouped: dict[tuple[str, str], dict[str, rep.Change]] = {}
    for c in result.changes:
        grouped.setdefault((c.scenario, c.path), {})[c.figure] = c
    t = Table(title=f"{before} → {after}", title_justify="left")
    for column in ("scenario", "path", "p50", "p99", "ops/s"):
        t.add_column(column)
    for (scenario, path), f in grouped.items():
        t.add_row(scenario, path, cell(f["p50"]), cell(f["p99"]), cell(f["throughput"]))
    out.print(t)
    out.print("green: better, red: worse; under 5% is dim (within run-to-run noise)", style="dim")
    for what, names in (("only in " + before, result.only_a), ("only in " + after, result.only_b)):
        if names:
            out.print(f"{what}: {', '.join(names)}", style="yellow")
    for name, x, y in result.machine:
        out.print(f"{name}: the machine's CPUs were {x:.0%} busy in A, {y:.0%} in B", style="dim")
    if result.differences:
        out.print("what they ran on differs:", style="yellow")
        for what, x, y in result.differences:
            out.print(f"  {what}: {x} → {y}", soft_wrap=True)


@app.command("report")
def report(
    file: Annotated[
        str, typer.Argument(metavar="FILE.json", help="A file written by bench run --json.")
    ],
    html_path: Annotated[
        str,
        typer.Option(
            "--html", metavar="OUT", help="Write the report as one HTML file (-: stdout)."
        ),
    ],
) -> None:
    """Draw a `bench run --json` file as charts in one HTML file that opens offline.

    Per scenario, each path's latency at every percentile (from the file's HDR
    histograms); the improvement of each row of 001's table; what the run ran
    on. The file has no script and loads nothing from elsewhere (inline CSS and
    SVG): keep it, mail it, open it without a network. `flightcache serve` shows
    the same report on its /report page.

    Examples:

    \b
      flightcache bench run --json bench.json
      flightcache bench report bench.json --html bench.html
    """
    from pathlib import Path

    from flightcache.bench import report as rep
    from flightcache.bench import report_html
    from flightcache.console import err

    rep.check_writable(html_path, "--html")
    text = report_html.render(rep.load(file), Path(file).name)
    rep.write(html_path, text)
    if html_path != "-":
        err.print(f"wrote {html_path}", style="dim")


# -- bench http: seed 004's load test, over the leaderboard API -----------------------------
@app.command("http")
def http(
    ctx: typer.Context,
    modes: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[MODE]...",
            help="writes (POST /api/scores), reads (GET top 10), both (at once). Default: all.",
        ),
    ] = None,
    connections: Annotated[
        int, typer.Option("--connections", help="Keep-alive connections in all (both: half each).")
    ] = 16,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            callback=positive,
            help="Open loop: requests/s per operation, latency from when each was due."
            " Default: closed loop.",
        ),
    ] = None,
    duration: Annotated[
        float, typer.Option("--duration", callback=positive, help="Measured seconds per run.")
    ] = 5.0,
    warmup: Annotated[
        float,
        typer.Option("--warmup", callback=non_negative, help="Seconds run first and discarded."),
    ] = 1.0,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=32, help="uvicorn workers of the server it starts."),
    ] = 1,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="A running `flightcache serve` (http://127.0.0.1:PORT) instead of starting one;"
            " its writes then land on that server's boards.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="FLIGHTCACHE_SERVE_TOKEN", help="The access token of --url."
        ),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the results as JSON (-: stdout)."),
    ] = None,
) -> None:
    """Load-test seed 004's leaderboard API over HTTP, beside bare Valkey and 004's figures.

    Like 004's wrk runs: score writes, top-10 reads, then both at once, each for
    --duration after --warmup, on --connections keep-alive connections (closed
    loop), or at --rate requests/s per operation (open loop). Then the same
    operations as bare Valkey commands (ZINCRBY, ZREVRANGE 0 9 WITHSCORES) on the
    same board key at the same concurrency, so the HTTP layer's cost shows. It
    starts `flightcache serve --port 0 --workers N` itself on a key prefix of its
    own (the board rebuilt from the database, as 004 does at start; everything
    deleted at the end), or drives --url with --token. Says when the client,
    not the server, was the limit.

    Examples:

    \b
      flightcache bench http
      flightcache bench http --workers 2 --duration 10
      flightcache bench http reads --connections 32
      flightcache bench http writes --rate 2000
      flightcache bench http --url http://127.0.0.1:8420 --token TOKEN --json -
    """
    import json

    from flightcache.bench import http as workload
    from flightcache.bench import report as rep
    from flightcache.console import err, out

    chosen = workload.check_options(modes or [], connections)
    _checked_exports({"--json": json_path})
    target_url = _http_url(url, token)
    options = workload.Options(chosen, connections, rate, duration, warmup)
    report = _bench_http(ctx.obj, options, workers, target_url, token)
    words = _command_line(ctx)
    report.command = ["***" if i and words[i - 1] == "--token" else w for i, w in enumerate(words)]
    if json_path != "-":
        _render_http(out, report)
    if json_path is not None:
        rep.write(json_path, json.dumps(report.as_dict(), indent=2) + "\n")
        if json_path != "-":
            err.print(f"wrote {json_path}", style="dim")


def _http_url(url: str | None, token: str | None) -> tuple[str, int] | None:
    if url is None:
        return None
    from urllib.parse import urlsplit

    from flightcache.errors import UsageError

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(
            f"--url {url!r} is not an http:// URL", hint="e.g. --url http://127.0.0.1:8420"
        )
    if not token:
        raise UsageError("--url needs --token", hint="the token `flightcache serve` printed")
    return parts.hostname, parts.port or 80


def _bench_http(
    application: App, options: Any, workers: int, url: tuple[str, int] | None, token: str | None
) -> Any:
    from contextlib import nullcontext

    from flightcache.bench import http as workload
    from flightcache.console import err
    from flightcache.keys import Keys
    from flightcache.patterns.leaderboard import board_keys
    from flightcache.patterns.leaderboard_periods import ALL
    from flightcache.patterns.leaderboard_sync import Leaderboards
    from flightcache.valkey_client import close, delete_matching, valkey_errors

    valkey_url = application.valkey_url()
    prefix = application.settings.key_prefix
    scope = workload.http_scope(prefix)
    keys = board_keys(scope)
    with valkey_errors(valkey_url):
        client = application.valkey()
    try:
        with valkey_errors(valkey_url):
            swept = workload.sweep_http_scopes(client, prefix)
        if swept:
            err.print(f"deleted {swept:,} key(s) a killed `bench http` had left", style="dim")
        bare = workload.valkey_target(client, valkey_url, keys.board(options.board))
        env = {
            "FLIGHTCACHE_DB_URL": application.db_url().url(redact=False),
            "FLIGHTCACHE_VALKEY_URL": valkey_url.url(redact=False),
            "FLIGHTCACHE_KEY_PREFIX": scope,
        }
        server = workload.serve(env, workers) if url is None else nullcontext()
        with server as started:
            if started is None:
                assert url is not None and token is not None
                target = workload.HttpTarget(url[0], url[1], token)
                db = application.database()
                try:  # the bare side's copy of the board, in this run's scope
                    Leaderboards(db, client, keys).ensure(options.board, ALL)
                finally:
                    db.close()
            else:
                host, _, port = started.base.removeprefix("http://").rpartition(":")
                target = workload.HttpTarget(host, int(port), started.token)
            report = workload.run(
                options,
                target,
                bare,
                server_pid=None if started is None else started.process.pid,
                valkey_pid=workload.valkey_pid(client, bare.key),
                progress=lambda what: err.print(f"measuring {what}…", style="dim"),
            )
        report.server["workers"] = workers if started is not None else None
        report.server["started_by_bench"] = started is not None
        report.server["valkey"] = valkey_url.url()
        report.server["database"] = application.db_url().url()
        return report
    finally:
        with valkey_errors(valkey_url):
            delete_matching(client, Keys(scope).match())
        close(client)


def _cores(run: Any) -> str:
    server = "-" if run.server_cores is None else f"{run.server_cores:.2f}"
    return f"{run.client_cores:.2f}/{server}" + ("*" if run.client_bound else "")


def _p50_p99(latency: dict[str, Any]) -> str:
    return f"{human_ns(latency['p50'])} / {human_ns(latency['p99'])}"


def _render_http(console: Console, report: Any) -> None:
    """One row per run and operation: HTTP, bare Valkey, their ratio, 004's figure."""
    from rich.table import Table

    published = report.as_dict()["published_004"]
    rows = (("writes", "writes", "writes alone", "writes_separate"),
            ("reads", "reads", "top-10 alone", "reads_separate"),
            ("both", "writes", "both: writes", "writes_concurrent"),
            ("both", "reads", "both: top-10", "reads_concurrent"))  # fmt: skip
    o = report.options
    loop = f"open loop at {o.rate:g}/s per operation" if o.rate else "closed loop"
    server = report.server
    where = (
        f"serve --workers {server['workers']} started by the bench"
        if server.get("started_by_bench")
        else server["url"]
    )
    t = Table(
        title=f"bench http: {o.connections} connections, {loop}, {o.duration:g} s per run; {where}",
        title_justify="left",
    )
    columns = ("run", "HTTP/s", "p50 / p99", "Valkey/s", "p50 / p99", "HTTP÷Valkey", "004",
               "cores client/server: HTTP; Valkey")  # fmt: skip
    for column in columns:
        t.add_column(column, justify="left" if column == "run" else "right")
    for mode, op, label, key in rows:
        via_http, bare = report.run_of(mode, "http"), report.run_of(mode, "valkey")
        if via_http is None or bare is None:
            continue
        h, b = via_http.ops[op], bare.ops[op]
        hs, bs = h.as_dict()["latency_ns"], b.as_dict()["latency_ns"]
        ratio = f"{h.per_s / b.per_s:.1%}" if b.per_s else "-"
        errors = f" ({h.errors:,} failed)" if h.errors else ""
        cores = f"{_cores(via_http)}; {_cores(bare)}"
        t.add_row(label, f"{h.per_s:,.0f}{errors}", _p50_p99(hs), f"{b.per_s:,.0f}",
                  _p50_p99(bs), ratio, f"{published[key]:,}", cores)  # fmt: skip
    console.print(t)
    if any(r.client_bound for r in report.runs):
        console.print("* the client, not the server, set this rate (see below)", style="dim")
    d = report.as_dict()
    console.print(
        f"{report.cpus} cores; load average {d['runs'][0]['load_before']} before the first run,"
        f" {report.load_after:.2f} after. 004's figures: {d['published_004_source']}.",
        style="dim",
        soft_wrap=True,
    )
    for note in d["notes"]:
        console.print(f"- {note}", soft_wrap=True)
