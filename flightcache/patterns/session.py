"""Sessions: one hash per login in Valkey, with a sliding expiry.

Read path: HGETALL the session's hash, one key and one round trip. An empty
reply means not logged in (expired, logged out, or never existed). The browser
fingerprint and the CSRF token stored at login are compared with the request's
in constant time.

Write path: login and every change after it is one Lua script
(``flightcache/lua/session_write.lua``): HSET the fields, HINCRBY page_views,
PEXPIRE the hash to the full lifetime again, so that every write is activity that
slides the expiry. It writes only while the session exists (a change that arrives
just after the expiry must not bring back a hash with no user and no TTL) and, at
login, only if it does not (a token drawn twice). Login also SADDs the token to
the day's set of active sessions; logout DELs the hash and SREMs the token. A
short-lived field, such as a seat held during checkout, gets an expiry of its own
(HSETEX ... XX, per-field expiry, Valkey 9 and later): the field vanishes and the
session stays.

Failure mode: Valkey unreachable during a read is not "not logged in". The user
is told that the session cannot be read now (:class:`SessionUnavailable`), and
nothing is written or cleared. A Valkey that restarts without persistence loses
every session: the users log in again (run it with AOF, and replicas).
"""

from __future__ import annotations

import datetime as dt
import hashlib
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

DEFAULT_TTL_S = 1800  # 001's 30-minute session timeout
TOKEN_BYTES = 24  # 192 bits from `secrets`: 32 characters of URL-safe base64
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
DAY_SET_GRACE_S = 86_400  # a day's set outlives its day by this much, for reports
UNREACHABLE = (
    valkey.exceptions.ConnectionError,
    valkey.exceptions.TimeoutError,
    valkey.exceptions.ClusterDownError,
)
NOT_LOGGED_IN = "not logged in: the session expired or never existed"


class SessionError(FlightcacheError):
    """A session that cannot be used for this request."""


class NotLoggedIn(SessionError):
    """No session under this token: it expired, was logged out, or never existed."""

    def __init__(self, token: str = "") -> None:
        shown = f" ({token[:8]}...)" if token else ""
        super().__init__(NOT_LOGGED_IN + shown, hint="log in again")


class CsrfMismatch(SessionError):
    """The request's CSRF token is not the session's."""

    def __init__(self) -> None:
        super().__init__(
            "rejected: the CSRF token does not match the session's",
            hint="the form was not issued by this session (a forged or replayed request);"
            " reload the page to get a fresh form",
        )


class FingerprintMismatch(SessionError):
    """The request comes from another browser than the one that logged in."""

    def __init__(self) -> None:
        super().__init__(
            "rejected: the request's browser fingerprint differs from the session's",
            hint="a stolen session token used from another browser looks like this;"
            " log in again from this browser",
        )


class FieldExpiryUnsupported(SessionError):
    """The server has no per-field hash expiry (HSETEX came with Valkey 9.0)."""

    def __init__(self) -> None:
        super().__init__(
            "this Valkey has no per-field hash expiry (HSETEX, Valkey 9.0 and later)",
            hint="keep a short-lived value in a key of its own with its own TTL",
        )


class SessionUnavailable(ConnectionFailed):
    """Valkey could not be reached for a session operation."""


@dataclass(frozen=True)
class User:
    """Who logs in: a FlughafenDB passenger."""

    user_id: int
    name: str
    email: str = ""


def fingerprint(user_agent: str, accept_language: str = "") -> str:
    """A browser's fingerprint: a digest of what it sends with every request."""
    return hashlib.sha256(f"{user_agent}\n{accept_language}".encode()).hexdigest()[:32]


def _known(fingerprint: str, accepted: str | None) -> bool:
    """Whether ``fingerprint`` is one of the comma-separated ``accepted`` (constant time)."""
    found = False
    for known in (accepted or "").split(","):
        found |= bool(known) and secrets.compare_digest(known, fingerprint)
    return found


