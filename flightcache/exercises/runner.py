"""Running an exercise's checks: the parent side.

``run()`` compiles the learner's file (a syntax error is a failed check, no
server touched), sweeps what a killed earlier run left on these servers, fences
the run (:class:`Guard`: a key prefix and an ACL user allowed only that prefix and
no dangerous command; for the database exercises a :class:`DbSandbox` role that
reads the dataset and writes only its scratch area), records both in the state
directory before making them, then runs the checks here, in the parent, with its
own clients. The learner's functions run in a child process started fresh with a
clean environment and only the ACL user's URL (:class:`_Child`); each call goes
to it and comes back with the return value, and its database statements come
back to be run here as the role. A check that runs over its time limit sends
SCRIPT KILL and FUNCTION KILL and kills the child's whole process group; a fresh
child runs the checks left. Then every key under the prefix, the sentinels, the
ACL user and the role with its scratch area are removed. What the learner's code
touched outside its prefix becomes one more failed check.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import valkey.exceptions

import flightcache
from flightcache.config import ENV_STATE_DIR, ValkeyUrl, default_state_dir, register_secret, scrub
from flightcache.db import Database
from flightcache.errors import FlightcacheError
from flightcache.exercises.catalogue import Exercise
from flightcache.exercises.checks import CHECKS
from flightcache.exercises.harness import (
    LEARNER_VALKEY,
    Check,
    CheckContext,
    CheckFailed,
    ExerciseDb,
    InjectedFailure,
    LearnerValkey,
)
from flightcache.exercises.sandbox import (
    ACL_PREFIX,
    DbSandbox,
    Record,
    Records,
    db_server,
    role_name,
    sweep,
    valkey_address,
)
from flightcache.keys import Keys
from flightcache.valkey_client import (
    Client,
    close,
    confined_rules,
    connect,
    delete_matching,
    primaries,
)

STARTUP_S = 15.0  # the child's own imports and connections; the learner's file gets the limit
OUTPUT_MAX = 4_000
DUMP_MARGIN_S = 0.3  # the faulthandler dump comes this long before the limit
SCRIPT_KILL_S = 10.0  # a busy server takes SCRIPT KILL once its busy threshold (5 s) is reached
DB_GRACE_S = 0.5  # a statement still running this long after the limit is cancelled
MEMORY_LIMIT = 1 << 30  # the child's address space: a learner's 4 GB allocation fails cleanly
PROCESS_LIMIT = 32  # processes the child may add to its account's count
# what the child's environment keeps: nothing that can hold a URL or a password
ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")
BOOT = (
    "import sys; sys.path.append(sys.argv[1]);"
    " from flightcache.exercises.child import main; raise SystemExit(main())"
)
PREFIX_CHECK = "prefix"
TIMEOUT_HINT = (
    "your code did not return in time: a loop that never ends, or a blocking call"
    " (BLOCK 0, a lock never released)? The line it was running is below"
)


@dataclass
class CheckResult:
    name: str
    title: str
    passed: bool
    message: str = ""
    hint: str = ""
    where: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExerciseReport:
    exercise: str
    file: Path
    prefix: str
    isolation: str  # "acl" or "sentinels"
    note: str = ""
    results: list[CheckResult] = field(default_factory=list)
    output: str = ""  # what the learner's code printed
    swept: list[str] = field(default_factory=list)  # what a killed earlier run left, removed

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def score(self) -> tuple[int, int]:
        return sum(r.passed for r in self.results), len(self.results)

    def as_dict(self) -> dict[str, Any]:
        done, total = self.score
        return {
            "exercise": self.exercise,
            "file": str(self.file),
            "passed": self.passed,
            "score": {"passed": done, "total": total},
            "prefix": self.prefix,
            "isolation": self.isolation,
            "note": self.note,
            "checks": [r.as_dict() for r in self.results],
            "output": self.output,
            "swept": self.swept,
        }


def run(
    exercise: Exercise,
    file: Path,
    *,
    valkey_url: ValkeyUrl,
    db: Database | None,
    key_prefix: str,
    timeout: float = 10.0,
    use_acl: bool = True,
    state_dir: Path | None = None,
) -> ExerciseReport:
    """Run every check of ``exercise`` on the learner's ``file``."""
    file = file.resolve()
    checks = list(CHECKS[exercise.name])
    run_id = secrets.token_hex(4)
    base = Keys(key_prefix).scope("exercise")
    keys = base.scope(f"{exercise.name}:{run_id}")
    report = ExerciseReport(exercise.name, file, keys.prefix, "none")
    failed_compile = _compile(file, checks)
    if failed_compile:
        report.results = failed_compile
        return report
    records = Records(state_dir or _state_dir())
    with _signals_end_the_run():
        admin = connect(valkey_url)
        try:
            report.swept = sweep(records, valkey_url=valkey_url, admin=admin, db=db)
            guard = Guard(admin, base, keys, run_id)
            sandbox = DbSandbox(db, run_id, timeout) if db is not None else None
            record = Record(
                run_id,
                os.getpid(),
                valkey_address(valkey_url),
                guard.user,
                keys.prefix,
                db.dialect if db is not None else "",
                db_server(db.url) if db is not None else "",
                role_name(run_id) if db is not None else "",
                sandbox.host if sandbox is not None else "",
                list(guard.sentinels),
            )
            records.write(record)
            try:
                guard.setup(use_acl=use_acl, db=valkey_url.db)
                report.isolation, report.note = guard.mode, guard.note
                scratch = _create(sandbox) if sandbox is not None else None
                spec = {
                    "exercise": exercise.name,
                    "file": str(file),
                    "learner_url": guard.learner_url(valkey_url).url(redact=False),
                    "dialect": db.dialect if db is not None else "",
                }
                session = _Session(spec, admin, db, scratch, sandbox, keys, timeout)
                report.results, report.output = session.drive(checks)
                verdict = guard.verdict()
                if not verdict.passed:
                    report.results.append(verdict)
            finally:
                clean = _cleanup(guard, sandbox)
                if clean:
                    records.remove(record)
        finally:
            close(admin)
        return report


