"""Who is logged in today: one set of session tokens per day (UTC).

Read path: SCARD of the day's set: the sessions that logged in that day and have
not logged out.

Write path: login SADDs its token to its day's set and sets the set's EXPIREAT to
a day after the day ends (every login again, so that one lost EXPIREAT cannot
leave the set for ever); logout SREMs the token from its login day's set. The
store (:mod:`flightcache.patterns.session`) does both inside its login and logout.

Failure mode: a session that expires stays counted until the set itself expires:
Valkey does not tell a set that a key it names has gone. On a cluster the set and
the session hashes lie in different slots on purpose (a shared hash tag would put
all of a day's sessions on one node), so logout is two commands: DEL, then SREM.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from flightcache.keys import Keys

DAY_SET_GRACE_S = 86_400  # a day's set outlives its day by this much, for reports


def day_of(timestamp: float) -> str:
    """The UTC day of a Unix time: 2025-10-28."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _day_end(day: str) -> int:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return int((start + dt.timedelta(days=1)).timestamp())


# region: count
def count_login(pipe: Any, keys: Keys, token: str, now: float) -> None:
    """Queue on ``pipe``: SADD ``token`` to the set of the day of ``now``, EXPIREAT."""
    day = day_of(now)
    pipe.sadd(keys.sessions_active(day), token)
    # every login sets it again, so one lost EXPIREAT cannot leave the set forever
    pipe.expireat(keys.sessions_active(day), _day_end(day) + DAY_SET_GRACE_S)


def count_logout(client: Any, keys: Keys, token: str, login_time: str | None, now: float) -> None:
    """SREM ``token`` from the set of the day it logged in (today's, if that is unknown)."""
    day = str(login_time)[:10] if login_time else day_of(now)
    client.srem(keys.sessions_active(day), token)


# endregion: count


def recent_days(now: float) -> list[str]:
    """The days whose sets still exist at ``now``: today's and yesterday's (a set
    expires a day after its day ends). A session stays in its login day's set."""
    return [day_of(now), day_of(now - DAY_SET_GRACE_S)]


def count_active(client: Any, keys: Keys, day: str | dt.date) -> int:
    """SCARD of the day's set."""
    return int(client.scard(keys.sessions_active(str(day))))
