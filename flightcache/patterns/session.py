"""Sessions: one hash per login in Valkey, with a sliding expiry.

Read path: HGETALL the session's hash, one key and one round trip. An empty
reply means not logged in (expired, logged out, or never existed). The browser
fingerprint and the CSRF token stored at login are compared with the request's
in constant time.

Write path: login and every change after it is one Lua script: HSET the fields,
HINCRBY page_views, PEXPIRE the hash to the full lifetime again, so that every
write is activity that slides the expiry. The script writes only while the
session exists (a change that arrives just after the expiry must not bring back
a hash with no user and no TTL) and, at login, only if it does not (a token drawn
twice). Login also SADDs the token to the day's set of active sessions; logout
DELs the hash and SREMs the token. A short-lived field, such as a seat held
during checkout, gets an expiry of its own (HSETEX ... XX, per-field expiry,
Valkey 9 and later): the field vanishes and the session stays.

Failure mode: Valkey unreachable during a read is not "not logged in". The user
is told that the session cannot be read now (:class:`SessionUnavailable`), and
nothing is written or cleared. A Valkey that restarts without persistence loses
every session: the users log in again (run it with AOF, and replicas).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import valkey.exceptions

from flightcache.errors import ConnectionFailed, DataError, FlightcacheError
from flightcache.keys import Keys
from flightcache.patterns.common import Pipeline, first_line, plain_pipeline
from flightcache.sqlfiles import query, statements
from flightcache.valkey_client import primaries

if TYPE_CHECKING:
    from flightcache.db import Database
    from flightcache.trace import TracedDatabase

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

# KEYS[1] the session hash
# ARGV[1] "new": create the session (nothing written if the key exists);
#         "existing": change it (nothing written if it is gone: expired or logged out)
# ARGV[2] the session's lifetime in ms: PEXPIRE after every write (the sliding expiry)
# ARGV[3] page views to add (HINCRBY page_views), "0" for none
# ARGV[4] a device to add to the comma-separated field `devices` and to set as
#         `last_device`, "" for none
# ARGV[5] that device's browser fingerprint, added to the comma-separated field
#         `session_fingerprint` (the fingerprints this session accepts), "" for none
# ARGV[6..] field, value pairs to HSET
# Returns the page views after the write, or nil when nothing was written.
WRITE_SCRIPT = """#!lua
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[1] == 'new') == exists then return nil end
if #ARGV > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 6)) end
local function add(field, item)
  local list = redis.call('HGET', KEYS[1], field) or ''
  for x in string.gmatch(list, '[^,]+') do
    if x == item then return end
  end
  redis.call('HSET', KEYS[1], field, (list == '' and item) or (list .. ',' .. item))
end
if ARGV[4] ~= '' then
  add('devices', ARGV[4])
  redis.call('HSET', KEYS[1], 'last_device', ARGV[4])