class RunStopped(FlightcacheError):
    """SIGTERM or SIGHUP arrived during a check run; its cleanup ran before this was raised."""


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run through its cleanup (the learner's process group,
    the ACL user, the role, the keys), once: a second one during the cleanup is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = (signal.SIGTERM, signal.SIGHUP)

    def stop(signum: int, _frame: Any) -> None:
        for number in caught:
            signal.signal(number, signal.SIG_IGN)
        raise RunStopped(
            f"the check run was stopped by {signal.Signals(signum).name}",
            hint="what it had made on the servers was removed; run the check again",
        )

    previous = {number: signal.signal(number, stop) for number in caught}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _create(sandbox: DbSandbox) -> Database:
    try:
        return sandbox.create()
    except FlightcacheError as exc:
        raise FlightcacheError(
            f"cannot create the database role your SQL runs as: {exc.message}",
            hint="the checks need a database user that may create users and grant"
            " (MySQL/MariaDB: CREATE USER, GRANT OPTION, CREATE) or roles (PostgreSQL:"
            " CREATEROLE and CREATE on the database); the embedded stack's user may, a"
            " workshop room's account may not: run this one on your own stack (`flightcache"
            " up`, with FLIGHTCACHE_CONFIG unset)",
        ) from None


def _state_dir() -> Path:
    raw = os.environ.get(ENV_STATE_DIR)
    return Path(raw).expanduser().absolute() if raw else default_state_dir()


def _cleanup(guard: Guard, sandbox: DbSandbox | None) -> bool:
    """Each step on its own; True when all of them worked (the record can go)."""
    clean = True
    try:
        if sandbox is not None:
            sandbox.drop()
    except FlightcacheError:
        clean = False
    try:
        guard.close()
    except (valkey.exceptions.ValkeyError, FlightcacheError):
        clean = False
    return clean


def _compile(file: Path, checks: list[Check]) -> list[CheckResult]:
    """Nothing when the file compiles; else a failed check at the line, the rest not run."""
    try:
        source = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlightcacheError(f"cannot read {file}: {exc.strerror}") from None
    try:
        compile(source, str(file), "exec")
    except SyntaxError as exc:
        where = f"{file}:{exc.lineno}: {(exc.text or '').strip()}"
        first = CheckResult(
            "compiles",
            "your file compiles",
            False,
            f"{type(exc).__name__}: {exc.msg}",
            "fix the line below; Python stops reading the file there",
            where,
        )
        return [first, *_not_run(checks, "your file does not compile")]
    return []


