"""Session checks: the CSRF token, the browser's fingerprint, and the devices sharing a session.

Read path: a form's CSRF token is compared with the session's (HGET csrf_token) in
constant time; a request's browser fingerprint must be one of the session's
accepted fingerprints (HGETALL, the comma-separated field session_fingerprint).

Write path: a device that joins the session (after it proved who it is, e.g. by
scanning a code the logged-in browser shows) goes through the session's write
script: its name joins ``devices``, its fingerprint the accepted ones, and like
every write it slides the expiry.

Failure mode: a mismatch is a refused request (:class:`CsrfMismatch`,
:class:`FingerprintMismatch`), and the session stays as it was; a session that is
gone is NotLoggedIn, and Valkey unreachable is SessionUnavailable, as for the store.
"""

from __future__ import annotations

import hashlib
import secrets

from flightcache.patterns.session import (
    NotLoggedIn,
    SessionError,
    SessionStore,
    iso,
    reachable,
)


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


def fingerprint(user_agent: str, accept_language: str = "") -> str:
    """A browser's fingerprint: a digest of what it sends with every request."""
    return hashlib.sha256(f"{user_agent}\n{accept_language}".encode()).hexdigest()[:32]


def _known(fingerprint: str, accepted: str | None) -> bool:
    """Whether ``fingerprint`` is one of the comma-separated ``accepted`` (constant time)."""
    found = False
    for known in (accepted or "").split(","):
        found |= bool(known) and secrets.compare_digest(known, fingerprint)
    return found


class SessionChecks:
    """The checks a request passes before it may use a session of ``store``."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    # region: checks
    def get(self, token: str, *, fingerprint: str) -> dict[str, str]:
        """The session (the store's get), or FingerprintMismatch when ``fingerprint``
        is not one the session accepts."""
        session = self.store.get(token)
        if not _known(fingerprint, session.get("session_fingerprint")):
            raise FingerprintMismatch()
        return session

    def check_csrf(self, token: str, csrf: str) -> None:
        """CsrfMismatch unless ``csrf`` is the session's token (constant-time compare)."""
        with reachable("read the session"):
            stored = self.store.valkey.hget(self.store.key(token), "csrf_token")
        if stored is None:
            raise NotLoggedIn(token)
        if not secrets.compare_digest(str(stored), csrf):
            raise CsrfMismatch()

    # endregion: checks

    def add_device(self, token: str, device: str, fingerprint: str) -> list[str]:
        """Share the session with another device (after it proved who it is, e.g. by
        scanning a code the logged-in browser shows): its name joins ``devices``, its
        fingerprint the accepted ones; last_device and sync_timestamp are set. The
        devices now sharing the session."""
        store = self.store
        now = iso(store.clock())
        with reachable("update the session"):
            views = store.write(
                token,
                "existing",
                {"last_activity": now, "sync_timestamp": now},
                views=1,
                device=device,
                fingerprint=fingerprint,
            )
            if views is None:
                raise NotLoggedIn(token)
            devices = store.valkey.hget(store.key(token), "devices")
        return str(devices or "").split(",")
