"""Secrets (issue 12, item 9): a password is shown as *** wherever it would sit.

A real MariaDB account with a password; many commands run with it in the URL, in
each of the places a URL can carry it, on the paths that work and on those that
fail; then every line printed and every file written is searched for it. The
password is three characters long on purpose: too short for the scrubbing of
remembered secrets, so only redaction by the URL's shape can keep it out.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl, ValkeyUrl, scrub

pytestmark = pytest.mark.safety(9)

PASSWORD = "Zq!"


@pytest.fixture
def secret_user(mysql_url: DbUrl) -> Iterator[DbUrl]:
    """The tiny dataset in a fresh database, and an account with a password allowed into it."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    name = f"fc_test_{uuid.uuid4().hex[:8]}"
    admin = connect(mysql_url)  # plain on purpose: the same fixture runs on older code
    load_generated(admin, "tiny", 1)
    admin.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{PASSWORD}'")
    admin.execute(f"GRANT ALL ON `{mysql_url.database}`.* TO '{name}'@'%'")
    yield dataclasses.replace(mysql_url, user=name, password=PASSWORD)
    admin.execute(f"DROP USER '{name}'@'%'")
    admin.close()


def _urls(user: DbUrl) -> dict[str, str]:
    base = f"127.0.0.1:{user.port}/{user.database}"
    return {
        "user info": f"mysql://{user.user}:{PASSWORD}@{base}",
        "password parameter": f"mysql://{user.user}@{base}?password={PASSWORD}",
        "passwd parameter": f"mariadb://{user.user}@{base}?passwd={PASSWORD}&connect_timeout=5",
    }


def test_no_command_shows_the_password(
    cli: Any, secret_user: DbUrl, valkey_server: Any, key_prefix: str, tmp_path: Path
) -> None:
    said: list[str] = []
    valkey = str(valkey_server.url)
    state = ["--state-dir", str(tmp_path / "state"), "--key-prefix", key_prefix]
    for form, url in _urls(secret_user).items():
        common = ["--db-url", url, "--valkey-url", valkey, *state]
        exports = tmp_path / form.replace(" ", "-")
        exports.mkdir()
        runs = [
            ("data", "info"),
            ("data", "info", "--json"),
            ("doctor",),
            ("doctor", "--json"),
            ("query", "run", "top_airports_daily"),
            ("cache-aside", "--json"),
            (
                "bench", "run", "flight-search", "--requests", "20", "--warmup", "0",
                "--json", str(exports / "b.json"), "--csv", str(exports / "b.csv"),
                "--markdown", str(exports / "b.md"),
            ),
            ("bench", "run", "flight-search", "--requests", "10", "--warmup", "0", "--json", "-"),
        ]  # fmt: skip
        for args in runs:
            result = cli(*common, *args)
            said.append(f"{form} {args}: {result.code}\n{result.out}\n{result.err}")
            assert PASSWORD not in said[-1], said[-1]
            assert result.code == 0, said[-1]
        for path in exports.iterdir():
            assert PASSWORD not in path.read_text(), path
        assert (exports / "b.json").exists()
    # the paths that fail: a wrong password, no user, a port nobody listens on, a typo'd
    # parameter, a password given twice, a Valkey that wants no password
    base = f"127.0.0.1:{secret_user.port}/{secret_user.database}"
    failing = [
        ["--db-url", f"mysql://{secret_user.user}:{PASSWORD}x@{base}", "data", "info"],
        ["--db-url", f"mysql://:{PASSWORD}@{base}", "data", "info"],
        ["--db-url", f"mysql://u:{PASSWORD}@127.0.0.1:1/x", "doctor"],
        ["--db-url", f"mysql://u:{PASSWORD}@{base}?sslmod=require", "data", "info"],
        ["--db-url", f"mysql://u:{PASSWORD}@{base}?password={PASSWORD}", "data", "info"],
        ["--db-url", f"oracle://u:{PASSWORD}@h/x", "data", "info"],
        ["--db-url", f"mysql://u:{PASSWORD}@h:notaport/x", "data", "info"],
        ["--valkey-url", f"valkey://:{PASSWORD}@{valkey_server.url.address}", "valkey", "PING"],
        ["--valkey-url", f"valkey://{valkey_server.url.address}?password={PASSWORD}", "doctor"],
    ]
    for args in failing:
        result = cli(*state, *args)
        label = args[2:]  # the command; not the URL, which holds the password
        said.append(f"{label}: {result.code}\n{result.out}\n{result.err}")
        assert result.code != 0, said[-1]
    text = "\n".join(said)
    assert "***" in text
    assert PASSWORD not in text, [chunk for chunk in said if PASSWORD in chunk]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 9
    for path in written:
        assert PASSWORD not in path.read_text(errors="replace"), path


