"""What a demo step sent: Valkey commands as valkey-cli shows them, and SQL.

:class:`Tracer` records every command a Valkey client sends, by wrapping the
client's ``execute_command`` on the instance (every valkey-py method, standalone
or cluster, goes through it), and every statement a :class:`TracedDatabase`
runs. ``paused()`` removes the wrapper so that timed loops measure the bare
client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from flightcache.db import Database, Params, QueryResult

_SAFE = re.compile(r"^[A-Za-z0-9_:./{}@+=,-]+$")


def escape(data: bytes) -> str:
    """Bytes the way valkey-cli prints them inside double quotes."""
    out = []
    for b in data:
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _CONTROL:
            out.append(_CONTROL[ch])
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote_arg(arg: Any, limit: int | None = None) -> str:
    """One command argument as valkey-cli accepts it: bare when safe, else quoted."""
    raw = bytes(arg) if isinstance(arg, (bytes, bytearray, memoryview)) else str(arg).encode()
    text = escape(raw)
    if limit is not None and len(text) > limit:
        return f'"{text[: limit - 3]}..." ({len(raw):,} bytes)'
    return text if raw and _SAFE.match(text) else f'"{text}"'


def format_command(args: Sequence[Any], limit: int | None = 60) -> str:
    """A command line as valkey-cli would take it; long values cut, with their size."""
    if not args:
        return ""
    return " ".join([str(args[0]).upper(), *(quote_arg(a, limit) for a in args[1:])])


def compact_sql(sql: str) -> str:
    """A statement on one line, comments dropped."""
    lines = [line.split("--", 1)[0].strip() for line in sql.strip().splitlines()]
    return " ".join(line for line in lines if line).rstrip(";")


def format_sql(sql: str, params: Params) -> str:
    text = compact_sql(sql)
    if isinstance(params, Mapping) and params:
        text += "  -- " + ", ".join(f"{k}={v!r}" for k, v in params.items())
    elif isinstance(params, Sequence) and not isinstance(params, str) and params:
        text += "  -- " + ", ".join(repr(v) for v in params)
    return text


class Tracer:
    """Collects the commands and statements of the current step."""

    def __init__(self) -> None:
        self.commands: list[list[Any]] = []
        self.statements: list[str] = []
        self._clients: list[Any] = []
        self._active = True

    def instrument(self, client: Any) -> Any:
        """Record every command ``client`` sends from now on; returns the client."""
        self._wrap(client)
        self._clients.append(client)
        return client

    def pipeline(self, client: Any, *, transaction: bool = False) -> Any:
        """A pipeline of ``client`` whose queued commands are recorded."""
        return self._wrap(client.pipeline(transaction=transaction))

    def _wrap(self, target: Any) -> Any:
        original = type(target).execute_command

        def traced(*args: Any, **options: Any) -> Any:
            if self._active:
                self.commands.append(list(args))
            return original(target, *args, **options)

        target.execute_command = traced
        return target

    def database(self, db: Database) -> TracedDatabase:
        return TracedDatabase(db, self)

    def take(self) -> tuple[list[list[Any]], list[str]]:
        """The commands and statements since the last take, and a fresh start."""
        commands, statements = self.commands, self.statements
        self.commands, self.statements = [], []
        return commands, statements

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing recorded and no wrapper in the way: for timed loops. Nests."""
        saved = [(c, c.__dict__.pop("execute_command", None)) for c in self._clients]
        was_active, self._active = self._active, False
        try:
            yield
        finally:
            self._active = was_active
            for client, wrapper in saved:
                if wrapper is not None:
                    client.execute_command = wrapper


class TracedDatabase:
    """A :class:`Database` whose fetch and execute calls are recorded."""

    def __init__(self, db: Database, tracer: Tracer) -> None:
        self.inner = db
        self.tracer = tracer
        self.dialect = db.dialect
        self.url = db.url

    def fetch(self, sql: str, params: Params = None) -> QueryResult:
        if self.tracer._active:
            self.tracer.statements.append(format_sql(sql, params))
        return self.inner.fetch(sql, params)

    def execute(self, sql: str, params: Params = None) -> int:
        if self.tracer._active:
            self.tracer.statements.append(format_sql(sql, params))
        return self.inner.execute(sql, params)

    def execute_many(self, sql: str, params: Sequence[Params]) -> int:
        if self.tracer._active:
            first = format_sql(sql, params[0] if params else None)
            self.tracer.statements.append(f"{first}  (and {len(params) - 1:,} more rows)")
        return self.inner.execute_many(sql, params)

    def transaction(self) -> AbstractContextManager[None]:
        if self.tracer._active:
            self.tracer.statements.append("BEGIN")
        return _Transaction(self.inner.transaction(), self.tracer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Transaction:
    def __init__(self, inner: AbstractContextManager[None], tracer: Tracer) -> None:
        self.inner, self.tracer = inner, tracer

    def __enter__(self) -> None:
        self.inner.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        result = self.inner.__exit__(*exc)
        if self.tracer._active:
            self.tracer.statements.append("ROLLBACK" if exc[0] else "COMMIT")
        return result