def _failed(check: Check, message: str, hint: str = "", where: str = "") -> CheckResult:
    return CheckResult(check.name, check.title, False, message, hint, where)


def _not_run(checks: list[Check], why: str) -> list[CheckResult]:
    return [_failed(c, f"not run: {why}") for c in checks]


class Guard:
    """The run's key prefix, fenced: an ACL user restricted to it, and sentinels beside it."""

    def __init__(self, admin: Client, base: Keys, keys: Keys, run_id: str) -> None:
        self.admin = admin
        self.keys = keys
        self.user = f"{ACL_PREFIX}{run_id}"
        self.password = secrets.token_hex(16)
        register_secret(self.password)
        self.mode = "sentinels"
        self.note = ""
        self.sentinels = {key: secrets.token_hex(8) for key in _sentinel_keys(admin, base, run_id)}
        self._acl_nodes: list[Any] = []

    def setup(self, *, use_acl: bool, db: int = 0) -> None:
        for key, token in self.sentinels.items():
            self.admin.set(key, token, ex=3600)  # gone within the hour, even after a crash
        if not use_acl:
            self.note = (
                "ACLs not used: keys outside the prefix are detected afterwards, not refused"
            )
            return
        # keys under the run's prefix, no channels, no dangerous command (CONFINED)
        rules = confined_rules(self.password, self.keys.prefix, db=db)
        try:
            for node in primaries(self.admin):
                node.execute_command("ACL", "SETUSER", self.user, *rules)
                self._acl_nodes.append(node)
        except valkey.exceptions.ValkeyError as exc:
            self._drop_user()
            reason = str(exc).split("\n", 1)[0]
            self.note = (
                f"ACLs unavailable ({reason}): keys outside the prefix are detected"
                " afterwards by sentinel keys, not refused, and your code runs with your own"
                " Valkey credentials"
            )
            return
        self.mode = "acl"
        self.note = f"your code runs as ACL user {self.user}, allowed only {self.keys.prefix}*"

    def learner_url(self, url: ValkeyUrl) -> ValkeyUrl:
        if self.mode != "acl":
            return url
        return replace(url, username=self.user, password=self.password)

    def touched(self) -> list[str]:
        """What the learner's code did outside the prefix, one line each."""
        found: list[str] = []
        for key, token in self.sentinels.items():
            now = self.admin.get(key)
            if now != token:
                found.append(f"{key} was {'deleted' if now is None else 'overwritten'}")
        for node in self._acl_nodes:
            for entry in node.acl_log(count=128):
                if entry.get("username") != self.user:
                    continue
                command = str(entry.get("client-info", {}).get("cmd", "")).upper()
                target = entry.get("object", "")
                if entry.get("reason") == "command":
                    line = f"{str(target).upper()} was refused (not allowed in exercises)"
                else:
                    via = " from a script" if entry.get("context") == "lua" else ""
                    line = f"{command} {target}{via} was refused (NOPERM)"
                if line not in found:
                    found.append(line)
        return found

    def verdict(self) -> CheckResult:
        touched = self.touched()
        title = "only the run's keys touched, only allowed commands run"
        if not touched:
            return CheckResult(PREFIX_CHECK, title, True)
        refused = [line for line in touched if line.endswith("(not allowed in exercises)")]
        keys = [line for line in touched if line not in refused]
        said: list[str] = []
        hints: list[str] = []
        if keys:
            said.append(
                f"your code touched keys outside its prefix {self.keys.prefix}: "
                + "; ".join(keys[:5])
            )
            hints.append("use only the key names the checker passes to your functions")
        if refused:
            said.append("your code ran commands exercises may not run: " + "; ".join(refused[:5]))
            hints.append("the exercises need only the commands their docstrings name")
        return CheckResult(PREFIX_CHECK, title, False, "; ".join(said), "; ".join(hints))

    def _drop_user(self) -> None:
        for node in self._acl_nodes:
            try:
                node.execute_command("ACL", "DELUSER", self.user)
            except valkey.exceptions.ValkeyError:
                pass
        self._acl_nodes = []

    def close(self) -> None:
        try:
            delete_matching(self.admin, self.keys.match())
            for key in self.sentinels:
                self.admin.delete(key)
        finally:
            if self.mode == "acl":
                self._drop_user()


