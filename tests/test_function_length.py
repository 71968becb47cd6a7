"""No function in the package longer than about a screen and a half: 150 lines, from
its ``def`` to its last line (a long demo is split into one function per step, a long
command into its options and a function that does the work)."""

from __future__ import annotations

import ast
from pathlib import Path

import flightcache

PACKAGE = Path(flightcache.__file__).parent
LIMIT = 150

# Functions of the pattern slices' modules still over the limit (module:qualified name).
# The slices split them; the merger empties this set as they land. Nothing else may be
# exempt.
PENDING_SPLIT: set[str] = {
    "flightcache.commands.leaderboard_live:bench",
    "flightcache.commands.leaderboard_live:simulate",
    "flightcache.commands.write_behind:worker",
    "flightcache.patterns.hit_ratio:demo",
    "flightcache.patterns.invalidation_demo:run",
    "flightcache.patterns.leaderboard_demo:demo",
    "flightcache.patterns.memory:demo",
    "flightcache.patterns.memory_pressure:demo",
    "flightcache.patterns.session_demo:demo",
    "flightcache.patterns.ttl:demo",
    "flightcache.patterns.write_behind:demo",
    "flightcache.patterns.write_through:demo",
}


def lengths() -> dict[str, int]:
    """``module:qualified.name`` -> lines, for every function and method of the package."""
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)

        def visit(node: ast.AST, prefix: str, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    name = prefix + child.name
                    if not isinstance(child, ast.ClassDef):
                        end = child.end_lineno or child.lineno
                        found[f"{module}:{name}"] = end - child.lineno + 1
                    visit(child, name + ".")
                else:
                    visit(child, prefix)

        visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    too_long = {
        name: lines
        for name, lines in lengths().items()
        if lines > LIMIT and name not in PENDING_SPLIT
    }
    assert too_long == {}, f"functions over {LIMIT} lines (split them into steps)"


def test_pending_split_names_only_functions_still_too_long() -> None:
    found = lengths()
    stale = sorted(name for name in PENDING_SPLIT if found.get(name, 0) <= LIMIT)
    assert stale == [], "split or gone: take them out of PENDING_SPLIT"
