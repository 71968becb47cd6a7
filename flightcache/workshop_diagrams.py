"""The chapters' Mermaid sequence diagrams, drawn as text for a terminal.

A chapter draws a pattern in a ```` ```mermaid ```` block, which renders on the web;
``flightcache workshop show`` prints the chapter with rich, which would show the
Mermaid source. :func:`for_terminal` replaces each such block with a text drawing
of the same diagram.

Understood: ``sequenceDiagram``; ``participant``/``actor`` (with ``as`` labels);
messages ``->>`` (a call), ``-->>`` (a reply), ``-x``/``--x`` (a call that fails),
``->``/``-->``; ``Note left of|right of|over A[,B]: ...``; ``alt``/``else``/``opt``/
``loop``/``end``; ``%%`` comments; ``<br/>`` in a text. Anything else leaves the
block as its Mermaid source, so nothing is drawn wrong.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

WIDTH = 76
"""A drawing fits in this many columns when it can (rich pads a code block by one
on each side: 78 in an 80-column terminal)."""

WRAPS = range(30, 11, -2)
"""The widths a message's or note's text is wrapped at, widest first, until the
drawing fits in :data:`WIDTH`."""

NOTE_WRAP = 24
"""A note is wrapped at no fewer columns than this (it does not widen the drawing)."""

_FENCE = re.compile(r"^```mermaid[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_PARTICIPANT = re.compile(r"^(participant|actor)\s+(\w+)(?:\s+as\s+(.+))?$")
_MESSAGE = re.compile(r"^(\w+)\s*(-->>|->>|--x|-x|-->|->)\s*(\w+)\s*:\s*(.*)$")
_NOTE = re.compile(r"^note\s+(left of|right of|over)\s+(\w+)(?:\s*,\s*(\w+))?\s*:\s*(.*)$", re.I)
_BLOCK = re.compile(r"^(alt|else|opt|loop|end)\b\s*(.*)$")


class Unsupported(ValueError):
    """A line of Mermaid this renderer does not draw."""


@dataclass
class _Diagram:
    ids: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    steps: list[tuple[str, ...]] = field(default_factory=list)

    def participant(self, ident: str, label: str | None = None) -> int:
        if ident not in self.labels:
            self.ids.append(ident)
            self.labels[ident] = ident
        if label:
            self.labels[ident] = label.strip()
        return self.ids.index(ident)


def _lines(text: str, wrap: int) -> list[str]:
    """A text's lines, split at ``<br/>`` and wrapped at ``wrap`` columns."""
    out: list[str] = []
    for part in re.split(r"<br\s*/?>", text.strip()):
        lines = textwrap.wrap(part.strip(), wrap, break_long_words=False, break_on_hyphens=False)
        out += lines or [""]
    return out


def parse(source: str) -> _Diagram:
    """The diagram a Mermaid source describes; Unsupported for what is not drawn here."""
    lines = [s.strip() for s in source.splitlines()]
    lines = [s for s in lines if s and not s.startswith("%%")]
    if not lines or lines[0] != "sequenceDiagram":
        raise Unsupported("not a sequenceDiagram")
    diagram, depth = _Diagram(), 0
    for line in lines[1:]:
        if m := _PARTICIPANT.match(line):
            diagram.participant(m.group(2), m.group(3))
        elif m := _MESSAGE.match(line):
            diagram.participant(m.group(1))
            diagram.participant(m.group(3))
            diagram.steps.append(("message", m.group(1), m.group(2), m.group(3), m.group(4)))
        elif m := _NOTE.match(line):
            diagram.participant(m.group(2))
            last = m.group(3) or m.group(2)
            diagram.participant(last)
            diagram.steps.append(("note", m.group(1).lower(), m.group(2), last, m.group(4)))
        elif m := _BLOCK.match(line):
            kind = m.group(1)
            depth += {"end": -1, "else": 0}.get(kind, 1)
            if depth < 0 or (kind == "else" and depth == 0):
                raise Unsupported(f"{kind!r} outside a block")
            diagram.steps.append(("block", kind, m.group(2)))
        else:
            raise Unsupported(f"not understood: {line!r}")
    if depth:
        raise Unsupported("a block without its end")
    if not diagram.ids:
        raise Unsupported("no participants")
    return diagram


