"""`flightcache room`: one instructor's server for a room of attendees."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run one Valkey and one database for a room of attendees, and see how they do.",
    no_args_is_help=True,
)
