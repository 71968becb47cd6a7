"""The exercise sandbox, attacked for real: learner code that looks for the admin
credentials, runs the commands the ACL must refuse, writes the dataset, forks and
loops, runs an endless Lua script, allocates 4 GB, and a `flightcache exercise
check` killed with SIGKILL, whose leftovers the next run must sweep.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import ValkeyUrl
from flightcache.exercises import catalogue
from flightcache.exercises.runner import TIMEOUT_HINT, ExerciseReport, run
from tests.conftest import keys_left
from tests.test_exercises import data_db, failed, learner_file, node_client

__all__ = ["data_db", "node_client"]  # the fixtures, shared with the exercises' tests

pytestmark = pytest.mark.safety(6)

ROOT = Path(__file__).parent.parent


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def check(
    name: str, file: Path, url: ValkeyUrl, prefix: str, state: Path, db: Any = None, **kw: Any
) -> ExerciseReport:
    exercise = catalogue.get(name)
    return run(exercise, file, valkey_url=url, db=db, key_prefix=prefix, state_dir=state, **kw)


def dead(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def wait_for(predicate: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _exercise_users(client: Any) -> list[str]:
    return [u for u in client.acl_users() if u.startswith("flightcache-exercise-")]


def _role_of(report: ExerciseReport) -> str:
    """The database role of a run: named after the run's id, the last part of its prefix."""
    return "flightcache_ex_" + report.prefix.rstrip(":").rsplit(":", 1)[1]


def _add_role(db: Any, name: str) -> None:
    if db.dialect == "mysql":
        db.execute(f"CREATE USER '{name}'@'localhost'")
    else:
        db.execute(f"CREATE ROLE {name}")


def _drop_role(db: Any, name: str) -> None:
    if db.dialect == "mysql":
        db.execute(f"DROP USER IF EXISTS '{name}'@'localhost'")
    else:
        db.execute(f"DROP ROLE IF EXISTS {name}")


def _db_roles(db: Any) -> list[str]:
    if db.dialect == "mysql":
        rows = db.fetch("SELECT user FROM mysql.user WHERE user LIKE 'flightcache\\_ex\\_%'").rows
    else:
        rows = db.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'flightcache\\_ex\\_%'"
        ).rows
    return [str(r[0]) for r in rows]


@pytest.fixture
def admin_url(valkey_server: Any, node_client: Any) -> Iterator[ValkeyUrl]:
    """An admin URL with a password of a shape the learner's code can search for."""
    user, password = f"fctest-admin-{secrets.token_hex(3)}", "fcadminpw-" + secrets.token_hex(12)
    node_client.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", "~*", "&*", "+@all"
    )
    yield ValkeyUrl.parse(f"valkey://{user}:{password}@127.0.0.1:{valkey_server.ports[0]}")
    node_client.execute_command("ACL", "DELUSER", user)


# the reference rank() and top() of the leaderboard, for learner code that changes add_points()
RANK_TOP = """
def rank(valkey, key, member):
    score = valkey.zscore(key, member)
    return None if score is None else 1 + valkey.zcount(key, f"({score}", "+inf")


def top(valkey, key, n):
    return [(m, s) for m, s in valkey.zrevrange(key, 0, n - 1, withscores=True)][: max(n, 0)]
"""


# the learner's code: its environment, its command line, and every readable page of
# its memory, searched for the admin password (built from parts, so that the search
# itself holds no copy of it)
SNOOP = (
    """
import re as _re

def _snoop(out_path):
    found = []
    env = open("/proc/self/environ", "rb").read()
    cmdline = open("/proc/self/cmdline", "rb").read()
    pattern = _re.compile(b"fcadmin" + b"pw-[0-9a-f]{24}")
    for name, blob in (("environ", env), ("cmdline", cmdline)):
        if pattern.search(blob):
            found.append(name)
    if b"FLIGHTCACHE_" in env:
        found.append("FLIGHTCACHE_ variable in environ")
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("r") or "[v" in line:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if pattern.search(chunk):
                found.append("memory " + fields[0] + " " + (fields[5] if len(fields) > 5 else ""))
    with open(out_path, "w") as fh:
        fh.write("\\n".join(found))

_snoop(OUT)


def add_points(valkey, key, member, points):
    return float(valkey.zincrby(key, points, member))

"""
    + RANK_TOP
)


