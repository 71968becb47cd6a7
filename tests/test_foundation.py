"""The pieces every demo stands on: keys, tracing, timing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flightcache.keys import Keys, digest
from flightcache.measure.timing import compare, percentile, schedule
from flightcache.trace import Tracer, format_command


def test_percentile_is_nearest_rank() -> None:
    data = list(range(1, 101))
    assert percentile(data, 50) == 50 and percentile(data, 95) == 95
    assert percentile(data, 100) == 100 and percentile([7], 99) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_compare_interleaves_and_reports_speedup() -> None:
    order: list[str] = []
    stats = compare(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeat=4, warmup=1
    )
    assert order == ["a", "b", "a", "a", "b", "b", "a", "a", "b", "b"]  # warm-up, then schedule
    assert [s.n for s in stats] == [4, 4] and stats[0].speedup == 1.0
    with pytest.raises(ValueError):
        compare({"a": lambda: None}, repeat=0)


class _SlowToFree:
    """An answer whose freeing takes 50 ms, as a big decoded result takes a while."""

    hit = True

    def __del__(self) -> None:
        time.sleep(0.05)


def test_a_sample_stops_the_clock_before_the_answer_is_freed() -> None:
    """A sample is the call until it returns; freeing what it returned is the caller's,
    after it has used it. With the freeing inside the clock, every sample would be 50 ms."""
    stats = compare({"answer": _SlowToFree}, repeat=4, warmup=0)
    assert stats[0].p99 < 25_000_000


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_every_contender_follows_every_contender_equally_often(n: int) -> None:
    """A call pays for what ran before it (measured: a GET right after a database query
    is 10-40 µs slower), so no contender may follow a slow one more often than another."""
    order = schedule(n)
    assert sorted(order) == sorted(list(range(n)) * n)
    pairs = [(order[k - 1], order[k]) for k in range(len(order))]  # k = 0: end to start
    assert sorted(pairs) == [(i, j) for i in range(n) for j in range(n)]
    calls: list[str] = []
    stats = compare({c: lambda c=c: calls.append(c) for c in "xyz"}, repeat=4, warmup=0)
    assert [s.n for s in stats] == [4, 4, 4] and len(calls) == 18  # two whole cycles of 9


def test_commands_print_as_valkey_cli_takes_them() -> None:
    assert format_command(["set", "fc:k", '{"a": 1}', "EX", 60]) == 'SET fc:k "{\\"a\\": 1}" EX 60'
    assert format_command(["GET", ""]) == 'GET ""'
    assert format_command(["SET", b"k\x00", "Zürich"]) == 'SET "k\\x00" "Z\\xc3\\xbcrich"'
    long = format_command(["SET", "k", "x" * 500], limit=20)
    assert long.endswith('..." (500 bytes)') and len(long) < 60


def test_keys_are_scoped_and_their_pattern_escaped() -> None:
    keys = Keys("fc:").scope("cache-aside")
    assert keys.query("q", {"a": 1}) == f"fc:cache-aside:query:q:{digest({'a': 1})}"
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert keys.match() == "fc:cache-aside:*"
    assert Keys("odd[1]:").match() == "odd\\[1\\]:*"


def test_tracer_records_and_steps_aside(valkey_server: Any, key_prefix: str) -> None:
    from flightcache.valkey_client import close, connect

    client = connect(valkey_server.url)
    tracer = Tracer()
    tracer.instrument(client)
    try:
        client.set(key_prefix + "t", "v", ex=5)
        pipe = tracer.pipeline(client)
        pipe.get(key_prefix + "t")
        pipe.execute()
        commands, _ = tracer.take()
        assert commands == [["SET", key_prefix + "t", "v", "EX", 5], ["GET", key_prefix + "t"]]
        with tracer.paused():
            assert "execute_command" not in client.__dict__  # the bare client is timed
            client.get(key_prefix + "t")
        assert tracer.take() == ([], [])
        client.delete(key_prefix + "t")
        assert tracer.take()[0] == [["DEL", key_prefix + "t"]]
    finally:
        close(client)


def test_valkey_lost_mid_demo_is_one_clear_error(
    tiny_db_url: Any, valkey_server: Any, key_prefix: str, capsys: Any
) -> None:
    """A demo whose Valkey goes away after a step ends in ConnectionFailed, not a traceback,
    and its on_exit actions still run."""
    import valkey.exceptions

    from flightcache.app import App, GlobalOptions
    from flightcache.commands import _demo
    from flightcache.errors import ConnectionFailed

    restored: list[bool] = []

    def demo(ctx: Any) -> Any:
        ctx.on_exit(lambda: restored.append(True))
        with ctx.step("write one key") as step:
            ctx.valkey.set(ctx.keys.prefix + "k", "v")
        yield step
        raise valkey.exceptions.ConnectionError("Connection reset by peer")

    class Ctx:
        obj = App(
            GlobalOptions(
                db_url=tiny_db_url.url(redact=False),
                valkey_url=str(valkey_server.url),
                key_prefix=key_prefix,
            )
        )

    with pytest.raises(ConnectionFailed, match="cannot reach Valkey"):
        _demo.run(Ctx(), "probe", demo, as_json=False, pause=False, repeat=1)  # type: ignore[arg-type]
    assert restored == [True]
    assert "1. write one key" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("ok", "on_purpose", "shown", "not_shown"),
    [
        (True, False, None, ("FAILED", "ON PURPOSE")),
        (False, False, "FAILED", ("ON PURPOSE",)),
        (False, True, "FAILS ON PURPOSE", ("FAILED",)),
    ],
)
def test_a_step_that_fails_on_purpose_is_not_printed_as_a_fault(
    monkeypatch: pytest.MonkeyPatch,
    ok: bool,
    on_purpose: bool,
    shown: str | None,
    not_shown: tuple[str, ...],
) -> None:
    import io

    from rich.console import Console

    from flightcache import console
    from flightcache.demos.base import Step

    buffer = io.StringIO()
    monkeypatch.setattr(console, "out", Console(file=buffer, width=120, highlight=False))
    step = Step("Read after logout", ok=ok)
    if on_purpose:
        step.fails_on_purpose()
    console.render_record(step, 1)
    head = buffer.getvalue().splitlines()[0]
    assert head.startswith("1. Read after logout")
    if shown:
        assert shown in head
    assert not any(word in head for word in not_shown)
    assert step.as_dict()["on_purpose"] is on_purpose


def test_exit_codes_are_named_once_in_errors() -> None:
    """No exit code is a bare number: Exit, SystemExit, sys.exit, os._exit and the error
    classes' exit_code take their value from errors.ExitCode."""
    import ast
    from pathlib import Path

    import flightcache
    from flightcache.errors import ExitCode, killed_by

    exits = {"Exit", "SystemExit", "exit", "_exit"}
    found: list[str] = []
    package = Path(flightcache.__file__).parent
    for path in sorted(package.rglob("*.py")):
        if path.name == "errors.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                given = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "code")]
                first = given[0] if given else None
                sides = [first.left, first.right] if isinstance(first, ast.BinOp) else [first]
                literal = any(
                    isinstance(n, ast.Constant) and isinstance(n.value, int) for n in sides
                )
                if name in exits and literal:
                    found.append(f"{path.relative_to(package)}:{node.lineno}")
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                named = any(
                    getattr(t, "id", getattr(t, "attr", "")) == "exit_code" for t in targets
                )
                if named and isinstance(node.value, ast.Constant):
                    found.append(f"{path.relative_to(package)}:{node.lineno}")
    assert found == []
    assert ExitCode.INTERRUPTED == killed_by(2) == 130 and ExitCode.INTERNAL == 70


