"""The checks of every exercise, run in the parent against the learner's module in the child.

Each check calls the learner's functions (through the runner's proxy), judges what
they returned and what the servers now hold, read with the checker's own handles,
and fails with a message that says what is wrong and a hint that says what to do.
Nothing else the learner's process says counts. Checks that need a failure cause it
themselves (``ExerciseDb.fail_writes``, in the parent). Every check works under its
own keys (``Keys`` scoped to the check); the rows the learner's code writes live in
the run's scratch area (an ``airline`` copy, the write-behind tables), dropped with
the run's database role.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flightcache.errors import DataError
from flightcache.exercises.harness import (
    LEARNER_VALKEY_CRASHING,
    LEARNER_VALKEY_CRASHING_AFTER_COMMIT,
    LEARNER_VALKEY_LOST_AT_COMMIT,
    Check,
    CheckContext,
    CheckFailed,
    ExerciseDb,
    InjectedFailure,
    expiry_problem,
    plain,
    show,
)
from flightcache.valkey_client import key_node_name, node_name, primaries

# a hash and its TTL written in two round trips: what sessions and write-through say
ONE_STEP_HINT = (
    "write the fields and the expiry in one step the server runs whole: a Lua script that"
    " does the HSET and the EXPIRE (valkey.eval), or on a single server a MULTI/EXEC"
    " transaction (valkey.pipeline(transaction=True))"
)

# -- cache-aside ------------------------------------------------------------------------
CA_TTL = 600
CA_EMPTY_TTL = 30
CA_QUERY = "flight_by_id"


def _ca_setup(c: CheckContext) -> tuple[str, dict[str, Any], str, Any]:
    db = c.database()
    first = db.fetch(c.sql("write_behind_first_flight"))
    if not first.rows:
        raise DataError(
            "the flight table is empty, so cache-aside has nothing to cache",
            hint="load the data with `flightcache data load`",
        )
    params = {"flight_id": int(first.rows[0][0])}
    sql = c.sql(CA_QUERY)
    return sql, params, c.keys.query(CA_QUERY, params), plain(db.fetch(sql, params).rows)


def _ca_read(c: CheckContext, sql: str, params: dict[str, Any], key: str) -> Any:
    return c.learner.call(
        "cached_query", c.valkey, c.db, key, sql, dict(params), CA_TTL, CA_EMPTY_TTL
    )


def ca_miss(c: CheckContext) -> None:
    sql, params, key, expected = _ca_setup(c)
    got = _ca_read(c, sql, params, key)
    if plain(got) != expected:
        raise CheckFailed(
            f"on a miss cached_query() returned {show(got)}, not the query's rows {show(expected)}",
            hint="run the query (db.fetch(sql, params).rows) and return json.loads(to_json(rows))",
        )
    if not c.admin.exists(key):
        raise CheckFailed(
            f"after a miss, nothing is stored under {key}",
            hint="store the rows: valkey.set(key, to_json(rows), ex=ttl)",
        )


def ca_hit(c: CheckContext) -> None:
    sql, params, key, expected = _ca_setup(c)
    _ca_read(c, sql, params, key)
    before = c.learner_db().fetches
    got = _ca_read(c, sql, params, key)
    if c.learner_db().fetches > before:
        raise CheckFailed(
            "the second read ran the query again: it should have been a hit",
            hint="GET the key first and return json.loads(value) when Valkey has it;"
            " store the rows after a miss",
        )
    if plain(got) != expected:
        raise CheckFailed(
            f"a hit returned {show(got)}, not the cached rows {show(expected)}",
            hint="on a hit return json.loads(value)",
        )


def ca_ttl(c: CheckContext) -> None:
    sql, params, key, _ = _ca_setup(c)
    _ca_read(c, sql, params, key)
    problem = expiry_problem(c, key, CA_TTL)
    if problem:
        raise CheckFailed(
            f"the cached rows have {problem}: rows cached without an expiry never see a"
            f" change in the database; they must expire within ttl ({CA_TTL} s)",
            hint="set the expiry with the value: valkey.set(key, value, ex=ttl)",
        )


def ca_empty(c: CheckContext) -> None:
    sql = c.sql(CA_QUERY)
    params = {"flight_id": -1}
    key = c.keys.query(CA_QUERY, params)
    got = _ca_read(c, sql, params, key)
    if plain(got) != []:
        raise CheckFailed(
            f"for a flight that does not exist cached_query() returned {show(got)}, not []",
            hint="return the rows the query returned, even when there are none",
        )
    ttl = int(c.admin.ttl(key))
    if ttl == -1:
        raise CheckFailed(
            "an empty result was cached with no TTL: that miss is cached forever, and a"
            " flight added later would never be seen",
            hint=f"do not store empty results, or store them with ex=empty_ttl"
            f" ({CA_EMPTY_TTL} s here)",
        )
    if ttl > CA_EMPTY_TTL:
        raise CheckFailed(
            f"an empty result was cached for {ttl} s (empty_ttl is {CA_EMPTY_TTL} s):"
            " a miss cached that long hides a flight added meanwhile",
            hint="store an empty result with ex=empty_ttl, or do not store it",
        )


# -- write-through ------------------------------------------------------------------------
WT_TTL = 600
WT_NAME = "Fresh Air"
WT_DOOMED = "Doomed Air"


def _wt_airline(c: CheckContext) -> dict[str, str]:
    """An airline row of the run's scratch copy of ``airline``, as text."""
    codes = [str(r[0]) for r in c.scratch_fetch("exercise_airline_codes").rows if r[0]]
    random.shuffle(codes)
    for code in codes[:20]:
        found = c.scratch_fetch("airline_by_iata", {"iata": code})
        if len(found.rows) == 1:
            return _wt_row(c, int(found.rows[0][0]))
    raise DataError(
        "the airline table has no airline with a code of its own, so the write-through"
        " check has nothing to rename",
        hint="load the data with `flightcache data load`",
    )


