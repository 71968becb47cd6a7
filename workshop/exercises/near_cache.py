"""Exercise near-cache: the local store of a near cache, kept honest by the server.

A near cache keeps values in the process's own memory, so a hit costs no network at
all. Valkey's client-side caching (CLIENT TRACKING) keeps it honest: the server
remembers which keys this process read and pushes "invalidate <key>" when one of
them changes. flightcache runs the tracking for you (the pattern's Tracker, in
flightcache/patterns/near_cache.py): a connection that receives the pushes, read by
a thread, and a connection whose GETs are tracked. You write the store it fills.

A read asks your lookup() first, but only while tracking is whole. On a miss it
takes your ticket() for the key, GETs the key from Valkey on the tracked connection,
and offers the value to your keep() with that ticket. The tracking thread calls
your on_invalidate() for every push, and your on_tracking_lost() whenever the
tracking connection dropped (killed, a server that stopped answering) or the
tracked connection reconnected.

Three things make a near cache safe, and your store is where they live:

- A lost connection is a lost invalidation: whatever changed while tracking was
  down is never reported. What the store held then cannot be trusted afterwards.
- A fetch can race a change: the GET answers the old value, the change's push
  arrives, and only then does keep() run. The ticket exists so that keep() can tell.
- Memory is the process's: the store must stay under its bounds, both the number of
  entries and the bytes of the values (count a value's size as len(value)), and
  make room by dropping something when a new value does not fit.

on_invalidate() and on_tracking_lost() run in the tracking thread while lookup(),
ticket() and keep() run in the reader's: guard what they share.

Complete the NearStore class between the START and END markers, then run:

    flightcache exercise check near-cache

The checks read keys through your store and judge what reaches Valkey: the tracked
connection's command count (a hit sends nothing), and the values read back after
they kill the tracking connection (CLIENT KILL), change keys under your reads, and
fill the store past its bounds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from flightcache.exercises.near_cache import Driver


# START near-cache
class NearStore:
    """Values by key, in this process, under ``max_entries`` and ``max_bytes``."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, str] = OrderedDict()  # or what suits you
        # add what your methods need

    def lookup(self, key: str) -> str | None:
        """The value kept for ``key``, or None. A hit may refresh what your eviction
        rule uses to choose what to drop."""
        raise NotImplementedError("write lookup() between # START and # END")

    def ticket(self, key: str) -> Any:
        """Called before ``key`` is fetched from Valkey; keep() gets what you return.
        Return something that lets keep() see whether an invalidation of the key, or
        a loss of tracking, happened after this moment."""
        raise NotImplementedError("write ticket() between # START and # END")

    def keep(self, ticket: Any, key: str, value: str) -> bool:
        """Store ``value`` for ``key`` unless something it may miss happened since
        ``ticket`` was taken, or it can never fit; make room under both bounds first.
        True when it was stored."""
        raise NotImplementedError("write keep() between # START and # END")

    def on_invalidate(self, keys: list[str]) -> None:
        """The server says these keys changed: what you hold of them is old."""
        raise NotImplementedError("write on_invalidate() between # START and # END")

    def on_tracking_lost(self) -> None:
        """Tracking was lost, and changes since may never be reported: nothing held now
        may be served once tracking is back, and no fetch under way may be kept."""
        raise NotImplementedError("write on_tracking_lost() between # START and # END")


# END near-cache


# The checks drive your store through these, with flightcache's tracking underneath.
_driver = Driver(NearStore)
near_open = _driver.near_open
near_read = _driver.near_read
near_fetch = _driver.near_fetch
near_keep = _driver.near_keep
near_state = _driver.near_state
near_close = _driver.near_close
