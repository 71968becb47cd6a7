"""Seed 004's load test over HTTP: score writes and top-10 reads on the leaderboard API.

004 drives its Go service with wrk (and k6): writes alone, reads alone, both at once.
:func:`run` does the same to ``flightcache serve``'s API, and then the same operations
as bare Valkey commands (ZINCRBY, ZREVRANGE 0 9 WITHSCORES) on the same board key at
the same concurrency, in the same run, so the cost of the HTTP layer (uvicorn,
FastAPI, JSON, the API's own checks) shows beside what Valkey alone does.

The client is one asyncio process on raw HTTP/1.1 keep-alive connections and raw
RESP connections: each request is bytes built once, each reply is read by its length,
so the client spends a few microseconds per request and no third-party HTTP client
sits in the measurement. Closed loop: each connection sends its next request when the
reply arrives. Open loop (``rate``): requests are due at fixed intervals, and latency
counts from when a request was due, so a server that falls behind shows it (no
coordinated omission). The client's own CPU use is measured: a run where it is near
one core was limited by the client, and the report says so.

This module returns numbers and prints nothing; ``commands/bench.py`` renders them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flightcache.bench import hdr
from flightcache.bench.leaderboard import PUBLISHED, PUBLISHED_SOURCE
from flightcache.errors import FlightcacheError, UsageError
from flightcache.keys import Keys

MODES = ("writes", "reads", "both")
OPS = ("writes", "reads")
BOARD = "airport-bookings"
CLIENT_BOUND = 0.85  # the client's CPU, in cores, from which a run is the client's limit
CONNECTIONS_MAX = 1_024
HEADER_MAX = 64 * 1024


class BenchHttpError(FlightcacheError):
    """The server answered something the load test cannot use (or nothing)."""


@dataclass(frozen=True)
class Options:
    modes: tuple[str, ...] = MODES
    connections: int = 16  # in all; "both" gives half to writes, half to reads
    rate: float | None = None  # open loop: requests/s per operation; None: closed loop
    duration: float = 5.0
    warmup: float = 1.0
    board: str = BOARD


def check_options(modes: Sequence[str], connections: int) -> tuple[str, ...]:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise UsageError(
            f"unknown mode {unknown[0]!r}", hint="modes: writes, reads, both (default: all three)"
        )
    if not 1 <= connections <= CONNECTIONS_MAX:
        raise UsageError(
            f"--connections {connections} is out of range",
            hint=f"1 to {CONNECTIONS_MAX:,}; 16 is usual",
        )
    return tuple(dict.fromkeys(modes)) or MODES


# -- the two protocols: a request is bytes built once, a reply is read by its length ------
@dataclass(frozen=True)
class HttpTarget:
    host: str
    port: int
    token: str

    def request(self, method: str, path: str, body: bytes = b"", csrf: str = "") -> bytes:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Authorization: Bearer {self.token}", "Accept: application/json"]  # fmt: skip
        if csrf:
            head += [f"Cookie: fc_csrf={csrf}", f"X-CSRF-Token: {csrf}"]
        if method == "POST":
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_http(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response on a keep-alive connection: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise BenchHttpError(f"not an HTTP/1.1 response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        if b"transfer-encoding: chunked" in lower:
            return status, await _chunked(reader)
        raise BenchHttpError("a response without Content-Length on a keep-alive connection")
    end = head.index(b"\r\n", at + 2)
    return status, await reader.readexactly(int(head[at + 17 : end]))


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if not size:
            return body
        body += chunk[:-2]


def resp(*args: str | int) -> bytes:
    """One command in RESP, as valkey-py would send it."""
    parts = [str(a).encode() for a in args]
    return b"".join([b"*%d\r\n" % len(parts), *(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)])


async def read_resp(reader: asyncio.StreamReader) -> None:
    """One RESP2 reply, read and dropped; an error reply raises."""
    line = await reader.readline()
    kind = line[:1]
    if kind == b"-":
        raise BenchHttpError(f"Valkey said: {line[1:].strip().decode(errors='replace')}")
    if kind == b"$":
        size = int(line[1:])
        if size >= 0:
            await reader.readexactly(size + 2)
    elif kind == b"*":
        for _ in range(max(0, int(line[1:]))):
            await read_resp(reader)
    elif not line:
        raise BenchHttpError("Valkey closed the connection")


@dataclass(frozen=True)
class ValkeyTarget:
    """The node that holds the board's key (on a cluster, the key's slot's primary)."""

    host: str
    port: int
    path: str  # a unix socket, or ""
    username: str
    password: str
    db: int
    key: str


