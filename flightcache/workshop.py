"""The workshop's chapters and the learner's progress through them.

A chapter is a Markdown file under ``workshop/`` (``NN-slug.md``) whose first
heading is its title. An HTML comment at its top, invisible where Markdown is
rendered, holds what the runner needs, in TOML::

    <!-- workshop
    minutes = 25
    demos = ["cache-aside", "write-through"]
    -->

``demos`` are the flightcache command lines the chapter steps through, in order
(``workshop run``); ``tour = false`` on a chapter keeps its demos out of the
non-stop tour. Progress (chapters read, demos run) is a small JSON file in the
state directory. Nothing here prints.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from flightcache.errors import FlightcacheError, UsageError
from flightcache.resources import resource_dir

_META = re.compile(r"\A\s*<!--\s*workshop\s*\n(.*?)-->\s*\n", re.DOTALL)
_FILE = re.compile(r"^(\d\d)-([a-z0-9-]+)\.md$")


@dataclass(frozen=True)
class Chapter:
    number: int
    slug: str
    title: str
    minutes: int
    demos: tuple[tuple[str, ...], ...]
    in_tour: bool
    body: str = field(repr=False)
    path: Path = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.number}. {self.title}"

    def commands_named(self) -> list[str]:
        """Every ``flightcache ...`` command line the chapter's code shows."""
        return named_commands(self.body)


def code_of(markdown: str) -> list[str]:
    """The code of a Markdown text: fenced blocks, indented blocks and `inline` spans."""
    pieces: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            pieces.append(line.split(" #")[0].strip())  # not the comment after a command
        else:
            pieces += re.findall(r"`([^`]+)`", line)
    return pieces


def named_commands(markdown: str) -> list[str]:
    """The command words after each ``flightcache`` in the code of ``markdown``
    (lowercase words and dashes, up to the first option, argument or other token)."""
    found = []
    for piece in code_of(markdown):
        for match in re.finditer(
            r"(?:^|[\s(|;&])flightcache((?: [a-z][a-z0-9-]*)+)(?=\s|$|[)|;&])", piece
        ):
            found.append(match.group(1).strip())
    return found


@cache
def workshop_root() -> Path:
    """The chapters: package data in a wheel, the top-level workshop/ in a checkout."""
    return resource_dir("chapters", "workshop")


def parse(path: Path) -> Chapter:
    match = _FILE.match(path.name)
    if not match:
        raise FlightcacheError(f"{path.name} is not named like a chapter (NN-slug.md)")
    text = path.read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    head = _META.match(text)
    if head:
        try:
            meta = tomllib.loads(head.group(1))
        except tomllib.TOMLDecodeError as exc:
            raise FlightcacheError(
                f"{path.name}: its workshop comment is not TOML: {exc}"
            ) from None
        text = text[head.end() :]
    title = next(
        (ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), match.group(2)
    )
    title = re.sub(r"^\d+\.\s*", "", title)
    demos = tuple(tuple(shlex.split(d)) for d in meta.get("demos", []))
    return Chapter(
        number=int(match.group(1)),
        slug=match.group(2),
        title=title,
        minutes=int(meta.get("minutes", 0)),
        demos=demos,
        in_tour=bool(meta.get("tour", True)),
        body=text,
        path=path,
    )


def chapters(root: Path | None = None) -> list[Chapter]:
    base = root or workshop_root()
    return [parse(p) for p in sorted(base.glob("*.md")) if _FILE.match(p.name)]


@dataclass(frozen=True)
class WorkshopPath:
    """A way through the workshop: which chapters, in order, for how long a session."""

    name: str
    about: str
    slugs: tuple[str, ...] | None  # None: every chapter

    def chapters(self, every: list[Chapter]) -> list[Chapter]:
        if self.slugs is None:
            return every
        by_slug = {c.slug: c for c in every}
        missing = [s for s in self.slugs if s not in by_slug]
        if missing:
            raise FlightcacheError(f"the {self.name} path names no chapter {missing}")
        return [by_slug[s] for s in self.slugs]

    def minutes(self, every: list[Chapter]) -> int:
        return sum(c.minutes for c in self.chapters(every))


# The chapters' minutes come from scripts/pacing.py (reading, the demos' steps, discussion).
PATHS = (
    WorkshopPath(
        "short",
        "about 1¾ hours: setting up, then 001's Module 1 (query caching)",
        ("setup", "query-caching"),
    ),
    WorkshopPath(
        "full",
        "about 3¾ hours: Modules 1 to 4 and the summary",
        ("setup", "query-caching", "universal-caching", "leaderboards", "sessions", "summary"),
    ),
    WorkshopPath("every", "all of it: the full workshop, advanced topics and the bench", None),
)


def find(ref: str, root: Path | None = None) -> Chapter:
    """A chapter by number (``3``, ``03``) or slug (``leaderboards``)."""
    every = chapters(root)
    for chapter in every:
        if (ref.isdigit() and int(ref) == chapter.number) or ref == chapter.slug:
            return chapter
    known = ", ".join(f"{c.number} ({c.slug})" for c in every)
    raise UsageError(f"no chapter {ref!r}", hint=f"the chapters are {known}")


class ChapterProgress:
    """The learner's progress, remembered between runs: ``{"chapters": {slug: {...}}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError):
            self.data = {}  # a damaged file is progress lost, not a crash
        self.data.setdefault("chapters", {})

    def chapter(self, slug: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.data["chapters"].setdefault(slug, {})
        return entry

    def mark(self, slug: str, what: str, value: Any = True) -> None:
        self.chapter(slug)[what] = value
        self.save()

    def ran(self, slug: str, demo: tuple[str, ...]) -> None:
        line = " ".join(demo)
        done: list[str] = self.chapter(slug).setdefault("demos_run", [])
        if line not in done:
            done.append(line)
        self.save()

    def status(self, chapter: Chapter) -> str:
        entry = self.data["chapters"].get(chapter.slug, {})
        done = len(entry.get("demos_run", []))
        if chapter.demos and done >= len(chapter.demos):
            return "done"
        if done:
            return f"{done}/{len(chapter.demos)} demos run"
        if entry.get("read"):
            return "read"
        return "not started"

    def save(self) -> None:
        from flightcache.stack.statedir import claim

        claim(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)
