"""Exercise write-behind: apply queued bookings to the database, then acknowledge them.

Write-behind answers a write as soon as Valkey has it, queued in a stream; a worker
applies the queue to the database later, in batches. The stream's consumer group
remembers which entries each worker has read and not yet acknowledged: its pending
entries. A worker may acknowledge (XACK) an entry only once its database write is
durable. An entry acknowledged before a COMMIT that then fails is neither pending
nor in the database: that booking is lost.

Complete drain() between the START and END markers, then run:

    flightcache exercise check write-behind

What the checker passes to your function:
  valkey    a valkey-py client (decode_responses=True)
  db        the database. `with db.transaction():` runs the statements inside it as
            one transaction: COMMIT when the block ends, ROLLBACK (and the error
            raised again) when anything in it fails, the COMMIT included
  stream    the stream's key, under a prefix of its own; entries have the fields
            flight and seats
  group, consumer  the consumer group (already created) and this worker's name in it
  count     how many entries to read at most
  dead      the dead-letter stream's key: where entries that can never be applied go
  min_idle_ms  how long an entry stays pending before another worker may claim it
"""

from __future__ import annotations

from typing import Any


def entries_of(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The (entry_id, fields) pairs of an XREADGROUP reply, oldest first."""
    return [
        (entry_id, fields or {}) for _stream, batch in reply or [] for entry_id, fields in batch
    ]


def readable(fields: dict[str, str]) -> bool:
    """Whether record_booking() can apply this entry: its flight and seats are whole
    numbers (an entry deleted from the stream, with no fields, is readable: skipped)."""
    if not fields:
        return True
    try:
        int(fields["flight"]), int(fields["seats"])
    except (KeyError, ValueError):
        return False
    return True


def record_booking(db: Any, stream: str, fields: dict[str, str]) -> None:
    """Apply one queued booking: add its seats to the flight's row in flightcache_wb_seats.
    An entry deleted from the stream meanwhile has no fields and is skipped."""
    if not fields:
        return
    db.execute(
        db.sql("write_behind_seats_add"),
        {"queue": stream, "flight_id": int(fields["flight"]), "seats": int(fields["seats"])},
    )


# START write-behind
def drain(
    valkey: Any,
    db: Any,
    stream: str,
    group: str,
    consumer: str,
    count: int,
    dead: str,
    min_idle_ms: int,
) -> int:
    """Apply up to ``count`` queued bookings to the database, then acknowledge them.

    1. Which entries? First those another worker read and never acknowledged
       because it died: pending in the group for longer than ``min_idle_ms``, they
       are delivered to nobody again unless a worker claims them (XAUTOCLAIM, which
       also hands over this consumer's own idle ones). Then this consumer's own
       pending entries (XREADGROUP with the id 0), then new ones (the id ">").
       entries_of() turns an XREADGROUP reply into (entry_id, fields) pairs.
    2. An entry that can never be applied (readable() says False) must not stay
       pending: retried forever, it fails every batch it is in. Set it aside in the
       dead-letter stream ``dead`` (its fields, and its entry id) and acknowledge it,
       in an order that cannot lose it.
    3. Apply the others in ONE transaction (`with db.transaction():`, calling
       record_booking() for each), and acknowledge them (XACK) only after the with
       block, once the COMMIT has succeeded. When the transaction fails, let its
       error propagate and acknowledge nothing: the entries stay pending, and the
       next call retries them.
    Return how many entries this call took (applied or set aside): 0 when there was
    nothing to read.
    """
    raise NotImplementedError("write drain() between # START and # END")


# END write-behind
