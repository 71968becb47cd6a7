"""A pinned connection to one board's node: the fast path of :class:`Board`.

Read path: a command is packed once (``pack_command``) and sent on one connection
kept out of the pool, its reply read straight back. That skips valkey-py's pool and
reply callbacks, which cost more than the round trip itself on a fast loopback (the
live view redraws, the simulator and ``leaderboard bench`` read this way). On a
cluster the connection goes to the node that owns the board's slot.
Write path: many ZINCRBYs on one key are packed into RESP by hand (the key's part
once) and sent in one write, then the replies are read back.
Failure mode: a dropped connection, a timeout or a MOVED after a reshard falls back
to the ordinary client call; replies left unread make the connection unusable, so it
is closed, never reused. One thread at a time: the pinned connection is not shared;
:meth:`PinnedConnection.close` returns it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import valkey.exceptions

_FALLBACK: tuple[type[Exception], ...] = (
    valkey.exceptions.ConnectionError,
    valkey.exceptions.TimeoutError,
    valkey.exceptions.ResponseError,  # MOVED after a reshard
)


class PinnedConnection:
    """One connection, out of the pool, to the node that holds ``key`` (and every key
    that shares its hash tag)."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self._conn: Any = None
        self._owner: Any = None
        self._packed: dict[Hashable, Any] = {}

    # region: pinned-command
    def command(self, *args: Any, packed_as: Hashable | None = None) -> Any:
        """Run one command on the pinned connection; with ``packed_as``, its packed
        bytes are kept under that name and reused. Falls back to the client."""
        try:
            conn = self._pinned()
            packed = None if packed_as is None else self._packed.get(packed_as)
            if packed is None:
                packed = conn.pack_command(*args)
                if packed_as is not None:
                    self._packed[packed_as] = packed
            return self._send(conn, packed)
        except _FALLBACK:
            self._unpin()
            return self.client.execute_command(*args)

    # endregion: pinned-command

    def zincrby_many(self, key: str, pairs: Sequence[tuple[str, float]]) -> list[Any]:
        """ZINCRBY ``key`` by each (member, amount), in one write; the replies in order.
        A MOVED there, where nothing ran, sends the batch through the client's
        pipeline instead."""
        head = _bulk("ZINCRBY", key, prefix=b"*4\r\n")
        payload = b"".join(head + _bulk(_number(amount), member) for member, amount in pairs)
        try:
            conn = self._pinned()
            conn.send_packed_command([payload], check_health=False)
            return [conn.read_response() for _ in pairs]
        except valkey.exceptions.AskError:  # MOVED or ASK: the slot is elsewhere now
            self.moved()
            pipe = self.client.pipeline(transaction=False)
            for member, amount in pairs:
                pipe.zincrby(key, amount, member)
            return list(pipe.execute())
        except BaseException:  # replies left unread: the connection cannot be reused
            self._unpin()
            raise

    def node(self) -> Any:
        """The client of the node that holds the key: the client itself on one node."""
        if self._owner is None:
            owner: Any = self.client
            if hasattr(owner, "get_node_from_key"):  # a cluster: the slot's node
                owner = owner.get_valkey_connection(owner.get_node_from_key(self.key))
            self._owner = owner
        return self._owner

    def moved(self) -> None:
        """Forget the node: the slot moved; the next call asks the cluster again."""
        self._unpin()
        if hasattr(self.client, "nodes_manager"):
            self.client.nodes_manager.initialize()

    def close(self) -> None:
        self._unpin()

    def _pinned(self) -> Any:
        if self._conn is None:
            self._conn = self.node().connection_pool.get_connection("ZREVRANGE")
        return self._conn

    @staticmethod
    def _send(conn: Any, packed: Any) -> Any:
        conn.send_packed_command(packed, check_health=False)
        reply = conn.read_response()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _unpin(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._owner.connection_pool.release(self._conn)
            self._conn = None
            self._packed.clear()
        self._owner = None


def _number(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else repr(float(amount))


def _bulk(*parts: str, prefix: bytes = b"") -> bytes:
    """RESP bulk strings of ``parts``, after ``prefix``."""
    out = [prefix]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
