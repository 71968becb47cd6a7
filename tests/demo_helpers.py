"""What the demo tests share: a loaded database, and the keys a demo left behind."""

from __future__ import annotations

from typing import Any

from flightcache.config import DbUrl


def load_tiny(db_url: DbUrl) -> str:
    """Load the tiny generated dataset; return the URL with its password, for --db-url."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    conn = connect(db_url)
    load_generated(conn, "tiny", 1)
    conn.close()
    return db_url.url(redact=False)


def leftover_keys(url: Any, prefix: str) -> list[str]:
    """Every key under ``prefix`` on every primary."""
    from flightcache.valkey_client import close, connect, primaries

    client = connect(url)
    try:
        return [k for node in primaries(client) for k in node.scan_iter(match=prefix + "*")]
    finally:
        close(client)
