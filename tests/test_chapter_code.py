"""The chapters' code quotes are the source's own lines (flightcache.workshop_code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightcache.errors import FlightcacheError
from flightcache.workshop_code import LANGUAGES, Quote, quotes, regions, source_of, synced

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "workshop").rglob("*.md"))


def _all_quotes() -> list[tuple[Path, Quote]]:
    return [(path, q) for path in CHAPTERS for q in quotes(path.read_text(encoding="utf-8"))]


def test_the_chapters_quote_the_source() -> None:
    found = _all_quotes()
    assert len(found) >= 1
    assert {Path(q.path).parts[1] for _, q in found} >= {"patterns"}


@pytest.mark.parametrize(
    ("chapter", "quote"),
    _all_quotes(),
    ids=lambda v: v.label if isinstance(v, Quote) else v.name,
)
def test_every_quote_is_the_sources_current_text(chapter: Path, quote: Quote) -> None:
    assert quote.language == LANGUAGES[Path(quote.path).suffix], quote.label
    assert quote.shown == source_of(quote, ROOT), (
        f"{chapter.name}:{quote.line}: the copy of {quote.label} differs from the source;"
        " run scripts/sync_chapter_code.py"
    )


SOURCE = """\
def f():
    # region: outer
    a = 1
    # region: inner
    b = 2
    # endregion: inner
    return a + b
    # endregion: outer
"""


def test_regions_are_dedented_and_nested_markers_left_out() -> None:
    found = regions(SOURCE)
    assert found == {"inner": "b = 2", "outer": "a = 1\nb = 2\nreturn a + b"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("# region: a\nx\n", "region a never ends"),
        ("x\n# endregion: a\n", "endregion a without its region"),
        ("# region: a\n# endregion: a\n# region: a\n# endregion: a\n", "region a twice"),
    ],
)
def test_broken_markers_are_named(text: str, error: str) -> None:
    with pytest.raises(FlightcacheError, match=error):
        regions(text)


def test_a_stale_copy_is_found_and_rewritten(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SOURCE)
    chapter = "Text.\n\n<!-- code: m.py#inner -->\n```python\nb = 1\n```\n\nMore.\n"
    (stale,) = quotes(chapter)
    assert stale.shown == "b = 1" and source_of(stale, tmp_path) == "b = 2"
    fixed = synced(chapter, tmp_path)
    assert fixed == chapter.replace("b = 1", "b = 2")
    assert synced(fixed, tmp_path) == fixed
    with pytest.raises(FlightcacheError, match="has no region nowhere"):
        source_of(quotes(chapter.replace("#inner", "#nowhere"))[0], tmp_path)
    with pytest.raises(FlightcacheError, match="must be followed by a ``` block"):
        quotes("<!-- code: m.py#inner -->\ntext\n")


def test_workshop_show_highlights_the_quoted_code(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "120"}
    env["FLIGHTCACHE_STATE_DIR"] = str(tmp_path / "state")
    shown = subprocess.run(
        [sys.executable, "-m", "flightcache", "workshop", "show", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert "<!-- code:" not in plain  # the marker is invisible, as on the web
    line = next(ln for ln in shown.splitlines() if "get" in ln and "Lookup" in ln)
    # the keyword and the name are coloured apart: the block is highlighted as Python
    assert re.search(r"\x1b\[[0-9;]*m\s*def\s*\x1b\[0m", line), repr(line)
