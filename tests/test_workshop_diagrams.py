"""The chapters' sequence diagrams: Mermaid for the web, drawn as text by
``flightcache workshop show``; each pattern has one, and it names the commands its
code sends, in their order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flightcache.workshop_diagrams import WIDTH, for_terminal, render, sources

SMALL = """sequenceDiagram
    participant A as App
    participant V as Valkey
    A->>V: GET k
    alt hit
        V-->>A: v
    else down
        A-xV: GET
    end
    Note over A,V: done
    A->>A: think
"""

DRAWN = """\
 +-----+    +--------+
 | App |    | Valkey |
 +-----+    +--------+
    |            |
    | GET k      |
    |----------->|
- alt hit -------+----
    | v          |
    |<- - - - - -|
- else down -----+----
    | GET        |
    |-----------x|
- end -----------+----
    | +------+   |
    | | done |   |
    | +------+   |
    |--+ think   |
    |<-+         |
    |            |"""


def test_a_small_diagram_is_drawn_exactly() -> None:
    assert render(SMALL) == DRAWN


def test_arrows_point_the_way_the_message_goes() -> None:
    drawn = render("sequenceDiagram\n  A->>B: call\n  B-->>A: reply\n  B->>A: back\n")
    assert drawn is not None
    arrows = [line.strip() for line in drawn.splitlines() if re.search(r"[<>]|- -", line)]
    assert arrows[0].endswith("->|")  # solid, to the right
    assert arrows[1].startswith("|<- -") and arrows[1].endswith("-|")  # dotted, to the left
    assert arrows[2].startswith("|<--")  # solid, to the left


@pytest.mark.parametrize(
    "source",
    [
        "graph LR\n  A --> B\n",  # 001's flowcharts: not a sequence diagram
        "sequenceDiagram\n  A->>B: x\n  activate B\n",  # a line not drawn here
        "sequenceDiagram\n  A->>B: x\n  end\n",  # an end with no block
        "sequenceDiagram\n  alt x\n  A->>B: x\n",  # a block with no end
        "sequenceDiagram\n  else x\n  end\n",  # an else outside a block
        "sequenceDiagram\n",  # no participants
    ],
)
def test_what_is_not_understood_is_left_as_mermaid(source: str) -> None:
    assert render(source) is None
    markdown = f"Text\n\n```mermaid\n{source}```\n\nMore\n"
    assert for_terminal(markdown) == markdown


def test_a_drawable_block_becomes_a_text_block() -> None:
    markdown = f"Before\n\n```mermaid\n{SMALL}```\n\nAfter\n"
    assert for_terminal(markdown) == f"Before\n\n```text\n{DRAWN}\n```\n\nAfter\n"
    assert sources(markdown) == [SMALL]


def test_long_texts_wrap_to_fit_a_terminal() -> None:
    words = " ".join(["word"] * 40)
    source = (
        "sequenceDiagram\n  participant A as Application\n  participant B as Valkey\n"
        f"  participant C as Worker\n  participant D as Database\n  A->>B: {words}\n"
        f"  C->>D: {words}\n  Note over B: {words}\n"
    )
    drawn = render(source)
    assert drawn is not None
    assert max(len(line) for line in drawn.splitlines()) <= WIDTH
    assert " ".join(re.findall(r"\bword\b", drawn)).count("word") == 120  # nothing lost


# -- the chapters' diagrams -------------------------------------------------------------

# (chapter number, the heading of its section, words the diagram must hold, in order);
# the leaderboard restores the last of the pictures 001 drew
REQUIRED = {
    "cache-aside": (
        1,
        "## flightcache cache-aside",
        ["GET", "hit", "miss", "nil", "SELECT", "SET key JSON EX ttl", "Valkey down", "-xV"],
    ),
    "write-through": (
        1,
        "## flightcache write-through",
        [
            "BEGIN",
            "UPDATE",
            "INCR version",
            "DEL airline hash",
            "SPOP tag set",
            "DEL each",
            "ROLLBACK",
            "COMMIT",
            "INCR epoch",
            "SPOP tag set",
            "DEL keys cached",
            "EVALSHA write_through_fill",
            "INCR version",
            "HSET airline hash",
            "EXPIRE",
            "repair",
        ],
    ),
    "write-behind": (
        1,
        "## flightcache write-behind",
        [
            "EVALSHA write_behind_book",
            "XADD",
            "HINCRBY",
            "HGET",
            "XREADGROUP",
            "db-writer",
            "record the entry ids",
            "COMMIT",
            "database down",
            "no XACK",
            "committed",
            "EVALSHA write_behind_dead_letter",
            "XACK the batch",
            "XAUTOCLAIM",
        ],
    ),
    "nested-doll": (
        1,
        "## flightcache nested-doll",
        [
            "HGETALL",
            "GET status",
            "PTTL",
            "that layer's query",
            "PEXPIRE",
            "SET status PX",
            "aircraft 24 h",
            "schedule 6 h",
            "seats 5 min",
            "status 30 s",
            "seats layer only",
        ],
    ),
    "sessions": (
        4,
        "## flightcache session",
        [
            "EVALSHA session_write new",
            "does not exist",
            "PEXPIRE lifetime",
            "SADD",
            "HGETALL",
            "EVALSHA session_write existing",
            "only if the key exists",
            "PEXPIRE lifetime again",
            "Valkey down",
            "DEL session",
            "SREM",
            "expires",
        ],
    ),
    "leaderboard": (
        3,
        "## flightcache leaderboard book",
        [
            "INSERT booking, COMMIT",
            "EVALSHA leaderboard_apply",
            "ZINCRBY",
            "EXPIRE",
            "not created",
            "PUBLISH",
            "Valkey down after the COMMIT",
            "EXISTS board",
            "ZADD into a temporary key",
            "RENAME",
            "ZREVRANGE board 0 n-1 WITHSCORES",
        ],
    ),
    "near-cache": (
        5,
        "## Near cache",
        [
            "HELLO 3, CLIENT ID",
            "CLIENT TRACKING on REDIRECT",
            "miss, take a ticket",
            "GET key (tracked)",
            "no invalidation since the ticket",
            "from memory",
            "SET key",
            "push invalidate key",
            "drop the copy",
            "GET key (tracked again)",
            "flush the store",
        ],
    ),
    "stampede-lock": (
        5,
        "## Stampede prevention",
        [
            "GET value",
            "nil",
            "SET lock token-A NX PX lease",
            "A rebuilds",
            "NX PX lease",
            "B waits",
            "GET value",
            "expensive query",
            "EVALSHA lock_renew",
            "GET value",
            "SET value PX ttl",
            "EVALSHA lock_release",
            "the value A stored",
            "lease runs out",
        ],
    ),
}


def _section(chapter: int, heading: str) -> str:
    from flightcache.workshop import find

    body = find(str(chapter)).body
    start = body.index(heading + "\n")
    following = body.find("\n## ", start + len(heading))
    return body[start : following if following >= 0 else len(body)]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_pattern_has_its_diagram_near_the_top_of_its_section(name: str) -> None:
    chapter, heading, words = REQUIRED[name]
    section = _section(chapter, heading)
    found = sources(section)
    assert found, f"chapter {chapter}, {heading}: no ```mermaid block"
    assert section.index("```mermaid") < 200, f"{heading}: the diagram is not near the top"
    source = found[0]
    drawn = render(source)
    assert drawn is not None, f"{name}: the terminal cannot draw it"
    assert max(len(line) for line in drawn.splitlines()) <= WIDTH, f"{name}: too wide"
    at = 0
    for word in words:  # the commands in the order the code sends them
        found_at = source.find(word, at)
        assert found_at >= 0, f"{name}: {word!r} missing, or not after {source[:at][-40:]!r}"
        at = found_at + len(word)


def _every_diagram() -> list[tuple[str, str]]:
    from flightcache.workshop import chapters

    return [(c.path.name, s) for c in chapters() for s in sources(c.body)]


def test_every_chapter_diagram_is_drawn_and_is_safe_mermaid() -> None:
    """`;` ends a Mermaid statement and `#` starts an entity: neither may appear in a text."""
    every = _every_diagram()
    assert len(every) >= len(REQUIRED)
    for name, source in every:
        assert render(source) is not None, f"{name}: a diagram the terminal cannot draw"
        assert not re.search(r"[;#]", source), f"{name}: ';' or '#' in a diagram"


def test_the_scripts_and_layers_the_diagrams_name_are_the_codes() -> None:
    from flightcache.lua import names
    from flightcache.patterns.nested_doll_layers import LAYERS

    scripts = set(names())
    for name, source in _every_diagram():
        for script_name in re.findall(r"EVALSHA (\w+)", source):
            assert script_name in scripts, f"{name}: no script {script_name}.lua"
    nested = sources(_section(1, "## flightcache nested-doll"))[0]
    for layer in LAYERS:
        hours, minutes = layer.ttl_s // 3600, layer.ttl_s // 60
        ttl = f"{hours} h" if hours else f"{minutes} min" if minutes else f"{layer.ttl_s} s"
        assert f"{layer.name} {ttl}" in nested, f"nested doll: {layer.name} is {ttl}"


def test_show_prints_the_diagrams_as_text(cli: Any, tmp_path: Path) -> None:
    shown = cli("--state-dir", str(tmp_path / "state"), "workshop", "show", "1")
    text = shown.out + shown.err
    assert shown.code == 0, text
    assert "sequenceDiagram" not in text and "->>" not in text
    assert "| Valkey |" in text and "| Database |" in text
    assert "-x|" in text  # cache-aside's GET to a Valkey that is down


def test_a_block_inside_a_block_is_indented() -> None:
    source = "sequenceDiagram\n  alt outer\n  opt inner\n  A->>B: x\n  end\n  end\n"
    drawn = render(source)
    assert drawn is not None
    rules = [line for line in drawn.splitlines() if line.startswith("- ")]
    assert [r.split(" -")[0] for r in rules] == ["- alt outer", "-   opt inner", "-   end", "- end"]
