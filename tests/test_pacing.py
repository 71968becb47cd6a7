"""scripts/pacing.py: each chapter's minutes from its text, its demos' steps and their
wall time, and the headers set from them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _pacing() -> Any:
    path = ROOT / "scripts" / "pacing.py"
    spec = importlib.util.spec_from_file_location("pacing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pacing"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CHAPTER = """<!-- workshop
minutes = 5
demos = ["cache-aside", "valkey PING"]
-->
# Module 9: A test

One two three four five six.
<!-- code: flightcache/x.py#y -->
```python
a = 1
b = 2
```
"""


def test_text_counts_prose_words_and_code_lines_not_comments() -> None:
    pacing = _pacing()
    body = CHAPTER.split("-->\n", 1)[1]
    assert pacing.text_of(body) == (11, 2)  # five tokens of the heading, six words; two lines


def test_steps_are_counted_from_a_demos_json_and_plain_output_is_one() -> None:
    pacing = _pacing()
    doc = {"records": [{"type": "step"}, {"type": "timing"}, {"type": "step"}]}
    assert pacing.count_steps(json.dumps(doc)) == 2
    assert pacing.count_steps("PONG\n") == 1


def test_minutes_add_reading_steps_demos_and_wall_time_in_fives(tmp_path: Path) -> None:
    pacing = _pacing()
    path = tmp_path / "09-test.md"
    path.write_text(CHAPTER, encoding="utf-8")
    from flightcache.workshop import parse

    chapter = parse(path)
    measured = {"test": {"cache-aside": {"seconds": 120.0, "steps": 10}}}
    found = pacing.pace(chapter, measured)
    assert found.steps == 11  # 10 measured, and an unmeasured demo counts one
    assert found.demo_seconds == 120.0
    expected = (
        120 / 60
        + 10 / pacing.READ_WPM
        + 2 / pacing.CODE_LINES_PER_MIN
        + 11 * pacing.STEP_MINUTES
        + 2 * pacing.DEMO_MINUTES
    )
    assert found.minutes % 5 == 0 and expected <= found.minutes < expected + 5


def test_write_sets_only_the_headers_minutes(tmp_path: Path) -> None:
    pacing = _pacing()
    path = tmp_path / "09-test.md"
    path.write_text(CHAPTER + "minutes = 5 stays in the text\n", encoding="utf-8")
    assert pacing.set_minutes(path, 40)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!-- workshop\nminutes = 40\n")
    assert text.endswith("minutes = 5 stays in the text\n")
    assert not pacing.set_minutes(path, 40)


def test_the_headers_are_what_the_script_computes() -> None:
    """The committed headers agree with the committed measurements."""
    pacing = _pacing()
    from flightcache.workshop import chapters

    measured = pacing.load_measured()
    every = chapters()
    assert {c.slug for c in every} <= set(measured) | {c.slug for c in every if not c.demos}
    wrong = [
        f"{c.path.name}: header {c.minutes}, computed {pacing.pace(c, measured).minutes}"
        for c in every
        if pacing.pace(c, measured).minutes != c.minutes
    ]
    assert not wrong, "run python scripts/pacing.py --write\n" + "\n".join(wrong)
