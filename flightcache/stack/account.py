"""The unprivileged account the embedded servers run under when flightcache runs as root.

PostgreSQL refuses to run as root, and a Valkey has no business doing so either:
both run under ``flightcache`` (a system account created on first use) or the
account named in ``FLIGHTCACHE_PG_ACCOUNT``. There is no fallback: an account that
cannot be found or created is an error that says how to make one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import TypedDict

from flightcache.errors import StackError

ACCOUNT_ENV = "FLIGHTCACHE_PG_ACCOUNT"
DEFAULT_ACCOUNT = "flightcache"
USERADD = (
    "useradd --system --no-create-home --home-dir /nonexistent "
    f"--shell /usr/sbin/nologin {DEFAULT_ACCOUNT}"
)


class RunAs(TypedDict, total=False):
    """subprocess keywords that drop root for the server account."""

    user: int
    group: int
    extra_groups: list[int]
    cwd: str
    env: dict[str, str]


def server_account() -> pwd.struct_passwd | None:
    """The account the servers run under, or None when we are not root (they run as us)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(ACCOUNT_ENV) or DEFAULT_ACCOUNT
    try:
        account = pwd.getpwnam(wanted)
    except KeyError:
        account = _create(wanted)
    if account.pw_uid == 0:
        raise StackError(
            f"the server account {wanted!r} is root, and the servers must not run as root",
            hint=f"name an unprivileged account in {ACCOUNT_ENV}",
        )
    return account


def server_uids() -> set[int]:
    """Accounts a server of ours may run as: us, and the server account if it exists."""
    uids = {os.geteuid()}
    if os.geteuid() == 0:
        try:
            uids.add(pwd.getpwnam(os.environ.get(ACCOUNT_ENV) or DEFAULT_ACCOUNT).pw_uid)
        except KeyError:
            pass
    return uids


def _create(wanted: str) -> pwd.struct_passwd:
    if wanted != DEFAULT_ACCOUNT:
        raise StackError(
            f"running as root, and the account {wanted!r} named in {ACCOUNT_ENV} does not exist",
            hint=f"create it, or unset {ACCOUNT_ENV} to use a {DEFAULT_ACCOUNT!r} system account",
        )
    why = "useradd is not installed"
    if shutil.which("useradd"):
        done = subprocess.run(USERADD.split(), capture_output=True, text=True, check=False)
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "useradd failed"
    try:
        return pwd.getpwnam(DEFAULT_ACCOUNT)
    except KeyError:
        raise StackError(
            f"running as root, and the unprivileged account {DEFAULT_ACCOUNT!r} for the "
            f"servers could not be created: {why}",
            hint=f"create it with `{USERADD}`, or name an unprivileged account in {ACCOUNT_ENV}",
        ) from None


def run_as(account: pwd.struct_passwd | None, cwd: str = "/") -> RunAs:
    """subprocess keywords that run a server tool as ``account`` (nothing when None)."""
    if account is None:
        return {}
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
        "cwd": cwd,
        "env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/"},
    }


def give(path: os.PathLike[str] | str, account: pwd.struct_passwd | None, mode: int) -> None:
    """chmod ``path`` to ``mode`` and, when an account is in use, hand it to that account."""
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(path, mode)


def write_private(path: Path, text: str, account: pwd.struct_passwd | None) -> None:
    """Write ``text`` to a file only its owner (the server account, if any) can read."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    give(tmp, account, 0o600)
    os.replace(tmp, path)
