"""Child processes that die with their parent and never import from the current directory.

Two promises for every Python process flightcache starts (a demo's worker, the bench's
processes, an exercise's check):

- It dies with its parent. On Linux the child asks the kernel for a signal when its
  parent exits (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread watches the
  parent's pid. Either way the child then checks that the parent it was started by is
  still its parent, since the parent may have died before the child got that far.
- It runs with ``-P`` (``PYTHONSAFEPATH=1`` for multiprocessing's spawn, whose command
  line we do not write), so a ``flightcache/`` or ``multiprocessing/`` directory in the
  current directory is never imported in its place.

A child started with :func:`python_command` and :func:`child_env` learns its parent from
``FLIGHTCACHE_PARENT_PID``; ``python -m flightcache`` calls :func:`adopt_parent_from_env`
first thing. A multiprocessing target calls :func:`die_with_mp_parent` first thing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

PARENT_ENV = "FLIGHTCACHE_PARENT_PID"
"""The pid of the flightcache process that started this one (read once, then removed)."""
SAFE_PATH_ENV = "PYTHONSAFEPATH"
PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.25


def python_command(args: Sequence[str]) -> list[str]:
    """This interpreter with ``-P``: the current directory is not put on sys.path."""
    return [sys.executable, "-P", *args]


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) plus this process as the child's parent."""
    env = dict(os.environ if base is None else base)
    env[PARENT_ENV] = str(os.getpid())
    env[SAFE_PATH_ENV] = "1"
    return env


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask Linux to send ``sig`` when the parent exits; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, sig: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sig)
            return
        time.sleep(WATCH_SECONDS)


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> str:
    """Arrange for this process to get ``sig`` when ``parent_pid`` exits; returns how
    ("pdeathsig" or "watch"). When the parent is gone already, the signal comes now."""
    how = "pdeathsig" if _prctl_pdeathsig(sig) else "watch"
    if how == "watch":
        threading.Thread(
            target=_watch, args=(parent_pid, sig), name="watch-parent", daemon=True
        ).start()
    if os.getppid() != parent_pid:  # it died before we asked
        os.kill(os.getpid(), sig)
    return how


def preexec_die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """For ``subprocess.Popen(preexec_fn=...)`` of a program that is not flightcache's
    own Python (a shell, a database client): Linux asks for the parent-death signal
    between fork and exec, and it survives the exec. None where there is no prctl.
    Start such a child from the main thread: the signal follows the creating thread."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arm() -> None:
        if not _prctl_pdeathsig(sig) or os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return arm


def adopt_parent_from_env() -> None:
    """In a child started with :func:`child_env`: die with that parent. The variable is
    removed, so that our own children do not take our parent for theirs."""
    value = os.environ.pop(PARENT_ENV, "")
    if value.isdigit() and int(value) > 1:
        die_with_parent(int(value))


def die_with_mp_parent() -> None:
    """In a multiprocessing child: die with the process that started it."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid:
        die_with_parent(parent.pid)


@contextmanager
def safe_path() -> Iterator[None]:
    """While this runs, Pythons started by multiprocessing's spawn get ``-P`` (through
    ``PYTHONSAFEPATH``): its ``python -c`` would otherwise put the current directory
    first on sys.path before it imports anything. Wrap the creation of queues and
    barriers too: they start multiprocessing's resource tracker, another Python."""
    before = os.environ.get(SAFE_PATH_ENV)
    os.environ[SAFE_PATH_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SAFE_PATH_ENV, None)
        else:
            os.environ[SAFE_PATH_ENV] = before
