"""Near cache: query results kept in the process's own memory, with the server telling
the process when a copy it holds has changed (client-side caching, ``CLIENT TRACKING``).

Read path: look in the local store (a dict in this process); a hit costs no network at
all. On a miss read through cache-aside (:class:`~flightcache.patterns.cache_aside.
CacheAside`: GET in Valkey, else the database and SET), with the GET sent on a tracked
connection, so the server remembers that this process holds the key; then keep the
result locally if Valkey answered it (a value from the database is not kept: the SET
that stores it is about to invalidate it) and no invalidation of the key arrived while
it was being fetched.

Write path: none here. Any writer changes the key in Valkey (SET, DEL, write-through,
another process's fill); the server then pushes ``invalidate <key>`` to this process's
tracking connection, and a thread drops the key from the local store.

Tracking modes (one per near cache):
- ``default``: the server remembers each key this process read, and tells it once when
  that key changes. It costs the server memory per key read (its tracking table).
- ``bcast``: the server remembers only the key prefixes (``BCAST PREFIX``) and tells
  the process about every change of a key under them, read or not: no table, more
  pushes.
- ``optin``: only reads preceded by ``CLIENT CACHING yes`` are tracked, and only those
  are kept locally; ``get(..., tracked=False)`` reads through cache-aside untracked.

Failure mode: a lost invalidation is a stale read that never ends, so the local store
is served only while tracking is known to be whole. When the tracking connection
drops (a kill, a restart, a silent network: a PING every ``heartbeat_s`` finds it),
or the connection whose reads are tracked reconnects, the store is flushed before
anything is served from it, and it stays unused until tracking is on again on a new
connection. A read that raced an invalidation serves what it fetched but does not
keep it: each key's fetch takes a ticket (the store's epoch and the key's count of
invalidations) and a value is stored only if neither moved. Valkey down: cache-aside's
own fallback to the database; nothing is kept.

Why a tracking connection of our own, not valkey-py's ``cache_enabled=True``: the
built-in cache (valkey-py 6.2) tracks in default mode only (no BCAST, no OPTIN), bounds
entries but not bytes, and applies invalidations only when its connection sends its
next command. With the libvalkey parser (installed here) it does not connect at all
(the parser has no push handler); with the pure-Python RESP3 parser the first GET
after an invalidation waited out the socket timeout here. So each Valkey primary gets
one RESP3 connection that only receives pushes (read by a thread, so the store drops a
key as soon as its push arrives), and one connection for the tracked GETs, whose
``CLIENT TRACKING on REDIRECT <id>`` sends the pushes to the first.

Eviction: least recently used, under both a count and a byte bound. The server already
removes what changed, so eviction only makes room; LRU keeps the hot keys a near cache
exists for, and costs one dict move per hit. A value's size is its JSON length, the
bytes Valkey holds for it; the decoded rows in Python take several times that.
"""

from __future__ import annotations

import select
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import valkey.exceptions
from valkey.utils import str_if_bytes

from flightcache.db import Database
from flightcache.keys import Keys
from flightcache.named_queries import Query
from flightcache.patterns.cache_aside import CacheAside, Lookup, ServedBy
from flightcache.valkey_client import Client, key_node_name, node_name, primaries, raw_connection

MODES = ("default", "bcast", "optin")
DROPPED = (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError)


