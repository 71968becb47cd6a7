"""Untrusted input (issue 12, item 8): text from the data or the command line is shown,
never obeyed as rich markup or terminal control sequences."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.safety

# what a hostile airline name, query parameter or argument may hold
PAYLOADS = ["[bold red]x[/]", "[/]", "\x1b]0;pwned\x07", "\x1b[2J"]
# ... and how each is shown: markup as typed, control characters written out
SHOWN = ["[bold red]x[/]", "[/]", "\\x1b]0;pwned\\x07", "\\x1b[2J"]


@pytest.fixture
def wide() -> Iterator[None]:
    """Both consoles wide enough that no table cell wraps a payload."""
    from flightcache import console

    saved = console.out._width, console.err._width
    console.out._width = console.err._width = 400
    yield
    console.out._width, console.err._width = saved


def _safe(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert "Traceback" not in text and "internal error" not in text, text


# -- text: markup and control sequences ------------------------------------------------------
def test_a_closing_tag_as_a_query_name_is_an_error_line_not_a_traceback(cli: Any) -> None:
    result = cli("query", "run", "[/]")
    assert result.code == 2
    assert "no query named '[/]'" in result.err
    _safe(result.out + result.err)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markup_and_escapes_in_an_argument_are_shown_not_obeyed(cli: Any, payload: str) -> None:
    result = cli("query", "run", payload, "--repeat", "1")
    assert result.code == 2
    _safe(result.out + result.err)
    assert f"no query named {payload!r}" in result.err


def test_markup_and_escapes_in_a_query_parameter(cli: Any, tiny_db_url: Any, wide: None) -> None:
    url = tiny_db_url.url(redact=False)
    for payload, shown in zip(PAYLOADS, SHOWN, strict=True):
        result = cli("--db-url", url, "query", "run", "flight_search", f"origin={payload}")
        assert result.code == 0, result.err
        _safe(result.out + result.err)
        assert f"origin={shown}" in result.out


def test_markup_and_escapes_in_airline_names_from_the_database(
    cli: Any, tiny_db_url: Any, wide: None
) -> None:
    from flightcache.db import connect

    db = connect(tiny_db_url)
    try:
        codes = [row[0] for row in db.fetch("SELECT iata FROM airline ORDER BY iata").rows]
        with db.transaction():
            for i, code in enumerate(codes):
                db.execute(
                    "UPDATE airline SET airlinename = %(name)s WHERE iata = %(code)s",
                    {"name": PAYLOADS[i % len(PAYLOADS)], "code": code},
                )
    finally:
        db.close()
    url = tiny_db_url.url(redact=False)
    result = cli("--db-url", url, "query", "run", "airline_route_analysis", "--limit", "50")
    assert result.code == 0, result.err
    _safe(result.out + result.err)
    for shown in SHOWN:
        assert shown in result.out


def test_renderers_on_a_terminal_send_no_foreign_control_sequence() -> None:
    """On a colour terminal rich writes its own escapes; none of the data's get through,
    whether a value reaches the console as a string, a table cell or a Text."""
    from flightcache import console
    from flightcache.patterns.base import Step, Table

    buffer = io.StringIO()
    term = console.SafeConsole(file=buffer, force_terminal=True, width=200, markup=False)
    step = Step(" ".join(PAYLOADS), why=PAYLOADS[2], outcome=PAYLOADS[3])
    step.sql.append("SELECT '" + PAYLOADS[3] + "'")
    original = console.out
    console.out = term
    try:
        console.render_record(step, 1)
        console.render_record(Table(PAYLOADS[1], ["a", "b"], [PAYLOADS[:2], PAYLOADS[2:]]), 2)
        term.print(*PAYLOADS)
        term.print(console.styled("[bold]{}[/bold] {} {} {}", *PAYLOADS))
    finally:
        console.out = original
    text = buffer.getvalue()
    assert "\x1b]0;pwned" not in text and "\x07" not in text and "\x1b[2J" not in text
    for shown in SHOWN:
        assert shown in text
