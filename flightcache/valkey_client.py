"""Valkey clients: the one place that builds them, from a :class:`ValkeyUrl`.

A ``valkey+cluster://`` URL gives a :class:`valkey.cluster.ValkeyCluster`, any other
a :class:`valkey.Valkey`. Connecting checks the node's mode, so a cluster URL
pointing at a standalone node (or the reverse) fails with one clear line instead
of MOVED errors later. Errors come out as flightcache errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import valkey
import valkey.cluster
import valkey.connection
import valkey.exceptions

from flightcache.config import ValkeyUrl, scrub
from flightcache.errors import (
    ConfigError,
    ConnectionFailed,
    FlightcacheError,
    NotPermitted,
    ValkeyCommandError,
)

Client = valkey.Valkey | valkey.cluster.ValkeyCluster


def wrap(exc: valkey.exceptions.ValkeyError, url: ValkeyUrl) -> FlightcacheError:
    """A valkey-py exception as a flightcache error, password scrubbed."""
    text = scrub(str(exc)) or exc.__class__.__name__
    if (
        isinstance(exc, valkey.exceptions.AuthenticationError)
        or "WRONGPASS" in text
        or ("NOAUTH" in text)
    ):
        return ConnectionFailed(
            f"Valkey at {url.address} refused the credentials: {text}",
            hint="check the user and password in FLIGHTCACHE_VALKEY_URL or --valkey-url",
        )
    if isinstance(exc, (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError)):
        return ConnectionFailed(
            f"cannot reach Valkey at {url.address}: {text}",
            hint="is it running? `flightcache up` starts the embedded one;"
            " or check FLIGHTCACHE_VALKEY_URL",
        )
    if isinstance(exc, valkey.exceptions.NoPermissionError) or "NOPERM" in text:
        return refused(text)
    if isinstance(exc, valkey.exceptions.ResponseError):
        return ValkeyCommandError(f"Valkey error: {text}")
    return FlightcacheError(f"Valkey error at {url.address}: {text}")


def refused(text: str) -> NotPermitted:
    """Valkey's NOPERM as one line a person can act on: the one place it is said (a room
    account's ACL user, see flightcache.room.accounts, refuses the rest)."""
    said = text.removeprefix("NOPERM").strip() or text
    if "command" in said:
        return NotPermitted(
            f"this Valkey account may not run that command: {said}",
            hint="a room account on the instructor's shared Valkey may not change or inspect"
            " the server for everybody (CONFIG, SLOWLOG, CLIENT KILL, FLUSHDB, KEYS, ...);"
            " run this one on your own Valkey (`flightcache up`, with FLIGHTCACHE_VALKEY_URL"
            " unset), or watch it on the instructor's screen",
        )
    return NotPermitted(
        f"this Valkey account may not touch that key or channel: {said}",
        hint="a room account reaches only keys and channels under its own prefix (key_prefix"
        " in its config file); leave --key-prefix and FLIGHTCACHE_KEY_PREFIX unset",
    )


def as_error(exc: BaseException) -> FlightcacheError | None:
    """A valkey-py exception that escaped every command as a flightcache error (for the
    CLI's boundary), or None for anything else."""
    if not isinstance(exc, valkey.exceptions.ValkeyError):
        return None
    text = scrub(str(exc)) or exc.__class__.__name__
    if isinstance(exc, valkey.exceptions.NoPermissionError) or "NOPERM" in text:
        return refused(text)
    return None


@contextmanager
def valkey_errors(url: ValkeyUrl | Callable[[], ValkeyUrl]) -> Iterator[None]:
    """Turn a valkey-py exception raised inside into the flightcache error :func:`wrap`
    makes of it (the one way to do so). ``url`` may be a callable, asked only on error."""
    try:
        yield
    except valkey.exceptions.ValkeyError as exc:
        raise wrap(exc, url if isinstance(url, ValkeyUrl) else url()) from None