def test_one_duration_formatter_keeps_three_significant_digits() -> None:
    from flightcache.measure.duration import human_ns, human_seconds

    assert [human_ns(n) for n in (512, 84_130, 3_214_000, 1_200_000_000)] == [
        "512 ns",
        "84.1 µs",
        "3.21 ms",
        "1.2 s",
    ]
    assert human_ns(None) == "-" and human_seconds(270) == "4.5 min"
    assert human_seconds(77_760) == "21.6 h" and human_seconds(0.5) == "500 ms"
    assert human_seconds(86_400) == "24 h" and human_seconds(54) == "54 s"
    assert human_ns(12_345_678_000_000) == "3.43 h" and human_ns(99_999) == "100 µs"
    assert human_ns(999_999) == "1 ms" and human_ns(59_990_000_000) == "1 min"


def test_valkey_errors_become_flightcache_errors() -> None:
    import valkey.exceptions

    from flightcache.config import ValkeyUrl
    from flightcache.errors import ConnectionFailed, ValkeyCommandError
    from flightcache.valkey_client import valkey_errors

    url = ValkeyUrl.parse("valkey://:secret@127.0.0.1:1")
    asked: list[int] = []

    def lazy() -> ValkeyUrl:
        asked.append(1)
        return url

    with valkey_errors(lazy):
        pass
    assert asked == []  # the URL is asked for only when there is an error to report
    with pytest.raises(ConnectionFailed, match="cannot reach Valkey"), valkey_errors(lazy):
        raise valkey.exceptions.ConnectionError("refused")
    assert asked == [1]
    with pytest.raises(ValkeyCommandError, match="WRONGTYPE"), valkey_errors(url):
        raise valkey.exceptions.ResponseError("WRONGTYPE oops")


def test_one_resource_lookup() -> None:
    """Only resources.py finds shipped files: no other module looks beside its own file
    or asks importlib.resources itself."""
    from pathlib import Path

    import flightcache
    from flightcache.resources import resource_dir

    package = Path(flightcache.__file__).parent
    others = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name != "resources.py"
        and any(
            marker in path.read_text(encoding="utf-8")
            for marker in (
                "Path(__file__)",
                "importlib.resources",
                "from importlib import resources",
            )
        )
    ]
    assert others == []
    assert (resource_dir("sql", "sql") / "mysql" / "queries.sql").is_file()
    assert (resource_dir("lua") / "__init__.py").is_file()
    with pytest.raises(Exception, match="nothing-here/ directory is missing"):
        resource_dir("nothing-here")