def _wt_row(c: CheckContext, airline_id: int) -> dict[str, str]:
    found = c.scratch_fetch("airline_by_id", {"airline_id": airline_id})
    return {
        col: "" if v is None else str(v)
        for col, v in zip(found.columns, found.rows[0], strict=True)
    }


def _wt_rename(c: CheckContext, row: dict[str, str], name: str, *, expect: bool = False) -> str:
    key = c.keys.airline(int(row["airline_id"]))
    airline_id = int(row["airline_id"])
    c.learner.call(
        "rename_airline", c.valkey, c.db, key, airline_id, name, WT_TTL, expect_failure=expect
    )
    return key


def wt_database(c: CheckContext) -> None:
    row = _wt_airline(c)
    _wt_rename(c, row, WT_NAME)
    now = _wt_row(c, int(row["airline_id"]))["airlinename"]
    if now != WT_NAME:
        raise CheckFailed(
            f"after rename_airline(..., {WT_NAME!r}) the database still says {now!r}",
            hint="inside `with db.transaction():` run "
            "db.execute(db.sql('airline_rename'), {'name': name, 'airline_id': airline_id})",
        )


def wt_cache(c: CheckContext) -> None:
    row = _wt_airline(c)
    key = _wt_rename(c, row, WT_NAME)
    cached: dict[str, str] = c.admin.hgetall(key)
    if not cached:
        raise CheckFailed(
            f"after the rename Valkey holds no copy under {key}: write-through writes the"
            " new row to the cache as it writes the database",
            hint="after the transaction, write every field of airline_row(db, airline_id) to"
            " the hash, with its TTL, in one step",
        )
    expected = {**row, "airlinename": WT_NAME}
    if cached != expected:
        raise CheckFailed(
            f"Valkey holds {show(cached)}, not the airline's new row {show(expected)}",
            hint="HSET every field of airline_row(db, airline_id), read after the COMMIT",
        )
    problem = expiry_problem(c, key, WT_TTL)
    if problem:
        raise CheckFailed(
            f"the cached row has {problem}: it must expire within ttl ({WT_TTL} s)",
            hint="give the row its TTL (EXPIRE) in the same step as the HSET",
        )


def wt_failed_commit(c: CheckContext) -> None:
    row = _wt_airline(c)
    key = c.keys.airline(int(row["airline_id"]))
    c.admin.hset(key, mapping=row)  # a reader cached the committed row
    c.admin.expire(key, WT_TTL)
    db = c.learner_db()
    db.fail_writes = True
    try:
        _wt_rename(c, row, WT_DOOMED, expect=True)
    except InjectedFailure:
        pass
    finally:
        db.fail_writes = False
    if db.failures == 0:
        raise CheckFailed(
            "rename_airline() wrote nothing through db.transaction(), so the COMMIT failure"
            " this check injects never happened",
            hint="run the UPDATE inside `with db.transaction():`",
        )
    cached = c.admin.hget(key, "airlinename")
    if cached == WT_DOOMED:
        raise CheckFailed(
            f"the database COMMIT failed and rolled back, yet Valkey holds {WT_DOOMED!r}:"
            " you updated the cache before the database committed, so readers now see a"
            " name the database never stored, until the TTL ends",
            hint="write to Valkey only after the `with db.transaction():` block has ended"
            " without an error; let the error propagate",
        )


def _wt_cached_then_renamed(c: CheckContext, valkey: Any) -> tuple[dict[str, str], str]:
    """A reader cached the committed row; then the learner renames, with ``valkey``."""
    row = _wt_airline(c)
    key = c.keys.airline(int(row["airline_id"]))
    c.admin.hset(key, mapping=row)
    c.admin.expire(key, WT_TTL)
    try:
        c.learner.call(
            "rename_airline", valkey, c.db, key, int(row["airline_id"]), WT_NAME, WT_TTL,
            expect_failure=True,
        )  # fmt: skip
    except InjectedFailure:
        pass
    now = _wt_row(c, int(row["airline_id"]))["airlinename"]
    if now != WT_NAME:
        raise CheckFailed(
            f"the rename did not reach the database (it says {now!r}, not {WT_NAME!r})",
            hint="commit the UPDATE before any write to Valkey that may fail",
        )
    return row, key


def wt_lost_after_commit(c: CheckContext) -> None:
    row, key = _wt_cached_then_renamed(c, LEARNER_VALKEY_LOST_AT_COMMIT)
    cached = c.admin.hget(key, "airlinename")
    if cached == row["airlinename"]:
        raise CheckFailed(
            f"Valkey became unreachable right after the COMMIT, and still holds the old"
            f" name {cached!r}: readers are served a name the database no longer has"
            f" until the TTL ({WT_TTL} s) ends",
            hint="delete the cached row inside the transaction, before the COMMIT"
            " (valkey.delete(key)): a failure after the COMMIT then costs a miss, not a"
            " stale read; Valkey down before it rolls the rename back",
        )


def wt_atomic_row(c: CheckContext) -> None:
    _, key = _wt_cached_then_renamed(c, LEARNER_VALKEY_CRASHING_AFTER_COMMIT)
    if int(c.admin.ttl(key)) == -1:
        raise CheckFailed(
            "the new row and its TTL went to Valkey in separate round trips: this check"
            " lost the connection after the first reply that followed the COMMIT, as a"
            f" crash of your process would, and left {key} with no TTL: a cached row"
            " that never expires, and never sees a later change made elsewhere",
            hint=ONE_STEP_HINT,
        )


