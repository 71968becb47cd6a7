"""The rich consoles and the renderers shared by commands.

Text from the data or the command line is shown as it is, never read as rich markup
or as terminal control sequences: both consoles have markup off (a line of ours that
wants style says so with ``styled`` or a ``Text``), and every piece of text they print
has its control characters shown as ``\\xNN`` (``clean``) before it reaches the terminal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from flightcache.measure.duration import human_ns

if TYPE_CHECKING:
    from flightcache.errors import FlightcacheError


class Redacted:
    """stdout or stderr (looked up at each write, as tests swap them) with every
    password taken out by :func:`flightcache.config.scrub` on its way through.

    Both consoles write through it, so whatever they print (steps, tables, errors,
    ``--json``, progress) shows a password as ``***``, whoever built the text.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def stream(self) -> IO[str]:
        stream: IO[str] = getattr(sys, self._name)
        return stream

    def write(self, text: str) -> int:
        from flightcache.config import scrub

        return self.stream.write(scrub(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


# C0 and C1 controls but newline and tab, DEL, and the bidirectional overrides that
# make text read in another order than it runs
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """``text`` with every control character written out (ESC as ``\\x1b``): safe to print."""
    return _UNSAFE.sub(_shown, text)


def plain(value: object) -> Text:
    """A value from data or the command line as rich text: no markup, no control codes."""
    return Text(clean(str(value)))


def styled(template: str, *values: object) -> Text:
    """Our own markup with values put in as plain text: ``styled("[red]{}[/red]", name)``."""
    return Text.from_markup(template.format(*(escape(clean(str(v))) for v in values)))


class SafeConsole(Console):
    """A console that shows control characters instead of sending them to the terminal.

    Strings are cleaned before layout (so tables measure what is shown); whatever
    arrives as a ``Text`` or another renderable is cleaned segment by segment on its
    way out. Segments rich marks as control (cursor moves of a live display) pass.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(clean(text), **kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or not _UNSAFE.search(segment.text):
                yield segment
            else:
                yield Segment(clean(segment.text), segment.style)


out = SafeConsole(file=Redacted("stdout"), highlight=False, markup=False)  # type: ignore[arg-type]
err = SafeConsole(file=Redacted("stderr"), stderr=True, highlight=False, markup=False)  # type: ignore[arg-type]


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def table(title: str | None, columns: list[str], rows: list[list[Any]], **kwargs: Any) -> Table:
    t = Table(title=None if title is None else plain(title), title_justify="left", **kwargs)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("-" if v is None else v if isinstance(v, Text) else plain(v) for v in row))
    return t


def load_progress() -> Progress:
    """One bar per table, rows done of rows expected."""
    return Progress(
        TextColumn("{task.description:<18}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def bytes_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )


# -- demo records ---------------------------------------------------------------
def render_record(record: Any, number: int) -> None:
    """Print one demo record (a Step, Timing or Table from demos.base)."""
    from flightcache.demos.base import Histogram, Step, Timing

    if isinstance(record, Step):
        _render_step(record, number)
    elif isinstance(record, Timing):
        _render_timing(record)
    elif isinstance(record, Histogram):
        _render_histogram(record)
    else:
        out.print(table(record.title, record.columns, record.rows))
        if record.note:
            out.print(record.note, style="dim")
        out.print()


COMMAND_LINES = 12  # Valkey commands shown per step; --json has every one


def _render_step(step: Any, number: int) -> None:
    head = Text(f"{number}. ", style="bold")
    head.append(clean(step.title), style="bold")
    if step.hit is not None:
        head.append("  HIT" if step.hit else "  MISS", style="green" if step.hit else "yellow")
    if step.on_purpose:
        head.append("  FAILS ON PURPOSE", style="magenta")
    elif not step.ok:
        head.append("  FAILED", style="bold red")
    head.append(f"  {human_ns(step.elapsed_ns)}", style="cyan")
    out.print(head)
    if step.why:
        out.print(Text("   " + clean(step.why), style="dim"))
    lines = step.valkey_lines()
    if len(lines) > COMMAND_LINES:  # a pipeline of thousands: its head and tail
        skipped = len(lines) - COMMAND_LINES
        lines = [
            *lines[: COMMAND_LINES - 2],
            f"... {skipped:,} more commands (--json lists them all)",
            *lines[-2:],
        ]
    for line in lines:
        out.print(Text("   valkey> ", style="magenta") + plain(line), soft_wrap=True)
    for line in step.sql:
        out.print(Text("   sql>    ", style="blue") + plain(_cut(line, 160)), soft_wrap=True)
    for line in step.data.get("http", ()):
        out.print(Text("   http>   ", style="yellow") + plain(line), soft_wrap=True)
    for line in step.data.get("pushes", ()):  # what the server pushed to a connection
        out.print(Text("   push>   ", style="magenta") + plain(line), soft_wrap=True)
    if step.outcome:
        out.print(Text("   = " + clean(step.outcome)))
    out.print()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render_timing(timing: Any) -> None:
    rows = [
        [
            s.label,
            f"{s.n:,}",
            human_ns(s.p50),
            human_ns(s.p95),
            human_ns(s.p99),
            "-" if s.speedup is None else f"{s.speedup:,.1f}x",
        ]
        for s in timing.stats
    ]
    out.print(table(timing.title, ["", "runs", "p50", "p95", "p99", "speedup (p50)"], rows))
    if timing.note:
        out.print(timing.note, style="dim")
    out.print()


BAR_WIDTH = 32


def _edge(value: int, unit: str, width: int) -> str:
    if unit == "ms" and width >= 100:
        return f"{value / 1000:,.{0 if width % 1000 == 0 else 1}f} s"
    return f"{value:,} {unit}"


def _render_histogram(histogram: Any) -> None:
    """One row per bucket, one bar per series, all bars on one scale."""
    edges, series = histogram.edges, histogram.series
    width = edges[1] - edges[0] if len(edges) > 1 else 0
    top = max((max(counts, default=0) for counts in series.values()), default=0) or 1
    t = Table(title=histogram.title, title_justify="left")
    t.add_column("bucket", justify="right", no_wrap=True)
    for name in series:
        t.add_column(name, no_wrap=True)
    for i in range(len(edges) - 1):
        low, high = (_edge(e, histogram.unit, width) for e in edges[i : i + 2])
        cells: list[Any] = [f"{low} - {high}"]
        for counts in series.values():
            n = counts[i]
            bar = "█" * (max(1, round(n / top * BAR_WIDTH)) if n else 0)
            cells.append(Text(bar, style="cyan") + Text(f" {n:,}" if n else ""))
        t.add_row(*cells)
    out.print(t)
    if histogram.note:
        out.print(histogram.note, style="dim")
    out.print()


def print_error(exc: FlightcacheError) -> None:
    """An error as the CLI prints it: one red line and its hint, on stderr, passwords scrubbed."""
    from flightcache.config import scrub

    err.print(styled("[bold red]error:[/bold red] {}", scrub(exc.message)), soft_wrap=True)
    if exc.hint:
        err.print(styled("[dim]hint:[/dim] {}", scrub(exc.hint)), soft_wrap=True)
