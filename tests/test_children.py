"""Child processes flightcache starts: they die with a parent killed by SIGKILL, and a
``flightcache/`` (or ``multiprocessing/``) directory in the current directory is never
imported by them. Real processes, real signals, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from flightcache.config import DbUrl
from tests.conftest import server_args

pytestmark = pytest.mark.safety(10)
PAUSE_ENV = "FLIGHTCACHE_WB_PAUSE_BEFORE_ACK"  # the demo's test hook (demos/write_behind.py)

MALICIOUS = 'open({marker!r}, "a").write("imported from the current directory\\n")\n'


def _console_script() -> str:
    """The installed ``flightcache`` command: it puts its own directory, not the current
    one, on sys.path, as a learner's shell would run it."""
    script = Path(sys.executable).parent / "flightcache"
    assert script.exists(), script
    return str(script)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTCACHE_")}
    env["FLIGHTCACHE_CONFIG"] = str(tmp_path / "no-config.toml")
    env.pop("PYTHONSAFEPATH", None)
    return env


def _trap(directory: Path, marker: Path) -> None:
    """A ``flightcache`` and a ``multiprocessing`` package that leave a marker when imported."""
    for name in ("flightcache", "multiprocessing"):
        (directory / name).mkdir(parents=True)
        (directory / name / "__init__.py").write_text(MALICIOUS.format(marker=str(marker)))


def _load(db_url: DbUrl) -> None:
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    conn = connect(db_url)
    load_generated(conn, "tiny", 1)
    conn.close()


def _wait_for(what: str, test: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = test()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


Finder = Callable[[psutil.Process], list[psutil.Process]]


def _kill_parent_and_watch(command: list[str], tmp_path: Path, find: Finder, what: str) -> None:
    """Start ``command``; once ``find`` sees its children, SIGKILL it: every child it had
    then must be gone within 5 s."""
    parent = subprocess.Popen(
        command, cwd=tmp_path, env=_env(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        me = psutil.Process(parent.pid)
        _wait_for(what, lambda: find(me), 120)
        children = me.children(recursive=True)
        time.sleep(0.5)  # at work now
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    _assert_gone(children)


def _assert_gone(children: list[psutil.Process], seconds: float = 5) -> None:
    """Every one of ``children`` ends within ``seconds`` (a zombie counts as ended)."""
    deadline = time.monotonic() + seconds
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _alive(children)
    for p in left:  # do not leave them behind for the next test
        p.kill()
    assert not left, [" ".join(p.cmdline()[:6]) for p in left]


@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
def test_bench_processes_die_with_their_killed_parent(
    db_url: DbUrl, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    _load(db_url)
    command = [
        _console_script(), *server_args(db_url, valkey_server, key_prefix),
        "bench", "run", "valkey-get", "--clients", "2", "--processes", "2",
        "--duration", "60", "--warmup", "0.05",
    ]  # fmt: skip

    def workers(me: psutil.Process) -> list[psutil.Process]:
        kids = [p for p in me.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        return kids if len(kids) >= 2 else []

    _kill_parent_and_watch(command, tmp_path, workers, "two bench processes")


@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
def test_the_write_behind_demos_worker_dies_with_its_killed_parent(
    db_url: DbUrl, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    _load(db_url)
    command = [
        _console_script(), *server_args(db_url, valkey_server, key_prefix),
        "write-behind", "--burst", "200", "--batch", "50", "--crash-writes", "300000",
        "--repeat", "3", "--json",
    ]  # fmt: skip

    def restarted(me: psutil.Process) -> list[psutil.Process]:
        """The restarted worker (not the one the demo kills itself): it drains 300,000
        entries in batches of 50 and writes nothing until it is done."""
        found = []
        for p in me.children():
            try:
                if "worker" in p.cmdline() and PAUSE_ENV not in p.environ():
                    found.append(p)
            except psutil.NoSuchProcess:
                pass
        return found

    _kill_parent_and_watch(command, tmp_path, restarted, "the demo's restarted worker")


@pytest.mark.parametrize("db_url", ["mysql"], indirect=True)
def test_children_never_import_from_the_current_directory(
    db_url: DbUrl, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    """The demo's worker (``python -m flightcache``) and the bench's processes (spawned
    by multiprocessing, whose ``python -c`` puts the current directory first)."""
    _load(db_url)
    cwd, marker = tmp_path / "workdir", tmp_path / "MARKER"
    _trap(cwd, marker)
    common = [_console_script(), *server_args(db_url, valkey_server, key_prefix)]
    demo = subprocess.run(
        [*common, "write-behind", "--burst", "100", "--batch", "50", "--crash-writes", "200",
         "--repeat", "3", "--json"],
        cwd=cwd, env=_env(tmp_path), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    bench = subprocess.run(
        [*common, "bench", "run", "valkey-get", "--clients", "2", "--processes", "2",
         "--requests", "20", "--warmup", "0.05"],
        cwd=cwd, env=_env(tmp_path), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert not marker.exists(), marker.read_text()
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert bench.returncode == 0, bench.stderr[-2000:]


def test_a_child_dies_even_when_its_parent_died_first(tmp_path: Path) -> None:
    """The parent may be gone before the child asks to die with it: the child notices."""
    code = (
        "import os, sys, time\n"
        "from flightcache.children import die_with_parent\n"
        "die_with_parent(int(sys.argv[1]))\n"
        "time.sleep(30)\n"
    )
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait()
    child = subprocess.Popen([sys.executable, "-P", "-c", code, str(gone.pid)])
    assert child.wait(timeout=10) == -signal.SIGKILL


def test_a_program_started_with_the_preexec_hook_dies_with_its_parent() -> None:
    """Not flightcache's Python (a database client, say): the signal is armed before exec."""
    code = (
        "import subprocess, sys, time\n"
        "from flightcache.children import preexec_die_with_parent\n"
        "p = subprocess.Popen(['sleep', '60'], preexec_fn=preexec_die_with_parent())\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-P", "-c", code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    parent.stdout.close()
    _assert_gone([child])