# -- write-behind ---------------------------------------------------------------------------
WRITE_BEHIND_GROUP = "exercise-writer"
WRITE_BEHIND_CONSUMER = "worker-1"
WRITE_BEHIND_BATCH = 4
WRITE_BEHIND_MIN_IDLE_MS = 30_000  # a worker silent this long is taken for dead
WRITE_BEHIND_GONE = "worker-0"  # a worker that read entries and never came back
WRITE_BEHIND_POISON = {"flight": "FC-1O1", "seats": "2"}  # no flight id: never applicable
WRITE_BEHIND_FIRST_FLIGHT = 900_001  # the queue's own flight ids: one per entry, no FK involved


@dataclass
class _Queued:
    entry_id: str
    flight: int
    seats: int


def _write_behind_queue(c: CheckContext, n: int) -> tuple[str, list[_Queued]]:
    from flightcache.patterns.write_behind import ensure_tables

    ensure_tables(c.scratch_db())
    stream = c.keys.exercise_queue()
    c.admin.xgroup_create(stream, WRITE_BEHIND_GROUP, id="0", mkstream=True)
    return stream, _write_behind_add(c, stream, n)


def _write_behind_add(c: CheckContext, stream: str, n: int, first: int = 0) -> list[_Queued]:
    """Queue ``n`` bookings, of flights ``first`` on past the queue's own first flight."""
    queued = []
    for i in range(n):
        flight, seats = WRITE_BEHIND_FIRST_FLIGHT + first + i, i + 1
        entry_id = c.admin.xadd(stream, {"flight": flight, "seats": seats})
        queued.append(_Queued(str(entry_id), flight, seats))
    return queued


def _write_behind_applied(c: CheckContext, stream: str, entry: _Queued) -> int:
    found = c.scratch_fetch(
        "write_behind_flight_seats", {"queue": stream, "flight_id": entry.flight}
    )
    return int(found.rows[0][0])


def _write_behind_drain(c: CheckContext, stream: str, *, expect: bool = False) -> Any:
    return c.learner.call(
        "drain",
        c.valkey,
        c.db,
        stream,
        WRITE_BEHIND_GROUP,
        WRITE_BEHIND_CONSUMER,
        WRITE_BEHIND_BATCH,
        c.keys.exercise_dead_letters(),
        WRITE_BEHIND_MIN_IDLE_MS,
        expect_failure=expect,
    )


def _write_behind_drain_all(c: CheckContext, stream: str, queued: int) -> None:
    for _ in range(queued + 3):
        if not _write_behind_drain(c, stream):
            return
    raise CheckFailed(
        f"drain() kept returning a count after {queued} entries were applied",
        hint="return how many entries this call applied: 0 when there was nothing to read",
    )


def _write_behind_pending(c: CheckContext, stream: str) -> set[str]:
    rows = c.admin.xpending_range(stream, WRITE_BEHIND_GROUP, min="-", max="+", count=1000)
    return {str(r["message_id"]) for r in rows}


def _write_behind_delivered(c: CheckContext, stream: str, queued: list[_Queued]) -> list[_Queued]:
    groups = c.admin.xinfo_groups(stream)
    last = next(
        (str(g["last-delivered-id"]) for g in groups if g["name"] == WRITE_BEHIND_GROUP), "0-0"
    )
    return [q for q in queued if _stream_id(q.entry_id) <= _stream_id(last)]


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _write_behind_exactly_once(
    c: CheckContext, stream: str, queued: list[_Queued], after: str
) -> None:
    applied = {q.entry_id: _write_behind_applied(c, stream, q) for q in queued}
    missing = [q for q in queued if applied[q.entry_id] == 0]
    twice = [q for q in queued if applied[q.entry_id] > q.seats]
    if missing:
        raise CheckFailed(
            f"{after}, {len(missing)} of {len(queued)} queued bookings never reached the"
            f" database (entries {', '.join(q.entry_id for q in missing[:3])})",
            hint="read this consumer's pending entries first (XREADGROUP ... STREAMS key 0),"
            " then new ones (>), and call record_booking() for each inside the transaction",
        )
    if twice:
        raise CheckFailed(
            f"{after}, {len(twice)} bookings were applied more than once",
            hint="apply each entry once per call, and XACK it after the commit",
        )


def write_behind_applies(c: CheckContext) -> None:
    stream, queued = _write_behind_queue(c, 6)
    _write_behind_drain_all(c, stream, len(queued))
    _write_behind_exactly_once(c, stream, queued, "after draining the queue")


def write_behind_acks(c: CheckContext) -> None:
    stream, queued = _write_behind_queue(c, 6)
    _write_behind_drain_all(c, stream, len(queued))
    pending = _write_behind_pending(c, stream)
    if pending:
        raise CheckFailed(
            f"{len(pending)} applied entries are still pending: never acknowledged, they"
            " would be delivered again after a restart",
            hint="after the transaction has committed: valkey.xack(stream, group, *entry_ids)",
        )


def _write_behind_fail_once(c: CheckContext, stream: str) -> ExerciseDb:
    db = c.learner_db()
    db.fail_writes = True
    try:
        _write_behind_drain(c, stream, expect=True)
    except InjectedFailure:
        pass
    finally:
        db.fail_writes = False
    if db.failures == 0:
        raise CheckFailed(
            "drain() wrote nothing through db.transaction(), so the database failure this"
            " check injects never happened",
            hint="apply the batch inside `with db.transaction():`",
        )
    return db


