"""Write-behind's dead letters: the poison entries a worker set aside, with their errors.

Write path: :func:`dead_letter` moves each poison entry (one no database can take:
malformed, a flight that does not exist, a value the database refuses for good)
out of its queue: one script (``lua/write_behind_dead_letter.lua``) XACKs it and
XADDs it, with its error and the consumer that set it aside, to the shard's
dead-letter stream, so the entry is never retried and never lost.

Read path: :func:`dead_count` (XLEN of each shard's dead-letter stream) and
:func:`dead_letters` (the newest of each, XREVRANGE) for a person to read.

Failure modes: an entry already acked (another worker set it aside first) is not
added twice: the script adds only what its XACK removed. Each stream keeps the
newest ``DEAD_MAXLEN`` dead letters (XADD MAXLEN ~); older ones are trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flightcache.keys import Keys
from flightcache.lua import script
from flightcache.patterns.write_behind import GROUP, SHARDS
from flightcache.patterns.write_behind_batch import QueueEntry, as_text, entry_id_order

DEAD_MAXLEN = 10_000
"""Dead letters kept per shard (XADD MAXLEN ~): the newest, for a person to read."""
DEAD_LETTER = script("write_behind_dead_letter")
"""XACK the entry in its queue and XADD it to the shard's dead letters, in one script."""


def dead_letter(client: Any, keys: Keys, shard: int, consumer: str, entry: QueueEntry) -> bool:
    """XACK a poison entry and XADD it to its shard's dead letters, in one script.
    False when another worker had acked it already (then nothing is added)."""
    queue, dead = keys.write_behind_queue(shard), keys.write_behind_dead_letters(shard)
    fields = {**entry.fields, "entry": entry.id, "error": entry.error[:500], "consumer": consumer}
    pairs = [x for kv in fields.items() for x in kv]
    return bool(DEAD_LETTER(client, [queue, dead], [GROUP, entry.id, DEAD_MAXLEN, *pairs]))


@dataclass
class DeadLetter:
    shard: int
    id: str  # in the dead-letter stream
    entry: str  # the entry's id in its queue
    error: str
    fields: dict[str, str]  # the entry's own fields (flight, seats, ...)


def dead_count(client: Any, keys: Keys) -> int:
    """Dead letters kept, over all shards (XLEN of each dead-letter stream)."""
    return sum(int(client.xlen(keys.write_behind_dead_letters(shard))) for shard in range(SHARDS))


def dead_letters(client: Any, keys: Keys, count: int = 20) -> list[DeadLetter]:
    """The newest ``count`` dead letters of each shard, oldest first."""
    out: list[DeadLetter] = []
    for shard in range(SHARDS):
        for dead_id, raw in reversed(
            client.xrevrange(keys.write_behind_dead_letters(shard), count=count)
        ):
            fields = {as_text(k): as_text(v) for k, v in raw.items()}
            entry, error = fields.pop("entry", ""), fields.pop("error", "")
            fields.pop("consumer", None)
            out.append(DeadLetter(shard, as_text(dead_id), entry, error, fields))
    return sorted(out, key=lambda d: entry_id_order(d.id))
