"""Write-behind's batch: its entries as read from the queue, applied, then acked.

Read path: :func:`read_entries` reads a batch of one shard's stream (XREADGROUP;
the worker also claims entries with XAUTOCLAIM), ``[(id, {field: value}), ...]``;
:func:`parse_entries` turns them into :class:`QueueEntry` objects, each either a
flight and its seats or an error that says why no database can take it.

Write path: :func:`apply_batch` adds a batch's seats in one database transaction
that also records every entry id (flightcache_wb_applied, primary key), so an
entry delivered twice finds its id and counts once; only after the commit does
:func:`ack_and_trim` XACK the batch and trim what every consumer has acked.

Failure modes: a malformed entry (a field missing, not a whole number, a flight id
no INT holds, fewer than one seat) or one whose flight does not exist carries its
error and is never retried; a batch the database refuses for good is halved until
the refused entries stand alone (:func:`apply_isolating_poison`). The worker
(:mod:`flightcache.patterns.write_behind_worker`) sets these poison entries aside
in the dead letters. A transaction that fails rolls back whole: none of its seats
or ids are recorded, and the batch stays pending for a retry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flightcache import sqlfiles
from flightcache.errors import ConfigError, RejectedValue
from flightcache.keys import Keys
from flightcache.patterns.write_behind import GROUP, MAX_FLIGHT_ID, Sql

MAX_BATCH = 10_000
"""Entries one batch (one XREADGROUP, one transaction) may hold."""


def check_batch(batch: int) -> None:
    if batch < 1:
        raise ConfigError(
            f"--batch {batch} would read nothing: a batch holds one entry or more",
            hint="pass --batch 500, say (larger batches mean fewer transactions)",
        )
    if batch > MAX_BATCH:
        raise ConfigError(
            f"--batch {batch:,} is more than one transaction should hold (at most {MAX_BATCH:,})",
            hint="pass --batch 500, say (larger batches mean fewer transactions)",
        )


@dataclass
class QueueEntry:
    id: str
    flight_id: int | None  # None: malformed (its error says why)
    seats: int
    error: str = ""  # why no database can take it: it goes to the dead letters
    fields: dict[str, str] = field(default_factory=dict)  # as read from the stream


def as_text(value: Any) -> str:
    """A stream field, name or id as text (bytes decoded, as a client without
    decode_responses returns them)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_entries(client: Any, stream: str, consumer: str, start: str, count: int) -> list[Any]:
    """XREADGROUP up to ``count`` entries of one stream after ``start`` (``>``: new ones;
    an id: this consumer's pending ones after it), as ``[(id, {field: value}), ...]``."""
    reply = client.xreadgroup(GROUP, consumer, {stream: start}, count=count)
    if not reply:
        return []
    # RESP2: [[stream, entries]]; RESP3: {stream: [entries]}
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0] if reply else [])
    return list(reply[0][1])


def parse_entries(raw: Sequence[Any]) -> list[QueueEntry]:
    """XREADGROUP/XAUTOCLAIM entries ``[(id, {field: value}), ...]`` as QueueEntry objects.

    An entry of the wrong shape (a field missing, not a whole number, a flight id no
    INT holds, fewer than one seat) carries its error; it is not retried. An entry
    deleted while pending (``None`` fields) is recorded with no effect."""
    out: list[QueueEntry] = []
    for entry_id, fields in raw:
        if fields is None:  # deleted from the stream while pending: recorded, no effect
            out.append(QueueEntry(as_text(entry_id), None, 0))
            continue
        text = {as_text(k): as_text(v) for k, v in fields.items()}
        try:
            flight, seats = int(text["flight"]), int(text["seats"])
        except (KeyError, ValueError):
            shown = ", ".join(f"{k}={v[:30]!r}" for k, v in list(text.items())[:4]) or "none"
            error = f"malformed entry: needs whole-number fields flight and seats; has {shown}"
            out.append(QueueEntry(as_text(entry_id), None, 0, error, text))
            continue
        error = ""
        if not 1 <= flight <= MAX_FLIGHT_ID:
            error = f"malformed entry: flight {flight} is not a flight id (1 to {MAX_FLIGHT_ID})"
        elif seats < 1:
            error = f"malformed entry: {seats} seats (a booking takes one or more)"
        out.append(QueueEntry(as_text(entry_id), None if error else flight, seats, error, text))
    return out


