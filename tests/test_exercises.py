"""Exercises: every reference solution passes, each plausible wrong solution fails
for its stated reason, and bad input (unknown names, a file not started, syntax
errors, exceptions, code that hangs or touches other keys) gets a clear answer.

The wrong solutions are learner code written out below: each replaces the code
between an exercise's markers in a copy of the reference solution.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import ValkeyUrl
from flightcache.exercises import catalogue
from flightcache.exercises.checks import CHECKS
from flightcache.exercises.runner import PREFIX_CHECK, TIMEOUT_HINT, ExerciseReport, run
from tests.conftest import _fresh_database, json_of, keys_left

ROOT = Path(__file__).parent.parent
DB_EXERCISES = [e.name for e in catalogue.EXERCISES.values() if e.uses_db]
VALKEY_EXERCISES = [e.name for e in catalogue.EXERCISES.values() if not e.uses_db]


@pytest.fixture(scope="module", params=["mysql", "postgresql"])
def data_db(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One database per backend with the tiny dataset, shared by this module's tests:
    the checks leave no rows behind, and the tests prove it."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    for url in _fresh_database(request.param):
        conn = connect(url)
        load_generated(conn, "tiny", 1)
        yield conn
        conn.close()


@pytest.fixture
def node_client(valkey_server: Any) -> Iterator[Any]:
    """A client of the one-node Valkey (valkey_client would also run each test on the cluster)."""
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    yield client
    close(client)


@pytest.fixture
def ex_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A state directory of the test's own, and no exercises folder from the environment."""
    monkeypatch.setenv("FLIGHTCACHE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("FLIGHTCACHE_EXERCISES_DIR", raising=False)
    return tmp_path


def learner_file(folder: Path, name: str, code: str | None = None) -> Path:
    """The reference solution, or with ``code`` between its markers, as a learner's file."""
    exercise = catalogue.get(name)
    text = catalogue.reference_text(exercise)
    if code is not None:
        text = text.replace(catalogue.block(exercise, text), code.strip() + "\n\n\n")
    path = folder / exercise.filename
    path.write_text(text)
    return path


def check(
    name: str, file: Path, url: ValkeyUrl, prefix: str, db: Any = None, **kw: Any
) -> ExerciseReport:
    return run(
        catalogue.get(name),
        file,
        valkey_url=url,
        db=db if catalogue.get(name).uses_db else None,
        key_prefix=prefix,
        **kw,
    )


def failed(report: ExerciseReport) -> dict[str, str]:
    return {r.name: f"{r.message} | {r.hint}" for r in report.results if not r.passed}


def _airlines(db: Any) -> int:
    return int(db.fetch("SELECT COUNT(*) FROM airline").rows[0][0])


def _queue_rows(db: Any, prefix: str) -> int:
    if "flightcache_wb_seats" not in db.tables():
        return 0
    found = db.fetch(
        "SELECT COUNT(*) FROM flightcache_wb_seats WHERE queue LIKE %(p)s", {"p": prefix + "%"}
    )
    return int(found.rows[0][0])


def _acl_users(client: Any) -> list[str]:
    from flightcache.valkey_client import primaries

    return [
        u for node in primaries(client) for u in node.acl_users() if u.startswith("flightcache-")
    ]


def _assert_clean(client: Any, prefix: str, db: Any = None, airlines: int = 0) -> None:
    assert keys_left(client, prefix) == []
    assert _acl_users(client) == []
    if db is not None:
        assert _airlines(db) == airlines
        assert _queue_rows(db, prefix) == 0


# -- the reference solutions pass everywhere -------------------------------------------------
@pytest.mark.parametrize("name", DB_EXERCISES)
def test_reference_passes_on_both_databases(
    name: str, data_db: Any, any_valkey: Any, valkey_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    airlines = _airlines(data_db)
    report = check(name, learner_file(tmp_path, name), any_valkey.url, key_prefix, data_db)
    assert failed(report) == {}
    assert [r.name for r in report.results] == [c.name for c in CHECKS[name]]
    assert report.passed and report.isolation == "acl"
    _assert_clean(valkey_client, key_prefix, data_db, airlines)


@pytest.mark.parametrize("name", VALKEY_EXERCISES)
def test_reference_passes_on_one_node_and_cluster(
    name: str, any_valkey: Any, valkey_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    report = check(name, learner_file(tmp_path, name), any_valkey.url, key_prefix)
    assert failed(report) == {}
    assert report.passed and report.isolation == "acl"
    _assert_clean(valkey_client, key_prefix)


def test_starters_fail_and_say_what_to_write(
    valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    for exercise in catalogue.EXERCISES.values():
        if exercise.uses_db:
            continue
        report = check(
            exercise.name, catalogue.starter_path(exercise), valkey_server.url, key_prefix
        )
        first = report.results[0]
        assert not report.passed and not first.passed
        assert "is not written yet" in first.message and exercise.start_marker in first.hint
        assert first.where.startswith(str(catalogue.starter_path(exercise)) + ":")


# -- plausible wrong solutions fail for their stated reason ------------------------------------
@dataclass(frozen=True)
class Wrong:
    exercise: str
    mistake: str
    code: str
    check: str  # the check that must fail
    reason: str  # a fragment of its message or hint

    def __str__(self) -> str:
        return f"{self.exercise}: {self.mistake}"


# a session's login in two round trips, and the reads and touch of the reference
TWO_TRIP_LOGIN = """
def login(valkey, key, user_id, fields, ttl):
    valkey.hset(key, mapping={"user_id": user_id, **fields})
    valkey.expire(key, ttl)
"""
SESSION_READS = """

def get_session(valkey, key, ttl):
    session = valkey.hgetall(key)
    if not session:
        return None
    valkey.expire(key, ttl)
    return session


def touch(valkey, key, ttl):
    return bool(valkey.expire(key, ttl))
"""

# write-behind's learner code: this consumer's pending entries, else new ones; then
# the batch applied in one transaction and acknowledged after its COMMIT
PENDING_OR_NEW = """
def pending_or_new(valkey, stream, group, consumer, count):
    entries = entries_of(valkey.xreadgroup(group, consumer, {stream: "0"}, count=count))
    return entries or entries_of(valkey.xreadgroup(group, consumer, {stream: ">"}, count=count))

"""
APPLY_THEN_ACK = """    if not entries:
        return 0
    with db.transaction():
        for _entry_id, fields in GOOD:
            record_booking(db, stream, fields)
    if GOOD:
        valkey.xack(stream, group, *[entry_id for entry_id, _ in GOOD])
    return len(entries)
"""

WRONG = [
    Wrong(
        "cache-aside",
        "never sets a TTL",
        """
def cached_query(valkey, db, key, sql, params, ttl, empty_ttl):
    cached = valkey.get(key)
    if cached is not None:
        return json.loads(cached)
    rows = db.fetch(sql, params).rows
    valkey.set(key, to_json(rows))
    return json.loads(to_json(rows))
""",
        "ttl",
        "have no TTL",
    ),
    Wrong(
        "cache-aside",
        "caches an empty result as long as rows",
        """
def cached_query(valkey, db, key, sql, params, ttl, empty_ttl):
    cached = valkey.get(key)
    if cached is not None:
        return json.loads(cached)
    rows = db.fetch(sql, params).rows
    valkey.set(key, to_json(rows), ex=ttl)
    return json.loads(to_json(rows))
""",
        "empty",
        "an empty result was cached for 600 s",
    ),
    Wrong(
        "cache-aside",
        "caches an empty result with no TTL",
        """
def cached_query(valkey, db, key, sql, params, ttl, empty_ttl):
    cached = valkey.get(key)
    if cached is not None:
        return json.loads(cached)
    rows = db.fetch(sql, params).rows
    if rows:
        valkey.set(key, to_json(rows), ex=ttl)
    else:
        valkey.set(key, to_json(rows))
    return json.loads(to_json(rows))
""",
        "empty",
        "cached forever",
    ),
    Wrong(
        "write-through",
        "updates the cache before the database commits",
        """
def rename_airline(valkey, db, key, airline_id, name, ttl):
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
        valkey.hset(key, mapping=airline_row(db, airline_id))
        valkey.expire(key, ttl)
""",
        "failed-commit",
        "you updated the cache before the database committed",
    ),
    Wrong(
        "write-through",
        "deletes nothing before the COMMIT",
        """
def rename_airline(valkey, db, key, airline_id, name, ttl):
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
    pipe = valkey.pipeline(transaction=True)
    pipe.hset(key, mapping=airline_row(db, airline_id))
    pipe.expire(key, ttl)
    pipe.execute()
""",
        "lost-after-commit",
        "still holds the old name",
    ),
    Wrong(
        "write-through",
        "writes the new row and its TTL in two round trips",
        """
def rename_airline(valkey, db, key, airline_id, name, ttl):
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
        valkey.delete(key)
    valkey.hset(key, mapping=airline_row(db, airline_id))
    valkey.expire(key, ttl)
""",
        "atomic-row",
        "a cached row that never expires",
    ),
    Wrong(
        "write-behind",
        "acknowledges before the database write is durable",
        PENDING_OR_NEW
        + """
def drain(valkey, db, stream, group, consumer, count, dead, min_idle_ms):
    entries = pending_or_new(valkey, stream, group, consumer, count)
    if not entries:
        return 0
    valkey.xack(stream, group, *[entry_id for entry_id, _ in entries])
    with db.transaction():
        for _entry_id, fields in entries:
            record_booking(db, stream, fields)
    return len(entries)
""",
        "ack-after-commit",
        "bookings are lost",
    ),
    Wrong(
        "write-behind",
        "retries an entry that can never be applied forever",
        PENDING_OR_NEW
        + """
def drain(valkey, db, stream, group, consumer, count, dead, min_idle_ms):
    claimed = valkey.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=count)
    entries = [(entry_id, fields or {}) for entry_id, fields in claimed[1]]
    entries = entries or pending_or_new(valkey, stream, group, consumer, count)
"""
        + APPLY_THEN_ACK.replace("GOOD", "entries"),
        "poison",
        "an entry retried forever fails every batch it is in",
    ),
    Wrong(
        "write-behind",
        "never claims what a dead worker left pending",
        PENDING_OR_NEW
        + """
def drain(valkey, db, stream, group, consumer, count, dead, min_idle_ms):
    entries = pending_or_new(valkey, stream, group, consumer, count)
    for entry_id, fields in [e for e in entries if not readable(e[1])]:
        valkey.xadd(dead, {**fields, "entry": entry_id})
        valkey.xack(stream, group, entry_id)
    good = [e for e in entries if readable(e[1])]
"""
        + APPLY_THEN_ACK.replace("GOOD", "good"),
        "claims",
        "a group delivers a pending entry to no one else",
    ),
    Wrong(
        "leaderboard",
        "ranks from 0 where 1 is asked",
        """
def add_points(valkey, key, member, points):
    return valkey.zincrby(key, points, member)


def rank(valkey, key, member):
    return valkey.zrevrank(key, member)


def top(valkey, key, n):
    return valkey.zrevrange(key, 0, n - 1, withscores=True)
""",
        "rank",
        "ranks here start at 1",
    ),
    Wrong(
        "leaderboard",
        "ranks by position, so a tie is split by name",
        """
def add_points(valkey, key, member, points):
    return valkey.zincrby(key, points, member)


def rank(valkey, key, member):
    position = valkey.zrevrank(key, member)
    return None if position is None else position + 1


def top(valkey, key, n):
    return [] if n <= 0 else valkey.zrevrange(key, 0, n - 1, withscores=True)
""",
        "ties",
        "equal scores share a rank",
    ),
    Wrong(
        "leaderboard",
        "top(0) serves the whole board",
        """
def add_points(valkey, key, member, points):
    return valkey.zincrby(key, points, member)


def rank(valkey, key, member):
    score = valkey.zscore(key, member)
    return None if score is None else 1 + valkey.zcount(key, f"({score}", "+inf")


def top(valkey, key, n):
    return valkey.zrevrange(key, 0, n - 1, withscores=True)
""",
        "top-zero",
        "ZRANGE 0 -1 is the whole board",
    ),
    Wrong(
        "sessions",
        "never slides its expiry on activity",
        TWO_TRIP_LOGIN
        + """
def get_session(valkey, key, ttl):
    return valkey.hgetall(key) or None


def touch(valkey, key, ttl):
    return bool(valkey.exists(key))
""",
        "touch-slides",
        "activity must push the expiry back",
    ),
    Wrong(
        "sessions",
        "writes the session and its expiry in two round trips",
        TWO_TRIP_LOGIN + SESSION_READS,
        "login-atomic",
        "with fields and no TTL",
    ),
    Wrong(
        "stampede-lock",
        "releases without checking the owner",
        """
def acquire(valkey, key, ttl_ms):
    token = secrets.token_hex(16)
    return token if valkey.set(key, token, nx=True, px=ttl_ms) else None


def release(valkey, key, token):
    return bool(valkey.delete(key))
""",
        "owner",
        "deleted a lock another client holds",
    ),
]


def _near_store(old: str, new: str) -> str:
    """The reference near-cache store with one piece of it changed."""
    reference = catalogue.solution_code(catalogue.get("near-cache"))
    assert old in reference
    return reference.replace(old, new)


WRONG += [
    Wrong(
        "near-cache",
        "serves from memory after a reconnect without flushing",
        _near_store(
            """            self.entries.clear()
            self.bytes = 0
""",
            "",
        ),
        "kill",
        "never reported",
    ),
    Wrong(
        "near-cache",
        "keeps a value fetched across an invalidation",
        _near_store("ticket != self.version or ", ""),
        "race",
        "was kept",
    ),
    Wrong(
        "near-cache",
        "never evicts: an unbounded store",
        _near_store("while self.entries and (", "while False and ("),
        "bounds",
        "holds more than it may",
    ),
    Wrong(
        "near-cache",
        "ignores invalidations",
        _near_store(
            """            for key in keys:
                self._drop(key)
""",
            "",
        ),
        "invalidate",
        "the server said so",
    ),
    Wrong(
        "near-cache",
        "never keeps anything",
        _near_store("            self.entries[key] = value\n", ""),
        "hit",
        "not answered from memory",
    ),
]
WRONG_DB = [w for w in WRONG if w.exercise in DB_EXERCISES]
WRONG_VALKEY = [w for w in WRONG if w.exercise in VALKEY_EXERCISES]


def _fails_for_its_reason(wrong: Wrong, report: ExerciseReport) -> None:
    reasons = failed(report)
    assert wrong.check in reasons, f"{wrong} passed check {wrong.check!r}: {reasons}"
    assert wrong.reason in reasons[wrong.check]
    assert not report.passed


@pytest.mark.parametrize("wrong", WRONG_DB, ids=str)
def test_wrong_solution_fails_on_both_databases(
    wrong: Wrong,
    data_db: Any,
    valkey_server: Any,
    node_client: Any,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    airlines = _airlines(data_db)
    file = learner_file(tmp_path, wrong.exercise, wrong.code)
    _fails_for_its_reason(
        wrong, check(wrong.exercise, file, valkey_server.url, key_prefix, data_db)
    )
    _assert_clean(node_client, key_prefix, data_db, airlines)


@pytest.mark.parametrize("wrong", WRONG_VALKEY, ids=str)
def test_wrong_solution_fails(
    wrong: Wrong, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    file = learner_file(tmp_path, wrong.exercise, wrong.code)
    _fails_for_its_reason(wrong, check(wrong.exercise, file, valkey_server.url, key_prefix))


# another right answer than the reference's Lua script: MULTI/EXEC (one node only:
# valkey-py's cluster client has no transactions)
MULTI_LOGIN = (
    """
def login(valkey, key, user_id, fields, ttl):
    pipe = valkey.pipeline(transaction=True)
    pipe.hset(key, mapping={"user_id": user_id, **fields})
    pipe.expire(key, ttl)
    pipe.execute()
"""
    + SESSION_READS
)


def test_a_multi_exec_login_passes(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    file = learner_file(tmp_path, "sessions", MULTI_LOGIN)
    assert failed(check("sessions", file, valkey_server.url, key_prefix)) == {}
    _assert_clean(node_client, key_prefix)


def test_every_listed_mistake_has_a_wrong_solution() -> None:
    covered = {(w.exercise, w.check) for w in WRONG}
    assert {
        ("cache-aside", "ttl"),
        ("cache-aside", "empty"),
        ("write-through", "failed-commit"),
        ("write-through", "lost-after-commit"),
        ("write-through", "atomic-row"),
        ("write-behind", "ack-after-commit"),
        ("write-behind", "poison"),
        ("write-behind", "claims"),
        ("leaderboard", "rank"),
        ("leaderboard", "ties"),
        ("leaderboard", "top-zero"),
        ("sessions", "touch-slides"),
        ("sessions", "login-atomic"),
        ("stampede-lock", "owner"),
        ("near-cache", "kill"),
        ("near-cache", "race"),
        ("near-cache", "bounds"),
    } <= covered
    for w in WRONG:
        assert w.check in {c.name for c in CHECKS[w.exercise]}


# -- bad input ----------------------------------------------------------------------------------
def test_syntax_error_is_a_failed_check_at_the_line(
    valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    file = learner_file(tmp_path, "leaderboard", "def rank(valkey, key, member)\n    return 1\n")
    report = check("leaderboard", file, valkey_server.url, key_prefix)
    first = report.results[0]
    assert (first.name, first.passed) == ("compiles", False)
    assert "SyntaxError" in first.message
    line = file.read_text().splitlines().index("def rank(valkey, key, member)") + 1
    assert first.where.startswith(f"{file}:{line}:")
    assert all(r.message.startswith("not run") for r in report.results[1:])


def test_exceptions_show_the_learners_line(
    valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    code = """
def add_points(valkey, key, member, points):
    return float(valkey.zincrby(key, points, member))


def rank(valkey, key, member):
    scores = {}
    return scores[member] + 1


def top(valkey, key, n):
    return [(m, s) for m, s in valkey.zrevrange(key, 0, n - 1, withscores=True)]
"""
    file = learner_file(tmp_path, "leaderboard", code)
    report = check("leaderboard", file, valkey_server.url, key_prefix)
    reasons = {r.name: r for r in report.results}
    assert reasons["add"].passed and reasons["top"].passed
    assert "rank() raised KeyError" in reasons["rank"].message
    line = file.read_text().splitlines().index("    return scores[member] + 1") + 1
    assert reasons["rank"].where == f"{file}:{line}: return scores[member] + 1"

    broken_import = learner_file(tmp_path, "sessions", "LIMIT = 1 / 0\n")
    report = check("sessions", broken_import, valkey_server.url, key_prefix)
    first = report.results[0]
    assert first.name == "loads" and "ZeroDivisionError" in first.message
    assert first.where.endswith("LIMIT = 1 / 0")


def test_code_that_hangs_is_killed_and_timed_out(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    code = """
def add_points(valkey, key, member, points):
    return float(valkey.zincrby(key, points, member))


def rank(valkey, key, member):
    while True:
        pass


def top(valkey, key, n):
    return [(m, s) for m, s in valkey.zrevrange(key, 0, n - 1, withscores=True)]
"""
    file = learner_file(tmp_path, "leaderboard", code)
    report = check("leaderboard", file, valkey_server.url, key_prefix, timeout=1)
    results = {r.name: r for r in report.results}
    assert results["rank"].message == "timed out after 1 s"
    assert results["rank"].where.endswith(("while True:", "pass"))
    assert results["absent"].message == "timed out after 1 s"
    # the checks before and after the hang ran in their own processes
    assert results["add"].passed and results["top"].passed
    _assert_clean(node_client, key_prefix)


def test_a_file_that_hangs_on_import_times_out(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    file = learner_file(tmp_path, "sessions", "while True:\n    pass\n")
    report = check("sessions", file, valkey_server.url, key_prefix, timeout=1)
    first = report.results[0]
    assert (first.name, first.message) == ("loads", "importing your file timed out after 1 s")
    assert first.where.endswith(("while True:", "pass"))
    assert all(r.message.startswith("not run") for r in report.results[1:])
    _assert_clean(node_client, key_prefix)


def test_a_check_killed_mid_transaction_leaves_no_rows(
    data_db: Any, valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    code = """
def rename_airline(valkey, db, key, airline_id, name, ttl):
    with db.transaction():
        db.execute(db.sql("airline_rename"), {"name": name, "airline_id": airline_id})
        valkey.delete(key)
        while name == "Doomed Air":
            pass
    pipe = valkey.pipeline(transaction=True)
    pipe.hset(key, mapping=airline_row(db, airline_id))
    pipe.expire(key, ttl)
    pipe.execute()
"""
    airlines = _airlines(data_db)
    file = learner_file(tmp_path, "write-through", code)
    report = check("write-through", file, valkey_server.url, key_prefix, data_db, timeout=1)
    assert failed(report) == {"failed-commit": "timed out after 1 s | " + TIMEOUT_HINT}
    _assert_clean(node_client, key_prefix, data_db, airlines)


OUTSIDE = """
def add_points(valkey, key, member, points):
    try:
        valkey.delete(VICTIM)
    except Exception:
        pass  # swallowed: the ACL LOG still tells
    return float(valkey.zincrby(key, points, member))


def rank(valkey, key, member):
    score = valkey.zscore(key, member)
    return None if score is None else 1 + valkey.zcount(key, f"({score}", "+inf")


def top(valkey, key, n):
    return [(m, s) for m, s in valkey.zrevrange(key, 0, n - 1, withscores=True)][: max(n, 0)]
"""


def test_keys_outside_the_prefix_are_refused_and_reported(
    any_valkey: Any, valkey_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    victim = f"{key_prefix}victim"
    valkey_client.set(victim, "mine")
    file = learner_file(tmp_path, "leaderboard", OUTSIDE.replace("VICTIM", repr(victim)))
    report = check("leaderboard", file, any_valkey.url, key_prefix + "run:")
    assert valkey_client.get(victim) == "mine"
    reasons = failed(report)
    assert list(reasons) == [PREFIX_CHECK]
    assert "your code touched keys outside its prefix" in reasons[PREFIX_CHECK]
    assert f"DEL {victim} was refused (NOPERM)" in reasons[PREFIX_CHECK]
    valkey_client.delete(victim)
    _assert_clean(valkey_client, key_prefix)


def test_without_acls_sentinels_catch_deleted_keys(
    valkey_server: Any, node_client: Any, key_prefix: str, tmp_path: Path
) -> None:
    """A server that refuses ACL SETUSER to our user: the run says so, and sentinel
    keys outside the prefix still show what the learner's code deleted."""
    user, password = f"fctest-noacl-{secrets.token_hex(3)}", secrets.token_hex(8)
    node_client.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", "~*", "&*", "+@all", "-acl"
    )
    try:
        url = ValkeyUrl.parse(f"valkey://{user}:{password}@127.0.0.1:{valkey_server.ports[0]}")
        sweep = OUTSIDE.replace(
            "valkey.delete(VICTIM)",
            f"[valkey.delete(k) for k in valkey.scan_iter(match={key_prefix + '*sentinel*'!r})]",
        )
        file = learner_file(tmp_path, "leaderboard", sweep)
        report = check("leaderboard", file, url, key_prefix)
    finally:
        node_client.execute_command("ACL", "DELUSER", user)
    assert report.isolation == "sentinels"
    assert report.note.startswith("ACLs unavailable (") and "detected afterwards" in report.note
    reasons = failed(report)
    assert list(reasons) == [PREFIX_CHECK]
    assert "sentinel" in reasons[PREFIX_CHECK] and "was deleted" in reasons[PREFIX_CHECK]
    assert keys_left(node_client, key_prefix) == []


def test_unknown_exercise_lists_the_known_ones(cli: Any, ex_env: Path) -> None:
    for args in (["start", "nope"], ["check", "nope"], ["solution", "nope", "--yes"]):
        result = cli("exercise", *args)
        assert result.code == 2, result.err
        assert result.err.startswith("error: no exercise named 'nope'")
        assert "cache-aside, write-through, write-behind" in result.err
        assert "Traceback" not in result.err


def test_check_before_start_says_how_to_start(cli: Any, ex_env: Path) -> None:
    result = cli("exercise", "check", "sessions", "--dir", str(ex_env / "mine"))
    assert result.code == 2
    assert "you have not started sessions" in result.err
    assert "run `flightcache exercise start sessions`" in result.err


def test_solution_needs_a_confirmation(cli: Any, ex_env: Path) -> None:
    result = cli("exercise", "solution", "leaderboard")
    assert result.code == 2 and "--yes" in result.err
    shown = cli("exercise", "solution", "leaderboard", "--yes")
    assert shown.code == 0
    assert "zcount" in shown.out and "# START leaderboard" in shown.out
    assert "NotImplementedError" not in shown.out


# -- the commands, end to end -----------------------------------------------------------------
def test_list_start_check_and_progress(
    cli: Any, ex_env: Path, valkey_server: Any, node_client: Any, key_prefix: str
) -> None:
    folder = ex_env / "my exercises"
    servers = ["--valkey-url", str(valkey_server.url), "--key-prefix", key_prefix]
    listed = json_of(cli("exercise", "list", "--json"))
    assert [e["status"] for e in listed["exercises"]] == ["not started"] * len(catalogue.EXERCISES)

    started = cli("exercise", "start", "stampede-lock", "--dir", str(folder))
    assert started.code == 0, started.err
    mine = folder / "stampede_lock.py"
    assert mine.read_text() == catalogue.starter_path(catalogue.get("stampede-lock")).read_text()
    again = cli("exercise", "start", "stampede-lock", "--dir", str(folder))
    assert again.code == 2 and "already exists" in again.err and "--force" in again.err

    # no --dir: the file is found where `start` put it, remembered in the state dir
    first = cli(*servers, "exercise", "check", "stampede-lock")
    assert first.code == 1
    assert "✗ failed" in first.out and "acquire() is not written yet" in first.out
    assert f"{mine}:" in first.out
    assert "0/4 checks passed" in first.out
    assert cli("exercise", "list").out.count("started") >= 1

    learner_file(folder, "stampede-lock")
    passed = json_of(cli(*servers, "exercise", "check", "stampede-lock", "--json"))
    assert passed["passed"] and passed["score"] == {"passed": 4, "total": 4}
    assert passed["isolation"] == "acl" and passed["file"] == str(mine)
    assert [c["name"] for c in passed["checks"]] == ["acquire", "exclusive", "release", "owner"]
    assert keys_left(node_client, key_prefix) == []

    rows = {e["name"]: e for e in json_of(cli("exercise", "list", "--json"))["exercises"]}
    assert rows["stampede-lock"]["status"] == "passed"
    assert rows["stampede-lock"]["last_check"] == "4/4 passed"
    assert rows["sessions"]["status"] == "not started"
    assert (ex_env / "state" / "exercises.json").is_file()

    fresh = cli("exercise", "start", "stampede-lock", "--dir", str(folder), "--force")
    assert fresh.code == 0
    assert "NotImplementedError" in mine.read_text()
    assert "RELEASE_SCRIPT" in (folder / "stampede_lock.py.bak").read_text()


def test_database_exercise_from_the_command_line(
    cli: Any, ex_env: Path, data_db: Any, valkey_server: Any, node_client: Any, key_prefix: str
) -> None:
    db_url = data_db.url.url(redact=False)
    servers = [
        "--db-url",
        db_url,
        "--valkey-url",
        str(valkey_server.url),
        "--key-prefix",
        key_prefix,
    ]
    folder = ex_env / "ex"
    assert cli("exercise", "start", "write-behind", "--dir", str(folder)).code == 0
    learner_file(folder, "write-behind")
    result = cli(*servers, "exercise", "check", "write-behind")
    assert result.code == 0, result.out + result.err
    assert "6/6 checks passed" in result.out
    assert "allowed only" in result.out
    _assert_clean(node_client, key_prefix, data_db, _airlines(data_db))


# -- the files ----------------------------------------------------------------------------------
def test_exercise_files_ship_in_the_wheel_and_match_their_solutions() -> None:
    assert catalogue.files_root() == ROOT / "workshop" / "exercises"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    # a wheel holds the files where files_root() looks first
    packaged = Path(catalogue.__file__).parent / "files"
    assert (ROOT / include["workshop/exercises"]).resolve() == packaged.resolve()
    readme = (ROOT / "workshop" / "exercises" / "README.md").read_text()
    for exercise in catalogue.EXERCISES.values():
        starter = catalogue.starter_path(exercise).read_text()
        todo, done = catalogue.block(exercise, starter), catalogue.solution_code(exercise)
        assert "raise NotImplementedError" in todo and "NotImplementedError" not in done
        for function in exercise.functions:
            assert f"def {function}(" in todo and f"def {function}(" in done
        reference = catalogue.reference_text(exercise)
        compile(reference, exercise.filename, "exec")
        assert reference.replace(done, "") == starter.replace(todo, "")
        assert f"flightcache exercise check {exercise.name}" in starter
        assert f"`{exercise.name}`" in readme