# -- one run: connections, each a loop of request and reply, timed into its histogram -----
Exchange = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


@dataclass
class OpResult:
    op: str
    via: str  # "http" or "valkey"
    connections: int
    seconds: float = 0.0
    errors: int = 0
    histogram: Any = field(default_factory=hdr.new)

    @property
    def n(self) -> int:
        return int(self.histogram.get_total_count())

    @property
    def per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "via": self.via, "connections": self.connections,
                "requests": self.n, "errors": self.errors, "seconds": round(self.seconds, 3),
                "per_s": round(self.per_s, 1),
                "latency_ns": hdr.summary(self.histogram).as_dict()}  # fmt: skip


@dataclass
class RunResult:
    mode: str
    via: str
    ops: dict[str, OpResult]
    client_cores: float  # this process's CPU seconds per wall second while measuring
    load_before: float
    server_cores: float | None = None  # serve's processes (http), valkey-server (valkey)

    @property
    def client_bound(self) -> bool:
        """The client near a core of its own, or busier than the server it waits on."""
        if self.client_cores >= CLIENT_BOUND:
            return True
        return self.server_cores is not None and self.client_cores > self.server_cores

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "via": self.via, "client_cores": round(self.client_cores, 2),
                "client_bound": self.client_bound, "load_before": self.load_before,
                "server_cores": None if self.server_cores is None
                else round(self.server_cores, 2),
                "ops": {k: v.as_dict() for k, v in self.ops.items()}}  # fmt: skip


async def _open(host: str, port: int, path: str = "") -> tuple[Any, Any]:
    if path:
        return await asyncio.open_unix_connection(path)
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        import socket

        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


@dataclass
class _DueTimes:
    """When each request is due: closed loop now; open loop every 1/rate s from ``t0``."""

    rate: float | None
    t0: int = 0
    count: Iterator[int] = field(default_factory=itertools.count)

    def due(self) -> int:
        if self.rate is None:
            return time.perf_counter_ns()
        return self.t0 + int(next(self.count) * 1e9 / self.rate)


async def _loop(conn: tuple[Any, Any], exchange: Exchange, result: OpResult, clock: _DueTimes,
                until: int) -> None:  # fmt: skip
    """Requests on one connection until ``until`` (ns), each timed from when it was due."""
    reader, writer = conn
    counts, added, i = result.histogram.counts, 0, 0
    mask, shift, half_mag = hdr.MASK, hdr.SHIFT, hdr.HALF_MAGNITUDE
    unit, half, highest = hdr.UNIT, hdr.HALF, hdr.HIGHEST_NS
    try:
        while True:
            due = clock.due()
            if due >= until:
                break
            wait = due - time.perf_counter_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            i += 1
            ok = await exchange(reader, writer, i)
            ns = min(max(time.perf_counter_ns() - due, 0), highest)
            if not ok:
                result.errors += 1
                continue
            bucket = (ns | mask).bit_length() - shift  # hdr.index, inlined
            counts[((bucket + 1) << half_mag) + (ns >> (bucket + unit)) - half] += 1
            added += 1
    finally:
        hdr.settle(result.histogram, added)


@dataclass
class _Workload:
    op: str
    via: str
    connect: Callable[[], Awaitable[tuple[Any, Any]]]
    exchange: Exchange


