"""The workshop runner, and the docs tied to the code: every command a chapter or
the README names exists (tests/test_cli.py checks the other way: every command has
help with an example, and a chapter)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer

from flightcache.config import DbUrl
from tests.demo_helpers import leftover_keys


def _resolve(words: list[str]) -> str | None:
    """None when ``flightcache <words>`` names a command (extra words are its
    arguments); else what is wrong."""
    from flightcache.cli import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    command: Any = root
    for depth, word in enumerate(words):
        if not hasattr(command, "get_command"):
            return None  # a leaf: the rest are its arguments
        found = command.get_command(ctx, word)
        if found is None:
            where = " ".join(words[:depth]) or "flightcache"
            return f"{where!r} has no command {word!r}"
        command = found
    return None


def test_every_command_a_chapter_names_exists() -> None:
    from flightcache.workshop import chapters, named_commands

    readme = Path(__file__).parent.parent / "README.md"
    texts = [(c.path.name, c.body) for c in chapters()]
    texts.append(("README.md", readme.read_text(encoding="utf-8")))
    wrong = []
    for name, body in texts:
        for line in named_commands(body):
            problem = _resolve(line.split())
            if problem:
                wrong.append(f"{name}: flightcache {line}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_a_misnamed_command_is_caught() -> None:
    """The check above can fail: a chapter naming a command that does not exist."""
    from flightcache.workshop import named_commands

    text = "Run `flightcache leaderboard topp airport-bookings` and\n\n    flightcache cache-asid\n"
    problems = [_resolve(line.split()) for line in named_commands(text)]
    assert problems == [
        "'leaderboard' has no command 'topp'",
        "'flightcache' has no command 'cache-asid'",
    ]


def test_chapters_are_in_the_workshop_order() -> None:
    from flightcache.workshop import chapters

    every = chapters()
    assert [c.number for c in every] == sorted(c.number for c in every)
    assert every[0].slug == "setup"
    for chapter in every:
        assert chapter.title and chapter.minutes > 0, chapter.path.name
        for demo in chapter.demos:
            assert _resolve(list(demo)) is None, (chapter.path.name, demo)
    setup = every[0].body
    assert "CC BY 4.0" in setup, "the FlughafenDB attribution belongs where the data is introduced"


def test_list_show_and_unknown_chapter(cli: Any, tmp_path: Path) -> None:
    state = ("--state-dir", str(tmp_path / "state"))
    listing = cli(*state, "workshop")
    assert listing.code == 0, listing.out + listing.err
    assert "Module 1: Database query caching" in (listing.out + listing.err)
    assert "not started" in (listing.out + listing.err)
    shown = cli(*state, "workshop", "show", "1")
    assert shown.code == 0 and "cache-aside" in (shown.out + shown.err)
    assert "<!--" not in (shown.out + shown.err)  # the runner's metadata is not shown
    again = cli(*state, "workshop")
    assert "read" in (again.out + again.err)
    progress = json.loads((tmp_path / "state" / "workshop-progress.json").read_text())
    assert progress["chapters"]["query-caching"]["read"] is True
    unknown = cli(*state, "workshop", "show", "42")
    assert unknown.code == 2
    assert "no chapter '42'" in (unknown.out + unknown.err) and "the chapters are 0 (setup)" in (
        unknown.out + unknown.err
    )
    assert cli(*state, "workshop", "run", "nope").code == 2


def _servers(state: Path, db: DbUrl, valkey: Any, prefix: str) -> tuple[str, ...]:
    return (
        "--state-dir", str(state),
        "--db-url", db.url(redact=False),
        "--valkey-url", str(valkey.url),
        "--key-prefix", prefix,
    )  # fmt: skip


def test_run_a_chapter_records_progress(
    cli: Any, tiny_db_url: DbUrl, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    args = _servers(tmp_path / "state", tiny_db_url, valkey_server, key_prefix)
    result = cli(*args, "workshop", "run", "setup", "--no-pause")
    assert result.code == 0, result.out + result.err
    assert "demo 3/3: flightcache valkey PING" in (result.out + result.err)
    assert "PONG" in (result.out + result.err)
    listing = cli(*args, "workshop")
    assert "done" in (listing.out + listing.err)


def test_a_failing_demo_stops_run_with_its_code(
    cli: Any, valkey_server: Any, tmp_path: Path
) -> None:
    """No database there: the chapter's first demo fails as the CLI would, and run stops."""
    args = (
        "--state-dir", str(tmp_path / "state"),
        "--db-url", "postgresql://nobody@127.0.0.1:1/none",
        "--valkey-url", str(valkey_server.url),
    )  # fmt: skip
    result = cli(*args, "workshop", "run", "1", "--no-pause")
    assert result.code != 0
    assert "error:" in (result.out + result.err)
    assert "demo 2/10" in (result.out + result.err)  # query list needs no database
    assert "demo 3/" not in (result.out + result.err)


@pytest.fixture
def tiny_chapters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "chapters"
    root.mkdir()
    (root / "00-setup.md").write_text(
        '<!-- workshop\nminutes = 1\ndemos = ["valkey PING", "query list"]\n-->\n# Setup\n'
    )
    (root / "01-broken.md").write_text(
        '<!-- workshop\nminutes = 1\ndemos = ["leaderboard top no-such-board"]\n-->\n# Broken\n'
    )
    from flightcache import workshop

    monkeypatch.setattr(workshop, "workshop_root", lambda: root)
    return root