# region: apply
def apply_batch(db: Sql, queue: str, shard: int, entries: Sequence[QueueEntry]) -> tuple[int, int]:
    """Apply entries in one transaction; returns (applied now, skipped as applied before).

    Each entry id is inserted into flightcache_wb_applied in the same transaction as
    its seats, so an entry delivered twice finds its id and counts once. Two workers
    racing on one entry: on PostgreSQL the second insert waits for the first commit
    and then skips the id (ON CONFLICT DO NOTHING); on MySQL it violates the primary
    key, its transaction rolls back, and its retry finds the id recorded.
    """
    if not entries:
        return 0, 0
    q = sqlfiles.queries(db.dialect)
    key = {"queue": queue, "shard": shard}
    ids = [e.id for e in entries]
    with db.transaction():
        if db.dialect == "postgresql":
            new = {
                str(r[0])
                for r in db.fetch(q["write_behind_applied_claim"], {**key, "ids": ids}).rows
            }
            fresh = [e for e in entries if e.id in new]
        else:
            found = db.fetch(q["write_behind_applied_among"], {**key, "ids": ids})
            done = {str(r[0]) for r in found.rows}
            fresh = [e for e in entries if e.id not in done]
            db.execute_many(
                q["write_behind_applied_insert"], [{**key, "entry_id": e.id} for e in fresh]
            )
        if fresh:
            seats: dict[int, int] = defaultdict(int)
            for e in fresh:
                if e.flight_id is not None:
                    seats[e.flight_id] += e.seats
            db.execute_many(
                q["write_behind_seats_add"],
                [
                    {"queue": queue, "flight_id": f, "seats": n}
                    for f, n in sorted(seats.items())  # one lock order for every worker
                ],
            )
    return len(fresh), len(entries) - len(fresh)


# endregion: apply


def mark_unknown_flights(db: Sql, entries: Sequence[QueueEntry], known: set[int]) -> None:
    """Mark entries whose flight does not exist (flightcache's tables have no foreign
    key to ``flight``, so the worker asks, once per flight id not in ``known``, and adds
    the ones that exist to ``known``)."""
    unknown = {e.flight_id for e in entries if e.flight_id is not None} - known
    if not unknown:
        return
    result = db.fetch(
        sqlfiles.query(db.dialect, "write_behind_flights_among"), {"ids": sorted(unknown)}
    )
    known.update(int(r[0]) for r in result.rows)
    for e in entries:
        if e.flight_id is not None and e.flight_id not in known:
            e.error = f"flight {e.flight_id} does not exist"


def apply_isolating_poison(
    db: Sql, queue: str, shard: int, entries: list[QueueEntry]
) -> tuple[int, int, list[QueueEntry]]:
    """apply_batch; when the database refuses the batch for good (RejectedValue),
    halve it until the refused entries stand alone. Returns (applied, skipped, poison).
    An entry is poison when it is refused alone twice: the second try covers a worker
    racing us on it (on MySQL our insert of its id then fails as a duplicate, and the
    retry finds it applied)."""
    if not entries:
        return 0, 0, []
    try:
        return (*apply_batch(db, queue, shard, entries), [])
    except RejectedValue as exc:
        if len(entries) > 1:
            mid = len(entries) // 2
            a1, s1, p1 = apply_isolating_poison(db, queue, shard, entries[:mid])
            a2, s2, p2 = apply_isolating_poison(db, queue, shard, entries[mid:])
            return a1 + a2, s1 + s2, p1 + p2
        error = exc.message
    try:
        return (*apply_batch(db, queue, shard, entries), [])
    except RejectedValue as exc:
        entries[0].error = exc.message or error
        return 0, 0, list(entries)


def ack_and_trim(client: Any, keys: Keys, shard: int, entries: Sequence[QueueEntry]) -> None:
    """XACK a batch, then trim what every consumer has acked (XTRIM MINID)."""
    stream = keys.write_behind_queue(shard)
    pipe = client.pipeline(transaction=False)
    pipe.xack(stream, GROUP, *[e.id for e in entries])
    # read last-delivered before the pending summary: an entry delivered in
    # between has a larger id than last-delivered and so is never trimmed
    pipe.xinfo_groups(stream)
    pipe.xpending(stream, GROUP)
    _, groups, summary = pipe.execute()
    group = next((g for g in groups if g.get("name") == GROUP), None)
    if group is None:
        return
    floor = entry_id_after(str(group["last-delivered-id"]))
    if int(summary.get("pending", 0)) and summary.get("min"):
        floor = min(floor, str(summary["min"]), key=entry_id_order)
    client.xtrim(stream, minid=floor, approximate=False)


def entry_id_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as numbers, to compare ids in stream order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_id_after(entry_id: str) -> str:
    """The smallest stream entry id greater than ``entry_id``."""
    ms, seq = entry_id_order(entry_id)
    return f"{ms}-{seq + 1}"
