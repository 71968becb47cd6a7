"""The flightcache exception tree.

Core code raises these; only ``flightcache.cli`` catches them, prints the message
and the hint on stderr and exits with the class's ``exit_code``. A message must be
something a person can act on, and must never carry a password.
"""

from __future__ import annotations


class FlightcacheError(Exception):
    """Base class: a message a person can act on, an optional hint, an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(FlightcacheError):
    """A name or value typed on the command line that cannot be used."""

    exit_code = 2


class ConfigError(FlightcacheError):
    """A URL, flag or config file that cannot be used as given."""

    exit_code = 3


class ConnectionFailed(FlightcacheError):
    """A server that cannot be reached, or refuses our credentials."""

    exit_code = 4


class StackError(FlightcacheError):
    """The embedded servers could not be started, stopped or found."""

    exit_code = 5


class StackNotRunning(StackError):
    """A command needs the embedded stack and it is down."""


class DataError(FlightcacheError):
    """The dataset is missing, incomplete, or the database holds something else."""

    exit_code = 6


class DumpFormatError(DataError):
    """A file given to ``data import`` that is not a FlughafenDB MySQL dump."""


class QueryError(FlightcacheError):
    """A SQL statement failed on the server."""

    exit_code = 7


class StatementTimeout(QueryError):
    """The server cut a statement that ran past the connection's statement timeout."""


class RejectedValue(QueryError):
    """The database refused a value for good (a constraint, a column's range or type):
    the same statement fails again however often it is retried. The db layer raises it
    for the drivers' IntegrityError and DataError."""


class ValkeyCommandError(FlightcacheError):
    """Valkey answered a command with an error."""

    exit_code = 8
