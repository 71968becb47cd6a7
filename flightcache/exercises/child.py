"""The process that runs a learner's code, and nothing but it.

The runner starts it fresh (``python -I``, a clean environment, its own session)
and writes one JSON document per line to its stdin: first the spec (the
exercise, the learner's file, the restricted Valkey URL of the run's ACL user,
the database's dialect, the time limit, the resource limits, the descriptor it
watches its parent on), then one ``call`` per function the checks call. It
answers on the stdout it had at start, one JSON event per line: ``connected``,
``ready`` once the learner's file is imported (or ``load-failed``), and per call
``returned`` or ``raised``. What the learner's code prints goes to stderr.

The checks themselves run in the parent, with its own clients: nothing this
process says decides a check but the return values of the learner's functions.
The learner's ``db`` is a proxy: each statement goes to the parent as a ``db``
event, and the parent runs it as the run's restricted database role, counts the
reads and injects the failures the checks ask for. This process never holds an
admin URL or a database password.

Before the learner's code is imported it forks a watchdog into its process group
that waits for the parent's end of a pipe to close and then kills the whole group
(so a SIGKILLed ``flightcache exercise check`` takes the learner's processes with
it), and lowers its own resource limits: CPU seconds, address space, processes.
A faulthandler dump just before the time limit tells the parent which line was
running when it kills the group.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import resource
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from flightcache.errors import ExitCode, FlightcacheError, QueryError

HANDLE = "$handle"


def _emit(stream: IO[str], **event: Any) -> None:
    stream.write(json.dumps(event, default=str) + "\n")
    stream.flush()


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"flightcache_exercise_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def start_watchdog(watch_fd: int) -> None:
    """Fork a process that kills this process group once the parent's pipe closes."""
    pid = os.fork()
    if pid:
        os.close(watch_fd)
        return
    try:  # the watchdog: nothing of the parent's pipes, only the watched one
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, watch_fd)
        os.closerange(watch_fd + 1, 1024)
        while os.read(watch_fd, 1):
            pass
    finally:
        os.killpg(os.getpgid(0), signal.SIGKILL)
        os._exit(ExitCode.OK)