def write_behind_ack_after_commit(c: CheckContext) -> None:
    stream, queued = _write_behind_queue(c, 4)
    _write_behind_fail_once(c, stream)
    delivered = _write_behind_delivered(c, stream, queued)
    pending = _write_behind_pending(c, stream)
    lost = [
        q
        for q in delivered
        if q.entry_id not in pending and _write_behind_applied(c, stream, q) == 0
    ]
    if lost:
        raise CheckFailed(
            f"the database write failed, yet {len(lost)} of {len(delivered)} entries read were"
            " acknowledged (XACK): they are no longer pending and not in the database, so"
            " those bookings are lost",
            hint="XACK only after the `with db.transaction():` block has ended without an"
            " error; a failure then leaves the entries pending, to be retried",
        )


def write_behind_retries(c: CheckContext) -> None:
    stream, queued = _write_behind_queue(c, 4)
    _write_behind_fail_once(c, stream)
    _write_behind_drain_all(c, stream, len(queued))
    _write_behind_exactly_once(c, stream, queued, "after a failed write and a retry")
    if _write_behind_pending(c, stream):
        raise CheckFailed(
            "after the retry some entries are still pending",
            hint="XACK every entry you applied, after the commit",
        )


def write_behind_poison(c: CheckContext) -> None:
    stream, queued = _write_behind_queue(c, 3)
    poison = str(c.admin.xadd(stream, WRITE_BEHIND_POISON))
    more = _write_behind_add(c, stream, 3, first=100)
    failures = 0
    for _ in range(len(queued) + len(more) + 3):
        try:
            if not _write_behind_drain(c, stream):
                break
        except CheckFailed as failed:
            if "ValueError" not in failed.message and "KeyError" not in failed.message:
                raise  # not the poison entry's failure: said as it is
            failures += 1
            if failures >= 3:
                raise CheckFailed(
                    f"entry {poison} (flight {WRITE_BEHIND_POISON['flight']!r}) can never be"
                    f" applied, and drain() failed on it {failures} times in a row: an entry"
                    " retried forever fails every batch it is in, and the bookings queued"
                    " behind it never reach the database",
                    hint="before the transaction, set aside each entry readable() refuses:"
                    " add it (its fields and its id) to the dead-letter stream, then XACK it;"
                    " apply and acknowledge the others as before",
                ) from None
    if poison in _write_behind_pending(c, stream):
        raise CheckFailed(
            f"entry {poison}, which can never be applied, is still pending: every restart"
            " delivers it again, and it fails again",
            hint="XACK a poison entry once it is in the dead-letter stream",
        )
    dead = c.admin.xrange(c.keys.exercise_dead_letters())
    if not any(poison in fields.values() for _, fields in dead):
        raise CheckFailed(
            f"entry {poison} was acknowledged but is not in the dead-letter stream with its"
            " id: a booking dropped without a trace, that no one can repair or replay",
            hint="XADD it to the dead-letter stream (its fields and its entry id) before"
            " the XACK, so a crash between the two keeps a copy",
        )
    _write_behind_exactly_once(c, stream, queued + more, "with a poison entry in the queue")


def write_behind_claims(c: CheckContext) -> None:
    stream, queued = _write_behind_queue(c, 5)
    # another worker read two entries, then died before applying them
    c.admin.xreadgroup(WRITE_BEHIND_GROUP, WRITE_BEHIND_GONE, {stream: ">"}, count=2)
    stranded = [q.entry_id for q in queued[:2]]
    c.admin.xclaim(
        stream,
        WRITE_BEHIND_GROUP,
        WRITE_BEHIND_GONE,
        0,
        stranded,
        idle=2 * WRITE_BEHIND_MIN_IDLE_MS,
    )
    _write_behind_drain_all(c, stream, len(queued))
    left = [q for q in queued[:2] if _write_behind_applied(c, stream, q) == 0]
    if left:
        raise CheckFailed(
            f"{WRITE_BEHIND_GONE} read {len(stranded)} entries and never came back; they"
            f" have been pending for {2 * WRITE_BEHIND_MIN_IDLE_MS} ms (min_idle_ms is"
            f" {WRITE_BEHIND_MIN_IDLE_MS}), and drain() never took them over: a group"
            " delivers a pending entry to no one else, so those bookings wait forever",
            hint="claim what has been pending longer than min_idle_ms before reading new"
            " entries: XAUTOCLAIM stream group consumer min_idle_ms 0-0 COUNT count",
        )
    _write_behind_exactly_once(c, stream, queued, "after a worker died holding entries")


# -- leaderboard -------------------------------------------------------------------------------
LEADERBOARD_SCORES = {"FRA": 980.0, "MUC": 870.0, "BER": 640.0, "HAM": 410.0, "CGN": 120.0}


def _exercise_board(c: CheckContext) -> str:
    key = c.keys.board("exercise")
    c.admin.zadd(key, LEADERBOARD_SCORES)
    return key


def leaderboard_add(c: CheckContext) -> None:
    key = c.keys.board("exercise")
    c.learner.call("add_points", c.valkey, key, "VIE", 10)
    returned = c.learner.call("add_points", c.valkey, key, "VIE", 5)
    score = c.admin.zscore(key, "VIE")
    if score != 15:
        raise CheckFailed(
            f"after add_points(VIE, 10) and add_points(VIE, 5) the score is {score}, not 15",
            hint="add to the score with ZINCRBY key points member (valkey.zincrby)",
        )
    if returned is None or float(returned) != 15:
        raise CheckFailed(
            f"add_points() returned {returned!r}, not the new score 15.0",
            hint="return what ZINCRBY returns",
        )


