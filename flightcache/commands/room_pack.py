"""`flightcache room pack`: the offline install folder for a room's laptops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flightcache.room.pack import PLATFORMS, PYTHONS


def pack(
    folder: Annotated[Path, typer.Argument(help="Folder to write (made if missing).")],
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            "-p",
            help=f"A laptop kind to pack for; repeat it. Default: all of {', '.join(PLATFORMS)}.",
        ),
    ] = None,
    python: Annotated[
        list[str] | None,
        typer.Option(
            "--python",
            help=f"A Python version to pack for; repeat it. Default: all of {', '.join(PYTHONS)}.",
        ),
    ] = None,
) -> None:
    """Write flightcache and all its dependencies as wheels into FOLDER, to install offline.

    Each platform and Python version is resolved with its own environment
    markers (uv, from `pip install 'flightcache[room]'`), then exactly those
    wheels are downloaded. Put the folder on a USB stick or a shared drive;
    attendees run `./scripts/quickstart --from FOLDER` or
    `pip install --no-index --find-links FOLDER flightcache`
    (FOLDER/README.txt says so). Needs the network, once.

    Examples:

    \b
      flightcache room pack /media/usb/flightcache
      flightcache room pack ./pack --platform linux-x86_64 --platform windows-amd64
      flightcache room pack ./pack --platform macos-arm64 --python 3.12
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from flightcache.console import err, human_bytes, out, styled
    from flightcache.room import pack as packing

    targets = packing.platforms(platform or [])
    versions = packing.pythons(python or [])
    packing.uv_binary()  # missing uv: say so before anything is written
    progress = Progress(
        TextColumn("{task.fields[label]:<20}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}", markup=False),
        console=err,
    )
    steps = 2 * len(versions)
    with progress:
        own = progress.add_task("building", total=1, label="flightcache")
        tasks = {p.name: progress.add_task("waiting", total=steps, label=p.label) for p in targets}

        def on_step(target: packing.Platform | None, what: str, done: int) -> None:
            task = own if target is None else tasks[target.name]
            progress.update(task, completed=done, description=what)

        report = packing.pack(folder, targets, versions, on_step=on_step)
    out.print(
        styled(
            "wrote {} wheels ({}) and README.txt to {}",
            len(report.wheels),
            human_bytes(report.size),
            report.folder,
        )
    )
    for key, pins in report.pins.items():
        out.print(styled("  {}: {} packages", key, len(pins)))
    if report.repaired:
        err.print(
            styled(
                "[dim]downloaded again {} wheel(s) a killed pack had left half-written: {}[/dim]",
                len(report.repaired),
                ", ".join(report.repaired),
            )
        )
    out.print(
        styled("install: [bold]pip install --no-index --find-links {} flightcache[/bold]", folder)
    )


def register(app: typer.Typer) -> None:
    app.command("pack")(pack)
