"""Exercise stampede-lock: one rebuilder at a time, and only the holder releases.

When a popular cached value expires, every reader misses at once and runs the same
expensive query: a stampede. A lock lets one reader rebuild while the others wait
or serve a stale copy. Two details make it safe:

- SET key token NX PX ttl_ms takes the lock only when nobody holds it (NX), and
  lets it expire (PX), so that a holder that crashes cannot block rebuilds forever.
- The token is random and new at every acquire, and release deletes the key only
  when it still holds your token. A holder that ran past ttl_ms has lost the lock,
  maybe to another client: deleting the key blindly would release *their* lock.
  The compare and the delete must be one step: a Lua script, run by EVAL.

Complete acquire() and release() between the START and END markers, then run:

    flightcache exercise check stampede-lock

What the checker passes to your functions:
  valkey   a valkey-py client (decode_responses=True)
  key      the lock's key, under a prefix of its own
"""

from __future__ import annotations

import secrets
from typing import Any


# START stampede-lock
def acquire(valkey: Any, key: str, ttl_ms: int) -> str | None:
    """Try to take the lock: your token when you got it, None when someone holds it.

    Make a fresh random token (secrets.token_hex(16)), then SET key token NX PX ttl_ms:
    valkey.set(key, token, nx=True, px=ttl_ms) answers True when it set the key and
    None when the key existed.
    """
    raise NotImplementedError("write acquire() between # START and # END")


def release(valkey: Any, key: str, token: str) -> bool:
    """Release the lock if it is still yours; True when you deleted it.

    Compare and delete in one step, with a Lua script run by EVAL
    (valkey.eval(script, 1, key, token) returns the script's answer):

        -- KEYS[1] the lock's key, ARGV[1] your token
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0

    A plain DEL, or a GET and then a DEL, can delete a lock that another client took
    after yours expired.
    """
    raise NotImplementedError("write release() between # START and # END")


# END stampede-lock
