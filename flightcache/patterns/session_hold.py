"""A session field that expires on its own: a seat held during checkout.

Read path: HGETALL of the session leaves the field out once it has expired; HPTTL
says how long it has left (-2 when it is gone, -1 for a field with no expiry).

Write path: HSETEX <session> XX PX <ms> FIELDS 1 <field> <value>: one command that
writes only if the session exists (XX; no script needed) and gives that one field
an expiry of its own (per-field hash expiry, Valkey 9.0 and later). The session's
own expiry is not touched: the field vanishes, the session stays.

Failure mode: a server without HSETEX (asked once with COMMAND INFO) raises
:class:`FieldExpiryUnsupported`; there a hold needs a key of its own, with its own
TTL. A session that is gone is NotLoggedIn, Valkey unreachable SessionUnavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import valkey.exceptions

from flightcache.patterns.session import NotLoggedIn, SessionError, SessionStore, reachable


class FieldExpiryUnsupported(SessionError):
    """The server has no per-field hash expiry (HSETEX came with Valkey 9.0)."""

    def __init__(self) -> None:
        super().__init__(
            "this Valkey has no per-field hash expiry (HSETEX, Valkey 9.0 and later)",
            hint="keep a short-lived value in a key of its own with its own TTL",
        )


def supports_field_expiry(client: Any) -> bool:
    """Whether the server knows HSETEX (per-field hash expiry), asked with COMMAND INFO."""
    try:
        reply = client.execute_command("COMMAND", "INFO", "HSETEX")
    except valkey.exceptions.ResponseError:
        return False
    if isinstance(reply, Mapping):
        return any(isinstance(v, Mapping) and v for v in reply.values())
    return bool(reply) and reply[0] is not None


class SessionHolds:
    """Fields of ``store``'s sessions that expire on their own (HSETEX ... XX PX)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._supported: bool | None = None

    @property
    def supported(self) -> bool:
        """Whether this server has per-field hash expiry (asked once)."""
        if self._supported is None:
            with reachable("ask the server about HSETEX"):
                self._supported = supports_field_expiry(self.store.valkey)
        return self._supported

    # region: hold
    def hold(self, token: str, field: str, value: str, seconds: float) -> None:
        """A field that expires on its own after ``seconds`` (HSETEX ... XX PX): only on a
        session that exists, and without touching the session's own expiry."""
        if not self.supported:
            raise FieldExpiryUnsupported()
        milliseconds = max(1, round(seconds * 1000))
        with reachable("update the session"):
            written = self.store.valkey.execute_command(
                "HSETEX", self.store.key(token), "XX", "PX", milliseconds, "FIELDS", 1, field, value
            )
        if not written:
            raise NotLoggedIn(token)

    # endregion: hold

    def field_pttl(self, token: str, field: str) -> int:
        """HPTTL of one field: ms left, -1 without an expiry, -2 when the field is gone."""
        with reachable("read the session"):
            reply = self.store.valkey.execute_command(
                "HPTTL", self.store.key(token), "FIELDS", 1, field
            )
        return int(reply[0]) if reply else -2
