"""Running an exercise's checks: the parent side.

``run()`` compiles the learner's file (a syntax error is a failed check, no
server touched), fences a key prefix for the run (:class:`Guard`), starts the
child process that runs the checks one by one, kills it when a check runs over
its time limit (and starts a fresh one for the checks left), then cleans up:
the rows the child reported, every key under the prefix, the sentinels and the
ACL user. What the learner's code touched outside its prefix becomes one more
failed check.
"""

from __future__ import annotations

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import valkey.exceptions

from flightcache import sqlfiles
from flightcache.config import ValkeyUrl, register_secret, scrub
from flightcache.db import Database
from flightcache.errors import FlightcacheError
from flightcache.exercises.catalogue import Exercise
from flightcache.exercises.checks import CHECKS
from flightcache.exercises.harness import Check
from flightcache.keys import Keys
from flightcache.valkey_client import Client, close, connect, delete_matching, primaries

STARTUP_S = 15.0  # the child's own imports and connections; the learner's file gets the limit
OUTPUT_MAX = 4_000
# what the learner's code may run: everything but @dangerous (FLUSHALL, KEYS, CONFIG,
# DEBUG, ...), plus INFO, which the client runs when it connects
ACL_RULES = ("+@all", "-@dangerous", "+info")
# rows a check reports before the learner's code runs: (named query, its parameter)
CLEANUP: dict[str, tuple[str, str]] = {
    "airline": ("exercise_airline_drop", "airline_id"),
    "wb_queue": ("wb_forget_seats", "queue"),
}
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
class Report:
    exercise: str
    file: Path
    prefix: str
    isolation: str  # "acl" or "sentinels"
    note: str = ""
    results: list[CheckResult] = field(default_factory=list)
    output: str = ""  # what the learner's code printed

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
) -> Report:
    """Run every check of ``exercise`` on the learner's ``file``."""
    file = file.resolve()
    checks = list(CHECKS[exercise.name])
    run_id = secrets.token_hex(4)
    base = Keys(key_prefix).scope("exercise")
    keys = base.scope(f"{exercise.name}:{run_id}")
    report = Report(exercise.name, file, keys.prefix, "none")
    failed_compile = _compile(file, checks)
    if failed_compile:
        report.results = failed_compile
        return report
    admin = connect(valkey_url)
    guard = Guard(admin, base, keys, run_id)
    ledger: list[tuple[str, str]] = []
    try:
        guard.setup(use_acl=use_acl)
        report.isolation, report.note = guard.mode, guard.note
        spec = {
            "exercise": exercise.name,
            "file": str(file),
            "timeout": timeout,
            "prefix": keys.prefix,
            "admin_url": valkey_url.url(redact=False),
            "learner_url": guard.learner_url(valkey_url).url(redact=False),
            "db_url": db.url.url(redact=False) if db is not None else "",
        }
        report.results, report.output = _drive(spec, checks, timeout, ledger)
        verdict = guard.verdict()
        if not verdict.passed:
            report.results.append(verdict)
    finally:
        try:
            _cleanup_rows(db, ledger)
        finally:
            try:
                guard.close()
            finally:
                close(admin)
    return report


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
        self.user = f"flightcache-exercise-{run_id}"
        self.password = secrets.token_hex(16)
        register_secret(self.password)
        self.mode = "sentinels"
        self.note = ""
        self.sentinels = {key: secrets.token_hex(8) for key in _sentinel_keys(admin, base, run_id)}
        self._acl_nodes: list[Any] = []

    def setup(self, *, use_acl: bool) -> None:
        for key, token in self.sentinels.items():
            self.admin.set(key, token, ex=3600)  # gone within the hour, even after a crash
        if not use_acl:
            self.note = (
                "ACLs not used: keys outside the prefix are detected afterwards, not refused"
            )
            return
        rules = ["reset", "on", f">{self.password}", f"~{self.keys.prefix}*", "resetchannels"]
        try:
            for node in primaries(self.admin):
                node.execute_command("ACL", "SETUSER", self.user, *rules, *ACL_RULES)
                self._acl_nodes.append(node)
        except valkey.exceptions.ValkeyError as exc:
            self._drop_user()
            reason = str(exc).split("\n", 1)[0]
            self.note = (
                f"ACLs unavailable ({reason}): keys outside the prefix are detected"
                " afterwards by sentinel keys, not refused"
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
        title = "keys outside the prefix left alone"
        if not touched:
            return CheckResult(PREFIX_CHECK, title, True)
        return CheckResult(
            PREFIX_CHECK,
            title,
            False,
            f"your code touched keys outside its prefix {self.keys.prefix}: "
            + "; ".join(touched[:5]),
            "use only the key names the checker passes to your functions",
        )

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


def _cleanup_rows(db: Database | None, ledger: list[tuple[str, str]]) -> None:
    if db is None or not ledger:
        return
    for kind, value in ledger:
        name, param = CLEANUP[kind]
        db.execute(sqlfiles.query(db.dialect, name), {param: value})


class _Child:
    """One child process, its events read by a thread so that waits can time out."""

    def __init__(self, spec: dict[str, Any], dump_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "flightcache.exercises.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self.dump_file = dump_file
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec))
        self.proc.stdin.close()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if sum(len(s) for s in self.stderr) < OUTPUT_MAX:
                self.stderr.append(line)

    def next(self, deadline: float, ledger: list[tuple[str, str]]) -> dict[str, Any] | None:
        """The next event other than a ledger entry; None at end of output or the deadline."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                return None
            if event is None:
                return None
            if event.get("event") == "ledger" and event.get("kind") in CLEANUP:
                ledger.append((str(event["kind"]), str(event["value"])))
                continue
            return event

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, AttributeError):
                self.proc.kill()
        self.proc.wait()

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


def _drive(
    spec: dict[str, Any], checks: list[Check], timeout: float, ledger: list[tuple[str, str]]
) -> tuple[list[CheckResult], str]:
    """Run the checks in child processes; a fresh one after a check that ran over."""
    results: list[CheckResult] = []
    output: list[str] = []
    pending = list(checks)
    with tempfile.TemporaryDirectory(prefix="flightcache-exercise-") as tmp:
        while pending:
            dump = Path(tmp) / f"dump-{len(results)}.txt"
            child = _Child(
                {**spec, "checks": [c.name for c in pending], "dump_file": str(dump)}, dump
            )
            try:
                stop = _one_child(child, spec, pending, results, timeout, ledger)
            finally:
                child.kill()
                output.extend(child.stderr)
            if stop:
                break
    text = "".join(output)
    if len(text) > OUTPUT_MAX:
        text = text[:OUTPUT_MAX] + "\n[... more output cut]"
    return results, scrub(text)


def _one_child(
    child: _Child,
    spec: dict[str, Any],
    pending: list[Check],
    results: list[CheckResult],
    timeout: float,
    ledger: list[tuple[str, str]],
) -> bool:
    """Drive one child until it is done or must be replaced; True when nothing is left to run."""
    event = child.next(time.monotonic() + STARTUP_S, ledger)
    connected = event is not None and event["event"] == "connected"
    if connected:
        event = child.next(time.monotonic() + timeout, ledger)
    if event is None:
        if not connected and child.proc.poll() is None:
            raise FlightcacheError(
                f"the process that runs the checks did not connect within {STARTUP_S:g} s",
                hint="is the machine very busy, or a server slow to answer? try again",
            )
        if child.proc.poll() is None:
            where = child.stopped_at(spec["file"])
            results.append(
                CheckResult(
                    "loads",
                    "your file loads",
                    False,
                    f"importing your file timed out after {timeout:g} s",
                    "code at the top level of the file runs when it is imported: move it"
                    " into a function",
                    where,
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
        return True
    _raise_if_error(event)
    if event["event"] == "load-failed":
        results.append(
            CheckResult(
                "loads",
                "your file loads",
                False,
                f"importing your file raised {event['message']}",
                "code at the top level of the file runs when it is imported; fix the line below",
                str(event.get("where") or ""),
            )
        )
        results.extend(_not_run(pending, "your file did not load"))
        return True
    while pending:
        check = pending[0]
        event = child.next(time.monotonic() + STARTUP_S, ledger)
        if event is None or event.get("event") != "start":
            return _died(child, check, pending, results, event)
        event = child.next(time.monotonic() + timeout, ledger)
        if event is None and child.proc.poll() is None:
            pending.pop(0)
            where = child.stopped_at(spec["file"])
            results.append(_failed(check, f"timed out after {timeout:g} s", TIMEOUT_HINT, where))
            return False
        if event is None or event.get("event") != "result":
            return _died(child, check, pending, results, event)
        pending.pop(0)
        results.append(
            CheckResult(
                check.name,
                check.title,
                bool(event.get("passed")),
                str(event.get("message") or ""),
                str(event.get("hint") or ""),
                str(event.get("where") or ""),
            )
        )
    return True


def _raise_if_error(event: dict[str, Any]) -> None:
    """The child could not use the servers, or a check's own setup failed: the user's
    problem to fix, as one error line, not a failed check."""
    if event.get("event") == "error":
        raise FlightcacheError(str(event["message"]), hint=str(event.get("hint") or "") or None)


def _died(
    child: _Child,
    check: Check,
    pending: list[Check],
    results: list[CheckResult],
    event: dict[str, Any] | None,
) -> bool:
    if event is not None:
        _raise_if_error(event)
    child.kill()
    pending.pop(0)
    results.append(
        _failed(
            check,
            f"the process running your code ended during this check ({child.exit_text()})",
            "did your code call os._exit() or crash the interpreter? See its output below",
        )
    )
    return False
