"""Bench results as data: per-path figures, the warnings that qualify them, what they ran on.

A :class:`Report` is what ``flightcache bench run`` prints and exports; its JSON
form (``format: flightcache-bench``) is what ``bench compare`` reads back. All
times are nanoseconds. Warnings are decided here, from the numbers: a figure
the harness cannot vouch for is flagged (and marked in every rendering), never
silently shown as if it had been measured.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from flightcache.bench import hdr
from flightcache.bench.engine import Load, Tally
from flightcache.bench.run import Floor, ScenarioRun
from flightcache.errors import UsageError
from flightcache.measure.duration import human_ns

FORMAT = "flightcache-bench"
VERSION = 1
HARNESS_BUDGET_NS = 5_000  # the harness's own cost per operation must stay under this
FLOOR_FACTOR = 10  # a p50 under 10x the empty operation's is the harness, not the server
LOOP_SHARE = 0.10  # closed loop: the loop costing over 10 % of an operation bends throughput
GET_RATIO_TARGET = 1.3  # the bench's GET p50 over valkey-py's own, at most
CPU_BOUND = 0.9  # a process busy 90 % of a core with threads: they queue on the GIL
LATE_SHARE = 0.01  # open loop: over 1 % of operations starting late


@dataclass
class PathResult:
    """One path of one scenario: its figures, in ns, and the warnings on them."""

    path: str
    all: hdr.Summary
    reads: hdr.Summary
    writes: hdr.Summary
    throughput: float  # operations per second over the path's measured slices
    seconds: float
    hits: int
    misses: int
    db_calls: int
    abandoned: int = 0
    late: int = 0
    cpu: float = 0.0  # fraction of one core the busiest client process used
    service: hdr.Summary | None = None  # open loop: from the actual start
    lag: hdr.Summary | None = None  # open loop: actual start minus scheduled start
    histogram: str = ""  # every operation's latency, HdrHistogram's encoding
    counters: dict[str, int] = field(default_factory=dict)  # the pattern's own, if it keeps any
    warnings: list[str] = field(default_factory=list)
    trusted: bool = True  # False: a warning says the figures are not the server's

    @property
    def hit_ratio(self) -> float | None:
        known = self.hits + self.misses
        return self.hits / known if known else None

    @property
    def db_calls_per_op(self) -> float:
        return self.db_calls / self.all.n if self.all.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            **self.all.as_dict(),
            "throughput_per_s": round(self.throughput, 1),
            "seconds": round(self.seconds, 3),
            "hit_ratio": None if self.hit_ratio is None else round(self.hit_ratio, 4),
            "hits": self.hits,
            "misses": self.misses,
            "db_calls": self.db_calls,
            "db_calls_per_op": round(self.db_calls_per_op, 3),
            "abandoned": self.abandoned,
            "late": self.late,
            "client_cpu": round(self.cpu, 3),
            "counters": self.counters,
            "reads": self.reads.as_dict(),
            "writes": self.writes.as_dict(),
            "warnings": self.warnings,
            "trusted": self.trusted,
            "histogram": self.histogram,
        }
        if self.service is not None and self.lag is not None:
            data["service"] = self.service.as_dict()
            data["schedule_lag"] = self.lag.as_dict()
        return data


@dataclass
class ScenarioResult:
    name: str
    title: str
    about: str
    row: str | None
    baseline: str
    contender: str
    check: bool
    read_ratio: float
    keyspace: int
    seconds: float  # wall time, setup and teardown included
    notes: list[str]
    paths: list[PathResult]
    interrupted: bool = False
    duration_s: float | None = None  # measured seconds asked (None: --requests)
    slice_s: float = 0.25
    rounds: int = 1
    machine_busy: float | None = None  # every CPU of the machine, busy share meanwhile

    def path(self, name: str) -> PathResult | None:
        return next((p for p in self.paths if p.path == name), None)

    @property
    def improvement(self) -> float | None:
        """The baseline's p50 over the contender's: how many times faster at p50."""
        base, cont = self.path(self.baseline), self.path(self.contender)
        if base is None or cont is None or not base.all.n or not cont.all.n:
            return None
        return base.all.p50 / cont.all.p50 if cont.all.p50 else None

    def as_dict(self) -> dict[str, Any]:
        improvement = self.improvement
        return {
            "name": self.name,
            "title": self.title,
            "about": self.about,
            "row_001": self.row,
            "baseline": self.baseline,
            "contender": self.contender,
            "check": self.check,
            "read_ratio": self.read_ratio,
            "duration_s": self.duration_s,
            "slice_s": self.slice_s,
            "rounds": self.rounds,
            "machine_cpu_busy": None if self.machine_busy is None else round(self.machine_busy, 3),
            "keyspace": self.keyspace,
            "wall_seconds": round(self.seconds, 2),
            "notes": self.notes,
            "interrupted": self.interrupted,
            "improvement_p50": None if improvement is None else round(improvement, 2),
            "paths": [p.as_dict() for p in self.paths],
        }


@dataclass
class Report:
    environment: dict[str, Any]
    settings: dict[str, Any]
    floor: Floor
    scenarios: list[ScenarioResult] = field(default_factory=list)
    interrupted: bool = False

    def self_check(self) -> dict[str, Any]:
        """The harness's floor, and the bare GET beside valkey-py's own loop."""
        check: dict[str, Any] = {
            **self.floor.as_dict(),
            "budget_per_op_ns": HARNESS_BUDGET_NS,
            "within_budget": self.floor.per_op_ns < HARNESS_BUDGET_NS,
        }
        ratio = get_ratio(self)
        if ratio is not None and self.settings.get("mode") == "closed loop":
            check.update(get_ratio=round(ratio, 3), get_ratio_target=GET_RATIO_TARGET)
        return check

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "unit": "ns",
            "interrupted": self.interrupted,
            "environment": self.environment,
            "settings": self.settings,
            "self_check": self.self_check(),
            "scenarios": [s.as_dict() for s in self.scenarios],
        }


def get_ratio(report: Report) -> float | None:
    for s in report.scenarios:
        if s.check and s.improvement:
            return 1 / s.improvement  # the bench's p50 over the loop's
    return None


# -- from the engine's tallies to figures ---------------------------------------------------
def path_result(name: str, tally: Tally, load: Load, floor: Floor, late: int) -> PathResult:
    merged = hdr.merge([tally.read, tally.write])
    open_loop = load.rate is not None and bool(tally.service.get_total_count())
    result = PathResult(
        path=name,
        all=hdr.summary(merged),
        reads=hdr.summary(tally.read),
        writes=hdr.summary(tally.write),
        throughput=tally.ops / tally.seconds if tally.seconds else 0.0,
        seconds=tally.seconds,
        hits=tally.hits,
        misses=tally.misses,
        db_calls=tally.db_calls,
        abandoned=tally.abandoned,
        late=late,
        cpu=tally.cpu / tally.seconds if tally.seconds else 0.0,
        service=hdr.summary(tally.service) if open_loop else None,
        lag=hdr.summary(tally.lag) if open_loop else None,
        histogram=hdr.encode(merged),
        counters=dict(tally.counters),
    )
    _judge(result, load, floor)
    return result


def _judge(r: PathResult, load: Load, floor: Floor) -> None:
    """Warnings, from the numbers. ``trusted`` goes False when a figure would be the
    harness's rather than the server's."""
    if not r.all.n:
        r.warnings.append("no operation completed: nothing measured")
        r.trusted = False
        return
    if r.all.p50 < FLOOR_FACTOR * max(floor.p50, 1):
        r.warnings.append(
            f"p50 {r.all.p50:,} ns is within {FLOOR_FACTOR}x of the harness floor"
            f" ({floor.p50:,} ns for an empty operation): the figure is the harness's"
        )
        r.trusted = False
    per_client_ns = r.seconds * 1e9 * load.clients * load.processes / r.all.n
    if load.rate is None and floor.per_op_ns > LOOP_SHARE * per_client_ns:
        r.warnings.append(
            f"the loop's own {human_ns(floor.per_op_ns)} is over"
            f" {LOOP_SHARE:.0%} of each operation's {human_ns(per_client_ns)}:"
            " throughput is understated"
        )
    if load.clients > 1 and r.cpu >= CPU_BOUND:
        r.warnings.append(
            f"the client process was busy {r.cpu:.0%} of a core with {load.clients} threads:"
            " they queue on the GIL, so latencies include that wait (try --processes)"
        )
    if r.abandoned:
        r.warnings.append(
            f"fell behind the schedule: {r.abandoned:,} operations never started;"
            " percentiles leave them out and are a lower bound"
        )
        r.trusted = False
    if load.rate is not None and r.late > LATE_SHARE * r.all.n:
        r.warnings.append(
            f"{r.late:,} of {r.all.n:,} operations ({r.late / r.all.n:.1%}) started over"
            " 1 ms after their scheduled time: the clients could not keep the schedule;"
            " latencies count from the schedule, so the wait is in them"
        )
    if load.rate is not None and r.throughput < 0.95 * load.rate:
        r.warnings.append(f"achieved {r.throughput:,.0f}/s of the {load.rate:,.0f}/s asked")


def scenario_result(run: ScenarioRun, floor: Floor) -> ScenarioResult:
    sc = run.scenario
    paths = [
        path_result(name, tally, run.load, floor, run.outcome.late.get(name, 0))
        for name, tally in run.outcome.tallies.items()
    ]
    result = ScenarioResult(
        name=sc.name,
        title=sc.title,
        about=sc.about,
        row=sc.row,
        baseline=sc.baseline,
        contender=sc.contender,
        check=sc.check,
        read_ratio=run.load.read_ratio,
        keyspace=run.keyspace,
        seconds=run.wall_s,
        notes=list(run.notes),
        paths=paths,
        interrupted=run.outcome.interrupted,
        duration_s=None if run.load.seconds is None else run.load.seconds * run.rounds,
        slice_s=run.load.slice,
        rounds=run.rounds,
        machine_busy=None if run.machine is None else run.machine.fraction,
    )
    if sc.check and result.improvement:
        ratio = 1 / result.improvement
        bench = result.path(sc.contender)
        if bench is not None and ratio > GET_RATIO_TARGET:
            bench.warnings.append(
                f"the bench's p50 is {ratio:.2f}x valkey-py's own loop (target at most"
                f" {GET_RATIO_TARGET}x): the harness adds more than it should"
            )
    return result


def settings(
    load: Load, *, read_ratio: float | None, slice_s: float | None, rounds: int = 1
) -> dict[str, Any]:
    """The options as given; None where each scenario uses its own default."""
    return {
        "mode": "closed loop" if load.rate is None else "open loop",
        "clients": load.clients * load.processes,
        "processes": load.processes,
        "threads_per_process": load.clients,
        "rate_per_path": load.rate,
        "duration_s": load.seconds,
        "rounds": rounds,
        "requests_per_path": load.requests,
        "warmup_s": load.warmup,
        "slice_s": slice_s,
        "read_ratio": read_ratio,
        "keys": load.keys,
        "zipf_s": load.zipf_s if load.keys == "zipf" else None,
        "seed": load.seed,
    }


# -- what it ran on -------------------------------------------------------------------------
def environment(db: Any, valkey: Any, argv: list[str]) -> dict[str, Any]:
    """flightcache, Python, CPUs, Valkey, the database and its dataset, the command line."""
    import datetime as dt

    from flightcache import __version__
    from flightcache.config import scrub
    from flightcache.data.load import info as dataset_info
    from flightcache.valkey_client import config_value, info, parser_name, primaries

    node = primaries(valkey)[0]
    server = info(node, "server")
    try:
        policy = config_value(node, "maxmemory-policy") or "unknown"
        maxmemory = config_value(node, "maxmemory") or "unknown"
    except Exception:  # managed services refuse CONFIG
        policy = maxmemory = "unknown (CONFIG refused)"
    data = dataset_info(db)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "flightcache": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "valkey": {
            "version": server.get("valkey_version") or server.get("redis_version"),
            "mode": server.get("server_mode") or server.get("redis_mode"),
            "nodes": len(primaries(valkey)),
            "maxmemory_policy": policy,
            "maxmemory": maxmemory,
            "client_parser": parser_name(valkey),
        },
        "database": {
            "dialect": db.dialect,
            "version": db.server_version(),
            "url": str(db.url),
            "dataset": {
                "source": data.source,
                "scale": data.scale,
                "seed": data.seed,
                "rows": {k: data.rows.get(k) for k in ("flight", "booking", "passenger")},
            },
        },
        "command": scrub(shlex.join(["flightcache", *argv])),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# -- exports --------------------------------------------------------------------------------
def check_writable(path: str, flag: str) -> None:
    """UsageError now, before minutes of benchmarking, when ``path`` cannot be written.

    Tried for real (opened for appending, or created and removed again), since
    permission bits do not tell the whole story: root, read-only mounts, /proc."""
    if path == "-":
        return
    target = FsPath(path)
    folder = target.parent
    problem = ""
    if target.is_dir():
        problem = "is a directory"
    elif not folder.is_dir():
        problem = f"its directory {folder} does not exist"
    else:
        existed = target.exists()
        try:
            with target.open("a" if existed else "x", encoding="utf-8"):
                pass
            if not existed:
                target.unlink()
        except OSError as exc:
            problem = f"cannot be written ({exc.strerror or exc})"
    if problem:
        raise UsageError(
            f"{flag} {path}: {problem}", hint="give a path you can write, or - for stdout"
        )


def write(path: str, text: str) -> None:
    """Write an export (``-``: stdout), every password in it shown as ``***``."""
    from flightcache.config import scrub

    text = scrub(text)
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    FsPath(path).write_text(text, encoding="utf-8")


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


CSV_COLUMNS = [
    "scenario", "path", "kind", "n", "p50_ns", "p90_ns", "p99_ns", "p99.9_ns", "max_ns",
    "mean_ns", "throughput_per_s", "hit_ratio", "db_calls", "db_calls_per_op", "abandoned",
    "trusted", "warnings",
]  # fmt: skip


def to_csv(report: Report) -> str:
    """One row per scenario, path and kind (all operations; then reads, writes when mixed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in report.scenarios:
        for p in s.paths:
            kinds = [("all", p.all)]
            if p.reads.n and p.writes.n:
                kinds += [("read", p.reads), ("write", p.writes)]
            for kind, fig in kinds:
                writer.writerow(
                    [
                        s.name, p.path, kind, fig.n, fig.p50, fig.p90, fig.p99, fig.p999,
                        fig.max, round(fig.mean, 1),
                        round(p.throughput, 1) if kind == "all" else "",
                        "" if p.hit_ratio is None else round(p.hit_ratio, 4),
                        p.db_calls if kind == "all" else "",
                        round(p.db_calls_per_op, 3) if kind == "all" else "",
                        p.abandoned, p.trusted, " | ".join(p.warnings),
                    ]
                )  # fmt: skip
    return buffer.getvalue()


MAX_FILE_BYTES = 16 * 1024 * 1024
"""The largest results file read back: ``bench run all --json`` writes under 200 KiB."""
NOT_BENCH_HINT = "give a file written by flightcache bench run --json PATH"


def load(path: str) -> dict[str, Any]:
    """A results file written by ``bench run --json``; UsageError for anything else."""
    try:
        with FsPath(path).open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file", hint="give a file written by bench run --json PATH"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"{path} is not a flightcache bench file: {exc.strerror or exc}", hint=NOT_BENCH_HINT
        ) from None
    return parse(data, path)