@dataclass
class Counters:
    """What the local store did since it was made."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0  # keys named by invalidation pushes (held or not)
    evictions: int = 0  # entries dropped to stay under the bounds
    flushes: int = 0  # the whole store dropped: tracking lost, or a FLUSHALL
    raced: int = 0  # fetched values not kept: an invalidation came during the fetch


@dataclass
class _Entry:
    columns: list[str]
    rows: list[list[Any]]
    size: int
    tracker: Tracker


@dataclass
class Ticket:
    """Taken before a fetch: the store's epoch and the key's invalidations until then."""

    key: str
    epoch: int
    seen: int


class LocalStore:
    """The bounded in-process store: LRU under ``max_entries`` and ``max_bytes``."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a near cache needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.counters = Counters()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._epoch = 0  # moved by every flush
        self._fetching: dict[str, list[int]] = {}  # key -> [fetches running, invalidations]
        # called after each invalidation with its keys, and after each flush with None
        # (outside the lock): for whoever narrates or measures the store
        self.on_invalidate: Callable[[list[str] | None], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    # region: hit
    def lookup(self, key: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not entry.tracker.serving():
                self.counters.misses += 1
                return None
            self._entries.move_to_end(key)  # most recently used last
            self.counters.hits += 1
            return entry

    # endregion: hit

    # region: race
    def ticket(self, key: str) -> Ticket:
        with self._lock:
            running = self._fetching.setdefault(key, [0, 0])
            running[0] += 1
            return Ticket(key, self._epoch, running[1])

    def keep(self, ticket: Ticket, entry: _Entry | None) -> bool:
        """Store ``entry`` only if no invalidation of its key and no flush came after
        ``ticket`` was taken, and its tracker is whole; always close the ticket."""
        with self._lock:
            running = self._fetching[ticket.key]
            fresh = ticket.epoch == self._epoch and ticket.seen == running[1]
            running[0] -= 1
            if running[0] == 0:
                del self._fetching[ticket.key]
            if entry is None:
                return False
            if not fresh or not entry.tracker.serving():
                self.counters.raced += 1
                return False
            return self._put(ticket.key, entry)

    def invalidate(self, keys: Iterable[str]) -> None:
        names = list(keys)
        with self._lock:
            for key in names:
                self.counters.invalidations += 1
                running = self._fetching.get(key)
                if running is not None:
                    running[1] += 1
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self.bytes -= entry.size
        if self.on_invalidate is not None:
            self.on_invalidate(names)

    def flush(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()
            self.bytes = 0
            self.counters.flushes += 1
        if self.on_invalidate is not None:
            self.on_invalidate(None)

    # endregion: race

    # region: bounds
    def _put(self, key: str, entry: _Entry) -> bool:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        if entry.size > self.max_bytes:
            return False  # larger than the whole store: never kept
        while self._entries and (
            len(self._entries) >= self.max_entries or self.bytes + entry.size > self.max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)  # the least recently used
            self.bytes -= evicted.size
            self.counters.evictions += 1
        self._entries[key] = entry
        self.bytes += entry.size
        return True

    # endregion: bounds


class Tracker:
    """One Valkey primary's tracking: a RESP3 connection that only receives the
    invalidation pushes (read by a thread), and a connection for the tracked GETs,
    whose ``CLIENT TRACKING on REDIRECT`` names the first."""

    def __init__(
        self,
        node: Any,
        store: LocalStore,
        tracking: list[str],
        *,
        heartbeat_s: float,
        optin: bool,
    ) -> None:
        self.name = node_name(node)
        self.store = store
        self.tracking = tracking  # CLIENT TRACKING's options after REDIRECT <id>
        self.heartbeat_s = heartbeat_s
        self.optin = optin
        self.sink_id = 0  # CLIENT ID of the tracking connection, 0 while it is down
        self.reader_id = 0  # CLIENT ID of the connection whose reads are tracked
        self.connects = 0  # tracking connections opened, the first included
        self.pushes = 0  # invalidation pushes received
        self._node = node
        self._live = False
        self._closed = threading.Event()
        self._ready = threading.Event()
        self._reads = threading.Lock()
        self._watch = select.poll()
        self._sink: Any = None
        self._reader = raw_connection(node)
        self._reader.register_connect_callback(self._on_reader_connect)
        self._thread = threading.Thread(target=self._run, name=f"near-{self.name}", daemon=True)
        self._thread.start()

    def serving(self) -> bool:
        """True while the local copies of this primary's keys may be served: tracking
        is on, and nothing is waiting unread on either connection (a push not yet
        applied, or the end of a killed connection; a GET's reply in flight on the
        tracked one, or the heartbeat's PONG, makes a hit a miss for that moment)."""
        return self._live and not self._watch.poll(0)

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def ask(self, *args: Any) -> Any:
        """One command on the tracked connection: ``CLIENT TRACKINGINFO`` and
        ``CLIENT GETREDIR`` describe the connection that sends them."""
        with self._reads:
            self._reader.send_command(*args)
            return self._reader.read_response()

    # region: tracking
    def _run(self) -> None:
        while not self._closed.is_set():
            sink = raw_connection(self._node, protocol=3, socket_timeout=self.heartbeat_s)
            try:
                sink.connect()
                sink.send_command("CLIENT", "ID")
                sink_id = int(sink.read_response())
                self._sink = sink
                with self._reads:
                    self.sink_id, self.connects = sink_id, self.connects + 1
                    self._track()
                self._listen(sink)
            except (*DROPPED, valkey.exceptions.ResponseError):
                pass  # the sink is gone (a REDIRECT to it fails): connect a new one
            finally:
                self._down()
                sink.disconnect()
            self._closed.wait(0.05)  # then a new tracking connection

    def _track(self) -> None:
        """Point the tracked connection's tracking at the current sink (call with the
        read lock held); the store was flushed when the last one dropped."""
        reader = self._reader
        if reader._sock is None:
            reader.connect()  # whose callback comes back here, connected
            return
        commands = [
            ("CLIENT", "ID"),
            ("CLIENT", "TRACKING", "off"),
            ("CLIENT", "TRACKING", "on", "REDIRECT", self.sink_id, *self.tracking),
        ]
        reader.send_packed_command(reader.pack_commands(commands))
        self.reader_id = int(reader.read_response())
        reader.read_response()
        reader.read_response()
        watch = select.poll()  # both sockets: a push, or the end of either, stops hits
        for conn in (self._sink, reader):
            assert conn is not None and conn._sock is not None
            watch.register(conn._sock, select.POLLIN)
        self._watch = watch
        self._live = True
        self._ready.set()

    # region: listen
    def _listen(self, sink: Any) -> None:
        while not self._closed.is_set():
            if not sink.can_read(timeout=self.heartbeat_s):
                sink.send_command("PING")  # a silent network: no reply within a beat drops it
                if not sink.can_read(timeout=self.heartbeat_s):
                    raise valkey.exceptions.TimeoutError("no PONG from the tracking connection")
            push = sink.read_response()
            if isinstance(push, list) and push and push[0] == "invalidate":
                self.pushes += 1
                if push[1] is None:  # FLUSHALL / FLUSHDB: everything changed
                    self.store.flush()
                else:
                    self.store.invalidate(str_if_bytes(key) for key in push[1])

    # endregion: listen

    def _down(self) -> None:
        """Tracking is lost: stop serving this primary's copies, then drop them all."""
        self._live = False
        self._ready.clear()
        self.sink_id = 0
        self.store.flush()

    def _on_reader_connect(self, reader: Any) -> None:
        # a reconnected reader is not tracked: what it read before is no longer guarded
        was_live, self._live = self._live, False
        if was_live:
            self.store.flush()
        if self.sink_id:
            try:
                self._track()
            except valkey.exceptions.ResponseError:
                pass  # the sink is gone too: its thread tracks again when it is back

    # endregion: tracking

    def get(self, key: str, *, tracked: bool) -> Any:
        """GET ``key`` on the tracked connection (after ``CLIENT CACHING yes`` in OPTIN
        mode, when ``tracked``). A dropped connection is opened again once, and opening
        it flushes the store and turns tracking on before the GET is sent."""
        commands: list[tuple[str, ...]] = [("GET", key)]
        if self.optin and tracked:
            commands.insert(0, ("CLIENT", "CACHING", "yes"))
        with self._reads:
            reader = self._reader
            for attempt in (1, 2):
                try:
                    reader.send_packed_command(reader.pack_commands(commands))
                    replies = [reader.read_response() for _ in commands]
                    return replies[-1]
                except valkey.exceptions.ConnectionError:
                    reader.disconnect()
                    if attempt == 2:
                        raise

    def close(self) -> None:
        self._closed.set()
        self._live = False
        sink = self._sink
        if sink is not None and sink._sock is not None:
            try:
                sink._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread's read
            except OSError:
                pass
        self._thread.join(timeout=2 * self.heartbeat_s + 1)
        self._reader.disconnect()


class _TrackedReads:
    """What cache-aside calls its client: GET on the tracked connection of the key's
    primary, SET on the shared client."""

    def __init__(self, near: NearCache, *, tracked: bool) -> None:
        self.near = near
        self.tracked = tracked

    def get(self, key: str) -> Any:
        return self.near.tracker(key).get(key, tracked=self.tracked)

    def set(self, key: str, value: str, ex: int) -> Any:
        return self.near.client.set(key, value, ex=ex)


@dataclass
class NearLookup:
    """One read: from memory, or what cache-aside answered (``below``)."""

    key: str
    columns: list[str]
    rows: list[list[Any]]
    bytes: int
    below: Lookup | None = None  # None: served from the local store
    kept: bool = False  # a miss whose result the local store now holds

    @property
    def from_memory(self) -> bool:
        return self.below is None

    @property
    def source(self) -> str:
        """ "memory", "valkey", "database", or cache-aside's fallback as it says it."""
        if self.below is None:
            return "memory"
        return "valkey" if self.below.hit else self.below.source


@dataclass
class NearCache:
    """Named queries read through process memory, then Valkey, then the database."""

    client: Client
    db: Database
    keys: Keys
    mode: str = "default"
    prefixes: list[str] = field(default_factory=list)  # BCAST PREFIX (bcast mode)
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    ttl: int = 3600
    heartbeat_s: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "bcast" and not self.prefixes:
            self.prefixes = [self.keys.query_prefix()]
        self.store = LocalStore(self.max_entries, self.max_bytes)
        options = {"default": [], "optin": ["OPTIN"], "bcast": ["BCAST"]}[self.mode]
        for prefix in self.prefixes if self.mode == "bcast" else []:
            options += ["PREFIX", prefix]
        self.trackers = {
            tracker.name: tracker
            for tracker in (
                Tracker(
                    node,
                    self.store,
                    options,
                    heartbeat_s=self.heartbeat_s,
                    optin=self.mode == "optin",
                )
                for node in primaries(self.client)
            )
        }
        self._tracked = CacheAside(
            _TrackedReads(self, tracked=True), self.db, self.keys, ttl=self.ttl
        )
        self._untracked = CacheAside(
            _TrackedReads(self, tracked=False), self.db, self.keys, ttl=self.ttl
        )

    def tracker(self, key: str) -> Tracker:
        if len(self.trackers) == 1:
            return next(iter(self.trackers.values()))
        return self.trackers[key_node_name(self.client, key)]

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """True once every primary's tracking is on (reads before that go to Valkey)."""
        return all(t.wait_ready(timeout) for t in self.trackers.values())

    def key(self, query: Query, params: Mapping[str, Any]) -> str:
        return self._tracked.key(query, params)

    # region: read
    def get(self, query: Query, params: Mapping[str, Any], *, tracked: bool = True) -> NearLookup:
        key = self._tracked.key(query, params)
        entry = self.store.lookup(key)
        if entry is not None:
            return NearLookup(key, entry.columns, entry.rows, entry.size)
        keepable = self._keepable(key, tracked)
        ticket = self.store.ticket(key)
        try:
            below = (self._tracked if tracked else self._untracked).get(query, params)
        except BaseException:
            self.store.keep(ticket, None)
            raise
        found = NearLookup(key, below.columns, below.rows, below.bytes, below)
        kept = None
        if keepable and below.served_by is ServedBy.CACHE:
            kept = _Entry(below.columns, below.rows, below.bytes + len(key), self.tracker(key))
        found.kept = self.store.keep(ticket, kept)
        return found

    # endregion: read

    def _keepable(self, key: str, tracked: bool) -> bool:
        """Is a change of ``key`` reported to us? Only then may a copy be kept."""
        if self.mode == "optin":
            return tracked
        if self.mode == "bcast":
            return any(key.startswith(prefix) for prefix in self.prefixes)
        return True

    def close(self) -> None:
        for tracker in self.trackers.values():
            tracker.close()
        self.store.flush()
