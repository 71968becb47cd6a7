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

    # -- query results (cache-aside, write-through) ------------------------------
    def query(self, name: str, params: Any = None) -> str:
        """string: a named query's rows as JSON, one key per parameter set."""
        return f"{self.prefix}query:{name}:{digest(params)}"

    def tag(self, tag: str) -> str:
        """set: the cached query keys that depend on ``tag`` (e.g. ``airline:7``)."""
        return f"{self.prefix}tag:{tag}"

    def airline(self, airline_id: int) -> str:
        """hash: one airline row (airline_id, iata, airlinename, base_airport)."""
        return f"{self.prefix}airline:{airline_id}"

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
    def mem_json(self, flight_id: int) -> str:
        """string: one flight as a JSON document."""
        return f"{self.prefix}json:{flight_id}"

    def mem_hash(self, flight_id: int) -> str:
        """hash: one flight, full field names (flightno, departure, arrival, seats_free)."""
        return f"{self.prefix}hash:{flight_id}"

    def mem_compact(self, flight_id: int) -> str:
        """hash: one flight, one-letter field names (n, d, a, s)."""
        return f"{self.prefix}compact:{flight_id}"

    def mem_packed(self, flight_id: int) -> str:
        """string: one flight packed as ``flightno|departure|arrival|seats_free``."""
        return f"{self.prefix}packed:{flight_id}"

    def mem_bucket(self, size: int, bucket: int) -> str:
        """hash: flights ``bucket*size`` up to ``(bucket+1)*size - 1``; field flight_id,
        value packed as in :meth:`mem_packed`."""
        return f"{self.prefix}bucket{size}:{bucket}"

    def mem_seatmap(self, flight_id: int | str) -> str:
        """string (bitmap): bit ``i`` set when seat index ``i`` of the flight is booked."""
        return f"{self.prefix}seatmap:{flight_id}"

    def mem_seats(self, flight_id: int | str) -> str:
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
    def wb_bookings(self, shard: int, flight_id: int) -> str:
        """hash: seats booked on one flight through the queue (field ``seats``)."""
        return f"{self.prefix}{{wb{shard}}}:flight:{flight_id}:bookings"

    def wb_queue(self, shard: int) -> str:
        """stream: one shard's queue of bookings (fields ``flight``, ``seats``),
        drained by the consumer group ``db-writer``."""
        return f"{self.prefix}{{wb{shard}}}:queue"

    def wb_direct(self, flight_id: int) -> str:
        """hash: the write-through comparison's counter of one flight (field ``seats``)."""
        return f"{self.prefix}direct:flight:{flight_id}:bookings"


def _glob_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)
