"""Files flightcache ships beside its code: the SQL and the workshop chapters."""

from __future__ import annotations

from pathlib import Path

from flightcache.errors import FlightcacheError


def resource_dir(packaged: str, checkout: str) -> Path:
    """``flightcache/<packaged>`` in a wheel, else ``<checkout>`` at the top of a source tree."""
    here = Path(__file__).parent
    for candidate in (here / packaged, here.parent / checkout):
        if candidate.is_dir():
            return candidate
    raise FlightcacheError(
        f"flightcache's {checkout}/ directory is missing from this installation",
        hint="reinstall flightcache",
    )