def parse(data: bytes, name: str) -> dict[str, Any]:
    """The text of a results file (``name`` says where it came from, in errors): its
    document, or UsageError when it is too big, not JSON, or not a bench file."""
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(
            f"{name} is over {MAX_FILE_BYTES // 2**20} MiB: not a bench results file",
            hint=NOT_BENCH_HINT,
        )
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(
            f"{name} is not a flightcache bench file: {str(exc).splitlines()[0][:80]}",
            hint=NOT_BENCH_HINT,
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(
            f'{name} is not a flightcache bench file (no "format": "{FORMAT}")',
            hint=NOT_BENCH_HINT,
        )
    if doc.get("version") != VERSION:
        raise UsageError(
            f"{name} is a flightcache bench file of version {repr(doc.get('version'))[:20]};"
            f" this flightcache reads version {VERSION}",
            hint="use files written by the same flightcache",
        )
    return doc


@dataclass
class Change:
    scenario: str
    path: str
    figure: str  # p50, p99, throughput
    before: float
    after: float

    @property
    def percent(self) -> float | None:
        return (self.after - self.before) / self.before * 100 if self.before else None

    @property
    def better(self) -> bool:
        """Lower latency, or higher throughput."""
        return self.after > self.before if self.figure == "throughput" else self.after < self.before


@dataclass
class Comparison:
    changes: list[Change]
    only_a: list[str]
    only_b: list[str]
    differences: list[tuple[str, Any, Any]]  # what they ran on, where it differs
    machine: list[tuple[str, float, float]] = field(default_factory=list)  # CPU busy A, B


def compare(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> Comparison:
    """Per scenario and path, p50, p99 and throughput from A to B."""
    sa = {s["name"]: s for s in a["scenarios"]}
    sb = {s["name"]: s for s in b["scenarios"]}
    common = [n for n in sa if n in sb]
    if not common:
        raise UsageError(
            f"{name_a} and {name_b} share no scenario ({', '.join(sa) or 'none'}"
            f" vs {', '.join(sb) or 'none'}): nothing to compare",
            hint="compare two runs of the same scenarios",
        )
    changes: list[Change] = []
    for name in common:
        pa = {p["path"]: p for p in sa[name]["paths"]}
        pb = {p["path"]: p for p in sb[name]["paths"]}
        for path in (p for p in pa if p in pb):
            for figure, field_name in (
                ("p50", "p50"),
                ("p99", "p99"),
                ("throughput", "throughput_per_s"),
            ):
                changes.append(
                    Change(name, path, figure, pa[path][field_name], pb[path][field_name])
                )
    machine = [
        (n, sa[n]["machine_cpu_busy"], sb[n]["machine_cpu_busy"])
        for n in common
        if sa[n].get("machine_cpu_busy") is not None and sb[n].get("machine_cpu_busy") is not None
    ]
    return Comparison(
        changes,
        [n for n in sa if n not in sb],
        [n for n in sb if n not in sa],
        _differences(a, b),
        machine,
    )


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in dict.fromkeys([*x, *y]):
                walk(x.get(k), y.get(k), f"{where}.{k}" if where else k)
        elif x != y:
            out.append((where, x, y))

    skip = {"timestamp", "command"}
    walk({k: v for k, v in a["environment"].items() if k not in skip},
         {k: v for k, v in b["environment"].items() if k not in skip}, "")  # fmt: skip
    walk(a["settings"], b["settings"], "settings")
    return out


# -- Markdown ------------------------------------------------------------------------------
def figure(p: PathResult, ns: int) -> str:
    """A percentile, marked when the harness cannot vouch for it: "≥" when operations
    were abandoned (it is a lower bound), "!" for any other untrusted figure."""
    text = human_ns(ns)
    if p.abandoned:
        return "≥ " + text
    return text if p.trusted else text + " !"


def improvement_text(s: ScenarioResult) -> str:
    """The p50 ratio; "≥" when the baseline's p50 is a lower bound, "!" when either
    figure is not the server's."""
    base, cont, ratio = s.path(s.baseline), s.path(s.contender), s.improvement
    if ratio is None or base is None or cont is None:
        return "-"
    text = f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:,.1f}x"
    if base.abandoned and not cont.abandoned:
        return "≥ " + text
    return text if base.trusted and cont.trusted else text + " !"


def compared(report: Report) -> list[tuple[ScenarioResult, PathResult, PathResult]]:
    """The rows of 001's table: each scenario (not a self-check) with both its paths."""
    out = []
    for s in report.scenarios:
        base, cont = s.path(s.baseline), s.path(s.contender)
        if not s.check and base is not None and cont is not None:
            out.append((s, base, cont))
    return out


def summary_rows(report: Report) -> list[list[str]]:
    """001's table: query type, without cache, with cache, improvement (p50; p99 beside)."""
    rows = []
    for s, base, cont in compared(report):
        rows.append(
            [
                s.title,
                f"{figure(base, base.all.p50)} (p99 {figure(base, base.all.p99)})",
                f"{figure(cont, cont.all.p50)} (p99 {figure(cont, cont.all.p99)})",
                improvement_text(s),
            ]
        )
    return rows


DETAIL_COLUMNS = [
    "scenario", "path", "ops", "p50", "p90", "p99", "p99.9", "max", "mean", "ops/s",
    "hit ratio", "db calls/op",
]  # fmt: skip


def detail_rows(report: Report) -> list[list[str]]:
    rows = []
    for s in report.scenarios:
        for p in s.paths:
            kinds = [(p.path, p.all)]
            if p.reads.n and p.writes.n:
                kinds += [(f"{p.path} · reads", p.reads), (f"{p.path} · writes", p.writes)]
            for label, fig in kinds:
                whole = fig is p.all
                rows.append(
                    [
                        s.name, label, f"{fig.n:,}", figure(p, fig.p50), figure(p, fig.p90),
                        figure(p, fig.p99), figure(p, fig.p999), figure(p, fig.max),
                        human_ns(fig.mean),
                        f"{p.throughput:,.0f}" if whole else "",
                        "-" if p.hit_ratio is None or not whole else f"{p.hit_ratio:.1%}",
                        f"{p.db_calls_per_op:.2f}" if whole else "",
                    ]
                )  # fmt: skip
    return rows


def _md_table(columns: list[str], rows: list[list[str]]) -> str:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    env, st = report.environment, report.settings
    check = report.self_check()
    parts = [
        f"# flightcache bench, {env.get('timestamp', '')}",
        "",
        "## Performance improvements measured",
        "",
        _md_table(
            ["Query type", "Without cache (p50)", "With cache (p50)", "Improvement (p50)"],
            summary_rows(report),
        ),
        "",
        "## Latency per path",
        "",
        _md_table(DETAIL_COLUMNS, detail_rows(report)),
        "",
        "`!`: the harness cannot vouch for the figure; `≥`: operations were abandoned,"
        " the figure is a lower bound (see the warnings).",
        "",
        "## Self-check",
        "",
        f"- harness: {human_ns(check['per_op_ns'])} per operation"
        f" (budget {human_ns(HARNESS_BUDGET_NS)}); an empty operation measures"
        f" p50 {human_ns(check['empty_op_p50_ns'])}",
    ]
    if "get_ratio" in check:
        parts.append(
            f"- bare GET: the bench's p50 is {check['get_ratio']:.2f}x valkey-py's own tight"
            f" loop (target at most {GET_RATIO_TARGET}x)"
        )
    warnings = [
        f"- {s.name} / {p.path}: {w}" for s in report.scenarios for p in s.paths for w in p.warnings
    ]
    if warnings:
        parts += ["", "## Warnings", "", *warnings]
    valkey, database = env.get("valkey", {}), env.get("database", {})
    dataset = database.get("dataset", {})
    parts += [
        "",
        "## Ran on",
        "",
        f"- flightcache {env.get('flightcache')}, {env.get('python')}, {env.get('cpu_count')}"
        f" CPUs ({env.get('cpus_usable')} usable), {env.get('platform')}",
        f"- Valkey {valkey.get('version')} ({valkey.get('mode')}, {valkey.get('nodes')} node(s)),"
        f" maxmemory-policy {valkey.get('maxmemory_policy')}, parser {valkey.get('client_parser')}",
        f"- {database.get('dialect')} {database.get('version')}, dataset {dataset.get('source')}"
        f" scale {dataset.get('scale')} (seed {dataset.get('seed')})",
        f"- {st.get('mode')}, {st.get('clients')} client(s) in {st.get('processes')} process(es)"
        + (f", {st.get('rate_per_path'):,.0f}/s per path" if st.get("rate_per_path") else ""),
        f"- `{env.get('command')}`",
    ]
    if report.interrupted:
        parts += ["", "**Interrupted (Ctrl-C): only what was measured is shown.**"]
    return "\n".join(parts) + "\n"
