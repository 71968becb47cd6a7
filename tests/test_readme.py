"""README.md's command table is the commands' own help, written by cog."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_command_table_is_what_the_help_says(capsys: pytest.CaptureFixture[str]) -> None:
    from cogapp import Cog

    code = Cog().main(["cog", "--check", str(ROOT / "README.md")])
    said = capsys.readouterr()
    assert code == 0, (
        f"README.md's command table differs from --help: run `.venv/bin/cog -r README.md`\n"
        f"{said.out}{said.err}"
    )


def test_every_command_is_in_the_table_with_its_summary() -> None:
    from flightcache.cli import command_table

    table = command_table()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in text
    for command in ("up", "cache-aside", "write-behind worker", "bench run", "exercise check"):
        assert f"| `flightcache {command}` |" in table


def test_a_command_without_help_stops_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from flightcache import cli

    def undocumented() -> None:
        pass

    extra = typer.Typer()
    extra.command("bare")(undocumented)
    monkeypatch.setattr(cli, "app", typer.Typer())
    cli.app.add_typer(extra, name="x")
    with pytest.raises(ValueError, match="flightcache x bare has no help text"):
        cli.command_table()
