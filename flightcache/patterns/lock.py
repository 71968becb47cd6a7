"""The stampede lock: one client rebuilds an expensive value while the others wait.

Read path: a client that misses the value tries ``SET <lock> <token> NX PX
<lease>``; the one that gets it rebuilds, the others wait for its value (see
:mod:`flightcache.patterns.stampede`). The token is random and new for each
attempt, so it names one holder.

Write path: the holder renews its lease every half lease while its rebuild runs
(``lock_renew.lua``, compare-and-PEXPIRE) and releases the lock when it is done
(``lock_release.lua``, compare-and-DEL). Both compare the token first, in one
step on the server: a client whose lease ran out cannot extend or delete the lock
that another client took after it.

Failure mode: a holder that dies stops renewing; its lease runs out and the next
client's ``SET NX`` wins, so a dead holder blocks the key for at most one lease. A
holder whose renewal fails (Valkey gone, the lock lost) stops renewing and says so
in its :class:`Lease`. The lock is for efficiency, not correctness: a holder that
lost its lease still stores a value it read from the database, so no fencing token.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flightcache.lua import script

LEASE_FLOOR_MS = 250
LEASE_FACTOR = 3
MAX_HOLD_MS = 60_000
"""A holder stops renewing after this long: a rebuild hung for a minute gives way."""


def lease_for(delta_ms: int) -> int:
    """The lock's lease for a rebuild measured at ``delta_ms``.

    Three rebuilds long, and at least 250 ms, so that an ordinary rebuild never
    needs its renewal; the holder renews every half lease anyway, so one that runs
    long (a database under load, which is when stampedes happen) keeps its lock. A
    dead holder blocks the others for at most one lease, not for a fixed minute.
    """
    return max(LEASE_FLOOR_MS, LEASE_FACTOR * delta_ms)


def new_token() -> str:
    """An owner token: 16 random bytes, new for each attempt to take the lock."""
    return secrets.token_hex(16)


@dataclass
class Lease:
    """What happened to a holder's lease while it held the lock."""

    renewals: int = 0
    lost: bool = False  # a renewal found the lock gone or another client's


class Lock:
    """A lock on one key with a lease, taken and given back by an owner token."""

    def __init__(self, key: str, lease_ms: int = LEASE_FLOOR_MS) -> None:
        self.key = key
        self.lease_ms = lease_ms

    # region: acquire
    def acquire(self, valkey: Any, token: str) -> bool:
        """Take the lock if it is free; it lets go by itself after the lease."""
        return bool(valkey.execute_command("SET", self.key, token, "NX", "PX", self.lease_ms))

    # endregion: acquire

    # region: release
    def release(self, valkey: Any, token: str) -> bool:
        """Delete the lock if ``token`` still holds it (lock_release.lua)."""
        return bool(script("lock_release")(valkey, [self.key], [token]))

    # endregion: release

    def renew(self, valkey: Any, token: str) -> bool:
        """Give the lock a full lease again if ``token`` still holds it (lock_renew.lua)."""
        return bool(script("lock_renew")(valkey, [self.key], [token, self.lease_ms]))

    @contextmanager
    def held(self, valkey: Any, token: str) -> Iterator[Lease]:
        """For a lock ``token`` has just acquired: while the body runs, renew the lease
        every half lease (for at most :data:`MAX_HOLD_MS`); release it at the end."""
        lease = Lease()
        stop = threading.Event()

        def keep() -> None:
            held = 0
            while not stop.wait(self.lease_ms / 2000):
                held += self.lease_ms // 2
                if held >= MAX_HOLD_MS:
                    return
                try:
                    renewed = self.renew(valkey, token)
                except Exception:  # Valkey gone: the lease runs out by itself
                    renewed = False
                if not renewed:
                    lease.lost = True
                    return
                lease.renewals += 1

        keeper = threading.Thread(target=keep, name="stampede-lease", daemon=True)
        keeper.start()
        try:
            yield lease
        finally:
            stop.set()
            keeper.join()
            self.release(valkey, token)
