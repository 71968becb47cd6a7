"""Universal caching: if it can be queried, it can be cached, with a last good copy.

One cache in front of any origin: an HTTP API, a computation, an aggregate or a
search in SQL. Each cached item has three keys sharing the hash tag ``{<item>}``
(see ``Keys.cached_item``): the fresh copy, the last good copy and a hold.

Read path: GET the fresh copy; a hit is served with its age. On a miss, MGET the
last good copy and the hold in one round trip. Without a hold, call the origin;
on success write the fresh copy (EX the data class's TTL), the last good copy (EX
a longer stale TTL) and delete the hold, in one pipeline.

Failure mode: when the origin fails (an error, a 5xx, a connection refused, a
timeout), SET the hold with PX ``retry_after`` and serve the last good copy
marked stale with its age; with no copy at all, raise :class:`NothingCached`
("the weather API is down and nothing is cached"). While the hold lives, readers
get the last good copy (or that error) without calling the origin again, so a
failing API is not hammered by every reader. Every copy stores when it was
fetched, so the age a reader is told is the age of the data, whichever copy it
came from, and the two copies need not be written atomically. With Valkey
unreachable, reads go to the origin and nothing is stored.

What the demo puts behind it (an HTTP API client, SQL origins, and the TTL of each
data class) is :mod:`flightcache.patterns.universal_origins`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import valkey.exceptions

from flightcache.errors import ConnectionFailed, FlightcacheError
from flightcache.keys import Keys

UNAVAILABLE = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)
RETRY_AFTER_S = 5.0

Origin = Literal["cache", "origin", "stale"]


class OriginDown(FlightcacheError):
    """The origin of a cached item (an API, the database) did not answer."""


class NothingCached(OriginDown):
    """The origin is down and no copy of the item is cached."""


@dataclass
class Answer:
    """One read: the value, where it came from, and how old the data is."""

    item: str
    value: Any
    source: Origin
    age_s: float  # since the origin produced it
    error: str = ""  # why a stale copy was served
    note: str = ""  # e.g. "Valkey unavailable"
    called_origin: bool = False

    @property
    def stale(self) -> bool:
        return self.source == "stale"

    def describe(self) -> str:
        age = f"{self.age_s:.1f} s old"
        if self.source == "cache":
            return f"from the cache, {age}"
        if self.source == "stale":
            return f"STALE: the last good copy, {age} ({self.error})"
        return "from the origin" + (f" ({self.note})" if self.note else "")


@dataclass
class UniversalCache:
    """Any origin behind Valkey: fresh copy, last good copy, and a hold after a failure.

    ``get(item, fetch, ttl=, stale_ttl=, what=)`` is the whole API: ``fetch()``
    returns a JSON-able value or raises one of ``failures`` when the origin is
    down. ``clock`` gives the wall time stored with each copy; ``pipeline(client)``
    makes the pipeline of a refill (a demo passes the tracer's).
    """

    client: Any
    keys: Keys
    retry_after_s: float = RETRY_AFTER_S
    failures: tuple[type[BaseException], ...] = (OriginDown, ConnectionFailed)
    clock: Callable[[], float] = time.time
    pipeline: Callable[[Any], Any] = lambda client: client.pipeline(transaction=False)
    fetches: int = field(default=0, init=False)  # origin calls made

    # region: get
    def get(
        self,
        item: str,
        fetch: Callable[[], Any],
        *,
        ttl: int,
        stale_ttl: int,
        what: str = "origin",
    ) -> Answer:
        fresh = self.keys.cached_item(item)
        try:
            cached = self.client.get(fresh)
        except UNAVAILABLE as exc:
            self.fetches += 1
            try:
                value = fetch()
            except self.failures as down:
                raise NothingCached(
                    f"the {what} is down and nothing is cached for {item} (Valkey is unreachable)",
                    hint=f"{_reason(down)}; Valkey: {_reason(exc)}",
                ) from None
            return Answer(item, value, "origin", 0.0, note="Valkey unavailable", called_origin=True)
        envelope = _decode(cached)
        if envelope is not None:
            return Answer(item, envelope["value"], "cache", self._age(envelope))
        good_key, hold_key = self.keys.cached_item_good(item), self.keys.cached_item_hold(item)
        good_raw, hold_raw = self.client.mget([good_key, hold_key])
        good, hold = _decode(good_raw), _decode_hold(hold_raw)
        if hold is not None:
            return self._fallback(item, good, what, hold, called=False)
        self.fetches += 1
        try:
            value = fetch()
        except self.failures as exc:
            error = _reason(exc)
            hold = {"error": error, "at": self.clock(), "retry_after_s": self.retry_after_s}
            self.client.set(hold_key, _dump(hold), px=max(1, round(self.retry_after_s * 1000)))
            return self._fallback(item, good, what, hold, called=True)
        envelope = {"fetched_at": self.clock(), "value": value}
        text = _dump(envelope)
        pipe = self.pipeline(self.client)
        pipe.set(fresh, text, ex=ttl)
        if stale_ttl > 0:
            pipe.set(good_key, text, ex=stale_ttl)
        pipe.delete(hold_key)
        pipe.execute()
        return Answer(item, value, "origin", 0.0, called_origin=True)

    # endregion: get

    def _age(self, envelope: dict[str, Any]) -> float:
        return max(0.0, self.clock() - float(envelope["fetched_at"]))

    # region: fallback
    def _fallback(
        self,
        item: str,
        good: dict[str, Any] | None,
        what: str,
        hold: dict[str, Any],
        *,
        called: bool,
    ) -> Answer:
        since = max(0.0, self.clock() - float(hold.get("at", 0)))
        left = max(0.0, float(hold.get("retry_after_s", 0)) - since)
        why = f"{hold.get('error', 'failed')}; {since:.1f} s ago"
        if good is None:
            raise NothingCached(
                f"the {what} is down and nothing is cached for {item}",
                hint=f"{why}; the next call to it is in {left:.1f} s",
            )
        retry = f"next try in {left:.1f} s" if not called else f"retry after {left:.1f} s"
        return Answer(
            item, good["value"], "stale", self._age(good), f"{why}; {retry}", called_origin=called
        )

    # endregion: fallback


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _decode(raw: Any) -> dict[str, Any] | None:
    """A cached envelope, or None for nothing (or something not ours: a miss)."""
    if raw is None:
        return None
    try:
        envelope = json.loads(raw)
        float(envelope["fetched_at"])
        envelope["value"]  # must be there
    except (ValueError, KeyError, TypeError):
        return None
    return envelope if isinstance(envelope, dict) else None


def _decode_hold(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        hold = json.loads(raw)
    except ValueError:
        hold = None
    return hold if isinstance(hold, dict) else {"error": "the origin failed"}


def _reason(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, FlightcacheError) else str(exc)
    return text.split("\n", 1)[0][:160] or type(exc).__name__