def leaderboard_top(c: CheckContext) -> None:
    key = _exercise_board(c)
    got = c.learner.call("top", c.valkey, key, 3)
    expected = sorted(LEADERBOARD_SCORES.items(), key=lambda kv: -kv[1])[:3]
    pairs = [(str(m), float(s)) for m, s in got] if isinstance(got, list) else got
    if pairs == expected:
        return
    if isinstance(pairs, list) and len(pairs) != 3:
        raise CheckFailed(
            f"top(3) returned {len(pairs)} entries: {show(pairs)}",
            hint="ZRANGE's stop index is inclusive: the first n are 0 to n-1",
        )
    lowest = min(LEADERBOARD_SCORES.items(), key=lambda kv: kv[1])[0]
    if isinstance(pairs, list) and pairs and pairs[0][0] == lowest:
        raise CheckFailed(
            f"top(3) returned the lowest scores first: {show(pairs)}",
            hint="highest first: ZRANGE key 0 n-1 REV WITHSCORES (valkey.zrevrange(key, 0, n - 1,"
            " withscores=True))",
        )
    raise CheckFailed(
        f"top(3) returned {show(got)}, not {show(expected)}",
        hint="return (member, score) pairs, highest score first",
    )


def leaderboard_rank(c: CheckContext) -> None:
    key = _exercise_board(c)
    leader = c.learner.call("rank", c.valkey, key, "FRA")
    third = c.learner.call("rank", c.valkey, key, "BER")
    if leader == 0:
        raise CheckFailed(
            "rank() of the leader returned 0, but ranks here start at 1: the leader is rank 1",
            hint="positions count from 0, ranks from 1: the leader is 1 + the number of"
            " members scoring more than it, none",
        )
    if leader == len(LEADERBOARD_SCORES):
        raise CheckFailed(
            f"rank() of the leader returned {leader}: it counted from the lowest score",
            hint="rank by the highest score first: count the members scoring more, plus 1",
        )
    if (leader, third) != (1, 3):
        raise CheckFailed(
            f"rank() returned {leader!r} for the leader and {third!r} for the third, not 1 and 3",
            hint="return 1 + the number of members with a strictly higher score",
        )


# two members tied in second place: MUC before BER by name, as ZREVRANK orders them
LEADERBOARD_TIED = {"FRA": 980.0, "MUC": 870.0, "BER": 870.0, "HAM": 410.0}


def leaderboard_ties(c: CheckContext) -> None:
    key = c.keys.board("exercise")
    c.admin.zadd(key, LEADERBOARD_TIED)
    got = {m: c.learner.call("rank", c.valkey, key, m) for m in ("MUC", "BER", "HAM")}
    if got == {"MUC": 2, "BER": 2, "HAM": 4}:
        return
    raise CheckFailed(
        f"MUC and BER both score 870, behind FRA's 980, and HAM 410; rank() returned"
        f" {show(got)}, not MUC 2, BER 2, HAM 4: equal scores share a rank, and the next"
        " rank is skipped (1, 2, 2, 4). A position (ZREVRANK) splits the tie by member"
        " name, so two passengers with the same flights would get different ranks",
        hint="a member's rank is 1 + the number of members with a strictly higher score:"
        " read its score (ZSCORE), then count the members above it (ZCOUNT with an"
        " exclusive minimum, '(score')",
    )


def leaderboard_top_zero(c: CheckContext) -> None:
    key = _exercise_board(c)
    got = c.learner.call("top", c.valkey, key, 0)
    if isinstance(got, list | tuple) and not got:
        return
    raise CheckFailed(
        f"top(0) returned {show(got)}, not []: asked for no members, it served some",
        hint="with n = 0 the stop index n - 1 is -1, and -1 means the last member:"
        " ZRANGE 0 -1 is the whole board. Return [] when n is 0 or less",
    )


def leaderboard_absent(c: CheckContext) -> None:
    key = _exercise_board(c)
    got = c.learner.call("rank", c.valkey, key, "XXX")
    if got is not None:
        raise CheckFailed(
            f"rank() of a member not on the board returned {got!r}, not None",
            hint="ZSCORE (and ZREVRANK) answer None for a member that is not there:"
            " return None then",
        )


# -- sessions -----------------------------------------------------------------------------
SESSION_TTL = 1800
SESSION_FIELDS = {"username": "john_doe", "search_origin": "JFK", "cart_items": "2"}
IDLE_LEFT = 5  # seconds of the session left when activity arrives


def _session(c: CheckContext) -> str:
    key = c.keys.exercise_session("user123")
    c.learner.call("login", c.valkey, key, "123", dict(SESSION_FIELDS), SESSION_TTL)
    return key


def session_login(c: CheckContext) -> None:
    key = _session(c)
    stored = c.admin.hgetall(key)
    expected = {"user_id": "123", **SESSION_FIELDS}
    if stored != expected:
        raise CheckFailed(
            f"after login() the session hash holds {show(stored)}, not {show(expected)}",
            hint="HSET key user_id <user_id> and every field (valkey.hset(key, mapping=...))",
        )
    problem = expiry_problem(c, key, SESSION_TTL)
    if problem:
        raise CheckFailed(
            f"the session has {problem}: a session must end after ttl ({SESSION_TTL} s)"
            " without activity",
            hint="give the session its TTL (EXPIRE) in the same step as the HSET",
        )


