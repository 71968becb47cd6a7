"""What an attendee's commands record for the instructor's ``room status``.

Only on a room account (the config's ``room`` key, or ``FLIGHTCACHE_ROOM``): after
every command that got as far as reading its settings, three keys under the
attendee's own prefix, the only keys their Valkey user may write:

* ``<prefix>room:activity`` (hash): ``last_seen`` (Unix seconds), ``command`` (the
  command line's words, options left out), ``exit`` (its exit code), and
  ``chapter``, the last workshop chapter whose demo or whose ``workshop run`` it was;
* ``<prefix>room:passed`` (set): the exercises whose ``exercise check`` passed;
* ``<prefix>room:failed`` (list, newest first, the last 20): JSON of each command
  that failed, with the first line of its error.

Recording never fails a command: Valkey gone or slow (one second at most) and the
command's result stands, with one dim line saying nothing was recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flightcache.keys import Keys

FAILED_KEPT = 20
RECORD_TIMEOUT_S = 1.0
INTERRUPTED = 130  # Ctrl-C is the attendee stopping a demo, not a failure


def command_words(root: Any, argv: Sequence[str]) -> list[str]:
    """The words of ``argv`` that name the command and its arguments, options and
    their values left out: ``--db-url X exercise check cache-aside --json`` gives
    ``exercise check cache-aside``. ``root`` is the click command of the app."""
    words: list[str] = []
    command, args = root, list(argv)
    while args:
        token = args.pop(0)
        if token == "--":
            words += args
            break
        if token.startswith("-"):
            if "=" not in token and _takes_value(command, token) and args:
                args.pop(0)
            continue
        sub = getattr(command, "commands", None)
        if sub is not None and token in sub:
            command = sub[token]
        words.append(token)
    return words


def _takes_value(command: Any, option: str) -> bool:
    for param in getattr(command, "params", []):
        if option in getattr(param, "opts", ()) and not getattr(param, "is_flag", False):
            return not getattr(param, "count", False)
    return False


def chapter_of(words: Sequence[str]) -> str | None:
    """The workshop chapter ("1. Query caching") a command line belongs to: that of a
    ``workshop run`` or ``workshop show``, else the chapter with a demo sharing the most
    leading words with it (``leaderboard top ...`` is a leaderboard chapter's demo
    whatever its arguments)."""
    from flightcache.workshop import chapters, find

    if len(words) >= 3 and words[0] == "workshop" and words[1] in ("run", "show"):
        try:
            return find(words[2]).label
        except Exception:  # an unknown chapter: the command itself said so
            return None
    best, label = 0, None
    for chapter in chapters():
        for demo in chapter.demos:
            shared = 0
            while shared < min(len(demo), len(words)) and demo[shared] == words[shared]:
                shared += 1
            if shared > best:
                best, label = shared, chapter.label
    return label


@dataclass
class Activity:
    """One attendee's record, as ``room status`` reads it."""

    last_seen: float | None = None
    command: str = ""
    exit: int | None = None
    chapter: str = ""
    passed: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def record(client: Any, keys: Keys, words: Sequence[str], code: int, error: str = "") -> None:
    """Write what one command did (see the module's docstring)."""
    activity, now = keys.room_activity(), time.time()
    fields: dict[str, Any] = {"last_seen": f"{now:.3f}", "command": " ".join(words), "exit": code}
    chapter = chapter_of(words)
    if chapter:
        fields["chapter"] = chapter
    client.hset(activity, mapping=fields)
    if code == 0 and len(words) >= 3 and words[:2] == ["exercise", "check"]:
        client.sadd(keys.room_passed(), words[2])
    if code not in (0, INTERRUPTED):
        entry = {"at": round(now, 3), "command": " ".join(words), "exit": code, "error": error}
        client.lpush(keys.room_failed(), json.dumps(entry))
        client.ltrim(keys.room_failed(), 0, FAILED_KEPT - 1)


def read(client: Any, keys: Keys) -> Activity:
    """One attendee's record; an empty one if they have run nothing yet."""
    found = client.hgetall(keys.room_activity())
    failed = []
    for raw in client.lrange(keys.room_failed(), 0, FAILED_KEPT - 1):
        try:
            failed.append(json.loads(raw))
        except ValueError:
            continue  # not ours: the attendee's Valkey user may write there too
    seen = found.get("last_seen")
    try:
        last_seen = float(seen) if seen is not None else None
    except ValueError:
        last_seen = None
    exit_text = str(found.get("exit", ""))
    return Activity(
        last_seen=last_seen,
        command=str(found.get("command", "")),
        exit=int(exit_text) if exit_text.lstrip("-").isdigit() else None,
        chapter=str(found.get("chapter", "")),
        passed=sorted(client.smembers(keys.room_passed())),
        failed=failed,
    )


def room(db: Any, client: Any) -> list[dict[str, Any]]:
    """Every registered attendee (from the instructor's database) with their record
    (read from Valkey as the instructor's user), as ``room status --json`` prints it."""
    from flightcache.room.registry import attendees

    out = []
    for entry in attendees(db):
        a = entry.attendee
        activity = read(client, Keys(a.key_prefix))
        out.append({"attendee": a.name, "ready": entry.ready, **activity.__dict__})
    return out
