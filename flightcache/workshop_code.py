"""Code that the chapters quote: regions of the source, copied, never retyped.

A region of a source file lies between two comment lines (Python ``#``, Lua
``--``), which editors also fold::

    # region: read
    ...the lines a chapter shows...
    # endregion: read

A chapter quotes it with an HTML comment, invisible when rendered, right before a
fenced block holding the copy::

    <!-- code: flightcache/patterns/cache_aside.py#read -->
    ```python
    ...the same lines, dedented...
    ```

``tests/test_chapter_code.py`` fails when a copy differs from its region, and
``scripts/sync_chapter_code.py`` rewrites every copy from the source. Paths are
relative to the top of the source tree. Nothing here prints.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from flightcache.errors import FlightcacheError

_REGION = re.compile(r"^\s*(?:#|--) (?P<end>end)?region: (?P<name>[a-z0-9_-]+)\s*$")
_QUOTE = re.compile(r"^<!-- code: (?P<path>[A-Za-z0-9_./-]+)#(?P<region>[a-z0-9_-]+) -->$")
_FENCE = re.compile(r"^```(?P<lang>[a-z]*)$")
LANGUAGES = {".py": "python", ".lua": "lua", ".sql": "sql"}


@dataclass(frozen=True)
class Quote:
    """One quoted region in a chapter: where it comes from and what the chapter shows."""

    path: str
    region: str
    language: str
    shown: str  # the fenced block's body, as the chapter has it
    line: int  # the chapter line of the <!-- code: --> comment, from 1
    body_start: int  # index of the block's first body line in the chapter's lines
    body_end: int  # index of its closing fence

    @property
    def label(self) -> str:
        return f"{self.path}#{self.region}"


def regions(text: str, path: str = "<source>") -> dict[str, str]:
    """Every region of a source text, dedented, marker lines of inner regions left out."""
    open_at: dict[str, list[str]] = {}
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        marker = _REGION.match(line)
        if marker:
            name = marker.group("name")
            if marker.group("end"):
                if name not in open_at:
                    raise FlightcacheError(f"{path}:{number}: endregion {name} without its region")
                found[name] = textwrap.dedent("\n".join(open_at.pop(name))).strip("\n")
            elif name in open_at or name in found:
                raise FlightcacheError(f"{path}:{number}: region {name} twice")
            else:
                open_at[name] = []
            continue
        for lines in open_at.values():
            lines.append(line)
    if open_at:
        raise FlightcacheError(f"{path}: region {', '.join(open_at)} never ends")
    return found


def quotes(chapter: str) -> list[Quote]:
    """Every ``<!-- code: path#region -->`` of a chapter, with the block after it."""
    lines = chapter.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = _QUOTE.match(line.strip())
        if not match:
            continue
        fence = _FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if fence is None:
            raise FlightcacheError(
                f"line {index + 1}: a code comment must be followed by a ``` block"
            )
        end = next((i for i in range(index + 2, len(lines)) if lines[i] == "```"), None)
        if end is None:
            raise FlightcacheError(f"line {index + 2}: the ``` block never closes")
        found.append(
            Quote(
                path=match.group("path"),
                region=match.group("region"),
                language=fence.group("lang"),
                shown="\n".join(lines[index + 2 : end]),
                line=index + 1,
                body_start=index + 2,
                body_end=end,
            )
        )
    return found


def source_of(quote: Quote, root: Path) -> str:
    """The region a quote names, as the source has it now."""
    path = root / quote.path
    if not path.is_file():
        raise FlightcacheError(f"{quote.label}: no file {quote.path}")
    found = regions(path.read_text(encoding="utf-8"), quote.path)
    if quote.region not in found:
        raise FlightcacheError(f"{quote.label}: {quote.path} has no region {quote.region}")
    return found[quote.region]


def synced(chapter: str, root: Path) -> str:
    """The chapter with every quote's block replaced by its region's current text."""
    lines = chapter.splitlines()
    for quote in reversed(quotes(chapter)):  # from the end, so indexes stay valid
        language = LANGUAGES.get(Path(quote.path).suffix, "")
        lines[quote.body_start - 1 : quote.body_end] = [
            f"```{language}",
            *source_of(quote, root).splitlines(),
        ]
    return "\n".join(lines) + ("\n" if chapter.endswith("\n") else "")
