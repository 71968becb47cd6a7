"""What every demo is made of: records, and the context a demo runs in.

A demo is a generator of records. A :class:`Step` says what it did and why,
carries the exact Valkey commands and SQL it issued (collected by the
:class:`~flightcache.trace.Tracer`), its outcome and its time. A
:class:`Timing` is a side-by-side comparison from :func:`bench.timing.compare`;
a :class:`Table` is any other summary. Renderers (rich, JSON) turn records into
output; nothing here prints, and nothing here imports typer or rich.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from flightcache.bench.timing import Stats, compare
from flightcache.keys import Keys
from flightcache.trace import TracedDatabase, Tracer, format_command


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
    ok: bool = True  # False when the step shows a failure on purpose
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
            "valkey": self.valkey_lines(limit=None),
            "sql": self.sql,
            "data": self.data,
        }


@dataclass
class Timing:
    """Contenders timed side by side in one run (see bench.timing.compare)."""

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


Record = Step | Timing | Table


@dataclass
class DemoContext:
    """What a demo runs against. ``valkey`` and ``db`` are traced."""

    db: TracedDatabase
    valkey: Any
    keys: Keys
    tracer: Tracer
    repeat: int = 50
    warmup: int = 3
    options: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

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

    def on_exit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the demo ends, however it ends (restore a setting, say)."""
        self.cleanups.append(fn)


Demo = Callable[[DemoContext], Iterator[Record]]
