"""Sessions: one hash per login in Valkey, with a sliding expiry.

Read path: HGETALL the session's hash, one key and one round trip. An empty
reply means not logged in (expired, logged out, or never existed).

Write path: login and every change after it is one Lua script
(``flightcache/lua/session_write.lua``): HSET the fields, HINCRBY page_views,
PEXPIRE the hash to the full lifetime again, so that every write is activity that
slides the expiry. It writes only while the session exists (a change that arrives
just after the expiry must not bring back a hash with no user and no TTL) and, at
login, only if it does not (a token drawn twice). Login also SADDs the token to
the day's set of active sessions (``session_day``); logout DELs the hash and
SREMs the token. A user's other sessions (another browser, a phone) are found
through those sets: SMEMBERS of today's and yesterday's, HMGET of each.

Failure mode: Valkey unreachable is not "not logged in". The user is told that
the session cannot be read now (:class:`SessionUnavailable`), and nothing is
written or cleared. A Valkey that restarts without persistence loses every
session: the users log in again (run it with AOF, and replicas).

CSRF, fingerprint and device checks: ``session_checks``; a seat hold: ``session_hold``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import valkey.exceptions

from flightcache.errors import ConnectionFailed, FlightcacheError
from flightcache.keys import Keys
from flightcache.lua import script
from flightcache.patterns.common import Pipeline, first_line, plain_pipeline
from flightcache.patterns.session_day import (
    count_active,
    count_login,
    count_logout,
    day_of,
    recent_days,
)

DEFAULT_TTL_S = 1800  # 001's 30-minute session timeout
TOKEN_BYTES = 24  # 192 bits from `secrets`: 32 characters of URL-safe base64
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
UNREACHABLE = (
    valkey.exceptions.ConnectionError,
    valkey.exceptions.TimeoutError,
    valkey.exceptions.ClusterDownError,
)


class SessionError(FlightcacheError):
    """A session that cannot be used for this request."""


class NotLoggedIn(SessionError):
    """No session under this token: it expired, was logged out, or never existed."""

    def __init__(self, token: str = "") -> None:
        shown = f" ({token[:8]}...)" if token else ""
        super().__init__(
            "not logged in: the session expired or never existed" + shown, hint="log in again"
        )


class SessionUnavailable(ConnectionFailed):
    """Valkey could not be reached for a session operation."""


@contextmanager
def reachable(what: str) -> Iterator[None]:
    """Turn Valkey being unreachable into SessionUnavailable: "cannot <what>"."""
    try:
        yield
    except UNREACHABLE as exc:
        raise SessionUnavailable(
            f"cannot {what}: Valkey is unreachable ({first_line(exc)})",
            hint="the user is not logged out: the session is read again once Valkey"
            " answers (`flightcache status`, or check FLIGHTCACHE_VALKEY_URL)",
        ) from None


@dataclass(frozen=True)
class User:
    """Who logs in: a FlughafenDB passenger."""

    user_id: int
    name: str
    email: str = ""


def iso(timestamp: float) -> str:
    """A Unix time as 001 writes times: 2025-10-28T10:30:00Z (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class SessionStore:
    """Sessions as Valkey hashes under ``keys``, ``ttl_s`` seconds after the last write."""

    def __init__(
        self,
        client: Any,
        keys: Keys,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        pipeline: Pipeline = plain_pipeline,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("a session lifetime must be positive")
        self.valkey = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.pipeline = pipeline
        self.clock = clock

    def key(self, token: str) -> str:
        return self.keys.session(token)

    # region: write
    def write(
        self,
        token: str,
        mode: str,
        fields: Mapping[str, Any],
        *,
        views: int = 0,
        device: str = "",
        fingerprint: str = "",
    ) -> int | None:
        """Run session_write.lua: the fields, the page views, PEXPIRE the full lifetime.
        ``mode`` "new" writes only if the session does not exist, "existing" only if it
        does; None when nothing was written."""
        if "," in device or "," in fingerprint:
            raise ValueError("a device name or fingerprint cannot hold a comma")
        args: list[Any] = [mode, self.ttl_ms, views, device, fingerprint]
        for name, value in fields.items():
            args += [name, "" if value is None else str(value)]
        reply = script("session_write")(self.valkey, [self.key(token)], args)
        return None if reply is None else int(reply)

    # endregion: write

    # region: login
    def login(
        self, user: User, *, ip: str, fingerprint: str, device: str = "web", mark: str = ""
    ) -> str:
        """Create a session for ``user``; the new token (put it in a cookie). ``mark``
        begins the token (the bench's, so that its rows can be found and swept)."""
        now = self.clock()
        fields = {
            "user_id": user.user_id,
            "username": user.name,
            "email": user.email,
            "login_time": iso(now),
            "ip_address": ip,
            "csrf_token": secrets.token_urlsafe(TOKEN_BYTES),
            "last_activity": iso(now),
            "sync_timestamp": iso(now),
        }
        with reachable("log in"):
            for _ in range(3):
                token = mark + secrets.token_urlsafe(TOKEN_BYTES)
                written = self.write(token, "new", fields, device=device, fingerprint=fingerprint)
                if written is not None:
                    break
            else:  # three 192-bit tokens taken: something other than chance is at work
                raise FlightcacheError("could not draw an unused session token")
            pipe = self.pipeline(self.valkey)
            count_login(pipe, self.keys, token, now)  # SADD, EXPIREAT
            pipe.execute()
        return token

    # endregion: login

    # region: get
    def get(self, token: str) -> dict[str, str]:
        """The session (HGETALL); NotLoggedIn unless it has a user and a CSRF token."""
        if not TOKEN_SHAPE.match(token):
            raise NotLoggedIn()  # nothing a login hands out: no need to ask Valkey
        with reachable("read the session"):
            session: dict[str, str] = self.valkey.hgetall(self.key(token))
        if not session.get("user_id") or not session.get("csrf_token"):
            raise NotLoggedIn(token)
        return session

    # endregion: get

    # region: touch
    def touch(self, token: str, **fields: Any) -> int:
        """Activity: last_activity now, page_views + 1, the full lifetime again; the page
        views so far. NotLoggedIn when the session is gone (nothing is written then)."""
        with reachable("update the session"):
            views = self.write(
                token, "existing", {"last_activity": iso(self.clock()), **fields}, views=1
            )
        if views is None:
            raise NotLoggedIn(token)
        return views

    # endregion: touch

    def update(self, token: str, fields: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """HSET ``fields`` and ``more`` on a session that exists (a mapping for names
        such as ``class``); any write slides the expiry."""
        with reachable("update the session"):
            written = self.write(token, "existing", {**(fields or {}), **more})
        if written is None:
            raise NotLoggedIn(token)

    def request(self, token: str) -> dict[str, str]:
        """What one page view does: read and validate the session, then slide it."""
        session = self.get(token)
        self.touch(token)
        return session

    def pttl(self, token: str) -> int:
        """PTTL of the session: ms left, -2 when there is no session."""
        with reachable("read the session"):
            return int(self.valkey.pttl(self.key(token)))

    # region: sessions_of
    def sessions_of(self, user_id: int) -> dict[str, dict[str, str]]:
        """The live sessions of ``user_id`` (token -> a few fields), found in the day sets
        that still exist: SMEMBERS, then HMGET of each session, so the cost grows with
        the day's logins (a set of tokens per user would make it one SMEMBERS)."""
        shown = ("user_id", "last_device", "login_time", "last_activity", "ip_address")
        with reachable("list the sessions"):
            tokens: set[str] = set()
            for day in recent_days(self.clock()):
                tokens |= set(self.valkey.smembers(self.keys.sessions_active(day)))
            ordered = sorted(tokens)
            pipe = self.pipeline(self.valkey)
            for token in ordered:
                pipe.hmget(self.key(token), shown)
            replies = pipe.execute() if ordered else []
        found: dict[str, dict[str, str]] = {}
        for token, values in zip(ordered, replies, strict=True):
            fields = {n: str(v) for n, v in zip(shown, values, strict=True) if v is not None}
            if fields.get("user_id") == str(user_id):  # gone (expired) or another user's
                found[token] = fields
        return found

    # endregion: sessions_of

    # region: logout
    def logout(self, token: str) -> bool:
        """DEL the session and SREM it from its login day's set; whether it existed."""
        with reachable("log out"):
            pipe = self.pipeline(self.valkey)
            pipe.hget(self.key(token), "login_time")
            pipe.delete(self.key(token))
            login_time, deleted = pipe.execute()
            count_logout(self.valkey, self.keys, token, login_time, self.clock())  # SREM
        return bool(deleted)

    # endregion: logout

    def active_count(self, day: str | dt.date | None = None) -> int:
        """SCARD of the day's set: sessions that logged in that day and did not log out
        (sessions that expired stay counted until the set itself expires)."""
        day = day_of(self.clock()) if day is None else day
        with reachable("count the sessions"):
            return count_active(self.valkey, self.keys, day)
