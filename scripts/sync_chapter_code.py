"""Rewrite every code quote in workshop/*.md from the source regions it names.

    .venv/bin/python scripts/sync_chapter_code.py           # rewrite, list what changed
    .venv/bin/python scripts/sync_chapter_code.py --check   # exit 1 if any copy is stale

See flightcache/workshop_code.py for the markers. Run it after changing a quoted
region; tests/test_chapter_code.py fails until you do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flightcache.workshop_code import synced

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args()
    stale = []
    for chapter in sorted((ROOT / "workshop").rglob("*.md")):
        text = chapter.read_text(encoding="utf-8")
        new = synced(text, ROOT)
        if new != text:
            stale.append(chapter.relative_to(ROOT))
            if not args.check:
                chapter.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'rewrote'} {path}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
