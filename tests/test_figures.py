"""scripts/figures: the one command behind every figure the chapters quote."""

from __future__ import annotations

import re
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL, ValkeyInstance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from figures import cli, shared  # noqa: E402

SETS = [
    "cache-aside",
    "hit-eviction",
    "universal",
    "leaderboard",
    "leaderboard-ops",
    "session",
    "write-through",
    "write-behind",
    "invalidation",
    "stampede",
    "near-cache",
    "harness",
    "drop",
]
DOCS = [*sorted((ROOT / "workshop").glob("*.md")), ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
NAMED = re.compile(r"scripts/figures ([^`\n]+)`")


def test_every_figure_set_is_a_subcommand() -> None:
    assert [figure.name for figure in cli.FIGURES] == SETS
    parser = cli.build_parser()
    for name in SETS:
        assert parser.parse_args([name]).figure == name


def test_the_old_defaults_are_kept() -> None:
    """Each set measures with the defaults its old scripts/bench_*.py had."""
    parse = cli.build_parser().parse_args
    expected: dict[str, dict[str, Any]] = {
        "cache-aside": {"scale": "workshop", "hits": 5000, "db_runs": 30},
        "hit-eviction": {"requests": 5000, "yes": False},
        "universal": {
            "scale": "small",
            "api_latency_ms": 50.0,
            "api_timeout_ms": 500.0,
            "api_repeat": 100,
            "repeat": 500,
            "apis_on": "mysql",
        },
        "leaderboard": {"scale": "small", "repeat": 200, "n": 10, "period": "all"},
        "leaderboard-ops": {"runs": 5, "seconds": 3.0, "clients": 1, "cluster": False},
        "session": {"scale": "small", "sessions": 10_000, "reads": 5_000},
        "write-through": {"scale": "small", "repeat": 500},
        "write-behind": {"scale": "tiny", "writes": 200_000, "batch": 2_000},
        "invalidation": {"scale": "tiny", "sizes": "10,100,1000,10000", "runs": 15},
        "stampede": {"scale": "tiny", "clients": 50, "rebuild_ms": 200, "expiries": 3},
        "near-cache": {"scale": "small", "writes": 10_000, "readers": 3, "results": 10_000},
        "harness": {"scale": "workshop", "runs": 2, "floor": 5, "out": None},
    }
    for name, values in expected.items():
        args = vars(parse([name]))
        assert {key: args[key] for key in values} == values, name
        assert args["drop"] is False and args["only"] is None and args["valkey_url"] is None
    assert not hasattr(parse(["leaderboard-ops"]), "scale")  # needs no dataset


def test_one_seed_and_one_database_per_scale() -> None:
    args = cli.build_parser().parse_args(
        [
            "session",
            "--scale",
            "tiny",
            "--pg",
            "postgresql://u@h:5432/other",
            "--only",
            "postgresql",
        ]
    )
    setup = shared.Setup(args)
    assert setup.kinds() == ["postgresql"]
    url = setup.database_url("postgresql")
    assert (url.database, url.host, url.port) == ("fc_figures_tiny", "h", 5432)
    assert setup.database_url("mysql", "small").database == "fc_figures_small"
    assert shared.SEED == 42  # `flightcache data load`'s default


def test_every_command_the_docs_name_exists() -> None:
    parser = cli.build_parser()
    named = []
    for doc in DOCS:
        for found in NAMED.finditer(doc.read_text()):
            argv = shlex.split(found.group(1))
            if argv[0] == "<set>":
                continue
            named.append(argv[0])
            if not any(arg.startswith("<") for arg in argv):
                parser.parse_args(argv)  # options too: SystemExit if one is unknown
            assert argv[0] in SETS, f"{doc.name}: scripts/figures {found.group(1)}"
    assert len(named) >= 8
    for doc in DOCS:  # the old scripts are gone; only those that need no dataset remain
        for script in re.findall(r"scripts/(bench_\w+\.py)", doc.read_text()):
            assert (ROOT / "scripts" / script).is_file(), f"{doc.name} names {script}"


def test_a_set_end_to_end_kept_between_runs_then_dropped(
    valkey_server: ValkeyInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"fc_test_figures_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(shared, "database_name", lambda scale: f"{name}_{scale}")
    argv = ["cache-aside", "--scale", "tiny", "--hits", "50", "--db-runs", "2"]
    argv += ["--only", "postgresql", "--pg", PG_URL]
    argv += ["--valkey-url", valkey_server.url.url(redact=False)]
    try:
        assert cli.main(argv) == 0
        first = capsys.readouterr().out
        assert "postgresql: loading scale tiny (seed 42)" in first
        assert "cache-aside hit costs" in first and "route analysis: cache hit is" in first
        assert cli.main([*argv, "--drop"]) == 0
        second = capsys.readouterr().out
        assert "loading" not in second  # kept between runs: not loaded again
        assert "cache-aside hit costs" in second
        assert "dropped postgresql://" in second and f"/{name}_tiny" in second
    finally:
        from flightcache.config import DbUrl
        from flightcache.db import drop_database

        drop_database(DbUrl.parse(PG_URL).with_database(f"{name}_tiny"))
