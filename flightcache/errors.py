"""The flightcache exception tree.

Core code raises these; only ``flightcache.cli`` catches them, prints the message
and the hint on stderr and exits with the class's ``exit_code``. A message must be
something a person can act on, and must never carry a password.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code flightcache ends with, named once. Each error class carries its own."""

    OK = 0
    FAILED = 1
    """A FlightcacheError of no narrower class, or a run whose checks or steps failed."""
    USAGE = 2
    """A name or value typed on the command line (click's usage errors end with it too)."""
    CONFIG = 3
    CONNECTION = 4
    STACK = 5
    DATA = 6
    QUERY = 7
    VALKEY_COMMAND = 8
    INTERNAL = 70
    """An unexpected exception: a bug (sysexits' EX_SOFTWARE)."""
    SIGNAL_BASE = 128
    """A process ended by signal N exits with SIGNAL_BASE + N, as the shell reports it."""
    INTERRUPTED = 130
    """Ctrl-C: SIGNAL_BASE + SIGINT."""


def killed_by(signum: int) -> int:
    """The exit code of a process ended by the signal ``signum`` (the shell's 128 + N)."""
    return ExitCode.SIGNAL_BASE + signum


class FlightcacheError(Exception):
    """Base class: a message a person can act on, an optional hint, an exit code."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(FlightcacheError):
    """A name or value typed on the command line that cannot be used."""

    exit_code: int = ExitCode.USAGE


class ConfigError(FlightcacheError):
    """A URL, flag or config file that cannot be used as given."""

    exit_code: int = ExitCode.CONFIG


class ConnectionFailed(FlightcacheError):
    """A server that cannot be reached, or refuses our credentials."""

    exit_code: int = ExitCode.CONNECTION


class StackError(FlightcacheError):
    """The embedded servers could not be started, stopped or found."""

    exit_code: int = ExitCode.STACK


class StackNotRunning(StackError):
    """A command needs the embedded stack and it is down."""


class DataError(FlightcacheError):
    """The dataset is missing, incomplete, or the database holds something else."""

    exit_code: int = ExitCode.DATA


class DumpFormatError(DataError):
    """A file given to ``data import`` that is not a FlughafenDB MySQL dump."""


class QueryError(FlightcacheError):
    """A SQL statement failed on the server."""

    exit_code: int = ExitCode.QUERY


class StatementTimeout(QueryError):
    """The server cut a statement that ran past the connection's statement timeout."""


class RejectedValue(QueryError):
    """The database refused a value for good (a constraint, a column's range or type):
    the same statement fails again however often it is retried. The db layer raises it
    for the drivers' IntegrityError and DataError."""


class ValkeyCommandError(FlightcacheError):
    """Valkey answered a command with an error."""

    exit_code: int = ExitCode.VALKEY_COMMAND


class NotPermitted(ValkeyCommandError):
    """Valkey refused a command, a key or a channel to this account's ACL user (NOPERM):
    on a room account, anything outside the attendee's prefix or that would change the
    shared server for everybody."""