def iso(timestamp: float) -> str:
    """A Unix time as 001 writes times: 2025-10-28T10:30:00Z (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def day_of(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _day_end(day: str) -> int:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return int((start + dt.timedelta(days=1)).timestamp())


def supports_field_expiry(client: Any) -> bool:
    """Whether the server knows HSETEX (per-field hash expiry), asked with COMMAND INFO."""
    try:
        reply = client.execute_command("COMMAND", "INFO", "HSETEX")
    except valkey.exceptions.ResponseError:
        return False
    if isinstance(reply, Mapping):
        return any(isinstance(v, Mapping) and v for v in reply.values())
    return bool(reply) and reply[0] is not None


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
        self._field_expiry: bool | None = None

    @contextmanager
    def _reachable(self, what: str) -> Iterator[None]:
        try:
            yield
        except UNREACHABLE as exc:
            raise SessionUnavailable(
                f"cannot {what}: Valkey is unreachable ({first_line(exc)})",
                hint="the user is not logged out: the session is read again once Valkey"
                " answers (`flightcache status`, or check FLIGHTCACHE_VALKEY_URL)",
            ) from None

    def key(self, token: str) -> str:
        return self.keys.session(token)

    # region: write
    def _write(
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

    @property
    def field_expiry(self) -> bool:
        """Whether this server has per-field hash expiry (asked once)."""
        if self._field_expiry is None:
            with self._reachable("ask the server about HSETEX"):
                self._field_expiry = supports_field_expiry(self.valkey)
        return self._field_expiry

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
        with self._reachable("log in"):
            for _ in range(3):
                token = mark + secrets.token_urlsafe(TOKEN_BYTES)
                written = self._write(token, "new", fields, device=device, fingerprint=fingerprint)
                if written is not None:
                    break
            else:  # three 192-bit tokens taken: something other than chance is at work
                raise FlightcacheError("could not draw an unused session token")
            day = day_of(now)
            pipe = self.pipeline(self.valkey)
            pipe.sadd(self.keys.sessions_active(day), token)
            # every login sets it again, so one lost EXPIREAT cannot leave the set forever
            pipe.expireat(self.keys.sessions_active(day), _day_end(day) + DAY_SET_GRACE_S)
            pipe.execute()
        return token

    # endregion: login

    # region: get
    def get(self, token: str, *, fingerprint: str | None = None) -> dict[str, str]:
        """The session (HGETALL); NotLoggedIn, or FingerprintMismatch if one is given."""
        if not TOKEN_SHAPE.match(token):
            raise NotLoggedIn()  # nothing a login hands out: no need to ask Valkey
        with self._reachable("read the session"):
            session: dict[str, str] = self.valkey.hgetall(self.key(token))
        if not session.get("user_id") or not session.get("csrf_token"):
            raise NotLoggedIn(token)
        if fingerprint is not None and not _known(fingerprint, session.get("session_fingerprint")):
            raise FingerprintMismatch()
        return session

    # endregion: get

    # region: touch
    def touch(self, token: str, **fields: Any) -> int:
        """Activity: last_activity now, page_views + 1, the full lifetime again; the page
        views so far. NotLoggedIn when the session is gone (nothing is written then)."""
        with self._reachable("update the session"):
            views = self._write(
                token, "existing", {"last_activity": iso(self.clock()), **fields}, views=1
            )
        if views is None:
            raise NotLoggedIn(token)
        return views

    # endregion: touch

    def add_device(self, token: str, device: str, fingerprint: str) -> list[str]:
        """Share the session with another device (after it proved who it is, e.g. by
        scanning a code the logged-in browser shows): its name joins ``devices``, its
        fingerprint the accepted ones; last_device and sync_timestamp are set. The
        devices now sharing the session."""
        now = iso(self.clock())
        with self._reachable("update the session"):
            views = self._write(
                token,
                "existing",
                {"last_activity": now, "sync_timestamp": now},
                views=1,
                device=device,
                fingerprint=fingerprint,
            )
            if views is None:
                raise NotLoggedIn(token)
            devices = self.valkey.hget(self.key(token), "devices")
        return str(devices or "").split(",")

    def update(self, token: str, fields: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """HSET ``fields`` and ``more`` on a session that exists (a mapping for names
        such as ``class``); any write slides the expiry."""
        with self._reachable("update the session"):
            written = self._write(token, "existing", {**(fields or {}), **more})
        if written is None:
            raise NotLoggedIn(token)

    def request(self, token: str) -> dict[str, str]:
        """What one page view does: read and validate the session, then slide it."""
        session = self.get(token)
        self.touch(token)
        return session

    def check_csrf(self, token: str, csrf: str) -> None:
        """CsrfMismatch unless ``csrf`` is the session's token (constant-time compare)."""
        with self._reachable("read the session"):
            stored = self.valkey.hget(self.key(token), "csrf_token")
        if stored is None:
            raise NotLoggedIn(token)
        if not secrets.compare_digest(str(stored), csrf):
            raise CsrfMismatch()

    def hold(self, token: str, field: str, value: str, seconds: float) -> None:
        """A field that expires on its own after ``seconds`` (HSETEX ... XX PX): only on a
        session that exists, and without touching the session's own expiry."""
        if not self.field_expiry:
            raise FieldExpiryUnsupported()
        milliseconds = max(1, round(seconds * 1000))
        with self._reachable("update the session"):
            written = self.valkey.execute_command(
                "HSETEX", self.key(token), "XX", "PX", milliseconds, "FIELDS", 1, field, value
            )
        if not written:
            raise NotLoggedIn(token)

    def field_pttl(self, token: str, field: str) -> int:
        """HPTTL of one field: ms left, -1 without an expiry, -2 when the field is gone."""
        with self._reachable("read the session"):
            reply = self.valkey.execute_command("HPTTL", self.key(token), "FIELDS", 1, field)
        return int(reply[0]) if reply else -2

    def pttl(self, token: str) -> int:
        """PTTL of the session: ms left, -2 when there is no session."""
        with self._reachable("read the session"):
            return int(self.valkey.pttl(self.key(token)))

    def logout(self, token: str) -> bool:
        """DEL the session and SREM it from its login day's set; whether it existed."""
        with self._reachable("log out"):
            pipe = self.pipeline(self.valkey)
            pipe.hget(self.key(token), "login_time")
            pipe.delete(self.key(token))
            login_time, deleted = pipe.execute()
            day = str(login_time)[:10] if login_time else day_of(self.clock())
            self.valkey.srem(self.keys.sessions_active(day), token)
        return bool(deleted)

    def active_count(self, day: str | dt.date | None = None) -> int:
        """SCARD of the day's set: sessions that logged in that day and did not log out
        (sessions that expired stay counted until the set itself expires)."""
        if day is None:
            day = day_of(self.clock())
        with self._reachable("count the sessions"):
            return int(self.valkey.scard(self.keys.sessions_active(str(day))))
