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
"""

from __future__ import annotations

from typing import Any


def entries_of(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The (entry_id, fields) pairs of an XREADGROUP reply, oldest first."""
    return [
        (entry_id, fields or {}) for _stream, batch in reply or [] for entry_id, fields in batch
    ]


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
def drain(valkey: Any, db: Any, stream: str, group: str, consumer: str, count: int) -> int:
    """Apply up to ``count`` queued bookings to the database, then acknowledge them.

    1. Read this consumer's pending entries first, the ones it read before whose
       write failed (so they were never acknowledged):
           entries = entries_of(valkey.xreadgroup(group, consumer, {stream: "0"}, count=count))
       When there are none, read new entries: the same call with ">" in place of "0".
    2. Apply them in ONE transaction:
           with db.transaction():
               for entry_id, fields in entries:
                   record_booking(db, stream, fields)
    3. Only after the with block, once the COMMIT has succeeded, acknowledge them:
           valkey.xack(stream, group, *[entry_id for entry_id, _ in entries])
       When the transaction fails, let its error propagate and acknowledge nothing:
       the entries stay pending, and the next call retries them.
    Return how many entries were applied: 0 when there was nothing to read.
    """
    raise NotImplementedError("write drain() between # START and # END")


# END write-behind
