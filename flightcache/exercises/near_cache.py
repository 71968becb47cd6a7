"""The near-cache exercise's side that is not the learner's: tracking and the read path.

The learner writes a small local store (``lookup``, ``ticket``, ``keep``,
``on_invalidate``, ``on_tracking_lost``); this module runs it under the near-cache
pattern's :class:`~flightcache.patterns.near_cache.Tracker` (one per Valkey primary:
a RESP3 connection that receives the invalidation pushes, read by a thread, and a
connection whose GETs are tracked), the way :class:`~flightcache.patterns.near_cache.
NearCache` runs its own store:

- a read asks the store only while the key's tracking is whole (``Tracker.serving``);
  otherwise, or when the store has nothing, it takes a ticket, GETs the key on the
  tracked connection and offers the value to ``keep`` with that ticket;
- the tracking thread passes each invalidation push to ``on_invalidate`` and each
  loss of tracking (the connection killed, a silent server, a reconnect) to
  ``on_tracking_lost``, before tracking is on again.

Whatever the learner's callbacks raise in the tracking thread is kept and raised by
the next call from the checker, so that it names the learner's line. The learner's
file binds the functions at its end (``near_open``, ``near_read``, ...) to one
:class:`Driver`; the checks call them through the exercise runner, and judge what
reached the server (the tracked connection's command count, the values read back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from valkey.utils import str_if_bytes

from flightcache.patterns.near_cache import Tracker
from flightcache.valkey_client import key_node_name, primaries

READY_S = 5.0
HEARTBEAT_S = 1.0


class _Forward:
    """What a Tracker calls on its store, passed on to the learner's store: counted once
    the learner's code has returned, and its first exception kept for the next read."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.invalidated = 0  # invalidation pushes the store has handled
        self.lost = 0  # losses of tracking the store has handled
        self.error: BaseException | None = None
        self.closing = False

    def invalidate(self, keys: Iterable[str]) -> None:
        self._call(lambda: self.store.on_invalidate(list(keys)))
        self.invalidated += 1

    def flush(self) -> None:
        self._call(self.store.on_tracking_lost)
        self.lost += 1

    def _call(self, fn: Callable[[], Any]) -> None:
        if self.closing or self.error is not None:
            return
        try:
            fn()
        except BaseException as exc:  # in the tracking thread: raised by the next read
            self.error = exc


class Near:
    """One near cache: the learner's store, tracked on every primary of ``client``."""

    def __init__(self, client: Any, store: Any) -> None:
        self.client = client
        self.store = store
        self.forward = _Forward(store)
        self.trackers = {
            t.name: t
            for t in (
                Tracker(node, cast(Any, self.forward), [], heartbeat_s=HEARTBEAT_S, optin=False)
                for node in primaries(client)
            )
        }
        self._pending: dict[str, tuple[Any, str | None]] = {}

    def ready(self) -> bool:
        return all(t.wait_ready(READY_S) for t in self.trackers.values())

    def tracker(self, key: str) -> Tracker:
        if len(self.trackers) == 1:
            return next(iter(self.trackers.values()))
        return self.trackers[key_node_name(self.client, key)]

    def _raise(self) -> None:
        if self.forward.error is not None:
            raise self.forward.error

    def read(self, key: str) -> str | None:
        """From the store while tracking is whole, else a tracked GET offered to keep."""
        self._raise()
        tracker = self.tracker(key)
        if tracker.serving():
            value = self.store.lookup(key)
            if value is not None:
                return str(value)
        ticket = self.store.ticket(key)
        value = str_if_bytes(tracker.get(key, tracked=True))
        if value is not None:
            self.store.keep(ticket, key, value)
        self._raise()
        return cast("str | None", value)

    def fetch(self, key: str) -> str | None:
        """The first half of a miss: the ticket and the tracked GET, kept back for keep()."""
        self._raise()
        ticket = self.store.ticket(key)
        value = str_if_bytes(self.tracker(key).get(key, tracked=True))
        self._pending[key] = (ticket, value)
        return cast("str | None", value)

    def keep(self, key: str) -> bool:
        """The second half: offer what fetch() got to the store, with its ticket."""
        self._raise()
        ticket, value = self._pending.pop(key)
        return value is not None and bool(self.store.keep(ticket, key, value))

    def state(self) -> dict[str, Any]:
        """Each primary's tracking (connection ids, connects, up or not) and what the
        store has handled; raises what the learner's callbacks raised."""
        self._raise()
        return {
            "trackers": [
                {
                    "node": t.name,
                    "sink_id": t.sink_id,
                    "reader_id": t.reader_id,
                    "connects": t.connects,
                    "ready": t.wait_ready(0),
                }
                for t in self.trackers.values()
            ],
            "invalidated": self.forward.invalidated,
            "lost": self.forward.lost,
        }

    def close(self) -> None:
        self.forward.closing = True  # the learner's code is not called while closing
        for tracker in self.trackers.values():
            tracker.close()


class Driver:
    """The near caches one learner's file has open, by number: what its functions use."""

    def __init__(self, make_store: Callable[[int, int], Any]) -> None:
        self.make_store = make_store
        self.open: dict[int, Near] = {}
        self._lock = threading.Lock()
        self._next = 0

    def near_open(self, valkey: Any, max_entries: int, max_bytes: int) -> int:
        near = Near(valkey, self.make_store(max_entries, max_bytes))
        if not near.ready():
            near.close()
            raise RuntimeError(f"tracking did not come up within {READY_S:g} s")
        with self._lock:
            self._next += 1
            self.open[self._next] = near
            return self._next

    def near_read(self, handle: int, key: str) -> str | None:
        return self.open[handle].read(key)

    def near_fetch(self, handle: int, key: str) -> str | None:
        return self.open[handle].fetch(key)

    def near_keep(self, handle: int, key: str) -> bool:
        return self.open[handle].keep(key)

    def near_state(self, handle: int) -> dict[str, Any]:
        return self.open[handle].state()

    def near_close(self, handle: int) -> None:
        near = self.open.pop(handle, None)
        if near is not None:
            near.close()
