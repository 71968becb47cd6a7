"""Untrusted input (issue 12, item 8): text from the data or the command line is shown,
never obeyed as rich markup or terminal control sequences; numbers and the key prefix
are checked before any server is contacted."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from flightcache.cli import app

pytestmark = pytest.mark.safety(8)

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


def test_demo_steps_show_a_hostile_airline_name_as_text(
    cli: Any, tiny_db_url: Any, valkey_server: Any, key_prefix: str, wide: None
) -> None:
    """The write-through and nested-doll demos narrate airline names read from the database."""
    from flightcache.db import connect

    name = PAYLOADS[1] + PAYLOADS[2]  # a closing tag and a terminal title in one
    db = connect(tiny_db_url)
    try:
        with db.transaction():
            db.execute("UPDATE airline SET airlinename = %(name)s", {"name": name})
    finally:
        db.close()
    servers = ["--db-url", tiny_db_url.url(redact=False), "--valkey-url", str(valkey_server.url)]
    for demo in ("write-through", "nested-doll"):
        result = cli(*servers, "--key-prefix", key_prefix, demo, "--repeat", "3")
        assert result.code == 0, result.err
        _safe(result.out + result.err)
        assert SHOWN[1] + SHOWN[2] in result.out or SHOWN[2] in result.out, demo


def test_renderers_on_a_terminal_send_no_foreign_control_sequence() -> None:
    """On a colour terminal rich writes its own escapes; none of the data's get through,
    whether a value reaches the console as a string, a table cell or a Text."""
    from flightcache import console
    from flightcache.demos.base import Step, Table

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


# -- numbers ----------------------------------------------------------------------------------
# What may legitimately be zero, negative or infinite; everything else refuses
# nan and inf (floats), 0 and -1 (every number) before it contacts a server.
# Each bad value is given to the command on its own, the other options as they are.
ANY_SIGN = {"--seed", "leaderboard range --min", "leaderboard range --max"}
INFINITE_OK = {"leaderboard range --min", "leaderboard range --max"}
ZERO_OK = ANY_SIGN | {
    "ttl --jitter",
    "invalidation --jitter",
    "invalidation --warm",
    "near-cache --entries",  # 0 skips the memory step
    "bench curve --warmup",
    "bench http --warmup",
    "serve --port",  # 0 asks the kernel for a free port
    "universal --api-latency-ms",
    "universal --api-failure-rate",
    "memory-pressure --slower-than",
    "stampede --rebuild-ms",
    "bench run --warmup",
    "bench run --read-ratio",
    "write-behind worker --claim-idle",
    "write-behind --crash-writes",
}


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command, and every group whose callback takes options (write-behind's demo)."""
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _numeric_options() -> list[tuple[str, list[str], str, list[str]]]:
    """(command, its arguments and required options, option, the values it must refuse)"""
    found = []
    for path, command in _commands(typer.main.get_command(app)):
        arguments = ["_x" for p in command.params if p.required and not p.opts[0].startswith("-")]
        if path[:1] == ("leaderboard",) and arguments:  # a board that exists: the number is wrong
            arguments[0] = "airport-bookings"
        for p in command.params:
            kind = p.type_descriptor.annotation
            if kind not in (int, float) or not p.opts[0].startswith("--"):
                continue
            name, where = p.opts[0], f"{' '.join(path)} {p.opts[0]}"
            others = [
                f"{o.opts[0]}=1"
                for o in command.params
                if o.required and o is not p and o.opts[0].startswith("--")
            ]
            bad = []
            if kind is float:
                bad.append("nan")
                if where not in INFINITE_OK:
                    bad += ["inf", "-inf"]
            if name not in ANY_SIGN and where not in ANY_SIGN:
                bad.append("-1")
                if where not in ZERO_OK:
                    bad.append("0")
            found.append((" ".join(path), [*path, *arguments, *others], name, bad))
    return found


