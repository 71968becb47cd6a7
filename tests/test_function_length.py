"""No function in the package longer than about a screen and a half: 150 lines, from
its ``def`` to its last line (a long demo is split into one function per step, a long
command into its options and a function that does the work)."""

from __future__ import annotations

import ast
from pathlib import Path

import flightcache

PACKAGE = Path(flightcache.__file__).parent
LIMIT = 150


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
    too_long = {name: lines for name, lines in lengths().items() if lines > LIMIT}
    assert too_long == {}, f"functions over {LIMIT} lines (split them into steps)"
