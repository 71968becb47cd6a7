"""Files flightcache ships beside its code: the SQL, the chapters, the exercises, the Lua.

The one lookup for all of them. In a wheel they are package data under ``flightcache/``
(pyproject's force-include puts ``sql/`` at ``flightcache/sql`` and so on), found with
``importlib.resources``; in a source checkout or an editable install, the ones kept at
the top of the tree are read from there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flightcache.errors import FlightcacheError


def resource_dir(packaged: str, checkout: str | None = None, *, what: str | None = None) -> Path:
    """``flightcache/<packaged>`` when the package holds it, else ``<checkout>`` at the top
    of a source tree; ``what`` names the files in the error when neither is there."""
    package = Path(str(resources.files("flightcache")))
    candidates = [package / packaged]
    if checkout is not None:
        candidates.append(package.parent / checkout)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FlightcacheError(
        f"flightcache's {what or (checkout or packaged) + '/ directory'}"
        " is missing from this installation",
        hint="reinstall flightcache",
    )


def source_tree() -> Path | None:
    """The top of the source checkout this flightcache runs from (an editable install),
    or None when it runs from a wheel."""
    top = Path(str(resources.files("flightcache"))).parent
    pyproject = top / "pyproject.toml"
    if pyproject.is_file() and 'name = "flightcache"' in pyproject.read_text(encoding="utf-8"):
        return top
    return None