def test_the_learners_process_holds_no_admin_credentials(
    admin_url: ValkeyUrl,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLIGHTCACHE_VALKEY_URL", admin_url.url(redact=False))
    out = tmp_path / "snooped.txt"
    file = learner_file(tmp_path, "leaderboard", SNOOP.replace("OUT", repr(str(out))))
    report = check("leaderboard", file, admin_url, key_prefix, state_dir, timeout=60)
    assert failed(report) == {}
    assert report.isolation == "acl"
    assert out.read_text() == ""  # nothing found in environ, cmdline or memory
    assert keys_left(node_client, key_prefix) == []


DENIED = [
    ("SCRIPT", "FLUSH"),
    ("SCRIPT", "KILL"),
    ("FUNCTION", "FLUSH"),
    ("FUNCTION", "KILL"),
    ("FUNCTION", "DELETE", "nolib"),
    ("SELECT", "1"),
    ("SWAPDB", "0", "1"),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("KEYS", "*"),
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "ABORT"),
    ("MODULE", "LIST"),
    ("ACL", "LIST"),
    ("ACL", "SETUSER", "intruder", "on", ">x", "+@all", "~*"),
    ("REPLICAOF", "NO", "ONE"),
    ("MIGRATE", "127.0.0.1", "1", "k", "0", "1"),
    ("CLIENT", "KILL", "ID", "999999"),
    ("CLIENT", "LIST"),
    ("MONITOR",),
    ("BGSAVE",),
]


def test_the_acl_refuses_every_dangerous_command(
    valkey_server: Any, node_client: Any, key_prefix: str
) -> None:
    from flightcache.exercises.runner import Guard
    from flightcache.keys import Keys
    from flightcache.valkey_client import close, connect

    base = Keys(key_prefix).scope("exercise")
    run_id = secrets.token_hex(4)
    keys = base.scope(f"leaderboard:{run_id}")
    guard = Guard(node_client, base, keys, run_id)
    guard.setup(use_acl=True)
    learner = connect(guard.learner_url(valkey_server.url))
    allowed: list[str] = []
    try:
        for command in DENIED:
            # the server's own answer to "may this user run it?"
            verdict = node_client.execute_command("ACL", "DRYRUN", guard.user, *command)
            if verdict == "OK":
                allowed.append(f"{' '.join(command)}: ACL DRYRUN says OK")
            try:
                learner.execute_command(*command)
            except Exception as exc:
                if "NOPERM" in str(exc) or "permission" in str(exc).lower():
                    continue
                if command[0] == "DEBUG" and "DEBUG command not allowed" in str(exc):
                    continue  # refused by the server's configuration first
                allowed.append(f"{' '.join(command)}: {exc}")
            else:
                allowed.append(" ".join(command))
        # what the exercises need still works, inside the prefix
        learner.set(keys.prefix + "k", "v")
        assert learner.eval("return redis.call('GET', KEYS[1])", 1, keys.prefix + "k") == "v"
    finally:
        close(learner)
        guard.close()
    assert allowed == []
    assert _exercise_users(node_client) == []


def _qualified_airline(db: Any) -> str:
    if db.dialect == "mysql":
        return f"`{db.url.database}`.airline"
    return str(db.fetch("SELECT current_schema()").rows[0][0]) + ".airline"


ATTACK = """
def rename_airline(valkey, db, key, airline_id, name, ttl):
    for statement in (
        "UPDATE QUALIFIED SET airlinename = 'pwned'",
        "UPDATE flight SET flightno = 'PWN1'",
        "DELETE FROM flight",
        "DROP TABLE QUALIFIED",
    ):
        try:
            db.execute(statement)
        except Exception as exc:
            print("refused:", exc)
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
        valkey.delete(key)
    pipe = valkey.pipeline(transaction=True)
    pipe.hset(key, mapping=airline_row(db, airline_id))
    pipe.expire(key, ttl)
    pipe.execute()
"""