@pytest.mark.parametrize(
    "text",
    [
        "mysql://app:{pw}@h:3306/x",
        "mysql://:{pw}@h/x",
        "postgresql://u:{pw}@[::1]:5432/db?sslmode=require",
        "valkeys://default:{pw}@h:6380/0",
        "unix://:{pw}@/run/valkey.sock?db=0",
        "mysql://app@h/x?password={pw}&charset=utf8mb4",
        "postgresql://u@h/x?sslpassword={pw}",
        "host=h user=u password={pw} dbname=x",
        "host=h password='{pw} with spaces' dbname=x",
        '{{"url": "mysql://a:{pw}@h/x", "password": "{pw}"}}',
        "connect to 'mysql://a:{pw}@h/x' failed",
    ],
)
@pytest.mark.parametrize("pw", ["a", "Zq!", "p@ss:word"])
def test_scrub_redacts_by_shape_at_any_length(text: str, pw: str) -> None:
    shown = scrub(text.format(pw=pw))
    assert "***" in shown
    rest = shown.replace("***", "")
    if len(pw) > 1:
        assert pw not in rest, shown
    else:  # a one-letter password: the characters around it must be gone with it
        assert f":{pw}@" not in shown and f"={pw}" not in shown, shown


def test_urls_print_their_secret_parameters_as_stars() -> None:
    db = DbUrl.parse("postgresql://u@h/x?sslpassword=Kp9&sslmode=verify-full")
    vk = ValkeyUrl.parse("valkeys://h:6380?ssl_password=Kp9&ssl_cert_reqs=required")
    for text in (str(db), repr(db), str(vk), repr(vk)):
        assert "Kp9" not in text
    assert "sslmode=verify-full" in str(db) and "ssl_cert_reqs=required" in str(vk)
    assert "sslpassword=Kp9" in db.url(redact=False)


def test_bench_export_of_a_command_line_with_a_password(tmp_path: Path) -> None:
    from flightcache.bench import report

    line = f"flightcache --db-url mysql://u:{PASSWORD}@h/x bench run"
    for name in ("out.json", "out.md"):
        report.write(str(tmp_path / name), f"command: {line}\n")
        assert PASSWORD not in (tmp_path / name).read_text()


def test_both_consoles_redact_whatever_they_print(capsys: pytest.CaptureFixture[str]) -> None:
    """Text built anywhere (a driver message, a table cell, a JSON document) is redacted
    on its way out, not only the URLs that know how to print themselves."""
    from rich.text import Text

    from flightcache.console import err, out, table

    out.print(Text(f"sql> connect mysql://app:{PASSWORD}@h/x"))
    out.print(table("t", ["url"], [[f"postgresql://u@h/x?password={PASSWORD}"]]))
    out.print_json(f'{{"password": "{PASSWORD}"}}')
    err.print(f"driver said: host=h password={PASSWORD} dbname=x")
    captured = capsys.readouterr()
    assert captured.out.count("***") == 3 and "***" in captured.err
    assert PASSWORD not in captured.out + captured.err


@pytest.mark.parametrize(
    "args",
    [
        ["doctor", "mysql://u:{pw}@h/x"],  # an extra argument click quotes back
        ["--db-url", "mysql://u:{pw}@h/x", "--no-such-option"],
        ["cache-aside", "--repeat", "mysql://u:{pw}@h/x"],  # a value that is no integer
    ],
)
@pytest.mark.safety(8, 9)
def test_usage_errors_show_neither_password_nor_control_codes(
    cli: Any, args: list[str], tmp_path: Path
) -> None:
    typed = [a.format(pw=PASSWORD + "\x1b[2J") for a in args]
    result = cli("--state-dir", str(tmp_path / "state"), *typed)
    assert result.code == 2, result.err
    assert PASSWORD not in result.out + result.err
    assert "\x1b" not in result.err, repr(result.err)
    assert "Error" in result.err