async def _measure(workloads: list[tuple[_Workload, int]], options: Options,
                   mode: str, via: str, server_pid: int | None) -> RunResult:  # fmt: skip
    """Warm up, then measure: every workload's connections at once, for the duration."""
    conns = [[await w.connect() for _ in range(n)] for w, n in workloads]
    try:
        for seconds, keep in ((options.warmup, False), (options.duration, True)):
            if seconds <= 0:
                continue
            results = {w.op: OpResult(w.op, w.via, n) for w, n in workloads}
            load = os.getloadavg()[0]
            server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
            start, cpu = time.perf_counter_ns(), time.process_time()
            until = start + int(seconds * 1e9)
            loops = []
            for (w, _), opened in zip(workloads, conns, strict=True):
                clock = _DueTimes(options.rate, start)
                loops += [_loop(c, w.exchange, results[w.op], clock, until) for c in opened]
            await asyncio.gather(*loops)
            wall = (time.perf_counter_ns() - start) / 1e9
            cores = (time.process_time() - cpu) / wall
            served = (cpu_seconds(server_pid) - server_cpu) / wall if server_pid else None
            for r in results.values():
                r.seconds = wall
            if keep:
                return RunResult(mode, via, results, cores, round(load, 2), served)
        raise AssertionError("a duration above zero always returns")  # checked by the command
    finally:
        for opened in conns:
            for _, writer in opened:
                writer.close()