def test_learner_sql_cannot_write_the_dataset(
    data_db: Any,
    valkey_server: Any,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    flights = data_db.fetch("SELECT COUNT(*) FROM flight").rows[0][0]
    names = data_db.fetch("SELECT airline_id, airlinename FROM airline ORDER BY 1").rows
    code = ATTACK.replace("QUALIFIED", _qualified_airline(data_db))
    file = learner_file(tmp_path, "write-through", code)
    report = check(
        "write-through", file, valkey_server.url, key_prefix, state_dir, data_db, timeout=30
    )
    assert failed(report) == {}  # the rename went to the run's scratch copy
    refusals = [li for li in report.output.splitlines() if li.startswith("refused:")]
    privileges = [li for li in refusals if "injected" not in li]
    assert len(privileges) == 16, report.output  # 4 statements in each of 4 checks
    refused = re.compile(r"denied|must be owner|lack rights")
    assert all(refused.search(li) for li in privileges), report.output
    assert data_db.fetch("SELECT COUNT(*) FROM flight").rows[0][0] == flights
    assert data_db.fetch("SELECT COUNT(*) FROM flight WHERE flightno = 'PWN1'").rows[0][0] == 0
    assert data_db.fetch("SELECT airline_id, airlinename FROM airline ORDER BY 1").rows == names
    assert _role_of(report) not in _db_roles(data_db)
    assert keys_left(node_client, key_prefix) == []


HANG = """
import os, time

def add_points(valkey, key, member, points):
    return float(valkey.zincrby(key, points, member))


def rank(valkey, key, member):
    pid = os.fork()
    if pid == 0:
        while True:
            time.sleep(0.01)
    with open(PIDS, "a") as fh:
        fh.write(f"{os.getpid()} {pid}\\n")
    while True:
        pass


def top(valkey, key, n):
    valkey.eval("while true do end", 0)
"""


def test_a_timeout_kills_a_forking_grandchild_and_an_endless_script(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path, state_dir: Path
) -> None:
    pids = tmp_path / "pids.txt"
    file = learner_file(tmp_path, "leaderboard", HANG.replace("PIDS", repr(str(pids))))
    report = check("leaderboard", file, valkey_server.url, key_prefix, state_dir, timeout=1)
    results = {r.name: r for r in report.results}
    assert results["add"].passed
    assert results["rank"].message == "timed out after 1 s"
    assert results["top"].message == "timed out after 1 s"
    assert results["top"].hint == TIMEOUT_HINT
    child, grandchild = (int(p) for p in pids.read_text().split()[:2])
    assert wait_for(lambda: dead(child) and dead(grandchild), 5)
    assert node_client.ping()  # no script left blocking the server (BUSY)
    assert keys_left(node_client, key_prefix) == []
    assert _exercise_users(node_client) == []


LIMITS = (
    """
def add_points(valkey, key, member, points):
    with open(OUT, "w") as fh:
        fh.write(open("/proc/self/limits").read())
    data = bytes(4 * 1024 ** 3)  # calloc: never touched, even where it succeeds
    return float(len(data))

"""
    + RANK_TOP
)


def _limit(text: str, name: str) -> str:
    line = next(li for li in text.splitlines() if li.startswith(name))
    return re.split(r"\s{2,}", line.strip())[1]


def test_resource_limits_apply_and_4_gb_fails_cleanly(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path, state_dir: Path
) -> None:
    out = tmp_path / "limits.txt"
    file = learner_file(tmp_path, "leaderboard", LIMITS.replace("OUT", repr(str(out))))
    report = check("leaderboard", file, valkey_server.url, key_prefix, state_dir, timeout=10)
    reasons = failed(report)
    assert list(reasons) == ["add"]
    assert "add_points() raised MemoryError" in reasons["add"]
    text = out.read_text()
    assert _limit(text, "Max cpu time") != "unlimited"
    assert _limit(text, "Max address space") == str(1 << 30)
    assert _limit(text, "Max processes") != "unlimited"
    assert keys_left(node_client, key_prefix) == []


KILLED = """
import os, time

def rename_airline(valkey, db, key, airline_id, name, ttl):
    pid = os.fork()
    if pid == 0:
        while True:
            time.sleep(0.01)
    with open(PIDS, "a") as fh:
        fh.write(f"{os.getpid()} {pid}\\n")
    while True:
        time.sleep(0.01)
"""


def _check_in_a_process(
    data_db: Any, valkey_server: Any, key_prefix: str, tmp_path: Path, stop: signal.Signals
) -> tuple[int, int, int, str]:
    """`flightcache exercise check write-through` on learner code that forks and loops,
    stopped by ``stop`` once both learner processes run:
    (exit code, child, grandchild, the run's id)."""
    pids = tmp_path / "pids.txt"
    learner_file(tmp_path, "write-through", KILLED.replace("PIDS", repr(str(pids))))
    env = {
        **os.environ,
        "FLIGHTCACHE_VALKEY_URL": valkey_server.url.url(redact=False),
        "FLIGHTCACHE_DB_URL": data_db.url.url(redact=False),
        "FLIGHTCACHE_STATE_DIR": str(tmp_path / "state"),
        "FLIGHTCACHE_KEY_PREFIX": key_prefix.rstrip(":"),
    }
    command = [sys.executable, "-m", "flightcache", "exercise", "check", "write-through"]
    command += ["--dir", str(tmp_path), "--timeout", "120"]
    parent = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) >= 2, 60)
        child, grandchild = (int(p) for p in pids.read_text().split()[:2])
        records = list((tmp_path / "state" / "exercise-runs").glob("*.json"))
    finally:
        parent.send_signal(stop)
        try:
            code = parent.wait(timeout=30)
        finally:
            parent.kill()
            parent.wait()
    return code, child, grandchild, records[0].stem if records else ""


