"""Exercise cache-aside: read a named query through Valkey, with a TTL.

Cache-aside (lazy loading) keeps the database the source of truth: a reader asks
Valkey first, and only on a miss runs the query, stores its rows with an expiry
and returns them. The next reader of the same key hits and runs no SQL. The
expiry bounds how stale a cached answer can get.

Complete cached_query() between the START and END markers, then run:

    flightcache exercise check cache-aside

What the checker passes to your function:
  valkey       a valkey-py client (decode_responses=True): valkey.get(key) gives a str
               or None; valkey.set(key, value, ex=seconds) stores with an expiry
  db           the database: db.fetch(sql, params).rows is the list of row tuples
  key          the Valkey key of this query and these parameters. It lies under a key
               prefix of its own, and Valkey refuses your code any other key
  sql, params  one of flightcache's named queries (flight_by_id) and its parameters
  ttl, empty_ttl  seconds a result, and an empty result, may stay cached
"""

from __future__ import annotations

import json
from typing import Any


def to_json(rows: Any) -> str:
    """Rows as one JSON document: a list of lists; dates and decimals become text."""
    return json.dumps([list(row) for row in rows], default=str)


# START cache-aside
def cached_query(
    valkey: Any,
    db: Any,
    key: str,
    sql: str,
    params: dict[str, Any],
    ttl: int,
    empty_ttl: int,
) -> list[list[Any]]:
    """Return the rows of ``sql`` run with ``params``, read through the Valkey key ``key``.

    1. GET key. When Valkey has it, return json.loads(value): a hit, no SQL runs.
    2. On a miss run the query: rows = db.fetch(sql, params).rows
    3. Store to_json(rows) under key, with an expiry: SET key value EX ttl.
       An empty result must not live long: a flight added a minute later would stay
       invisible for as long as the empty answer is cached. Store an empty result
       with EX empty_ttl (a few seconds), or do not store it at all.
    4. Return json.loads(to_json(rows)), so that a miss returns what a hit would.
    """
    raise NotImplementedError("write cached_query() between # START and # END")


# END cache-aside