def session_login_atomic(c: CheckContext) -> None:
    key = c.keys.exercise_session("crashed")
    try:
        c.learner.call(
            "login",
            LEARNER_VALKEY_CRASHING,
            key,
            "123",
            dict(SESSION_FIELDS),
            SESSION_TTL,
            expect_failure=True,
        )
    except InjectedFailure:
        pass
    if int(c.admin.ttl(key)) == -1:
        raise CheckFailed(
            "login() wrote the session and its expiry in separate round trips: this check"
            " lost the connection after the first reply, as a crash of your process would,"
            f" and left {key} with fields and no TTL. That session never expires, and"
            " between the two commands every other client sees it without one",
            hint=ONE_STEP_HINT,
        )


def session_get(c: CheckContext) -> None:
    key = _session(c)
    got = c.learner.call("get_session", c.valkey, key, SESSION_TTL)
    if got != {"user_id": "123", **SESSION_FIELDS}:
        raise CheckFailed(
            f"get_session() returned {show(got)}, not the session's fields",
            hint="return HGETALL key",
        )
    missing = c.keys.exercise_session("nobody")
    none = c.learner.call("get_session", c.valkey, missing, SESSION_TTL)
    if none is not None:
        raise CheckFailed(
            f"get_session() of a session that does not exist returned {none!r}, not None",
            hint="HGETALL returns {} for a missing key: return None then",
        )
    if c.admin.exists(missing):
        raise CheckFailed(
            "get_session() of a missing session created its key",
            hint="only read a missing session; never write one",
        )


def _slides(c: CheckContext, function: str, args: tuple[Any, ...], key: str) -> None:
    c.admin.expire(key, IDLE_LEFT)
    c.learner.call(function, c.valkey, key, *args)
    ttl = int(c.admin.ttl(key))
    if ttl <= IDLE_LEFT:
        raise CheckFailed(
            f"the session had {IDLE_LEFT} s left; after {function}() it still expires in"
            f" {max(ttl, 0)} s: activity must push the expiry back to ttl ({SESSION_TTL} s),"
            " or an active user is logged out mid-booking",
            hint="EXPIRE key ttl on every activity (a sliding expiry)",
        )


def session_touch_slides(c: CheckContext) -> None:
    _slides(c, "touch", (SESSION_TTL,), _session(c))


def session_get_slides(c: CheckContext) -> None:
    _slides(c, "get_session", (SESSION_TTL,), _session(c))


def session_touch_missing(c: CheckContext) -> None:
    key = c.keys.exercise_session("expired")
    got = c.learner.call("touch", c.valkey, key, SESSION_TTL)
    if c.admin.exists(key):
        raise CheckFailed(
            "touch() of an expired session created it again: a logged-out user would be"
            " back in, with a session holding no login",
            hint="EXPIRE alone does nothing to a missing key; return what it returns",
        )
    if got is not False and got != 0:
        raise CheckFailed(
            f"touch() of an expired session returned {got!r}, not False",
            hint="return bool(valkey.expire(key, ttl))",
        )


# -- stampede lock ------------------------------------------------------------------------
LOCK_MS = 30_000
OTHER_TOKEN = "another-client-token"


def _acquired(c: CheckContext, key: str) -> str:
    token = c.learner.call("acquire", c.valkey, key, LOCK_MS)
    if not isinstance(token, str) or not token:
        raise CheckFailed(
            f"acquire() of a free lock returned {token!r}, not a token",
            hint="SET key token NX PX ttl_ms and return the token when SET answers OK",
        )
    return token


def _held(c: CheckContext) -> tuple[str, str]:
    """The lock's key, acquired by the learner's acquire(): (key, token)."""
    key = c.keys.lock("exercise")
    return key, _acquired(c, key)


def lock_acquire(c: CheckContext) -> None:
    key, token = _held(c)
    held = c.admin.get(key)
    if held != token:
        raise CheckFailed(
            f"the lock key holds {held!r}, not the token acquire() returned ({token!r})",
            hint="store the token itself: SET key token NX PX ttl_ms",
        )
    problem = expiry_problem(c, key, LOCK_MS, ms=True)
    if problem:
        raise CheckFailed(
            f"the lock has {problem}: a holder that crashes must not block every rebuild"
            " for longer than ttl_ms",
            hint="give the SET an expiry: PX ttl_ms (valkey.set(key, token, nx=True, px=ttl_ms))",
        )


def lock_exclusive(c: CheckContext) -> None:
    key, token = _held(c)
    second = c.learner.call("acquire", c.valkey, key, LOCK_MS)
    if second:
        raise CheckFailed(
            f"a second acquire() of a held lock returned {second!r}: two rebuilders would run",
            hint="SET ... NX sets only when the key is absent; return None when it answers nil",
        )
    if c.admin.get(key) != token:
        raise CheckFailed(
            "a second acquire() replaced the holder's token",
            hint="use NX, so a held lock is left alone",
        )


def lock_release(c: CheckContext) -> None:
    key, token = _held(c)
    released = c.learner.call("release", c.valkey, key, token)
    if c.admin.exists(key):
        raise CheckFailed(
            "release() with the holder's token left the lock in place",
            hint="delete the key when it holds your token",
        )
    if not released:
        raise CheckFailed(
            f"release() of your own lock returned {released!r}, not True",
            hint="return whether the key was deleted (the script's DEL answer, 1)",
        )
    again = _acquired(c, key)
    if again == token:
        raise CheckFailed(
            f"two acquisitions returned the same token {token!r}: a token must identify one"
            " holder, or one client can release another's lock",
            hint="make a fresh token each time: secrets.token_hex(16)",
        )