@pytest.mark.safety(6, 10)
def test_sigkill_of_the_check_kills_the_learner_and_the_next_run_sweeps(
    data_db: Any, valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    _, child, grandchild, _ = _check_in_a_process(
        data_db, valkey_server, key_prefix, tmp_path, signal.SIGKILL
    )
    assert wait_for(lambda: dead(child) and dead(grandchild), 5)
    (record,) = (state / "exercise-runs").glob("*.json")
    killed_user = f"flightcache-exercise-{record.stem}"
    killed_role = f"flightcache_ex_{record.stem}"
    assert _exercise_users(node_client) == [killed_user]  # left by the killed run
    assert killed_role in _db_roles(data_db)

    # the next run removes what the killed one left, and only that: not these two
    bystander_user = "flightcache-exercise-00000000"
    bystander_role = f"flightcache_ex_{secrets.token_hex(4)}"
    node_client.execute_command("ACL", "SETUSER", bystander_user, "off")
    _add_role(data_db, bystander_role)
    try:
        reference = catalogue.solution_code(catalogue.get("write-through"))
        report = check(
            "write-through",
            learner_file(tmp_path, "write-through", reference),
            valkey_server.url,
            key_prefix,
            state,
            data_db,
            timeout=30,
        )
        assert failed(report) == {}
        assert report.swept == [f"ACL user {killed_user}", f"database role {killed_role}"]
        assert _exercise_users(node_client) == [bystander_user]
        roles = _db_roles(data_db)
        assert killed_role not in roles and _role_of(report) not in roles
        assert bystander_role in roles
    finally:
        node_client.execute_command("ACL", "DELUSER", bystander_user)
        _drop_role(data_db, bystander_role)
    assert list((state / "exercise-runs").glob("*.json")) == []
    assert keys_left(node_client, key_prefix) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_or_sighup_of_the_check_cleans_up_at_once(
    stop: signal.Signals,
    data_db: Any,
    valkey_server: Any,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    code, child, grandchild, run_id = _check_in_a_process(
        data_db, valkey_server, key_prefix, tmp_path, stop
    )
    assert wait_for(lambda: dead(child) and dead(grandchild), 5)
    assert code not in (0, -stop)  # it ended through its error boundary, not by the signal
    assert run_id  # the run was recorded before it made anything
    assert _exercise_users(node_client) == []  # removed at once, not by a next run
    assert f"flightcache_ex_{run_id}" not in _db_roles(data_db)
    assert list((tmp_path / "state" / "exercise-runs").glob("*.json")) == []
    assert keys_left(node_client, key_prefix) == []


FAKE_PACKAGE = "open(MARKER, 'w').write('imported')\nraise SystemExit('a fake flightcache ran')\n"


@pytest.mark.safety(6, 10)
def test_a_flightcache_folder_is_never_imported_and_the_learners_own_modules_are(
    valkey_server: Any,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child runs with -I: a `flightcache/` folder in the current directory or
    beside the learner's file is not imported; a module of the learner's own is."""
    marker = tmp_path / "fake-imported"
    folder = tmp_path / "exercises"
    for place in (tmp_path, folder):
        (place / "flightcache").mkdir(parents=True)
        (place / "flightcache" / "__init__.py").write_text(
            FAKE_PACKAGE.replace("MARKER", repr(str(marker)))
        )
    (folder / "ranking.py").write_text("def one_based(higher):\n    return 1 + higher\n")
    code = """
from ranking import one_based


def add_points(valkey, key, member, points):
    return float(valkey.zincrby(key, points, member))


def rank(valkey, key, member):
    score = valkey.zscore(key, member)
    return None if score is None else one_based(valkey.zcount(key, f"({score}", "+inf"))


def top(valkey, key, n):
    return [(m, s) for m, s in valkey.zrevrange(key, 0, n - 1, withscores=True)][: max(n, 0)]
"""
    file = learner_file(folder, "leaderboard", code)
    monkeypatch.chdir(tmp_path)
    report = check("leaderboard", file, valkey_server.url, key_prefix, state_dir, timeout=30)
    assert failed(report) == {}
    assert not marker.exists()
    assert keys_left(node_client, key_prefix) == []


DROPS_ITS_TABLE = """
def rename_airline(valkey, db, key, airline_id, name, ttl):
    db.execute("DROP TABLE airline")
"""


def test_code_that_drops_its_scratch_table_fails_its_check_not_the_run(
    data_db: Any,
    valkey_server: Any,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    airlines = data_db.fetch("SELECT COUNT(*) FROM airline").rows[0][0]
    file = learner_file(tmp_path, "write-through", DROPS_ITS_TABLE)
    report = check(
        "write-through", file, valkey_server.url, key_prefix, state_dir, data_db, timeout=30
    )
    reasons = failed(report)
    # MySQL: the scratch database has no airline left to read; PostgreSQL: the
    # search_path falls through to the dataset's airline, which kept its name
    expected = {
        "mysql": "reading the scratch tables your code writes failed",
        "postgresql": "the database still says",
    }
    assert expected[data_db.dialect] in reasons["database"]
    assert data_db.fetch("SELECT COUNT(*) FROM airline").rows[0][0] == airlines
    assert _role_of(report) not in _db_roles(data_db)
    assert keys_left(node_client, key_prefix) == []


FLUSHES = (
    """
def add_points(valkey, key, member, points):
    valkey.script_flush()
    return float(valkey.zincrby(key, points, member))

"""
    + RANK_TOP
)


def test_a_refused_command_is_named_as_a_command_not_a_key(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path, state_dir: Path
) -> None:
    file = learner_file(tmp_path, "leaderboard", FLUSHES)
    report = check("leaderboard", file, valkey_server.url, key_prefix, state_dir, timeout=30)
    reasons = failed(report)
    assert "your code ran a command exercises may not run" in reasons["add"]
    assert "your code ran commands exercises may not run" in reasons["prefix"]
    assert "SCRIPT|FLUSH was refused" in reasons["prefix"]
    assert keys_left(node_client, key_prefix) == []


SLEEPS = """
def cached_query(valkey, db, key, sql, params, ttl, empty_ttl):
    if db.dialect == "mysql":
        db.execute("SET SESSION max_statement_time = 0")
        db.fetch("SELECT SLEEP(29.123)")
    else:
        db.execute("SET statement_timeout = 0")
        db.fetch("SELECT pg_sleep(29.123)")
    return []
"""


def _sleeping(db: Any) -> int:
    """Sessions still running the learner's sleep, on the whole server."""
    if db.dialect == "mysql":
        sql = (
            "SELECT COUNT(*) FROM information_schema.processlist"
            " WHERE info LIKE %(q)s AND info NOT LIKE '%%processlist%%'"
        )
    else:
        sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE %(q)s AND state = 'active'"
    return int(db.fetch(sql, {"q": "%sleep(29.123)%"}).rows[0][0])


def test_a_statement_that_lifts_its_own_time_limit_is_cancelled(
    data_db: Any,
    valkey_server: Any,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    file = learner_file(tmp_path, "cache-aside", SLEEPS)
    started = time.monotonic()
    report = check(
        "cache-aside", file, valkey_server.url, key_prefix, state_dir, data_db, timeout=1
    )
    assert time.monotonic() - started < 20
    assert failed(report)["miss"] == "timed out after 1 s | " + TIMEOUT_HINT
    assert wait_for(lambda: _sleeping(data_db) == 0, 2)  # nothing left running on the server
    assert _role_of(report) not in _db_roles(data_db)
    assert keys_left(node_client, key_prefix) == []
