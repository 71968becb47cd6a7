"""Run as `.venv/bin/python scripts/figures <set> [options]`; see `figures/__init__.py`."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a directory: import the package `figures` from scripts/
    _here = Path(__file__).resolve().parent
    sys.path[0] = str(_here.parent)
    sys.path.insert(1, str(_here.parent.parent))

from figures.cli import main

if __name__ == "__main__":
    sys.exit(main())
