"""The process that runs a learner's code: ``python -P -m flightcache.exercises.child``.

It reads one JSON document on stdin (the exercise, the learner's file, the checks
to run, the URLs, the run's key prefix), and answers with one JSON event per line
on the stdout it had at start: ``connected``, ``ready`` once the learner's file is
imported, then ``start`` and ``result`` per check,
with ``ledger`` events for rows to delete afterwards; or ``error`` (the servers
cannot be used) or ``load-failed`` (the learner's file raised while importing).
What the learner's code prints goes to stderr, never into the events.

The parent enforces the time limit of each check by killing this process; a
faulthandler dump just before that tells it which line was running.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from flightcache.errors import FlightcacheError

DUMP_MARGIN_S = 0.3


def _emit(stream: IO[str], **event: Any) -> None:
    stream.write(json.dumps(event, default=str) + "\n")
    stream.flush()


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"flightcache_exercise_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    events = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the learner's print() goes to stderr, not into the events
    sys.stdout = sys.stderr
    spec = json.loads(sys.stdin.read())

    from flightcache.config import DbUrl, ValkeyUrl
    from flightcache.db import connect as db_connect
    from flightcache.exercises.catalogue import get
    from flightcache.exercises.checks import CHECKS
    from flightcache.exercises.harness import (
        CheckContext,
        CheckFailed,
        ExerciseDb,
        Learner,
        where_in,
    )
    from flightcache.keys import Keys
    from flightcache.valkey_client import connect

    exercise = get(spec["exercise"])
    try:
        admin = connect(ValkeyUrl.parse(spec["admin_url"]))
        client = connect(ValkeyUrl.parse(spec["learner_url"]))
        raw_db = db_connect(DbUrl.parse(spec["db_url"])) if spec.get("db_url") else None
    except FlightcacheError as exc:
        _emit(events, event="error", message=exc.message, hint=exc.hint or "")
        return 0

    _emit(events, event="connected")
    path = Path(spec["file"]).resolve()
    timeout = float(spec["timeout"])
    dump = open(spec["dump_file"], "w", encoding="utf-8")  # noqa: SIM115 - open for the process
    dump_after = max(timeout - DUMP_MARGIN_S, timeout / 2)  # before the parent kills us
    faulthandler.dump_traceback_later(dump_after, exit=False, file=dump)
    try:
        module = _load(path, exercise.filename[:-3])
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        _emit(events, event="load-failed", message=message, where=where_in(path, exc))
        return 0
    finally:
        faulthandler.cancel_dump_traceback_later()
    learner = Learner(module, path, exercise)
    learner_db = ExerciseDb(raw_db) if raw_db is not None else None
    by_name = {check.name: (n, check) for n, check in enumerate(CHECKS[exercise.name])}
    run_keys = Keys(spec["prefix"])
    _emit(events, event="ready")

    def ledger(kind: str, value: str) -> None:
        _emit(events, event="ledger", kind=kind, value=value)

    for name in spec["checks"]:
        number, check = by_name[name]
        learner.last_called = ""
        _emit(events, event="start", check=name)
        faulthandler.dump_traceback_later(dump_after, file=dump)
        ctx = CheckContext(
            learner=learner,
            valkey=client,
            admin=admin,
            keys=run_keys.scope(f"c{number}"),
            raw_db=raw_db,
            db=learner_db,
            ledger=ledger,
        )
        if learner_db is not None:
            learner_db.fetches = learner_db.failures = 0
            learner_db.fail_writes = False
        try:
            check.run(ctx)
        except CheckFailed as failed:
            _emit(
                events,
                event="result",
                check=name,
                passed=False,
                message=failed.message,
                hint=failed.hint,
                where=failed.where or learner.last_called,
            )
        except FlightcacheError as exc:
            _emit(events, event="error", message=exc.message, hint=exc.hint or "")
            return 0
        except Exception as exc:  # the checker's own reads failed on what the code left
            _emit(
                events,
                event="result",
                check=name,
                passed=False,
                message=f"checking what your code left failed: {type(exc).__name__}: {exc}",
                hint="store the type of value the docstring asks for (string, hash,"
                " sorted set, stream) under the key you were given",
            )
        else:
            _emit(events, event="result", check=name, passed=True)
        finally:
            faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