end
if ARGV[5] ~= '' then add('session_fingerprint', ARGV[5]) end
local views = redis.call('HINCRBY', KEYS[1], 'page_views', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return views
"""
WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest()


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


def iso(ts: float) -> str:
    """A Unix time as 001 writes times: 2025-10-28T10:30:00Z (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


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

    # -- plumbing --------------------------------------------------------------------
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

    def load_scripts(self) -> None:
        """SCRIPT LOAD the write script on every primary."""
        with self._reachable("load the session script"):
            for node in primaries(self.valkey):
                node.script_load(WRITE_SCRIPT)

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
        if "," in device or "," in fingerprint:
            raise ValueError("a device name or fingerprint cannot hold a comma")
        args: list[Any] = ["EVALSHA", WRITE_SHA, 1, self.key(token), mode, self.ttl_ms, views]
        args += [device, fingerprint]
        for name, value in fields.items():
            args += [name, "" if value is None else str(value)]
        try:
            reply = self.valkey.execute_command(*args)
        except valkey.exceptions.NoScriptError:
            self.load_scripts()
            reply = self.valkey.execute_command(*args)
        return None if reply is None else int(reply)

    @property
    def field_expiry(self) -> bool:
        """Whether this server has per-field hash expiry (asked once)."""
        if self._field_expiry is None:
            with self._reachable("ask the server about HSETEX"):
                self._field_expiry = supports_field_expiry(self.valkey)
        return self._field_expiry

    # -- the life cycle -----------------------------------------------------------------
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
        ms = max(1, round(seconds * 1000))
        with self._reachable("update the session"):
            written = self.valkey.execute_command(
                "HSETEX", self.key(token), "XX", "PX", ms, "FIELDS", 1, field, value
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


# -- the database side of the comparison ---------------------------------------------
def _utc(ts: float) -> dt.datetime:
    """A Unix time as the naive UTC datetime both tables store."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


class SessionTable:
    """The same sessions in ``flightcache_session``, as a framework's database store
    keeps them: one row per token, the session as JSON, an expiry each read checks."""

    TABLE = "flightcache_session"

    def __init__(
        self,
        db: Database | TracedDatabase,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.clock = clock

    def _sql(self, name: str) -> str:
        return query(self.db.dialect, name)

    def ensure(self) -> None:
        """CREATE TABLE IF NOT EXISTS (and its index), from sql/<dialect>/flightcache.sql."""
        for statement in statements(self.db.dialect, "flightcache.sql"):
            if self.TABLE in statement:
                self.db.execute(statement)

    def save(self, token: str, session: Mapping[str, str]) -> None:
        self.db.execute(
            self._sql("session_db_insert"),
            {
                "token": token,
                "user_id": int(session["user_id"]),
                "data": json.dumps(dict(session), separators=(",", ":")),
                "expires_at": _utc(self.clock() + self.ttl_s),
            },
        )

    def read(self, token: str) -> dict[str, str]:
        """SELECT by token with the expiry checked, JSON decoded; NotLoggedIn if none."""
        found = self.db.fetch(
            self._sql("session_db_read"), {"token": token, "now": _utc(self.clock())}
        )
        if not found.rows:
            raise NotLoggedIn(token)
        session: dict[str, str] = json.loads(found.rows[0][1])
        if not session.get("user_id") or not session.get("csrf_token"):
            raise NotLoggedIn(token)
        return session

    def request(self, token: str) -> dict[str, str]:
        """What one page view does here: read, then write the session back with
        last_activity, page_views + 1 and a new expiry (UPDATE, one commit)."""
        session = self.read(token)
        now = self.clock()
        changed = {
            **session,
            "last_activity": iso(now),
            "page_views": str(int(session.get("page_views", "0")) + 1),
        }
        self.db.execute(
            self._sql("session_db_slide"),
            {
                "token": token,
                "data": json.dumps(changed, separators=(",", ":")),
                "expires_at": _utc(now + self.ttl_s),
            },
        )
        return session

    def delete(self, token: str) -> None:
        self.db.execute(self._sql("session_db_delete"), {"token": token})


# -- who logs in ---------------------------------------------------------------------
def passenger(db: Database | TracedDatabase, passenger_id: int) -> User:
    """The passenger as a User; DataError, with the ids that exist, if there is none."""
    found = db.fetch(query(db.dialect, "session_passenger"), {"passenger_id": passenger_id})
    if not found.rows:
        span = db.fetch(query(db.dialect, "session_passenger_range")).rows
        lowest, highest = span[0] if span else (None, None)
        raise DataError(
            f"no passenger with id {passenger_id}",
            hint=f"passenger ids run from {lowest} to {highest}"
            if lowest is not None
            else "the passenger table is empty: run `flightcache data load`",
        )
    pid, first, last, email = found.rows[0]
    return User(int(pid), f"{first} {last}".strip(), str(email or ""))


def default_passenger(db: Database | TracedDatabase) -> int:
    """A passenger who has booked: the passenger of the first booking."""
    rows = db.fetch(query(db.dialect, "sample_passenger")).rows
    if not rows:
        rows = db.fetch(query(db.dialect, "passenger_first")).rows
    if not rows or rows[0][0] is None:
        raise DataError("there are no passengers", hint="run `flightcache data load`")
    return int(rows[0][0])


def other_passengers(db: Database | TracedDatabase, passenger_id: int, n: int) -> list[User]:
    rows = db.fetch(
        query(db.dialect, "session_other_passengers"), {"passenger_id": passenger_id, "n": n}
    ).rows
    return [passenger(db, int(r[0])) for r in rows]
