"""Every Valkey key flightcache writes, one method each, its type in the docstring.

All keys share one prefix (``fc:`` unless ``--key-prefix`` or
``FLIGHTCACHE_KEY_PREFIX`` says otherwise), and each demo works in a scope of
its own, ``fc:<demo>:``, so that it can delete exactly its own keys and nothing
else. Keys that one command or one Lua script touches together carry the same
hash tag (``{...}``), so that they land in one slot and everything runs on a
Valkey Cluster unchanged.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DEFAULT_PREFIX = "fc:"


def digest(params: Any) -> str:
    """A short, stable name for a set of query parameters."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class Keys:
    """Key names under one prefix; ``scope("cache-aside")`` narrows it to one demo."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def scope(self, name: str) -> Keys:
        return Keys(f"{self.prefix}{name}:")

    def match(self) -> str:
        """The SCAN pattern for every key of this scope."""
        return _glob_escape(self.prefix) + "*"

    # -- the room: what an attendee's commands record (flightcache.room.activity) --
    def room_activity(self) -> str:
        """hash: when the attendee last ran a command, which, its exit code, the chapter."""
        return f"{self.prefix}room:activity"

    def room_passed(self) -> str:
        """set: the exercises whose check passed."""
        return f"{self.prefix}room:passed"

    def room_failed(self) -> str:
        """list: the commands that failed, newest first, as JSON."""
        return f"{self.prefix}room:failed"

    # -- query results (cache-aside, write-through) ------------------------------
    def query(self, name: str, params: Any = None) -> str:
        """string: a named query's rows as JSON, one key per parameter set."""
        return f"{self.prefix}query:{name}:{digest(params)}"

    def query_prefix(self, name: str = "") -> str:
        """The start that every :meth:`query` key of query ``name`` shares (of every
        query, without a name): what a near cache's ``CLIENT TRACKING ... BCAST PREFIX``
        names. No hash tag: each near-cache command touches one key, and a prefix is
        tracked on every primary, so the keys may spread over all slots."""
        return f"{self.prefix}query:{name}:" if name else f"{self.prefix}query:"

    def tag(self, tag: str) -> str:
        """set: the cached query keys that depend on ``tag`` (e.g. ``airline:7``)."""
        return f"{self.prefix}tag:{tag}"

    # An airline's hash and its version share the hash tag {airline:<id>}: one script
    # compares the version and writes the hash.
    def airline(self, airline_id: int) -> str:
        """hash: one airline row (airline_id, iata, airlinename, base_airport)."""
        return f"{self.prefix}{{airline:{airline_id}}}"

    def airline_version(self, airline_id: int) -> str:
        """string (counter): INCR by every write of the airline, before its COMMIT and
        again after it; a row is written to the hash only while the version is the one
        its writer or reader saw (no TTL: a volatile-* policy never evicts it)."""
        return f"{self.prefix}{{airline:{airline_id}}}:version"

    # -- leaderboards (shared by every `flightcache leaderboard` command) ---------------
    def board(self, name: str, period: str = "all") -> str:
        """sorted set: leaderboard ``name`` for one period (``all``, ``daily:2025-06-02``,
        ``hourly:2025-06-02T13``, ...). Every key of one board shares the hash tag
        ``{lb:<name>}``, so ZUNIONSTORE over its periods and RENAME of a rebuilt copy
        stay in one slot on a cluster."""
        return f"{self.prefix}{{lb:{name}}}:{period}"

    def board_updates(self, name: str) -> str:
        """pub/sub channel: each message is one JSON event of a score change on ``name``
        (``{"member": ..., "score": ..., "period": ...}``); live views subscribe to it."""
        return f"{self.prefix}{{lb:{name}}}:updates"

    def board_applied(self, name: str) -> str:
        """set: ids of the events already applied to board ``name`` (``<booking_id>:+1``),
        so that a redelivered stream entry counts once; shares the board's hash tag
        because the apply script touches it with the board's keys."""
        return f"{self.prefix}{{lb:{name}}}:applied"

    def board_events(self) -> str:
        """stream: booking events (fields ``booking_id``, ``member``, ``departure``,
        ``delta``) that the consumer group ``boards`` applies to the airport-bookings
        board (the event-driven update path)."""
        return f"{self.prefix}lb-events:bookings"

    def board_simulator(self) -> str:
        """string: the simulator the live board page started (SET NX PX, JSON of its
        run), so that one runs at a time across serve's workers; deleting it stops it."""
        return f"{self.prefix}board-simulator"

    def lock(self, name: str) -> str:
        """string: a rebuild lock, SET NX PX, holding its owner's token."""
        return f"{self.prefix}lock:{name}"

    # -- hit-ratio ---------------------------------------------------------------
    def flight(self, flight_id: int) -> str:
        """string: one flight row as JSON, cached by id (cache-aside, SET EX)."""
        return f"{self.prefix}flight:{flight_id}"

    # -- eviction ----------------------------------------------------------------
    def booking(self, booking_id: int) -> str:
        """string: one booking as JSON, with its flight and passenger name (SET EX)."""
        return f"{self.prefix}booking:{booking_id}"

    # -- ttl: one value per data class, and batches written together ---------------
    def ttl_class(self, data_class: str, what: str) -> str:
        """string: one data class's cached query result as JSON, with that class's TTL."""
        return f"{self.prefix}class:{data_class}:{what}"

    def ttl_batch(self, series: str, n: int) -> str:
        """string: key ``n`` of a batch written together (``series`` plain or jitter)."""
        return f"{self.prefix}batch:{series}:{n}"

    # -- memory: the same flights in several layouts ---------------------------------
    def memory_json(self, flight_id: int) -> str:
        """string: one flight as a JSON document."""
        return f"{self.prefix}json:{flight_id}"

    def memory_hash(self, flight_id: int) -> str:
        """hash: one flight, full field names (flightno, departure, arrival, seats_free)."""
        return f"{self.prefix}hash:{flight_id}"

    def memory_compact(self, flight_id: int) -> str:
        """hash: one flight, one-letter field names (n, d, a, s)."""
        return f"{self.prefix}compact:{flight_id}"

    def memory_packed(self, flight_id: int) -> str:
        """string: one flight packed as ``flightno|departure|arrival|seats_free``."""
        return f"{self.prefix}packed:{flight_id}"

    def memory_bucket(self, size: int, bucket: int) -> str:
        """hash: flights ``bucket*size`` up to ``(bucket+1)*size - 1``; field flight_id,
        value packed as in :meth:`memory_packed`."""
        return f"{self.prefix}bucket{size}:{bucket}"

    def memory_seatmap(self, flight_id: int | str) -> str:
        """string (bitmap): bit ``i`` set when seat index ``i`` of the flight is booked."""
        return f"{self.prefix}seatmap:{flight_id}"

    def memory_seats(self, flight_id: int | str) -> str:
        """set: the booked seat labels of one flight ("12A", ...)."""
        return f"{self.prefix}seats:{flight_id}"

    # -- nested doll: one flight's layers share the hash tag {flight:<id>} -----------
    # so that one pipeline reads them all from one slot, on one node of a cluster.
    def flight_aircraft(self, flight_id: int) -> str:
        """hash: the airplane that flies the flight (type, capacity, operator); TTL 24 h."""
        return f"{self.prefix}{{flight:{flight_id}}}:aircraft"

    def flight_schedule(self, flight_id: int) -> str:
        """hash: flight number, route, departure and arrival, weekdays flown; TTL 6 h."""
        return f"{self.prefix}{{flight:{flight_id}}}:schedule"

    def flight_seats(self, flight_id: int) -> str:
        """hash: capacity, booked and available seats; TTL 5 min."""
        return f"{self.prefix}{{flight:{flight_id}}}:seats"

    def flight_status(self, flight_id: int) -> str:
        """string: the flight's status, e.g. "delayed 35 min"; TTL 30 s."""
        return f"{self.prefix}{{flight:{flight_id}}}:status"

    # -- write-behind ----------------------------------------------------------
    # One Lua script updates a flight's counter and appends to its shard's queue,
    # so both carry the shard's hash tag {wbN}: one slot per shard, and the
    # shards spread over the cluster's nodes.
    def write_behind_bookings(self, shard: int, flight_id: int) -> str:
        """hash: seats booked on one flight through the queue (field ``seats``)."""
        return f"{self.prefix}{{wb{shard}}}:flight:{flight_id}:bookings"

    def write_behind_queue(self, shard: int) -> str:
        """stream: one shard's queue of bookings (fields ``flight``, ``seats``),
        drained by the consumer group ``db-writer``."""
        return f"{self.prefix}{{wb{shard}}}:queue"

    def write_behind_dead_letters(self, shard: int) -> str:
        """stream: one shard's dead letters, entries the database refused for good (the
        entry's own fields plus ``entry``, ``error``, ``consumer``). Same hash tag as the
        shard's queue: one script acks the entry there and adds it here."""
        return f"{self.prefix}{{wb{shard}}}:dead"

    def write_behind_direct_bookings(self, flight_id: int) -> str:
        """hash: the write-through comparison's counter of one flight (field ``seats``)."""
        return f"{self.prefix}direct:flight:{flight_id}:bookings"

    # -- universal: anything queryable, a fresh copy and a last good copy -------------
    # ``item`` is the name 001 gives the key: weather:api:<IATA>, flightaware:<FLIGHTNO>,
    # airport:services:<IATA>, route:distance:<FROM>:<TO>, stats:daily:bookings:<DAY>,
    # search:flights:<FROM>:<TO>:<DAY>. An item's three keys share the hash tag {<item>}:
    # a refill writes two of them in one pipeline and a miss reads two in one MGET.
    def cached_item(self, item: str) -> str:
        """string: the fresh copy, JSON ``{"fetched_at": <unix s>, "value": ...}``,
        EX the TTL of the item's data class."""
        return f"{self.prefix}{{{item}}}:fresh"

    def cached_item_good(self, item: str) -> str:
        """string: the last good copy, the same JSON, EX a longer stale TTL; served,
        marked stale, when the origin fails."""
        return f"{self.prefix}{{{item}}}:good"

    def cached_item_hold(self, item: str) -> str:
        """string: JSON ``{"error", "at", "retry_after_s"}`` of the origin's last failure,
        PX the retry interval; while it lives readers do not call the origin."""
        return f"{self.prefix}{{{item}}}:hold"

    # -- session: one hash per login, one set per day ------------------------------
    # Every session command touches one key, so sessions spread over all slots of
    # a cluster by token. Logout's DEL and SREM touch two keys in different slots
    # on purpose: a shared hash tag would put every session of a day on one node.
    def session(self, token: str) -> str:
        """hash: one login (user_id, username, email, login_time, ip_address,
        session_fingerprint, csrf_token, booking-flow and checkout fields, devices,
        last_activity, page_views), PEXPIREd on every write (the sliding expiry)."""
        return f"{self.prefix}session:{token}"

    def sessions_active(self, day: str) -> str:
        """set: tokens of the sessions that logged in on ``day`` (UTC, YYYY-MM-DD) and
        have not logged out; SCARD counts them. Expires a day after the day ends."""
        return f"{self.prefix}active:sessions:{day}"

    # -- exercises ---------------------------------------------------------------
    # A check run works under <prefix>exercise:<name>:<run>: (a Valkey ACL user may
    # touch nothing else), each check under c<n>: of it. The exercises also use
    # query(), airline(), board() and lock() of that scope.
    def exercise_queue(self) -> str:
        """stream: bookings (fields ``flight``, ``seats``) that the write-behind
        exercise's drain() applies, consumer group ``exercise-writer``."""
        return f"{self.prefix}queue"

    def exercise_dead_letters(self) -> str:
        """stream: the write-behind exercise's poison entries, set aside by drain()
        (their fields, and the id they had in the queue)."""
        return f"{self.prefix}queue:dead"

    def exercise_session(self, user: str) -> str:
        """hash: one user's session (user_id and the session's fields), sliding TTL."""
        return f"{self.prefix}session:{user}"

    def exercise_near(self, name: str) -> str:
        """string: a value the near-cache exercise reads through the learner's store."""
        return f"{self.prefix}near:{name}"

    def exercise_sentinel(self, run: str, n: int) -> str:
        """string: a random token beside a check run's prefix, never inside it; written
        before the run and compared after, to catch code that touched other keys. The
        hash tag ``{xs<n>}`` lets a run place one on every cluster primary."""
        return f"{self.prefix}sentinel:{run}:{{xs{n}}}"

    # -- stampede: one expensive key per defence, and its lock ------------------------
    # The value and its lock carry the same hash tag {st:<defence>}: the release and
    # renew scripts name only the lock, but a client touches both in one read, and on
    # a cluster they then live on one node.
    def stampede_value(self, defence: str) -> str:
        """string: the expensive key as one defence keeps it: the rows as JSON (none,
        lock), or JSON ``{"expiry": ms, "delta": ms, "value": rows}`` (xfetch,
        xfetch+lock, stale), where expiry is the logical (soft) expiry, epoch ms."""
        return f"{self.prefix}{{st:{defence}}}:value"

    def stampede_lock(self, defence: str) -> str:
        """string: the rebuild lock of one defence's key (SET NX PX), holding the
        random token of the client that owns it."""
        return f"{self.prefix}{{st:{defence}}}:lock"

    # -- invalidation: cached results are query() keys, tag sets are tag() keys ----------
    def invalidation_epoch(self) -> str:
        """string (counter): INCR by every invalidation in this scope (by write-through's
        writes, for the query results), after its COMMIT; a fill that sees it move while
        it ran deletes what it stored (it may predate the change)."""
        return f"{self.prefix}epoch"

    # -- memory-pressure -----------------------------------------------------------------
    def pressure_row(self, n: int) -> str:
        """string: the ``n``-th row of a fill, a booking as JSON (SET EX)."""
        return f"{self.prefix}row:{n}"

    def pressure_row_hash(self, n: int) -> str:
        """hash: the ``n``-th row of a fill, a booking's columns as fields (HSET, EXPIRE)."""
        return f"{self.prefix}rowh:{n}"

    def slowlog_string(self, n: int) -> str:
        """string: key ``n`` of the SLOWLOG demo's one big MSET; all share the hash tag
        ``{slow}``, so that one command may carry them on a cluster."""
        return f"{self.prefix}{{slow}}:{n}"

    def slowlog_zset(self, name: str) -> str:
        """sorted set: an input or the output of the SLOWLOG demo's ZUNIONSTORE (hash tag
        ``{slow}``, as :meth:`slowlog_string`)."""
        return f"{self.prefix}{{slow}}:z:{name}"

    # -- bench -------------------------------------------------------------------
    # The bench's scenarios work in scopes of their own (fc:bench:<scenario>:) and
    # otherwise use the keys of the patterns they drive.
    def bench_value(self, name: str) -> str:
        """string: a value the bench reads back as fast as it can (the bare GET check)."""
        return f"{self.prefix}value:{name}"

    def bench_tokens(self) -> str:
        """list: the tokens of the sessions the user-sessions scenario logged in, which
        its setup RPUSHes and every client LRANGEs (one token per key of the keyspace)."""
        return f"{self.prefix}tokens"


def _glob_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)
