"""Exercise sessions: a user's session as a hash with a sliding expiry.

A session lives in one hash (HSET key field value ...) with a TTL, and ends after
ttl seconds without activity. Without activity is the point: every request of the
user pushes the expiry back (EXPIRE key ttl again), so that an active user is never
logged out in the middle of a booking while an idle one is, after ttl seconds.

Complete the three functions between the START and END markers, then run:

    flightcache exercise check sessions

What the checker passes to your functions:
  valkey   a valkey-py client (decode_responses=True)
  key      the session's key (a hash), under a prefix of its own
  ttl      the idle timeout in seconds (1800: 30 minutes)
"""

from __future__ import annotations

from typing import Any


# START sessions
def login(valkey: Any, key: str, user_id: str, fields: dict[str, str], ttl: int) -> None:
    """Create the session: the field user_id and every field of ``fields`` in the
    hash ``key`` (HSET), expiring after ``ttl`` seconds (EXPIRE).

    Write them in one atomic step. Sent as two commands, one after the other, the
    hash exists without a TTL in between, and if your process dies there it never
    expires. A Lua script (EVAL) runs several commands as one; on a single server a
    MULTI/EXEC transaction does too (valkey-py: a pipeline with transaction=True).
    """
    raise NotImplementedError("write login() between # START and # END")


def get_session(valkey: Any, key: str, ttl: int) -> dict[str, str] | None:
    """The session's fields (HGETALL key), or None when there is no session.

    Reading the session is activity: when it exists, slide its expiry (EXPIRE key
    ttl). HGETALL answers {} for a missing key; never create a session here.
    """
    raise NotImplementedError("write get_session() between # START and # END")


def touch(valkey: Any, key: str, ttl: int) -> bool:
    """Record activity: push the session's expiry back to ``ttl`` seconds (EXPIRE key ttl).

    Return True when the session exists, False when it has expired. EXPIRE on a
    missing key does nothing and answers 0 (valkey.expire returns False): never bring
    an expired session back.
    """
    raise NotImplementedError("write touch() between # START and # END")


# END sessions