def _sentinel_keys(admin: Client, base: Keys, run_id: str) -> list[str]:
    """One sentinel per primary: on a cluster, hash tags that land on each of them."""
    nodes = primaries(admin)
    if len(nodes) == 1:
        return [base.exercise_sentinel(run_id, 0)]
    by_node: dict[str, str] = {}
    for n in range(512):
        key = base.exercise_sentinel(run_id, n)
        node = admin.get_node_from_key(key)  # type: ignore[union-attr]
        by_node.setdefault(node.name, key)
        if len(by_node) == len(nodes):
            break
    return list(by_node.values())


class _Gone(Exception):
    """The child ended, or stopped answering, before the call returned."""


class _TimedOut(_Gone):
    """The check ran over its time limit."""


def child_env() -> dict[str, str]:
    """The child's environment: a few harmless variables, never a URL or a password."""
    return {name: os.environ[name] for name in ENV_KEPT if name in os.environ}


class _Child:
    """One child process, its events read by a thread so that waits can time out."""

    def __init__(self, spec: dict[str, Any], dump_file: Path) -> None:
        watch_read, self._watch = os.pipe()  # its write end stays here: closed when we end
        root = str(Path(flightcache.__file__).resolve().parent.parent)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", BOOT, root],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=child_env(),
                start_new_session=True,  # its own process group, killed as one
                pass_fds=(watch_read,),
            )
        finally:
            os.close(watch_read)
        self.dump_file = dump_file
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.send({**spec, "watch_fd": watch_read, "dump_file": str(dump_file)})

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message, default=str) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _Gone() from None

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if sum(len(s) for s in self.stderr) < OUTPUT_MAX:
                self.stderr.append(line)

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next event; None at end of output or at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return self.events.get(timeout=remaining)
        except queue.Empty:
            return None

    def kill(self) -> None:
        """Kill the child's whole process group (grandchildren too), then reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # before wait(): the pid is not reused
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.wait()
        if self._watch >= 0:
            os.close(self._watch)
            self._watch = -1

    def exit_text(self) -> str:
        code = self.proc.wait()
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    def stopped_at(self, file: str) -> str:
        """The learner's line the faulthandler dump shows running, if any."""
        try:
            text = self.dump_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        pattern = re.compile(r'File "' + re.escape(file) + r'", line (\d+)')
        lines = [int(m.group(1)) for m in pattern.finditer(text)]
        if not lines:
            return ""
        # faulthandler prints the innermost frame first
        number = lines[0]
        try:
            source = Path(file).read_text(encoding="utf-8").splitlines()[number - 1].strip()
        except (OSError, IndexError):
            source = ""
        return f"{file}:{number}: {source}"


def _dump_after(remaining: float) -> float:
    return max(remaining - DUMP_MARGIN_S, remaining / 2, 0.01)


