"""What a check works with: the learner's module, called safely, and the handles.

The checks run in the parent; the learner's module lives in the child process.
A check calls the learner's functions through a :class:`Caller` (the runner's
proxy to the child), and in the child :class:`Learner` turns whatever goes wrong
inside them (NotImplementedError, an exception, a key outside the prefix) into a
:class:`CheckFailed` that names the learner's file and line. The learner's
database statements come back to the parent and run on an :class:`ExerciseDb`
over the run's restricted role: it counts reads and makes the COMMIT of a
transaction fail when a check asks, so that the order of "database, then cache"
(write-through) or "commit, then XACK" (write-behind) becomes visible.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from flightcache import sqlfiles
from flightcache.db import Database, Params, QueryResult
from flightcache.errors import FlightcacheError, QueryError
from flightcache.exercises.catalogue import Exercise
from flightcache.keys import Keys


class CheckFailed(Exception):
    """A check that did not pass: what is wrong, what to do, where in the learner's file."""

    def __init__(self, message: str, hint: str = "", where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where


class InjectedFailure(Exception):
    """A database failure a check causes on purpose."""


class ExerciseDb:
    """The database as the learner's code gets it.

    ``sql(name)`` gives a named query of flightcache's sql/ files for this
    database; ``fetch``, ``execute`` and ``transaction`` run on the check's
    connection. A check counts the reads (``fetches``) and can make writes fail
    (``fail_writes``): the COMMIT of a transaction, or a write outside one.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect = db.dialect
        self.fetches = 0
        self.fail_writes = False
        self.failures = 0
        self._open = False
        self._pending: AbstractContextManager[None] | None = None

    def sql(self, name: str) -> str:
        return sqlfiles.query(self.dialect, name)

    def fetch(self, sql: str, params: Params = None) -> QueryResult:
        self.fetches += 1
        return self._db.fetch(sql, params)

    def execute(self, sql: str, params: Params = None) -> int:
        if self.fail_writes and not self._open:
            self.failures += 1
            raise InjectedFailure("the database refused the write (a failure the check injected)")
        return self._db.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._open:
            raise RuntimeError("a transaction is already open: db.transaction() does not nest")
        with self._db.transaction():
            self._open = True
            try:
                yield
            finally:
                self._open = False
            if self.fail_writes:
                self.failures += 1
                raise InjectedFailure(
                    "COMMIT failed (a failure the check injected); the transaction rolled back"
                )

    # the learner's ``with db.transaction():`` arrives as separate begin, commit, rollback
    def begin(self) -> None:
        if self._pending is not None:
            raise RuntimeError("a transaction is already open: db.transaction() does not nest")
        pending = self.transaction()
        pending.__enter__()
        self._pending = pending

    def commit(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            raise RuntimeError("no transaction is open")
        pending.__exit__(None, None, None)

    def rollback(self) -> None:
        """End an open transaction with a ROLLBACK (also when the check was stopped)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        stop = RuntimeError("rolled back")
        try:
            pending.__exit__(RuntimeError, stop, None)
        except RuntimeError as exc:
            if exc is not stop:
                raise


def _caused_by_injection(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, InjectedFailure):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _outside_prefix(exc: BaseException) -> bool:
    text = str(exc)
    return "NOPERM" in text or "No permissions" in text or "ACL failure" in text


def _deepest(path: Path, exc: BaseException) -> traceback.FrameSummary | None:
    """The deepest frame of ``path`` in the exception's traceback."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            found = frame
    return found


def where_in(path: Path, exc: BaseException) -> str:
    """``file:line: source`` of the deepest frame of ``path`` in the exception's traceback."""
    frame = _deepest(path, exc)
    if frame is not None:
        return f"{path}:{frame.lineno}: {(frame.line or '').strip()}"
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{exc.filename}:{exc.lineno}: {(exc.text or '').strip()}"
    return ""


def raised_in(path: Path, exc: BaseException) -> str:
    """The name of the deepest function of ``path`` in the exception's traceback."""
    frame = _deepest(path, exc)
    return "" if frame is None else frame.name


class Learner:
    """The learner's module, called so that its failures become CheckFailed."""

    def __init__(self, module: ModuleType, path: Path, exercise: Exercise) -> None:
        self.module = module
        self.path = path.resolve()
        self.exercise = exercise
        self.last_called = ""  # ``file:line: def ...`` of the function called last

    def definition(self, fn: Any) -> str:
        """``file:line: source`` of a function's ``def`` line in the learner's file."""
        code = getattr(fn, "__code__", None)
        if code is None or Path(code.co_filename).resolve() != self.path:
            return ""
        try:
            line = self.path.read_text(encoding="utf-8").splitlines()[code.co_firstlineno - 1]
        except (OSError, IndexError):
            line = ""
        return f"{self.path}:{code.co_firstlineno}: {line.strip()}"

    def where(self, exc: BaseException) -> str:
        return where_in(self.path, exc)

    def call(self, function: str, *args: Any, expect_failure: bool = False) -> Any:
        """Call ``function`` of the learner's module. With ``expect_failure`` an
        injected failure may come out of it (it is re-raised for the check)."""
        fn = getattr(self.module, function, None)
        if not callable(fn):
            raise CheckFailed(
                f"{self.path.name} has no function {function}()",
                hint=f"keep the function names of the starter file: "
                f"{', '.join(f + '()' for f in self.exercise.functions)}",
            )
        self.last_called = self.definition(fn)
        try:
            return fn(*args)
        except CheckFailed:
            raise
        except NotImplementedError as exc:
            unwritten = raised_in(self.path, exc) or function  # a method it calls, maybe
            raise CheckFailed(
                f"{unwritten}() is not written yet (it raises NotImplementedError)",
                hint=f"write it between {self.exercise.start_marker!r} and "
                f"{self.exercise.end_marker!r}, as its docstring says",
                where=self.where(exc),
            ) from None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if expect_failure and _caused_by_injection(exc):
                raise InjectedFailure(str(exc)) from None
            if "permissions to run" in str(exc):
                raise CheckFailed(
                    f"your code ran a command exercises may not run, and Valkey refused: {exc}",
                    hint="the exercises need only the commands their docstrings name",
                    where=self.where(exc),
                ) from None
            if _outside_prefix(exc):
                raise CheckFailed(
                    f"your code touched a key outside its prefix, and Valkey refused: {exc}",
                    hint="use only the key names the checker passes to your function",
                    where=self.where(exc),
                ) from None
            if isinstance(exc, SystemExit):
                raise CheckFailed(
                    f"{function}() called sys.exit({exc.code!r})",
                    hint="return a value or raise an exception instead of exiting",
                    where=self.where(exc),
                ) from None
            raise CheckFailed(
                f"{function}() raised {type(exc).__name__}: {exc}",
                hint="read the line below and the function's docstring",
                where=self.where(exc),
            ) from None


class Caller(Protocol):
    """Calls a function of the learner's module (in the child process)."""

    def call(self, function: str, *args: Any, expect_failure: bool = False) -> Any: ...


@dataclass(frozen=True, eq=False)
class LearnerValkey:
    """Stands for the learner's own Valkey client (the child's, as the run's ACL user).

    ``crash`` is the same client whose connection is lost after ``replies`` replies,
    counted from the call's start or, with ``after_commit``, from the database's
    COMMIT: what a crash of the learner's process between two round trips leaves on
    the server (the child refuses the next send; the server has run what came
    before, nothing after)."""

    crash: bool = False
    replies: int = 0
    after_commit: bool = False

    def handle(self) -> str:
        if not self.crash:
            return "valkey"
        return f"valkey-crash:{int(self.after_commit)}:{self.replies}"


LEARNER_VALKEY = LearnerValkey()
# a crash after the first reply, and Valkey lost right after the COMMIT, or after
# one more reply
LEARNER_VALKEY_CRASHING = LearnerValkey(crash=True, replies=1)
LEARNER_VALKEY_LOST_AT_COMMIT = LearnerValkey(crash=True, replies=0, after_commit=True)
LEARNER_VALKEY_CRASHING_AFTER_COMMIT = LearnerValkey(crash=True, replies=1, after_commit=True)
CRASH_MESSAGE = "connection to Valkey lost (a crash the check simulates)"


@dataclass
class CheckContext:
    """What a check works with: the learner's functions, and the checker's own handles."""

    learner: Caller
    valkey: LearnerValkey  # passed to the learner: the child's restricted client
    admin: Any  # the checker's own client
    keys: Keys  # this check's key scope
    raw_db: Database | None  # the dataset, read by the checker
    db: ExerciseDb | None  # passed to the learner: its statements, run as the run's role
    scratch: Database | None = None  # the role's connection: the checker reads its scratch

    def sql(self, name: str) -> str:
        return sqlfiles.query(self.database().dialect, name)

    def database(self) -> Database:
        if self.raw_db is None:
            raise FlightcacheError("this exercise's checks need a database connection")
        return self.raw_db

    def scratch_db(self) -> Database:
        if self.scratch is None:
            raise FlightcacheError("this exercise's checks need a database connection")
        return self.scratch

    def scratch_fetch(self, name: str, params: Params = None) -> QueryResult:
        """A named query on the scratch area, which the learner's code may have broken
        (its role owns those tables): a failure is the check's, not the run's."""
        try:
            return self.scratch_db().fetch(self.sql(name), params)
        except QueryError as exc:
            raise CheckFailed(
                f"reading the scratch tables your code writes failed: {exc.message}",
                hint="leave the tables as they are: change rows only as the docstring says",
            ) from None

    def learner_db(self) -> ExerciseDb:
        if self.db is None:
            raise FlightcacheError("this exercise's checks need a database connection")
        return self.db


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    run: Callable[[CheckContext], None]


def plain(value: Any) -> Any:
    """Rows as JSON sees them: tuples become lists, dates and decimals text."""
    return json.loads(json.dumps(value, default=str))


def show(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expiry_problem(c: CheckContext, key: str, limit: int, *, ms: bool = False) -> str:
    """ "" when ``key`` expires within ``limit`` (seconds, or ms); else what is wrong."""
    left = int(c.admin.pttl(key) if ms else c.admin.ttl(key))
    unit = "ms" if ms else "s"
    if left == -2:
        return f"no key at all ({key} does not exist)"
    if left == -1:
        return f"no TTL ({'PTTL' if ms else 'TTL'} {key} is -1)"
    if left > limit:
        return f"a TTL of {left} {unit}, longer than the {limit} {unit} asked"
    return ""