NUMERIC = _numeric_options()
# the walk itself: it must reach the options issue 12 names, or it proves nothing
_WALKED = {(command, option) for command, _, option, _ in NUMERIC}
assert (
    len(NUMERIC) >= 90
    and {
        ("monitor", "--seconds"),
        ("bench run", "--rate"),
        ("bench run", "--duration"),
        ("bench run", "--requests"),
        ("bench run", "--clients"),
        ("bench run", "--processes"),
        ("bench run", "--zipf-s"),
        ("bench run", "--read-ratio"),
        ("query run", "--repeat"),
        ("write-behind worker", "--batch"),
        ("write-behind worker", "--max-seconds"),
        ("hit-ratio", "--ttl"),
        ("universal", "--api-latency-ms"),
        ("universal", "--api-failure-rate"),
        ("leaderboard top", "--n"),
        ("leaderboard simulate", "--seconds"),
    }
    <= _WALKED
), "the walk of the command tree misses options"


@pytest.fixture(scope="module")
def dead_port() -> int:
    """A loopback port nothing listens on: any connection attempt fails at once (exit 4)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CHECKED = [n for n in NUMERIC if n[3]]  # the seeds take any int


@pytest.mark.parametrize(
    ("command", "argv", "option", "bad"), CHECKED, ids=[f"{c} {o}" for c, _, o, _ in CHECKED]
)
def test_a_number_that_means_nothing_is_a_usage_error_before_any_server(
    cli: Any, tmp_path: Path, dead_port: int, command: str, argv: list[str], option: str,
    bad: list[str],
) -> None:  # fmt: skip
    servers = [
        "--db-url", f"postgresql://nobody@127.0.0.1:{dead_port}/none",
        "--valkey-url", f"valkey://127.0.0.1:{dead_port}",
        "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    for value in bad:
        result = cli(*servers, *argv, f"{option}={value}")
        said = result.out + result.err
        # 2: a usage error; 3: the configuration error some demos (ttl, memory,
        # write-behind) said before any of this, before any server too
        assert result.code in (2, 3), f"{option}={value}: exit {result.code}: {said}"
        assert option in said, said
        assert "cannot reach" not in said
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seconds", "nan"], "--seconds nan is not a number"),
        (["--seconds", "0"], "--seconds 0 must be above zero"),
        (["--seconds", "inf"], "--seconds inf is not a finite number"),
    ],
)
def test_monitor_seconds_says_what_is_wrong(cli: Any, args: list[str], fragment: str) -> None:
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "monitor", *args)
    assert result.code == 2
    assert result.err.startswith(f"error: {fragment}") and "hint:" in result.err


# -- the key prefix ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prefix",
    ["fc{x}:", "a b:", "fc:\x1b[2J", "fc\x00:", "fc\x7f", "flüge:", "x" * 65, "fc\\:", "fc*"],
    ids=["brace", "space", "escape", "nul", "del", "non-ascii", "too-long", "backslash", "glob"],
)
def test_a_key_prefix_that_would_break_keys_is_refused(cli: Any, prefix: str) -> None:
    result = cli("--key-prefix", prefix, "--valkey-url", "valkey://127.0.0.1:1", "valkey", "PING")
    assert result.code == 3, result.err
    assert "key prefix" in result.err
    _safe(result.out + result.err)


def test_a_key_prefix_from_the_environment_is_checked_too(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTCACHE_KEY_PREFIX", "fc:\x1bc")  # ESC c resets a terminal
    result = cli("--valkey-url", "valkey://127.0.0.1:1", "valkey", "PING")
    assert result.code == 3 and "key prefix" in result.err
    _safe(result.err)


def test_a_key_prefix_is_at_most_sixty_four_printable_characters() -> None:
    from flightcache.config import resolve
    from flightcache.errors import ConfigError

    prefix = "workshop:alice-01_" + "x" * 46
    assert resolve(key_prefix=prefix, environ={}).key_prefix == prefix
    with pytest.raises(ConfigError, match="more than 64"):
        resolve(key_prefix=prefix + "x", environ={})
