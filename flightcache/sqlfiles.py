"""The SQL files under sql/: schema statements and named queries, per dialect.

In a wheel they are package data (flightcache/sql); in a source checkout they are
read from the repository's top-level sql/ directory.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from flightcache.errors import FlightcacheError
from flightcache.resources import resource_dir

Dialect = Literal["mysql", "postgresql"]
_DIRS: dict[str, str] = {"mysql": "mysql", "postgresql": "postgres"}
_NAME = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


@cache
def sql_root() -> Path:
    return resource_dir("sql", "sql")


def read(dialect: Dialect, filename: str) -> str:
    return (sql_root() / _DIRS[dialect] / filename).read_text(encoding="utf-8")


def statements(dialect: Dialect, filename: str) -> list[str]:
    """The statements of a file, split at semicolons that end a line; comments dropped."""
    text = read(dialect, filename)
    out: list[str] = []
    for chunk in re.split(r";[ \t]*\n", text + "\n"):
        lines = [ln for ln in chunk.splitlines() if not ln.strip().startswith("--")]
        stmt = "\n".join(lines).strip().rstrip(";").strip()
        if stmt:
            out.append(stmt)
    return out


@cache
def queries(dialect: Dialect) -> dict[str, str]:
    """Named queries of ``queries.sql``: ``-- name: x`` up to the next name."""
    text = read(dialect, "queries.sql")
    found: dict[str, str] = {}
    marks = list(_NAME.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip()
        lines = [ln for ln in body.splitlines() if not ln.strip().startswith("--")]
        found[mark.group(1)] = "\n".join(lines).strip().rstrip(";").strip()
    return found


def query(dialect: Dialect, name: str) -> str:
    try:
        return queries(dialect)[name]
    except KeyError:
        raise FlightcacheError(
            f"no query named {name!r} for {dialect}",
            hint="the named queries live in sql/<dialect>/queries.sql",
        ) from None