def _options(url: ValkeyUrl, timeout: float, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Connect and read timeouts on every client; the URL's parameters (TLS files,
    timeouts, ...) over flightcache's defaults, the caller's own arguments over both."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "client_name": "flightcache",
        **url.client_kwargs(),
        **kwargs,
    }


def _standalone(url: ValkeyUrl, timeout: float, **kwargs: Any) -> valkey.Valkey:
    return valkey.Valkey.from_url(url.client_url(), **_options(url, timeout, kwargs))


def close(client: Client) -> None:
    """Close a client of either kind."""
    # mypy's untyped_calls_exclude does not reach a method called through a union
    client.close()  # type: ignore[no-untyped-call]


def info(client: valkey.Valkey, section: str) -> dict[str, Any]:
    """INFO SECTION as a dict (valkey-py types sync and async replies alike)."""
    return cast(dict[str, Any], client.info(section))


def info_total(client: Client, section: str, fields: tuple[str, ...]) -> dict[str, int]:
    """INFO SECTION's numeric ``fields`` summed over every primary (one node: its own)."""
    totals = dict.fromkeys(fields, 0)
    for node in primaries(client):
        reply = info(node, section)
        for name in fields:
            totals[name] += int(reply.get(name, 0))
    return totals


def config_value(client: valkey.Valkey, name: str) -> str:
    """One CONFIG GET value, or "" when the server does not know the parameter."""
    reply = cast(dict[str, Any], client.config_get(name))
    return str(reply.get(name, ""))


def cluster_enabled(client: valkey.Valkey) -> bool:
    return bool(int(info(client, "cluster").get("cluster_enabled", 0)))


def connect(url: ValkeyUrl, *, timeout: float = 5.0, decode: bool = True, **kwargs: Any) -> Client:
    """Open a client and check that the node's mode matches the URL."""
    seed = _standalone(url, timeout, decode_responses=decode, **kwargs)
    try:
        with valkey_errors(url):
            is_cluster = cluster_enabled(seed)
    except FlightcacheError:
        seed.close()
        raise
    if url.cluster and not is_cluster:
        seed.close()
        raise ConfigError(
            f"{url.url()} names a cluster, but Valkey at {url.address} is not in cluster mode",
            hint=f"use valkey://{url.address} for a single node",
        )
    if not url.cluster and is_cluster:
        seed.close()
        raise ConfigError(
            f"Valkey at {url.address} is a cluster node, but {url.url()} is a single-node URL",
            hint=f"use valkey+cluster://{url.address} so that keys reach the right node",
        )
    if not url.cluster:
        return seed
    seed.close()
    with valkey_errors(url):
        return valkey.cluster.ValkeyCluster(
            host=url.host,
            port=url.port,
            username=url.username or None,
            password=url.password or None,
            ssl=url.tls,
            **_options(url, timeout, {"decode_responses": decode, **kwargs}),
        )


CONFINED = (
    "+@all",
    "-@dangerous",
    "-@admin",
    "-select",
    "-swapdb",
    "-move",
    "-script|flush",
    "-script|kill",
    "-function",
    "-acl",
    "+info",
)
"""What a confined user (an exercise's learner code, a room's attendee) may run, after
its keys: no @dangerous or @admin command (FLUSHALL, KEYS, CONFIG, DEBUG, SHUTDOWN,
MODULE, ACL, REPLICAOF, MIGRATE, CLIENT KILL, MONITOR, SLOWLOG, ...), no other database
(SELECT, SWAPDB, MOVE), no script or function management (SCRIPT FLUSH/KILL, FUNCTION,
whose libraries are global); INFO back, as the client runs it when it connects."""