def test_tour_goes_on_after_a_failure_and_says_so(
    cli: Any,
    tiny_chapters: Path,
    tiny_db_url: DbUrl,
    valkey_server: Any,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    args = _servers(tmp_path / "state", tiny_db_url, valkey_server, key_prefix)
    result = cli(*args, "workshop", "tour", "--no-summary")
    assert result.code == 1, result.out + result.err
    assert "3 demos" in (result.out + result.err) and "1 failed" in (result.out + result.err)
    assert "no-such-board" in (result.out + result.err)


def test_tour_ends_with_the_summary_table_measured(
    cli: Any,
    tiny_chapters: Path,
    tiny_db_url: DbUrl,
    valkey_server: Any,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    (tiny_chapters / "01-broken.md").unlink()
    args = _servers(tmp_path / "state", tiny_db_url, valkey_server, key_prefix)
    result = cli(*args, "workshop", "tour", "--bench-duration", "1")
    text = result.out + result.err
    assert result.code == 0, text
    assert "2 demos" in text and "0 failed" in text
    summary = text[text.index("Performance improvements measured") :]
    for row in ("Airline", "Flight", "User", "Leaderboard"):  # rich may wrap the rest
        assert f"│ {row}" in summary, row
    assert leftover_keys(valkey_server.url, key_prefix) == []


def test_bad_metadata_is_a_clear_error(tmp_path: Path) -> None:
    from flightcache.errors import FlightcacheError
    from flightcache.workshop import parse

    bad = tmp_path / "02-bad.md"
    bad.write_text("<!-- workshop\nminutes = = 3\n-->\n# Bad\n")
    with pytest.raises(FlightcacheError, match=r"02-bad\.md: its workshop comment is not TOML"):
        parse(bad)


def test_the_list_shows_the_short_and_the_full_path_with_their_minutes(
    cli: Any, tmp_path: Path
) -> None:
    from flightcache.workshop import PATHS, chapters

    every = chapters()
    paths = {p.name: p for p in PATHS}
    assert set(paths) == {"short", "full", "every"}
    assert paths["every"].chapters(every) == every
    short = paths["short"].chapters(every)
    assert short and set(short) < set(paths["full"].chapters(every)) < set(every)
    # "about 90 minutes" and "about 3 hours", from the chapters' measured minutes
    assert 75 <= paths["short"].minutes(every) <= 105, paths["short"].minutes(every)
    assert 150 <= paths["full"].minutes(every) <= 240, paths["full"].minutes(every)
    listing = cli("--state-dir", str(tmp_path / "state"), "workshop")
    text = listing.out + listing.err
    assert listing.code == 0, text
    for path in PATHS:
        line = next(ln for ln in text.splitlines() if f" {path.name} " in ln)
        assert str(path.minutes(every)) in line, line


def test_a_path_naming_a_missing_chapter_is_a_clear_error() -> None:
    from flightcache.errors import FlightcacheError
    from flightcache.workshop import WorkshopPath, chapters

    with pytest.raises(FlightcacheError, match="names no chapter"):
        WorkshopPath("odd", "", ("setup", "nope")).minutes(chapters())


LEFT_OUT = "## What 001 has that flightcache leaves out, or teaches differently"


def _pointers_to_001(summary: str) -> list[tuple[str, str, str]]:
    """(001's first code, reason, where) of each row of the summary's 001 section."""
    section = summary.split(LEFT_OUT, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) != 3 or cells[0] in ("001 has", "001 does"):
            continue
        first = cells[0].split("`")
        rows.append((first[1] if len(first) > 2 else "", cells[1], cells[2]))
    return rows


def _unsupported_pointers(rows: list[tuple[str, str, str]], bodies: dict[int, str]) -> list[str]:
    """Rows without a reason, or naming a chapter that does not quote 001's code."""
    wrong = []
    for code, why, where in rows:
        if not why:
            wrong.append(f"{code or where}: no reason given")
        if where == "here":
            continue
        number = where.removeprefix("chapter ")
        if not number.isdigit() or int(number) not in bodies:
            wrong.append(f"{code}: 'where' must be 'here' or an existing chapter, not {where!r}")
        elif not code:
            wrong.append(f"a row pointing to {where} quotes no code of 001's")
        elif code not in bodies[int(number)]:
            wrong.append(f"{code}: {where} does not quote it")
    return wrong


def test_what_001_left_out_points_to_chapters_that_say_so() -> None:
    """Every row of the summary's 001 section gives a reason, and a row that points
    to a chapter names a piece of 001 that chapter really discusses."""
    from flightcache.workshop import chapters

    found = chapters()
    bodies = {c.number: c.body for c in found}
    summary = next(c.body for c in found if LEFT_OUT in c.body)
    rows = _pointers_to_001(summary)
    assert len(rows) >= 10
    assert any(where == "here" for _, _, where in rows)
    assert any(where != "here" for _, _, where in rows)
    assert not _unsupported_pointers(rows, bodies)


def test_a_stale_pointer_to_001_is_caught() -> None:
    """The check above can fail: a row pointing to a chapter that does not quote it,
    a row without a reason, and a chapter that does not exist."""
    text = (
        f"{LEFT_OUT}\n\n| 001 has | why not here | where |\n|---|---|---|\n"
        "| a board, `flights:monthly:2025-10` | because | chapter 3 |\n"
        "| a thing, `X` |  | here |\n"
        "| a key, `Y` | why | chapter 42 |\n\n## Next\n"
    )
    rows = _pointers_to_001(text)
    assert _unsupported_pointers(rows, {3: "the weekly board `flights:weekly:2025-W43`"}) == [
        "flights:monthly:2025-10: chapter 3 does not quote it",
        "X: no reason given",
        "Y: 'where' must be 'here' or an existing chapter, not 'chapter 42'",
    ]
