"""The exercises: names, topics, and where their starter and solution files live.

In a wheel the files are package data (``flightcache/exercises/files``, from
``workshop/exercises`` by pyproject's force-include); in a source checkout or an
editable install they are read from the repository's ``workshop/exercises``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from flightcache.errors import FlightcacheError, UsageError
from flightcache.resources import resource_dir


@dataclass(frozen=True)
class Exercise:
    name: str
    topic: str
    functions: tuple[str, ...]
    uses_db: bool = False
    needs_data: bool = False

    @property
    def filename(self) -> str:
        return self.name.replace("-", "_") + ".py"

    @property
    def start_marker(self) -> str:
        return f"# START {self.name}"

    @property
    def end_marker(self) -> str:
        return f"# END {self.name}"


EXERCISES: dict[str, Exercise] = {
    e.name: e
    for e in (
        Exercise(
            "cache-aside",
            "read a named query through Valkey with a TTL (Module 1)",
            ("cached_query",),
            uses_db=True,
            needs_data=True,
        ),
        Exercise(
            "write-through",
            "rename an airline in the database, then in Valkey (Module 1)",
            ("rename_airline",),
            uses_db=True,
            needs_data=True,
        ),
        Exercise(
            "write-behind",
            "a worker applies queued bookings, then acknowledges them (Module 1)",
            ("drain",),
            uses_db=True,
        ),
        Exercise(
            "leaderboard",
            "scores, competition ranks (ties shared) and the top N on a sorted set (Module 3)",
            ("add_points", "rank", "top"),
        ),
        Exercise(
            "sessions",
            "a session hash with a sliding expiry: login, get, touch (Module 4)",
            ("login", "get_session", "touch"),
        ),
        Exercise(
            "stampede-lock",
            "a rebuild lock: SET NX PX with a token, released by its owner (advanced)",
            ("acquire", "release"),
        ),
        Exercise(
            "near-cache",
            "a near cache's local store: bounded, and never trusted past a lost"
            " invalidation (advanced)",
            ("lookup", "ticket", "keep", "on_invalidate", "on_tracking_lost"),
        ),
    )
}


def get(name: str) -> Exercise:
    try:
        return EXERCISES[name]
    except KeyError:
        raise UsageError(
            f"no exercise named {name!r}",
            hint=f"the exercises are: {', '.join(EXERCISES)} (`flightcache exercise list`)",
        ) from None


@cache
def files_root() -> Path:
    return resource_dir("exercises/files", "workshop/exercises", what="exercise files")


def starter_path(exercise: Exercise) -> Path:
    return files_root() / exercise.filename


def solution_path(exercise: Exercise) -> Path:
    return files_root() / "solutions" / exercise.filename


def block(exercise: Exercise, text: str) -> str:
    """The code between the exercise's START and END markers."""
    start, end = re.escape(exercise.start_marker), re.escape(exercise.end_marker)
    pattern = re.compile(rf"^{start}[ \t]*\n(.*?)^{end}[ \t]*$", re.MULTILINE | re.DOTALL)
    found = pattern.search(text)
    if found is None:
        raise FlightcacheError(
            f"the markers {exercise.start_marker!r} and {exercise.end_marker!r} are missing",
            hint="the code to write sits between them; `flightcache exercise start "
            f"{exercise.name} --force` gives a fresh copy",
        )
    return found.group(1)


def solution_code(exercise: Exercise) -> str:
    """The reference solution: the code between the markers of the solution file."""
    return block(exercise, solution_path(exercise).read_text(encoding="utf-8"))


def reference_text(exercise: Exercise) -> str:
    """The whole exercise file as the reference solution completes it."""
    starter = starter_path(exercise).read_text(encoding="utf-8")
    return starter.replace(block(exercise, starter), solution_code(exercise), 1)
