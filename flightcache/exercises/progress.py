"""A learner's progress, remembered between runs in ``<state dir>/exercises.json``.

One entry per exercise started: the learner's file, when it was started, the
last check's score and when an exercise first passed. A file that cannot be
read as progress counts as none; it is replaced on the next write.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from flightcache.errors import ConfigError

FILENAME = "exercises.json"
Status = Literal["not started", "started", "passed"]


@dataclass
class ExerciseEntry:
    file: str
    started: str
    last_check: str = ""  # "3/5 passed"
    checked: str = ""
    passed: str = ""  # when every check first passed
    solution_shown: str = ""

    @property
    def status(self) -> Status:
        return "passed" if self.passed else "started"


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class ExerciseProgress:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILENAME
        self.entries: dict[str, ExerciseEntry] = self._read()

    def _read(self) -> dict[str, ExerciseEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        out: dict[str, ExerciseEntry] = {}
        for name, fields in raw.get("exercises", {}).items():
            if isinstance(fields, dict) and isinstance(fields.get("file"), str):
                known = {
                    k: str(v) for k, v in fields.items() if k in ExerciseEntry.__dataclass_fields__
                }
                out[str(name)] = ExerciseEntry(**known)
        return out

    def status(self, name: str) -> Status:
        entry = self.entries.get(name)
        return entry.status if entry else "not started"

    def started(self, name: str, file: Path) -> None:
        self.entries[name] = ExerciseEntry(file=str(file), started=_now())
        self.save()

    def checked(self, name: str, file: Path, passed: int, total: int) -> None:
        entry = self.entries.get(name) or ExerciseEntry(file=str(file), started=_now())
        entry.file = str(file)
        entry.checked = _now()
        entry.last_check = f"{passed}/{total} passed"
        if passed == total and not entry.passed:
            entry.passed = entry.checked
        self.entries[name] = entry
        self.save()

    def solution_shown(self, name: str) -> None:
        entry = self.entries.get(name)
        if entry is not None:
            entry.solution_shown = _now()
            self.save()

    def as_dict(self) -> dict[str, Any]:
        return {"exercises": {name: asdict(e) for name, e in sorted(self.entries.items())}}

    def save(self) -> None:
        try:
            from flightcache.stack.statedir import claim

            claim(self.path.parent)
            fd, tmp = tempfile.mkstemp(prefix=".exercises-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.as_dict(), fh, indent=2)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigError(
                f"cannot save exercise progress to {self.path}: {exc.strerror}",
                hint="check the state directory (--state-dir or FLIGHTCACHE_STATE_DIR)",
            ) from None