class _Canvas:
    """Rows of characters that grow to the right as they are drawn on."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.rules: dict[int, str] = {}  # row index -> label of a full-width rule

    def row(self) -> int:
        self.rows.append([])
        return len(self.rows) - 1

    def put(self, row: int, col: int, text: str) -> None:
        line = self.rows[row]
        col = max(col, 0)
        if len(line) < col + len(text):
            line += [" "] * (col + len(text) - len(line))
        line[col : col + len(text)] = list(text)

    def text(self) -> str:
        width = max(len(r) for r in self.rows)
        for index, label in self.rules.items():
            line = self.rows[index]
            line += [" "] * (width - len(line))
            for col, char in enumerate(line):
                line[col] = "+" if char == "|" else "-"
            self.put(index, 1, f" {label} ")
        return "\n".join("".join(r).rstrip() for r in self.rows)


def _columns(diagram: _Diagram, wrap: int) -> list[int]:
    """The column of each participant's lifeline: room for its box and every text."""
    widths = [len(diagram.labels[i]) + 4 for i in diagram.ids]
    n = len(widths)
    gaps = [(widths[i] + 1) // 2 + (widths[i + 1] + 1) // 2 + 2 for i in range(n - 1)]
    spans: list[tuple[int, int, int]] = []
    for step in diagram.steps:
        if step[0] != "message":
            continue
        a, b = diagram.ids.index(step[1]), diagram.ids.index(step[3])
        need = max(len(t) for t in _lines(step[4], wrap))
        if a == b:
            spans.append((a, a + 1, need + 8))
        else:
            spans.append((min(a, b), max(a, b), need + 4))
    for lo, hi, need in sorted(spans, key=lambda s: s[1] - s[0]):
        if hi >= n:
            continue  # a self message on the last lifeline: the canvas grows
        short = need - sum(gaps[lo:hi])
        if short > 0:
            gaps[hi - 1] += short
    columns = [widths[0] // 2 + 1]
    for gap in gaps:
        columns.append(columns[-1] + gap)
    return columns


def draw(diagram: _Diagram, wrap: int = WRAPS[0]) -> str:
    """The diagram as text: participant boxes, lifelines, messages, notes and blocks;
    texts wrapped at ``wrap`` columns."""
    x = _columns(diagram, wrap)
    index = {ident: i for i, ident in enumerate(diagram.ids)}
    canvas = _Canvas()
    depth = 0  # blocks open: a rule's label is indented by two columns for each

    def lifelines() -> int:
        row = canvas.row()
        for col in x:
            canvas.put(row, col, "|")
        return row

    top, middle, bottom = canvas.row(), canvas.row(), canvas.row()
    for ident, col in zip(diagram.ids, x, strict=True):
        label = diagram.labels[ident]
        left = col - (len(label) + 4) // 2
        canvas.put(top, left, "+" + "-" * (len(label) + 2) + "+")
        canvas.put(middle, left, f"| {label} |")
        canvas.put(bottom, left, "+" + "-" * (len(label) + 2) + "+")
    lifelines()
    for step in diagram.steps:
        if step[0] == "message":
            _, src, arrow, dst, text = step
            a, b = index[src], index[dst]
            lines = _lines(text, wrap)
            if a == b:
                for i, line in enumerate(lines):
                    canvas.put(lifelines(), x[a] + 1, ("--+ " if i == 0 else "  | ") + line)
                canvas.put(lifelines(), x[a] + 1, "<-+")
            else:
                for line in lines:
                    canvas.put(lifelines(), min(x[a], x[b]) + 2, line)
                length = abs(x[b] - x[a]) - 1
                body = ("- " * length)[:length] if arrow.startswith("--") else "-" * length
                body = body if a < b else body[::-1]  # a dash next to the sender's lifeline
                head = "x" if arrow.endswith("x") else (">" if a < b else "<")
                shaft = body[:-1] + head if a < b else head + body[1:]
                canvas.put(lifelines(), min(x[a], x[b]) + 1, shaft)
        elif step[0] == "note":
            _, where, first, last, text = step
            a, b = index[first], index[last]
            lines = _lines(text, max(wrap, NOTE_WRAP, abs(x[b] - x[a]) - 4))
            inner = max(len(t) for t in lines)
            if where == "right of":
                left = x[a] + 2
            elif where == "left of":
                left = x[a] - inner - 5
            else:
                left = (x[min(a, b)] + x[max(a, b)]) // 2 - (inner + 4) // 2
            left = max(min(left, x[-1] + 2 - (inner + 4)), 0)  # not past the last lifeline
            canvas.put(lifelines(), left, "+" + "-" * (inner + 2) + "+")
            for line in lines:
                canvas.put(lifelines(), left, f"| {line.ljust(inner)} |")
            canvas.put(lifelines(), left, "+" + "-" * (inner + 2) + "+")
        else:
            _, kind, label = step
            depth -= kind in ("else", "end")
            canvas.rules[lifelines()] = "  " * depth + f"{kind} {label}".strip()
            depth += kind != "end"
    lifelines()
    return canvas.text()


def render(source: str) -> str | None:
    """A Mermaid sequence diagram as text; None when it holds what is not drawn here."""
    try:
        diagram = parse(source)
    except Unsupported:
        return None
    for wrap in WRAPS:
        drawn = draw(diagram, wrap)
        if max(len(line) for line in drawn.splitlines()) <= WIDTH:
            break
    return drawn


def for_terminal(markdown: str) -> str:
    """``markdown`` with each ```` ```mermaid ```` block it can draw replaced by a
    ```` ```text ```` block of the drawing (the others stay as they are)."""

    def replace(match: re.Match[str]) -> str:
        drawn = render(match.group(1))
        return match.group(0) if drawn is None else f"```text\n{drawn}\n```"

    return _FENCE.sub(replace, markdown)


def sources(markdown: str) -> list[str]:
    """The source of every ```` ```mermaid ```` block of ``markdown``, in order."""
    return [m.group(1) for m in _FENCE.finditer(markdown)]