class _Remote:
    """The learner's functions as the checks call them: in the child, within the deadline."""

    def __init__(self, child: _Child, db: ExerciseDb | None, sandbox: DbSandbox | None) -> None:
        self.child = child
        self.db = db
        self.sandbox = sandbox
        self.deadline = 0.0
        self.last_called = ""

    def call(self, function: str, *args: Any, expect_failure: bool = False) -> Any:
        encoded = [_encode(arg, self.db) for arg in args]
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _TimedOut()
        self.child.send(
            {
                "op": "call",
                "function": function,
                "args": encoded,
                "expect_failure": expect_failure,
                "dump_after": _dump_after(remaining),
            }
        )
        while True:
            event = self.child.next(self.deadline)
            if event is None:
                if self.child.proc.poll() is None and time.monotonic() >= self.deadline:
                    raise _TimedOut()
                raise _Gone()
            kind = event.get("event")
            if kind == "db":
                self.child.send(self._serve(event))
                continue
            self.last_called = str(event.get("called") or "")
            if kind == "returned":
                return event.get("value")
            if kind == "raised":
                message = str(event.get("message") or "")
                if event.get("kind") == "injected" and expect_failure:
                    raise InjectedFailure(message)
                raise CheckFailed(
                    message, str(event.get("hint") or ""), str(event.get("where") or "")
                )

    def _serve(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run one of the learner's statements as the run's role."""
        db = self.db
        if db is None:
            return {"error": "this exercise has no database", "kind": "usage"}
        op, sql, params = event.get("op"), str(event.get("sql") or ""), event.get("params")
        if not isinstance(params, (dict, list)):
            params = None
        left = max(0.0, self.deadline - time.monotonic())
        timer = threading.Timer(left + DB_GRACE_S, self.sandbox.cancel if self.sandbox else _none)
        timer.start()
        value: Any = None
        try:
            if op == "fetch":
                found = db.fetch(sql, params)
                rows = [list(row) for row in found.rows]
                value = {"columns": found.columns, "rows": rows, "rowcount": found.rowcount}
            elif op == "execute":
                value = db.execute(sql, params)
            elif op == "begin":
                db.begin()
            elif op == "commit":
                db.commit()
            elif op == "rollback":
                db.rollback()
            else:
                return {"error": f"unknown database operation {op!r}", "kind": "usage"}
        except InjectedFailure as exc:
            return {"error": str(exc), "kind": "injected"}
        except RuntimeError as exc:
            return {"error": str(exc), "kind": "usage"}
        except FlightcacheError as exc:
            return {"error": exc.message, "kind": "query"}
        finally:
            timer.cancel()
            timer.join()  # a cancel under way ends before the admin connection is used again
        return {"value": value}


def _none() -> None:
    return None


def _encode(arg: Any, db: ExerciseDb | None) -> Any:
    if isinstance(arg, LearnerValkey):
        return {"$handle": arg.handle()}
    if db is not None and arg is db:
        return {"$handle": "db"}
    return arg


def stop_scripts(admin: Client) -> None:
    """SCRIPT KILL and FUNCTION KILL on every primary: an endless script of the learner's
    would block the server for everyone. A busy server takes them once its busy
    threshold has passed, so a timed-out attempt is repeated for a while."""
    for node in primaries(admin):
        for command in (("SCRIPT", "KILL"), ("FUNCTION", "KILL")):
            end = time.monotonic() + SCRIPT_KILL_S
            while True:
                try:
                    node.execute_command(*command)
                    break
                except valkey.exceptions.ResponseError:
                    break  # NOTBUSY: nothing running; UNKILLABLE: it wrote, nothing to do
                except (valkey.exceptions.TimeoutError, valkey.exceptions.ConnectionError):
                    if time.monotonic() >= end:
                        break


class _Session:
    """The checks of one run, driven from here, each a call or more into a child."""

    def __init__(
        self,
        spec: dict[str, Any],
        admin: Client,
        raw_db: Database | None,
        scratch: Database | None,
        sandbox: DbSandbox | None,
        keys: Keys,
        timeout: float,
    ) -> None:
        self.spec = spec
        self.admin = admin
        self.raw_db = raw_db
        self.scratch = scratch
        self.sandbox = sandbox
        self.keys = keys
        self.timeout = timeout
        self.db = ExerciseDb(scratch) if scratch is not None else None

    def limits(self, checks: int) -> dict[str, int]:
        cpu = int(STARTUP_S + self.timeout * (checks + 1)) + 1
        return {"cpu_s": cpu, "memory_bytes": MEMORY_LIMIT, "processes": PROCESS_LIMIT}

    def drive(self, checks: list[Check]) -> tuple[list[CheckResult], str]:
        """Run the checks; a fresh child after a check that ran over or killed its own."""
        results: list[CheckResult] = []
        output: list[str] = []
        pending = list(checks)
        numbers = {check.name: n for n, check in enumerate(checks)}
        with tempfile.TemporaryDirectory(prefix="flightcache-exercise-") as tmp:
            while pending:
                dump = Path(tmp) / f"dump-{len(results)}.txt"
                spec = {
                    **self.spec,
                    "dump_after": _dump_after(self.timeout),
                    "limits": self.limits(len(pending)),
                }
                child = _Child(spec, dump)
                timed_out = False
                try:
                    stop, timed_out = self._one_child(child, pending, results, numbers)
                finally:
                    child.kill()
                    if timed_out:
                        stop_scripts(self.admin)
                    if self.db is not None:
                        self._reset_db()
                    output.extend(child.stderr)
                if stop:
                    break
        text = "".join(output)
        if len(text) > OUTPUT_MAX:
            text = text[:OUTPUT_MAX] + "\n[... more output cut]"
        return results, scrub(text)

    def _reset_db(self) -> None:
        assert self.db is not None
        try:
            self.db.rollback()
        except FlightcacheError:
            pass
        self.db.fail_writes = False

    def _one_child(
        self,
        child: _Child,
        pending: list[Check],
        results: list[CheckResult],
        numbers: dict[str, int],
    ) -> tuple[bool, bool]:
        """Drive one child until done or to be replaced: (nothing left to run, timed out)."""
        file = self.spec["file"]
        event = child.next(time.monotonic() + STARTUP_S)
        connected = event is not None and event.get("event") == "connected"
        if connected:
            event = child.next(time.monotonic() + self.timeout)
        if event is None:
            if not connected and child.proc.poll() is None:
                raise FlightcacheError(
                    f"the process that runs the checks did not connect within {STARTUP_S:g} s",
                    hint="is the machine very busy, or a server slow to answer? try again",
                )
            if child.proc.poll() is None:
                results.append(
                    CheckResult(
                        "loads",
                        "your file loads",
                        False,
                        f"importing your file timed out after {self.timeout:g} s",
                        "code at the top level of the file runs when it is imported: move it"
                        " into a function",
                        child.stopped_at(file),
                    )
                )
            else:
                results.append(
                    CheckResult(
                        "loads",
                        "your file loads",
                        False,
                        f"the process running your code ended early ({child.exit_text()})",
                        "see what it printed below",
                    )
                )
            results.extend(_not_run(pending, "your file did not load"))
            return True, False
        _raise_if_error(event)
        if event.get("event") == "load-failed":
            results.append(
                CheckResult(
                    "loads",
                    "your file loads",
                    False,
                    f"importing your file raised {event.get('message')}",
                    "code at the top level of the file runs when it is imported;"
                    " fix the line below",
                    str(event.get("where") or ""),
                )
            )
            results.extend(_not_run(pending, "your file did not load"))
            return True, False
        if event.get("event") != "ready":
            results.append(
                CheckResult(
                    "loads",
                    "your file loads",
                    False,
                    "the process running your code answered out of turn",
                    "see what it printed below",
                )
            )
            results.extend(_not_run(pending, "your file did not load"))
            return True, False
        remote = _Remote(child, self.db, self.sandbox)
        while pending:
            check = pending[0]
            remote.deadline = time.monotonic() + self.timeout
            remote.last_called = ""
            ctx = CheckContext(
                learner=remote,
                valkey=LEARNER_VALKEY,
                admin=self.admin,
                keys=self.keys.scope(f"c{numbers[check.name]}"),
                raw_db=self.raw_db,
                db=self.db,
                scratch=self.scratch,
            )
            if self.db is not None:
                self.db.fetches = self.db.failures = 0
                self.db.fail_writes = False
            try:
                check.run(ctx)
            except _TimedOut:
                pending.pop(0)
                where = child.stopped_at(file)
                results.append(
                    _failed(check, f"timed out after {self.timeout:g} s", TIMEOUT_HINT, where)
                )
                return False, True
            except _Gone:
                pending.pop(0)
                child.kill()
                results.append(
                    _failed(
                        check,
                        "the process running your code ended during this check"
                        f" ({child.exit_text()})",
                        "did your code call os._exit(), crash the interpreter or run out of"
                        " memory or CPU time? See its output below",
                    )
                )
                return False, False
            except CheckFailed as failed:
                results.append(
                    _failed(check, failed.message, failed.hint, failed.where or remote.last_called)
                )
            except FlightcacheError:
                raise
            except Exception as exc:  # the checker's own reads failed on what the code left
                results.append(
                    _failed(
                        check,
                        f"checking what your code left failed: {type(exc).__name__}: {exc}",
                        "store the type of value the docstring asks for (string, hash,"
                        " sorted set, stream) under the key you were given",
                    )
                )
            else:
                results.append(CheckResult(check.name, check.title, True))
            pending.pop(0)
        return True, False


def _raise_if_error(event: dict[str, Any]) -> None:
    """The child could not use the servers: the user's problem to fix, as one error
    line, not a failed check."""
    if event.get("event") == "error":
        raise FlightcacheError(str(event["message"]), hint=str(event.get("hint") or "") or None)