def lock_owner(c: CheckContext) -> None:
    key, token = _held(c)
    # our lock expired meanwhile, and another client acquired it
    c.admin.set(key, OTHER_TOKEN, px=LOCK_MS)
    released = c.learner.call("release", c.valkey, key, token)
    if c.admin.get(key) != OTHER_TOKEN:
        raise CheckFailed(
            "release() deleted a lock another client holds: your lock had expired and"
            " someone else acquired it, and your release removed theirs without checking"
            " the owner, so a third client can now rebuild alongside them",
            hint="compare the token and delete in one step, in a Lua script: if"
            " redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1])"
            " end return 0",
        )
    if released:
        raise CheckFailed(
            f"release() of a lock held by another client returned {released!r}, not False",
            hint="return whether your script deleted the key",
        )


# -- near cache ---------------------------------------------------------------------------
NEAR_ROOM = 1 << 20  # bytes: room for every value a check reads, unless it tests the bounds
NEAR_WAIT_S = 3.0  # for a push to reach the store, or tracking to come back


class _Near:
    """One near cache over the learner's store, opened in the learner's process, and
    what the checker sees of it on the server: the tracked connection's commands."""

    def __init__(self, c: CheckContext, max_entries: int = 100, max_bytes: int = NEAR_ROOM):
        self.c = c
        self.handle = c.learner.call("near_open", c.valkey, max_entries, max_bytes)

    def __enter__(self) -> _Near:
        return self

    def __exit__(self, *exc: object) -> None:
        self.c.learner.call("near_close", self.handle)

    def read(self, key: str) -> Any:
        return self.c.learner.call("near_read", self.handle, key)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.c.learner.call("near_state", self.handle)
        return state

    def tracking(self, key: str) -> dict[str, Any]:
        """The tracking of the primary that holds ``key``."""
        name = key_node_name(self.c.admin, key)
        return next(t for t in self.state()["trackers"] if t["node"] == name)

    def node(self, key: str) -> Any:
        name = key_node_name(self.c.admin, key)
        return next(n for n in primaries(self.c.admin) if node_name(n) == name)

    def sent(self, key: str) -> int:
        """Commands the tracked connection of ``key``'s primary has sent so far."""
        reader = self.tracking(key)["reader_id"]
        found = self.node(key).client_list(client_id=[str(reader)])
        return int(found[0]["tot-cmds"]) if found else 0

    def from_memory(self, key: str, expected: str) -> bool:
        """Read ``key``: whether no command reached Valkey; a value other than
        ``expected`` fails the check."""
        before = self.sent(key)
        got = self.read(key)
        if got != expected:
            raise CheckFailed(
                f"near_read({key!r}) returned {show(got)}; Valkey holds {expected!r}",
                hint="lookup() returns the value keep() stored for that key, or None",
            )
        return self.sent(key) == before

    def wait(self, what: str, done: Callable[[dict[str, Any]], bool]) -> None:
        end = time.monotonic() + NEAR_WAIT_S
        while not done(self.state()):
            if time.monotonic() > end:
                raise CheckFailed(
                    f"{what} did not happen within {NEAR_WAIT_S:g} s",
                    hint="on_invalidate() and on_tracking_lost() must return promptly:"
                    " they run in the tracking thread, which waits for them",
                )
            time.sleep(0.01)

    def change(self, key: str, value: str) -> None:
        """SET ``key`` as another client, and wait until the store has been told."""
        seen = self.state()["invalidated"]
        self.c.admin.set(key, value)
        self.wait("the invalidation of the change", lambda s: s["invalidated"] > seen)

    def kept(self, name: str, value: str) -> str:
        """Key ``name`` set and read twice: the second read must come from memory."""
        key = self.c.keys.exercise_near(name)
        self.c.admin.set(key, value)
        self.read(key)
        if not self.from_memory(key, value):
            raise CheckFailed(
                "the second read of an unchanged key sent a command to Valkey: it was not"
                " answered from memory",
                hint="keep() should store the value when nothing happened since its ticket,"
                " and lookup() return what keep() stored",
            )
        return key


def near_hit(c: CheckContext) -> None:
    with _Near(c) as near:
        near.kept("hit", "first")


def near_invalidate(c: CheckContext) -> None:
    with _Near(c) as near:
        key = near.kept("changed", "before")
        near.change(key, "after")
        got = near.read(key)
        if got != "after":
            raise CheckFailed(
                f"another client changed the key to 'after' and the server said so, yet the"
                f" next read returned {show(got)}",
                hint="on_invalidate(): drop what the store holds of every key it names",
            )


def near_race(c: CheckContext) -> None:
    key = c.keys.exercise_near("raced")
    with _Near(c) as near:
        c.admin.set(key, "old")
        c.learner.call("near_fetch", near.handle, key)  # the ticket, then the GET
        near.change(key, "new")  # the push arrives before keep() runs
        kept = c.learner.call("near_keep", near.handle, key)
        got = near.read(key)
        if got != "new" or kept:
            raise CheckFailed(
                f"a value fetched before an invalidation of its key was kept (keep()"
                f" returned {kept!r}), and the next read returned {show(got)}; Valkey holds"
                " 'new': the copy would stay stale until the key changes again",
                hint="let ticket() note something that on_invalidate() moves, and keep()"
                " refuse when it has moved since",
            )


def near_kill(c: CheckContext) -> None:
    with _Near(c) as near:
        key = near.kept("killed", "before")
        tracking = near.tracking(key)
        # the kill and the change in one send: the change runs before the tracking
        # connection can come back, so its invalidation is lost with the connection
        pipe = near.node(key).pipeline(transaction=False)
        pipe.client_kill_filter(_id=tracking["sink_id"])
        pipe.set(key, "after")
        pipe.execute()
        near.wait(
            "tracking on a new connection",
            lambda s: any(
                t["node"] == tracking["node"] and t["connects"] > tracking["connects"]
                and t["ready"]
                for t in s["trackers"]
            ),
        )  # fmt: skip
        got = near.read(key)
        if got != "after":
            raise CheckFailed(
                f"after the tracking connection was killed (CLIENT KILL) and came back, a"
                f" read returned {show(got)} from memory; the key had changed to 'after'"
                " meanwhile, and that change was never reported",
                hint="on_tracking_lost(): drop everything the store holds, and make the"
                " tickets taken before it stale",
            )