def _split(mode: str, connections: int) -> dict[str, int]:
    if mode == "both":
        writers = max(1, connections // 2)
        return {"writes": writers, "reads": max(1, connections - writers)}
    return {mode: connections}


# -- the two sides: the API, and bare Valkey --------------------------------------------
def _http_workloads(target: HttpTarget, board: str, members: Sequence[str],
                    csrf: str) -> dict[str, _Workload]:  # fmt: skip
    writes = [
        target.request("POST", "/api/scores", json.dumps(
            {"board": board, "member": m, "increment": 1}).encode(), csrf)
        for m in members
    ]  # fmt: skip
    top = target.request("GET", f"/api/leaderboards/{board}/top?n=10")

    async def connect() -> tuple[Any, Any]:
        return await _open(target.host, target.port)

    async def write(reader: Any, writer: Any, i: int) -> bool:
        writer.write(writes[i % len(writes)])
        status, _ = await read_http(reader)
        return status == 200

    async def read(reader: Any, writer: Any, i: int) -> bool:
        writer.write(top)
        status, _ = await read_http(reader)
        return status == 200

    return {"writes": _Workload("writes", "http", connect, write),
            "reads": _Workload("reads", "http", connect, read)}  # fmt: skip


def _valkey_workloads(target: ValkeyTarget, members: Sequence[str]) -> dict[str, _Workload]:
    writes = [resp("ZINCRBY", target.key, 1, m) for m in members]
    top = resp("ZREVRANGE", target.key, 0, 9, "WITHSCORES")

    async def connect() -> tuple[Any, Any]:
        reader, writer = await _open(target.host, target.port, target.path)
        if target.password:
            auth = [target.username] if target.username else []
            writer.write(resp("AUTH", *auth, target.password))
            await read_resp(reader)
        if target.db:
            writer.write(resp("SELECT", target.db))
            await read_resp(reader)
        return reader, writer

    async def write(reader: Any, writer: Any, i: int) -> bool:
        writer.write(writes[i % len(writes)])
        await read_resp(reader)
        return True

    async def read(reader: Any, writer: Any, i: int) -> bool:
        writer.write(top)
        await read_resp(reader)
        return True

    return {"writes": _Workload("writes", "valkey", connect, write),
            "reads": _Workload("reads", "valkey", connect, read)}  # fmt: skip


async def members_and_csrf(target: HttpTarget, board: str) -> tuple[list[str], str]:
    """The board's members (GET top: the server rebuilds the board from the database when
    it is absent, as 004 does at start) and a CSRF token for the POSTs (GET /api/csrf)."""
    reader, writer = await _open(target.host, target.port)
    try:
        answers = []
        for path in (f"/api/leaderboards/{board}/top?n=10000", "/api/csrf"):
            writer.write(target.request("GET", path))
            status, body = await read_http(reader)
            try:
                answer = json.loads(body)
            except ValueError:
                answer = {}
            if status != 200:
                said = answer.get("error") or body[:200].decode(errors="replace")
                raise BenchHttpError(f"GET {path} answered {status}: {said}",
                                     hint="is the server's database loaded and up?")  # fmt: skip
            answers.append(answer)
    finally:
        writer.close()
    members = [e["member"] for e in answers[0]["entries"]]
    if not members:
        raise BenchHttpError(
            f"{board} has no members", hint="load a dataset: flightcache data load"
        )
    return members, str(answers[1]["token"])


@dataclass
class HttpReport:
    options: Options
    server: dict[str, Any]
    runs: list[RunResult]
    members: int
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    load_after: float = 0.0
    command: list[str] = field(default_factory=list)

    def run_of(self, mode: str, via: str) -> RunResult | None:
        return next((r for r in self.runs if r.mode == mode and r.via == via), None)

    def as_dict(self) -> dict[str, Any]:
        o = self.options
        return {
            "kind": "flightcache bench http",
            "command": ["flightcache", *self.command],
            "options": {"modes": list(o.modes), "connections": o.connections,
                        "loop": "open" if o.rate else "closed", "rate_per_op": o.rate,
                        "duration": o.duration, "warmup": o.warmup, "board": o.board},
            "server": self.server, "board_members": self.members,
            "machine": {"cpus": self.cpus, "load_after": self.load_after},
            "published_004": PUBLISHED, "published_004_source": PUBLISHED_SOURCE,
            "runs": [r.as_dict() for r in self.runs],
            "notes": notes(self),
        }  # fmt: skip


def notes(report: HttpReport) -> list[str]:
    """What a reader must know to read the figures honestly."""
    out = []
    for r in report.runs:
        if r.client_bound:
            server = "-" if r.server_cores is None else f"{r.server_cores:.2f}"
            out.append(
                f"{r.mode} via {r.via}: the client (one process) used {r.client_cores:.2f}"
                f" cores and the server {server}: the client, not the server, set this"
                " rate; the server may go faster"
            )
    busiest = max([r.load_before for r in report.runs] + [report.load_after])
    if busiest > report.cpus:
        out.append(
            f"the load average reached {busiest:.1f} on {report.cpus} cores: other processes"
            " took CPU from the client, the server and Valkey, so every figure is lower than"
            " on an idle machine; compare the HTTP and Valkey columns, measured together"
        )
    if report.cpus <= 2:
        out.append(
            f"this machine has {report.cpus} cores, shared by the client, the server's"
            " workers and Valkey: a second worker competes with them rather than adding a core"
        )
    out.append(
        "an HTTP write is one POST /api/scores: EXISTS, ZSCORE and the write-through script"
        " (ZINCRBY + EXPIRE on each period of the board that exists); the bare write is one"
        " ZINCRBY, so the gap is the HTTP layer plus the API's checks"
    )
    return out


def run(options: Options, http: HttpTarget, valkey: ValkeyTarget, *,
        server_pid: int | None = None, valkey_pid: int | None = None,
        progress: Callable[[str], None] | None = None) -> HttpReport:  # fmt: skip
    """Every mode over HTTP, then the same as bare Valkey commands."""

    async def main() -> HttpReport:
        members, csrf = await members_and_csrf(http, options.board)
        sides = {"http": _http_workloads(http, options.board, members, csrf),
                 "valkey": _valkey_workloads(valkey, members)}  # fmt: skip
        runs = []
        for mode in options.modes:
            for via, workloads in sides.items():
                if progress is not None:
                    progress(f"{mode} via {via}")
                split = _split(mode, options.connections)
                chosen = [(workloads[op], n) for op, n in split.items()]
                pid = server_pid if via == "http" else valkey_pid
                runs.append(await _measure(chosen, options, mode, via, pid))
        server = {"url": f"http://{http.host}:{http.port}"}
        return HttpReport(options, server, runs, len(members), load_after=os.getloadavg()[0])

    return asyncio.run(main())


def valkey_pid(client: Any, key: str) -> int | None:
    """The pid of the valkey-server that holds ``key``, when it runs on this machine."""
    import valkey.exceptions

    try:
        if hasattr(client, "get_node_from_key"):  # a cluster: the node of the key's slot
            node = client.get_node_from_key(key)
            if node.valkey_connection is None:
                client.nodes_manager.initialize()
                node = client.get_node_from_key(key)
            client = node.valkey_connection
        pid = int(client.info("server")["process_id"])
    except (KeyError, ValueError, TypeError, AttributeError, valkey.exceptions.ValkeyError):
        return None
    import psutil

    return pid if psutil.pid_exists(pid) else None


def valkey_target(client: Any, url: Any, key: str) -> ValkeyTarget:
    """Where ``key`` lives: the node of ``url``, or on a cluster its slot's primary."""
    if url.tls:
        raise UsageError(
            "bench http's bare Valkey side speaks plain RESP, not TLS",
            hint="point it at a valkey:// or unix:// URL (the embedded stack's is one)",
        )
    if url.cluster:
        node = client.get_node_from_key(key)
        host, port = str(node.host), int(node.port)
    else:
        host, port = url.host, url.port
    return ValkeyTarget(host, port, url.path, url.username, url.password, url.db, key)


# -- the server, when the bench starts its own ------------------------------------------
@dataclass
class ServerProcess:
    base: str
    token: str
    workers: int
    process: Any


SERVE_LINE = "serving on "


@contextmanager
def serve(env: dict[str, str], workers: int, timeout: float = 60) -> Iterator[ServerProcess]:
    """``flightcache serve --port 0 --workers N`` as a child that dies with this process,
    on the servers and key prefix ``env`` names; stopped (SIGINT, as Ctrl-C) on exit,
    on every exit, an interrupt included."""
    import secrets
    import signal
    import subprocess

    from flightcache.children import child_env, python_command

    token = secrets.token_urlsafe(24)
    command = python_command(["-m", "flightcache", "serve", "--port", "0",
                              "--workers", str(workers)])  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env({**os.environ, **env, "FLIGHTCACHE_SERVE_TOKEN": token}),
        start_new_session=True,
    )
    try:
        base = _wait_for_url(process, timeout)
        yield ServerProcess(base, token, workers, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _wait_for_url(process: Any, timeout: float) -> str:
    """The URL serve prints; a serve that says nothing for ``timeout`` s is killed."""
    import threading

    lines: list[str] = []
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line.rstrip())
            if SERVE_LINE in line:
                url = str(line.split(SERVE_LINE, 1)[1].split()[0])
                return url.split("/?token=", 1)[0]
    finally:
        timer.cancel()
    process.kill()
    raise BenchHttpError(
        "flightcache serve did not start: " + (" | ".join(lines[-3:]) or "no output"),
        hint="run `flightcache serve --port 0` alone to see why",
    )


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the server's uvicorn workers)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


