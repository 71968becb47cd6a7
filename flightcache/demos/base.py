"""What every demo is made of: records, and the context a demo runs in.

A demo is a generator of records. A :class:`Step` says what it did and why,
carries the exact Valkey commands and SQL it issued (collected by the
:class:`~flightcache.trace.Tracer`), its outcome and its time. A
:class:`Timing` is a side-by-side comparison from :func:`measure.timing.compare`;
a :class:`Histogram` is counts per bucket; a :class:`Table` is any other
summary. Renderers (rich, JSON) turn records into output; nothing here prints,
and nothing here imports typer or rich.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from flightcache.keys import Keys
from flightcache.measure.timing import Stats, compare
from flightcache.patterns.common import first_line
from flightcache.trace import TracedDatabase, Tracer, format_command
from flightcache.undo import Undo


@dataclass
class Step:
    """One narrated step of a demo."""

    title: str
    why: str = ""
    outcome: str = ""
    hit: bool | None = None
    rows: int | None = None
    bytes: int | None = None
    elapsed_ns: int = 0
    ok: bool = True  # False when the step failed, or shows a failure (then on_purpose)
    on_purpose: bool = False  # the failure is the lesson: printed as such, not as a fault
    commands: list[list[Any]] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    _tracer: Tracer | None = field(default=None, repr=False, compare=False)
    _start: int = field(default=0, repr=False, compare=False)

    def __enter__(self) -> Step:
        if self._tracer is not None:
            self._tracer.take()  # what ran between steps is not this step's
        self._start = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed_ns = time.perf_counter_ns() - self._start
        if self._tracer is not None:
            commands, statements = self._tracer.take()
            self.commands += commands
            self.sql += statements

    def fails_on_purpose(self, shown: bool = True) -> None:
        """Mark this step as one whose failure is the lesson. ``shown``: the failure
        really happened; when it did not, the step is printed as a fault instead."""
        self.ok, self.on_purpose = False, shown

    def valkey_lines(self, limit: int | None = 60) -> list[str]:
        return [format_command(c, limit) for c in self.commands]

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "step",
            "title": self.title,
            "why": self.why,
            "outcome": self.outcome,
            "hit": self.hit,
            "rows": self.rows,
            "bytes": self.bytes,
            "elapsed_ns": self.elapsed_ns,
            "ok": self.ok,
            "on_purpose": self.on_purpose,
            "valkey": self.valkey_lines(limit=None),
            "sql": self.sql,
            "data": self.data,
        }


@dataclass
class Timing:
    """Contenders timed side by side in one run (see measure.timing.compare)."""

    title: str
    stats: list[Stats]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "timing",
            "title": self.title,
            "note": self.note,
            "unit": "ns",
            "series": [s.as_dict() for s in self.stats],
        }


@dataclass
class Table:
    """Any other summary: columns and rows of plain values."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "table",
            "title": self.title,
            "note": self.note,
            "columns": self.columns,
            "rows": self.rows,
        }


@dataclass
class Histogram:
    """Counts per bucket for one or more series sharing the bucket edges.

    ``edges`` has one more entry than each series has counts; bucket ``i`` is
    ``edges[i] <= v < edges[i + 1]`` in ``unit``. Renderers draw the bars.
    """

    title: str
    unit: str
    edges: list[int]
    series: dict[str, list[int]]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "histogram",
            "title": self.title,
            "note": self.note,
            "unit": self.unit,
            "edges": self.edges,
            "series": self.series,
        }


Record = Step | Timing | Table | Histogram


@dataclass
class DemoContext:
    """What a demo runs against. ``valkey`` and ``db`` are traced."""

    db: TracedDatabase
    valkey: Any
    keys: Keys
    tracer: Tracer
    repeat: int = 50
    warmup: int = 3
    options: Any = None  # the demo's own frozen Options dataclass
    valkey_up: bool = True  # False: Valkey was down at the start, the demo shows the fallback
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    undo: Undo | None = None  # where changes are recorded before they are made

    def step(self, title: str, why: str = "") -> Step:
        return Step(title, why, _tracer=self.tracer)

    def compare(
        self,
        title: str,
        contenders: Mapping[str, Callable[[], Any]],
        *,
        baseline: str | None = None,
        repeat: int | None = None,
        note: str = "",
    ) -> Timing:
        """Time the contenders with tracing off, so the bare clients are measured."""
        with self.tracer.paused():
            stats = compare(
                contenders,
                repeat=repeat or self.repeat,
                warmup=self.warmup,
                baseline=baseline,
            )
        return Timing(title, stats, note)

    def pipelined(
        self, items: Sequence[Any], queue: Callable[[Any, Any], Any], *, chunk: int = 1000
    ) -> list[Any]:
        """``queue(pipe, item)`` for every item, ``chunk`` commands per round trip.

        Only the first pipeline is traced: a step shows what one round trip sends,
        not a hundred thousand lines.
        """
        replies: list[Any] = []
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            with self.tracer.paused() if start else nullcontext():
                pipe = self.tracer.pipeline(self.valkey)
                for item in part:
                    queue(pipe, item)
                replies += pipe.execute()
        return replies

    def on_exit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the demo ends, however it ends (restore a setting, say)."""
        self.cleanups.append(fn)

    def put_back(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        how: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        """Before changing a row: record that the named query (one of
        :data:`flightcache.undo.UNDO_QUERIES`) with ``params`` undoes the change, and
        run it when the demo ends, however it ends; after a SIGKILL the next demo on
        this database runs it. ``how``, when given, is the in-process way to put the
        row back (through the cache, say) in place of the bare query. Returns the undo,
        which runs once, for a demo that puts the row back itself before the end."""
        from flightcache import sqlfiles

        entry = self.undo.record(query, params) if self.undo is not None else None
        pending = [True]

        def bare(db: Any) -> None:
            with db.transaction():
                db.execute(sqlfiles.query(db.dialect, query), dict(params))

        def undo() -> None:
            if not pending:
                return
            try:
                how() if how is not None else bare(self.db)
            except Exception:  # the demo's connection may be what broke: try a fresh one
                from flightcache.db import connect

                fresh = connect(self.db.url)
                try:
                    bare(fresh)
                finally:
                    fresh.close()
            pending.clear()
            if entry is not None and self.undo is not None:
                self.undo.done(entry)

        self.on_exit(undo)
        return undo

    def run_cleanups(self) -> list[str]:
        """Run every cleanup, last registered first, each on its own: one that fails
        does not skip the rest. Returns one line per failure."""
        failed: list[str] = []
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as exc:
                failed.append(first_line(exc))
        return failed


Demo = Callable[[DemoContext], Iterator[Record]]