def near_bounds(c: CheckContext) -> None:
    keys = [c.keys.exercise_near(f"bound-{n}") for n in range(5)]
    for limit, max_entries, max_bytes, size in (
        ("max_entries 3", 3, NEAR_ROOM, 10),
        ("max_bytes 50", 100, 50, 20),  # two 20-byte values fit, not three
    ):
        allowed = min(max_entries, max_bytes // size)
        with _Near(c, max_entries, max_bytes) as near:
            values = [f"{n}".ljust(size, ".") for n in range(len(keys))]
            for key, value in zip(keys, values, strict=True):
                c.admin.set(key, value)
                near.read(key)
            # the most recently read first: whatever the eviction rule, these are kept
            held = sum(
                near.from_memory(key, value)
                for key, value in reversed(list(zip(keys, values, strict=True)))
            )
            if held > allowed:
                raise CheckFailed(
                    f"with {limit}, {held} of {len(keys)} values of {size} bytes were"
                    f" answered from memory: the store holds more than it may",
                    hint="in keep(), drop entries (the least recently used, say) until the"
                    " new value fits under both max_entries and max_bytes",
                )
            if not held:
                raise CheckFailed(
                    f"with {limit}, none of {len(keys)} values read was answered from"
                    " memory: the store keeps nothing it has room for",
                    hint="keep() makes room for the new value, then stores it",
                )
            if max_bytes == NEAR_ROOM:
                continue
            big = c.keys.exercise_near("too-big")
            c.admin.set(big, "x" * (max_bytes + 1))
            near.read(big)
            if near.from_memory(big, "x" * (max_bytes + 1)):
                raise CheckFailed(
                    f"a value larger than max_bytes ({max_bytes}) was kept",
                    hint="keep() refuses a value that can never fit",
                )


CHECKS: dict[str, tuple[Check, ...]] = {
    "cache-aside": (
        Check("miss", "a miss runs the query and stores its rows", ca_miss),
        Check("hit", "a hit answers from Valkey without SQL", ca_hit),
        Check("ttl", "cached rows expire (a TTL on every SET)", ca_ttl),
        Check("empty", "an empty result is not cached for long", ca_empty),
    ),
    "write-through": (
        Check("database", "the rename reaches the database", wt_database),
        Check("cache", "the new row is written through to Valkey, with a TTL", wt_cache),
        Check(
            "failed-commit",
            "a failed COMMIT leaves no new name in Valkey",
            wt_failed_commit,
        ),
        Check(
            "lost-after-commit",
            "Valkey lost after the COMMIT leaves no old name cached",
            wt_lost_after_commit,
        ),
        Check(
            "atomic-row",
            "the new row and its TTL are written in one atomic step",
            wt_atomic_row,
        ),
    ),
    "write-behind": (
        Check("applies", "every queued booking reaches the database once", write_behind_applies),
        Check("acks", "applied entries are acknowledged", write_behind_acks),
        Check(
            "ack-after-commit",
            "nothing is acknowledged before its write is durable",
            write_behind_ack_after_commit,
        ),
        Check("retries", "entries left pending by a failure are retried", write_behind_retries),
        Check(
            "poison",
            "an entry that can never be applied is set aside, not retried forever",
            write_behind_poison,
        ),
        Check(
            "claims",
            "entries a dead worker left pending are claimed (XAUTOCLAIM)",
            write_behind_claims,
        ),
    ),
    "leaderboard": (
        Check("add", "add_points accumulates a member's score", leaderboard_add),
        Check("top", "top(n) lists the n highest scores, best first", leaderboard_top),
        Check("rank", "ranks are 1-based: the leader is rank 1", leaderboard_rank),
        Check("ties", "equal scores share a rank (1, 2, 2, 4)", leaderboard_ties),
        Check("top-zero", "top(0) lists nobody", leaderboard_top_zero),
        Check("absent", "a member not on the board has no rank", leaderboard_absent),
    ),
    "sessions": (
        Check("login", "login stores the session hash with a TTL", session_login),
        Check(
            "login-atomic",
            "the session and its TTL are written in one atomic step",
            session_login_atomic,
        ),
        Check("get", "get_session returns the fields, None when absent", session_get),
        Check("touch-slides", "touch slides the expiry", session_touch_slides),
        Check("get-slides", "reading the session slides the expiry", session_get_slides),
        Check(
            "touch-missing", "touch does not bring an expired session back", session_touch_missing
        ),
    ),
    "stampede-lock": (
        Check("acquire", "acquire sets the lock with a token and an expiry", lock_acquire),
        Check("exclusive", "a held lock cannot be acquired twice", lock_exclusive),
        Check(
            "release", "release frees your own lock; each acquire has a fresh token", lock_release
        ),
        Check("owner", "release leaves another client's lock alone", lock_owner),
    ),
    "near-cache": (
        Check("hit", "a second read is answered from memory: nothing reaches Valkey", near_hit),
        Check("invalidate", "a change in Valkey drops the copy", near_invalidate),
        Check("race", "a value fetched across an invalidation is not kept", near_race),
        Check(
            "kill",
            "after the tracking connection is killed, nothing old is served",
            near_kill,
        ),
        Check("bounds", "the store stays under max_entries and max_bytes", near_bounds),
    ),
}