def confined_rules(
    password: str,
    key_prefix: str,
    *,
    channels: bool = False,
    db: int = 0,
    also: tuple[str, ...] = (),
) -> list[str]:
    """``ACL SETUSER <name> ...`` rules of a user whose keys (and, with ``channels``, pub/sub
    channels) all start with ``key_prefix``, allowed :data:`CONFINED` and ``also``; on a
    URL's numbered database ``db``, SELECT of that one alone (the client selects it)."""
    from flightcache.keys import Keys

    pattern = Keys(key_prefix).match()
    return [
        "reset",
        "on",
        f">{password}",
        f"~{pattern}",
        "resetchannels",
        *([f"&{pattern}"] if channels else []),
        *CONFINED,
        *also,
        *([f"+select|{db}"] if db else []),
    ]


def primaries(client: Client) -> list[valkey.Valkey]:
    """One standalone client per primary: the node itself, or each cluster primary."""
    if isinstance(client, valkey.cluster.ValkeyCluster):
        out: list[valkey.Valkey] = []
        for node in client.get_primaries():
            if node.valkey_connection is None:
                client.nodes_manager.initialize()
            assert node.valkey_connection is not None
            out.append(node.valkey_connection)
        return out
    return [client]


def parser_name(client: Client) -> str:
    """The reply parser a live connection uses, e.g. "LibvalkeyParser", or
    "ClusterParser (a LibvalkeyParser)" on a cluster, whose parser subclasses the default."""
    pool = primaries(client)[0].connection_pool
    conn = pool.get_connection("PING")
    try:
        conn.connect()  # the cluster client swaps its parser in on connect
        parser = type(conn._parser)
    finally:
        pool.release(conn)
    name = parser.__name__.lstrip("_")
    base = next(
        (c.__name__.lstrip("_") for c in parser.__mro__[1:] if "Libvalkey" in c.__name__), ""
    )
    return f"{name} (a {base})" if base else name


def round_trip_ns(client: Client, samples: int = 25) -> int:
    """Median PING round trip in nanoseconds."""
    times: list[int] = []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        client.ping()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return times[len(times) // 2]


def delete_matching(client: Client, pattern: str, *, batch: int = 500) -> int:
    """UNLINK every key matching ``pattern`` on every primary; returns how many."""
    removed = 0
    for node in primaries(client):
        chunk: list[Any] = []
        for key in node.scan_iter(match=pattern, count=batch):
            chunk.append(key)
            if len(chunk) >= batch:
                removed += _unlink_each(node, chunk)
                chunk = []
        if chunk:
            removed += _unlink_each(node, chunk)
    return removed


def _unlink_each(node: valkey.Valkey, keys: list[Any]) -> int:
    # one UNLINK per key: keys of one node may still sit in different slots
    pipe = node.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    return sum(int(n) for n in pipe.execute())


def unchecked(url: ValkeyUrl, *, timeout: float = 1.0, decode: bool = True) -> valkey.Valkey:
    """A client that has not connected yet: for demos that must run with Valkey down."""
    return _standalone(url, timeout, decode_responses=decode)


def unreachable() -> valkey.Valkey:
    """A client to a loopback port nobody listens on: a Valkey that went away."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return valkey.Valkey(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        decode_responses=True,
    )


def node_name(node: valkey.Valkey) -> str:
    """A primary's ``host:port`` (its path, for a unix socket), as a cluster names it."""
    kwargs = node.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs['host']}:{kwargs['port']}"


def key_node_name(client: Client, key: str) -> str:
    """The :func:`node_name` of the primary that holds ``key`` (the node itself when
    there is one)."""
    if isinstance(client, valkey.cluster.ValkeyCluster):
        return str(client.get_node_from_key(key).name)
    return node_name(client)


def raw_connection(node: valkey.Valkey, **overrides: Any) -> valkey.connection.AbstractConnection:
    """One connection of its own to ``node``, outside every pool, with the node's
    address, credentials and TLS: for what lives on one connection (``CLIENT TRACKING``
    and its pushes). ``overrides`` such as ``protocol=3``, ``socket_timeout=None``."""
    pool = node.connection_pool
    kwargs = {**pool.connection_kwargs, **overrides}
    return cast(valkey.connection.AbstractConnection, pool.connection_class(**kwargs))