# -- the run's keys -------------------------------------------------------------------
def _run_id() -> str:
    """This process as a scope can name it: host, pid and start time (a reused pid
    has another start time)."""
    import re
    import socket

    import psutil

    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24] or "host"
    return f"{host}.{os.getpid()}.{int(psutil.Process().create_time())}"


def http_scope(prefix: str) -> str:
    """The key prefix of one `bench http` run (``<prefix>bench-http:<run>:``): named
    after the run's process, so that the next run finds it if this one is killed
    before it deletes its keys."""
    return Keys(prefix).scope("bench-http").scope(_run_id()).prefix


def sweep_http_scopes(client: Any, prefix: str) -> int:
    """Delete the keys of every `bench http` run of this host whose process is gone (a
    SIGKILL leaves its scope behind); runs still going and other hosts' are left."""
    import psutil

    from flightcache.valkey_client import delete_matching, primaries

    runs = Keys(prefix).scope("bench-http")
    host = _run_id().split(".", 1)[0]
    dead: set[str] = set()
    for node in primaries(client):
        for key in node.scan_iter(match=runs.match(), count=500):
            run = str(key)[len(runs.prefix) :].split(":", 1)[0]
            parts = run.split(".")
            if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or run in dead:
                continue
            try:
                alive = int(psutil.Process(int(parts[1])).create_time()) == int(parts[2])
            except (psutil.Error, ValueError):
                alive = False
            if not alive:
                dead.add(run)
    return sum(delete_matching(client, runs.scope(run).match()) for run in dead)
