"""The summary's "choosing" sections state facts of the code: check them against it.

The failure tables name demo steps, the key section names hash tags and TTLs; a
change to a demo, to keys.py or to a TTL that the summary does not follow fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from flightcache.keys import Keys
from flightcache.patterns import leaderboard_periods, session, write_behind_worker
from flightcache.patterns.cache_aside import CacheAside
from flightcache.patterns.nested_doll_layers import LAYERS
from flightcache.patterns.write_through import ROW_TTL, WriteThrough

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = (ROOT / "workshop" / "07-summary.md").read_text()
DEMOS = "\n".join(p.read_text() for p in (ROOT / "flightcache" / "demos").glob("*.py"))


def _section(title: str) -> str:
    start = SUMMARY.index(f"## {title}\n")
    end = SUMMARY.find("\n## ", start + 1)
    return SUMMARY[start : end if end >= 0 else None]


def _default(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]


def test_every_demo_step_the_failure_tables_name_exists() -> None:
    steps = re.findall(r'step "([^"]+)"', _section("What fails, pattern by pattern"))
    assert len(steps) >= 6
    for title in steps:
        pattern = ".*?".join(re.escape(part.strip()) for part in title.split("..."))
        assert re.search(pattern, DEMOS), f"no demo step titled {title!r}"


def test_every_hash_tag_named_is_one_keys_py_makes() -> None:
    keys = Keys("fc:")
    made = [
        keys.board("b"),
        keys.board_applied("b"),
        keys.flight_seats(1),
        keys.write_behind_queue(0),
        keys.write_behind_dead_letters(0),
        keys.cached_item("x"),
        keys.stampede_lock("lock"),
        keys.slowlog_string(1),
        keys.airline_version(1),
    ]
    named = re.findall(r"^\| `(\{[^`]+\})`", _section("Keys: naming and cleanup"), re.MULTILINE)
    assert len(named) == 7
    for tag in named:
        prefix = tag.split("<")[0].rstrip("}")
        assert any(re.search(r"\{" + re.escape(prefix[1:]), key) for key in made), tag
    assert "{" not in keys.session("t"), "the summary says sessions carry no hash tag"


def test_the_ttls_and_limits_quoted_are_the_code_s() -> None:
    text = _section("Keys: naming and cleanup")
    assert ROW_TTL == 3600 and _default(CacheAside.__init__, "ttl") == 3600
    assert "query results and the airline hash 1 h" in text
    assert [layer.ttl_s for layer in LAYERS] == [86_400, 21_600, 300, 30]
    assert "24 h, 6 h,\n  5 min and 30 s" in text
    assert session.DEFAULT_TTL_S == 30 * 60 and "a session 30 min" in text
    day = 86_400
    periods = {"hourly": 2 * day, "daily": 7 * day, "monthly": 60 * day, "yearly": 730 * day}
    assert periods == leaderboard_periods.TTL
    assert "2 days (hourly)" in text and "730 days (yearly)" in text
    assert leaderboard_periods.WINDOW_TTL == 300
    fails = _section("What fails, pattern by pattern")
    assert write_behind_worker.ONCE_RETRIES == 6 and "after 6 failed attempts" in fails
    assert write_behind_worker.Worker.claim_idle_ms == 60_000 and "(60 s)" in fails
    assert _default(WriteThrough.__init__, "attempts") == 3 and "tried 3 times" in fails