def _tasks_of(uid: int) -> int:
    """Threads of ``uid`` now running: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def apply_limits(limits: dict[str, int]) -> None:
    """Lower the soft and hard limits; a limit already lower stays as it is."""
    wanted = {
        resource.RLIMIT_CPU: limits.get("cpu_s", 0),
        resource.RLIMIT_AS: limits.get("memory_bytes", 0),
    }
    extra = limits.get("processes", 0)
    if extra and Path("/proc/self/status").exists():
        wanted[resource.RLIMIT_NPROC] = _tasks_of(os.getuid()) + extra
    for which, value in wanted.items():
        if value <= 0:
            continue
        soft, hard = resource.getrlimit(which)
        new_hard = value if hard == resource.RLIM_INFINITY else min(hard, value)
        new_soft = new_hard if soft == resource.RLIM_INFINITY else min(soft, new_hard)
        try:
            resource.setrlimit(which, (new_soft, new_hard))
        except (ValueError, OSError):
            pass


class RemoteDb:
    """The database as the learner's code gets it: each statement runs in the parent.

    ``sql(name)`` gives a named query of flightcache's sql/ files for this database;
    ``fetch``, ``execute`` and ``transaction`` ask the parent, which runs them as the
    run's database role. A failure the check injects comes back as InjectedFailure.
    """

    def __init__(self, dialect: str, events: IO[str], requests: IO[str]) -> None:
        self.dialect = dialect
        self._events = events
        self._requests = requests
        self.crash: Crash | None = None  # told when a COMMIT has succeeded

    def sql(self, name: str) -> str:
        from flightcache import sqlfiles

        return sqlfiles.query(self.dialect, name)  # type: ignore[arg-type]

    def _ask(self, op: str, sql: str = "", params: Any = None) -> Any:
        from flightcache.exercises.harness import InjectedFailure

        _emit(self._events, event="db", op=op, sql=sql, params=params)
        line = self._requests.readline()
        if not line:
            raise SystemExit(ExitCode.OK)  # the parent is gone
        reply = json.loads(line)
        error = reply.get("error")
        if error is None:
            return reply.get("value")
        kind = reply.get("kind")
        if kind == "injected":
            raise InjectedFailure(error)
        if kind == "usage":
            raise RuntimeError(error)
        raise QueryError(error)

    def fetch(self, sql: str, params: Any = None) -> Any:
        from flightcache.db import QueryResult

        value = self._ask("fetch", sql, params)
        rows = [tuple(row) for row in value["rows"]]
        return QueryResult(list(value["columns"]), rows, int(value["rowcount"]))

    def execute(self, sql: str, params: Any = None) -> int:
        return int(self._ask("execute", sql, params))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._ask("begin")
        try:
            yield
        except BaseException:
            self._ask("rollback")
            raise
        self._ask("commit")
        if self.crash is not None:
            self.crash.committed()


class Crash:
    """Lose every Valkey connection after ``replies`` replies, counted from the call's
    start or, with ``after_commit``, from the database's COMMIT: the next send raises
    InjectedFailure, as if this process had died there. What one send carries (one
    command, a MULTI ... EXEC pipeline, a script) still runs whole."""

    def __init__(self, replies: int, after_commit: bool) -> None:
        self.left = replies
        self.counting = not after_commit

    def committed(self) -> None:
        self.counting = True

    def replied(self) -> None:
        if self.counting:
            self.left -= 1

    def lost(self) -> bool:
        return self.counting and self.left <= 0


@contextmanager
def crashing(crash: Crash | None) -> Iterator[None]:
    """The learner's Valkey connections, lost as ``crash`` says (None: untouched)."""
    if crash is None:
        yield
        return
    from valkey.connection import AbstractConnection

    from flightcache.exercises.harness import CRASH_MESSAGE, InjectedFailure

    send, read = AbstractConnection.send_packed_command, AbstractConnection.read_response

    def crashing_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        if crash.lost():
            raise InjectedFailure(CRASH_MESSAGE)
        return send(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    def noting_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(self, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            crash.replied()

    AbstractConnection.send_packed_command = crashing_send  # type: ignore[method-assign]
    AbstractConnection.read_response = noting_read  # type: ignore[method-assign]
    try:
        yield
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        AbstractConnection.read_response = read  # type: ignore[method-assign]


def crash_of(args: list[Any]) -> Crash | None:
    """The crash a ``valkey-crash:<after_commit>:<replies>`` handle among ``args`` asks."""
    for arg in args:
        if isinstance(arg, dict) and str(arg.get(HANDLE, "")).startswith("valkey-crash:"):
            _, after_commit, replies = str(arg[HANDLE]).split(":")
            return Crash(int(replies), after_commit == "1")
    return None


def main() -> int:
    events = os.fdopen(os.dup(1), "w", encoding="utf-8")
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the learner's code reads nothing meant for this process
    os.close(null)
    os.dup2(2, 1)  # the learner's print() goes to stderr, not into the events
    sys.stderr.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    sys.stdout = sys.stderr
    spec = json.loads(requests.readline())
    if spec.get("watch_fd") is not None:
        start_watchdog(int(spec["watch_fd"]))

    from flightcache.config import ValkeyUrl
    from flightcache.exercises.catalogue import get
    from flightcache.exercises.harness import CheckFailed, InjectedFailure, Learner, where_in
    from flightcache.valkey_client import connect

    exercise = get(spec["exercise"])
    try:
        client = connect(ValkeyUrl.parse(spec["learner_url"]))
    except FlightcacheError as exc:
        _emit(events, event="error", message=exc.message, hint=exc.hint or "")
        return 0
    db = RemoteDb(spec["dialect"], events, requests) if spec.get("dialect") else None
    apply_limits(spec.get("limits") or {})
    _emit(events, event="connected")
    path = Path(spec["file"]).resolve()
    sys.path.append(str(path.parent))  # the learner's own modules beside the file, last
    dump = open(spec["dump_file"], "w", encoding="utf-8")  # noqa: SIM115 - open for the process
    faulthandler.dump_traceback_later(float(spec["dump_after"]), exit=False, file=dump)
    try:
        module = _load(path, exercise.filename[:-3])
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        _emit(events, event="load-failed", message=message, where=where_in(path, exc))
        return 0
    finally:
        faulthandler.cancel_dump_traceback_later()
    learner = Learner(module, path, exercise)
    _emit(events, event="ready")

    def decode(arg: Any) -> Any:
        if isinstance(arg, dict) and set(arg) == {HANDLE}:
            return client if str(arg[HANDLE]).startswith("valkey") else db
        return arg

    for line in requests:
        request = json.loads(line)
        if request.get("op") != "call":
            continue
        learner.last_called = ""
        faulthandler.dump_traceback_later(float(request["dump_after"]), file=dump)
        crash = crash_of(request["args"])
        if db is not None:
            db.crash = crash
        try:
            with crashing(crash):
                value = learner.call(
                    request["function"],
                    *[decode(a) for a in request["args"]],
                    expect_failure=bool(request.get("expect_failure")),
                )
        except CheckFailed as failed:
            _emit(
                events,
                event="raised",
                kind="failed",
                message=failed.message,
                hint=failed.hint,
                where=failed.where,
                called=learner.last_called,
            )
        except InjectedFailure as exc:
            _emit(events, event="raised", kind="injected", message=str(exc), called="")
        else:
            try:
                _emit(events, event="returned", value=value, called=learner.last_called)
            except (TypeError, ValueError) as exc:
                _emit(
                    events,
                    event="raised",
                    kind="failed",
                    message=f"{request['function']}() returned a value that cannot be read:"
                    f" {type(exc).__name__}: {exc}",
                    hint="return plain values: numbers, text, lists, dicts, None",
                    where="",
                    called=learner.last_called,
                )
        finally:
            faulthandler.cancel_dump_traceback_later()
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
