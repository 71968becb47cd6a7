"""The state directory: which directories are flightcache's, and the credentials in them.

A state directory flightcache creates gets a marker file, so ``up`` and ``down``
never act on a directory that holds someone else's files. A state directory from
before the marker is recognised by holding nothing but what flightcache writes.

Permissions: the state directory is 0700. When flightcache runs as root the servers
run under an unprivileged account, which must reach its own data directory: then
the state directory is 0710 with that account's group (it may pass through, not
list). The credentials live in ``secrets/credentials.json``, 0600 in a 0700
directory owned by whoever runs flightcache, and never reach the server account.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import secrets
from dataclasses import dataclass
from pathlib import Path

from flightcache.config import refuse_state_dir
from flightcache.errors import StackError

MARKER = ".flightcache-state"
# what a state directory held before the marker existed
LEGACY_NAMES = frozenset(
    {
        "stack.json",
        "stack.lock",
        "stack.tmp",
        "valkey",
        "postgres",
        "pgbin",
        "valkeybin",
        "secrets",
        "workshop-progress.json",
        "exercises.json",
        "exercise-runs",
        "undo",
    }
)
LOCKS = frozenset({"stack.lock", "stack.json"})
# what commands write there without a stack: progress, exercise run records, undo records
PROGRESS = frozenset({"workshop-progress.json", "exercises.json", "exercise-runs", "undo"})
HINT = "choose another with --state-dir or FLIGHTCACHE_STATE_DIR"


def is_ours(path: Path) -> bool:
    """True when ``path`` is missing, empty, marked, or an unmarked state dir of old.

    A directory holding only ``postgres/`` is not taken for ours: it may be someone's
    PostgreSQL, whose pg_hba.conf ``up`` would rewrite.
    """
    try:
        names = {entry.name for entry in os.scandir(path)}
    except (FileNotFoundError, NotADirectoryError):  # nothing there (yet) to belong to anyone
        return True
    if not names or MARKER in names:
        return True
    # unmarked, from before the marker: only our names, and the lock every `up` and
    # `down` took (or nothing but what the workshop and exercise commands write)
    return names <= LEGACY_NAMES and bool(names & LOCKS or names <= PROGRESS)


def check(path: Path) -> None:
    """Raise unless ``path`` may serve as a state directory (nothing is created)."""
    refuse_state_dir(path)
    if path.exists() and not path.is_dir():
        raise StackError(f"state directory {path} is a file, not a directory", hint=HINT)
    if not is_ours(path):
        names = sorted(e.name for e in os.scandir(path))
        others = [n for n in names if n not in LEGACY_NAMES] or names
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise StackError(
            f"state directory {path} already holds files flightcache did not create ({shown})",
            hint=f"{HINT}; a new or empty directory is fine",
        )


def claim(path: Path) -> Path:
    """Create (or adopt) the state directory, marked and 0700; refuse someone else's.

    Every command that writes into the state directory comes through here first, so
    a directory flightcache made always carries the marker, whichever command made it.
    """
    check(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker = path / MARKER
        if not marker.exists():
            marker.write_text(
                "This is a flightcache state directory: `flightcache down` stops the servers"
                " it started here.\n"
            )
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return path


def _unwritable(path: Path, exc: OSError) -> StackError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "permission denied" if exc.errno != errno.EROFS else "read-only file system"
    return StackError(f"state directory {path} cannot be written: {reason}", hint=HINT)


def ensure(path: Path, account: pwd.struct_passwd | None) -> None:
    """Create (or adopt) the state directory: marked, 0700, or 0710 for the server group."""
    claim(path)
    try:
        if account is not None:
            os.chown(path, os.geteuid(), account.pw_gid)
            path.chmod(0o710)
        else:
            path.chmod(0o700)
    except OSError as exc:
        raise _unwritable(path, exc) from None


@dataclass(frozen=True)
class Credentials:
    """The passwords of the embedded servers, and whether PostgreSQL has its own yet."""

    postgres: str
    valkey: str
    postgres_applied: bool = False


def credentials_file(state_dir: Path) -> Path:
    return state_dir / "secrets" / "credentials.json"


def load_credentials(state_dir: Path) -> Credentials | None:
    """The stored credentials, or None when this state directory has none (yet)."""
    try:
        data = json.loads(credentials_file(state_dir).read_text())
        return Credentials(
            str(data["postgres_password"]),
            str(data["valkey_password"]),
            bool(data.get("postgres_applied", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_credentials(state_dir: Path, creds: Credentials) -> None:
    """Write the credentials 0600 into a 0700 ``secrets`` directory, atomically."""
    folder = credentials_file(state_dir).parent
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    tmp = folder / "credentials.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {
                "postgres_password": creds.postgres,
                "valkey_password": creds.valkey,
                "postgres_applied": creds.postgres_applied,
            },
            fh,
        )
    os.replace(tmp, credentials_file(state_dir))


def new_credentials() -> Credentials:
    """Fresh random passwords (URL-safe, so they need no quoting in a URL or in SQL)."""
    return Credentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
