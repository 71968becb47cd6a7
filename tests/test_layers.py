"""The layers of the package: no import goes up a layer, no imports close a circle.

Every import in ``flightcache/`` is read with ``ast``: module-level and lazy ones
inside functions, ``import x`` and ``from x import y``, absolute and relative. Imports
under ``if TYPE_CHECKING:`` count too: a type a module names belongs to a layer it may
see. From them the test builds the graph of flightcache's modules, and fails on

- a cycle (reported as the modules around it), and
- an import of a module from a higher layer than the importer's.

Layers, top to bottom (STYLE.md): ``cli -> commands -> (web, demos, bench) -> patterns
-> (db, valkey_client, keys, measure, lua) -> (config, errors)``. A module may import
its own layer or any below it. ``LAYERS`` places every module; a module the table does
not place fails the test, so a new module gets a line of its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import flightcache

PACKAGE = Path(flightcache.__file__).parent

# Layer numbers: a module may import only from its own number or a higher one.
CLI, COMMANDS, DEMOS, PATTERNS, SERVICES, BASE = range(6)

# (module or package prefix, layer, why it sits there). The longest prefix wins.
LAYERS: list[tuple[str, int, str]] = [
    ("flightcache.cli", CLI, "the root Typer app and the one error boundary"),
    ("flightcache.__main__", CLI, "`python -m flightcache`: calls cli.main"),
    ("flightcache.commands", COMMANDS, "one thin Typer command file per module"),
    ("flightcache.app", COMMANDS, "what a command runs against: settings, servers on demand"),
    ("flightcache.console", COMMANDS, "rich consoles and the renderers of demo records"),
    ("flightcache.web", DEMOS, "the FastAPI app of `flightcache serve`"),
    ("flightcache.demos", DEMOS, "narrated demos: steps, commands shown, timing tables"),
    ("flightcache.bench", DEMOS, "workloads and reports over the patterns"),
    ("flightcache.exercises", DEMOS, "runs the learner's pattern code and checks it, as a demo"),
    ("flightcache.workshop", DEMOS, "the chapters: read, rendered by `workshop` commands"),
    ("flightcache.workshop_code", DEMOS, "the chapters' quotes of the source between markers"),
    ("flightcache.workshop_diagrams", DEMOS, "Mermaid diagrams drawn as text for the terminal"),
    ("flightcache.patterns", PATTERNS, "one small module per caching pattern"),
    ("flightcache.db", SERVICES, "the Database protocol and its two drivers"),
    ("flightcache.valkey_client", SERVICES, "the one module that builds Valkey clients"),
    ("flightcache.keys", SERVICES, "every Valkey key name"),
    ("flightcache.measure", SERVICES, "timing, histograms, Zipf draws for demos and bench"),
    ("flightcache.lua", SERVICES, "the Lua scripts and the one way to run them"),
    ("flightcache.sqlfiles", SERVICES, "the SQL files: schema statements, named queries"),
    ("flightcache.named_queries", SERVICES, "the named queries a pattern runs, with their params"),
    ("flightcache.trace", SERVICES, "records the Valkey commands and SQL a step issues"),
    ("flightcache.undo", SERVICES, "puts back server settings and data a demo changed"),
    ("flightcache.data", SERVICES, "schema loading, the generator, the dump importer: over db"),
    ("flightcache.fakeapi", SERVICES, "a slow stand-in HTTP API: a data source like db"),
    ("flightcache.stack", SERVICES, "the embedded servers and their state directory"),
    ("flightcache.platforms", SERVICES, "what of the embedded stack runs here; runs none of it"),
    ("flightcache.room.pack", SERVICES, "the offline install folder: wheels per platform, uv, pip"),
    ("flightcache.children", SERVICES, "child processes that die with their parent"),
    ("flightcache.resources", SERVICES, "finds the files shipped beside the code"),
    ("flightcache.room", BASE, "attendee names and what is named from them: config checks them"),
    ("flightcache.room.registry", SERVICES, "the instructor's list of attendees, in the database"),
    ("flightcache.room.accounts", SERVICES, "attendee accounts: over db and valkey_client"),
    ("flightcache.room.activity", DEMOS, "what attendees' commands record, by workshop chapter"),
    ("flightcache.config", BASE, "settings from flags, environment, config file; no I/O"),
    ("flightcache.errors", BASE, "the exception tree and the exit codes"),
    ("flightcache", BASE, "the package itself: only __version__"),
]


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package's __init__)."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _owner(name: str, known: dict[str, tuple[Path, bool]]) -> str | None:
    """The module a dotted name lives in (``flightcache.db.connect`` -> ``flightcache.db``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(
    module: str, path: Path, is_package: bool, known: dict[str, tuple[Path, bool]]
) -> Iterator[tuple[str, int]]:
    """(imported flightcache module, line) for every import statement of one file."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "flightcache":
                    target = _owner(alias.name, known)
                    if target:
                        yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            if full.split(".")[0] != "flightcache":
                continue
            for alias in node.names:
                candidate = f"{full}.{alias.name}"
                target = candidate if candidate in known else _owner(full, known)
                if target:
                    yield target, node.lineno


def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line that imports it}; self-imports dropped."""
    known = modules()
    edges: dict[str, dict[str, int]] = {}
    for module, (path, is_package) in known.items():
        out: dict[str, int] = {}
        for target, line in imports_of(module, path, is_package, known):
            if target != module:
                out.setdefault(target, line)
        edges[module] = out
    return edges


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer, _why in LAYERS:
        # the package's own entry places its __init__ only, not every module under it
        covers = module == prefix or (prefix != "flightcache" and module.startswith(prefix + "."))
        if covers and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as
    one circle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(_circle(sorted(component), edges))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return components


def _circle(component: list[str], edges: dict[str, dict[str, int]]) -> list[str]:
    """One path from the component's first module back to itself, inside the component."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(edges[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    return component


def upward(edges: dict[str, dict[str, int]]) -> list[str]:
    """Every import of a higher layer, as ``importer:line -> imported``."""
    found: list[str] = []
    for module, targets in sorted(edges.items()):
        mine = layer_of(module)
        for target, line in sorted(targets.items()):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs < mine:
                found.append(f"{module}:{line} -> {target}")
    return found


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if layer_of(m) is None] == []
    assert layer_of("flightcache.newcomer") is None  # a new top-level module needs a line


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_import_goes_up_a_layer() -> None:
    found = upward(graph())
    assert found == [], "upward imports:\n" + "\n".join(found)


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Lazy, relative, ``import x`` and ``from x import y`` all count."""
    source = tmp_path / "probe.py"
    source.write_text(
        "import flightcache.keys\n"
        "from flightcache import errors\n"
        "from . import config\n"
        "from .db import connect\n"
        "def later():\n"
        "    from flightcache.cli import main\n"
        "    import flightcache.measure.timing as t\n"
    )
    known = modules()
    found = {t for t, _ in imports_of("flightcache.probe", source, False, known)}
    assert found == {
        "flightcache.keys",
        "flightcache.errors",
        "flightcache.config",
        "flightcache.db",
        "flightcache.cli",
        "flightcache.measure.timing",
    }


def test_cycles_and_climbs_are_caught() -> None:
    edges = {
        "flightcache.keys": {"flightcache.trace": 1},
        "flightcache.trace": {"flightcache.keys": 2},
        "flightcache.config": {"flightcache.cli": 3},
        "flightcache.cli": {},
    }
    assert cycles(edges) == [["flightcache.keys", "flightcache.trace", "flightcache.keys"]]
    assert upward(edges) == ["flightcache.config:3 -> flightcache.cli"]


def class_names() -> dict[str, list[str]]:
    """Class name -> the modules that define a class of that name at their top level."""
    found: dict[str, list[str]] = {}
    for module, (path, _is_package) in modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(module)
    return found


# A name every module of one package defines by design, read with its module's name:
# each demo's typed options are ``demos.<name>.Options`` (STYLE: typed options).
CONVENTIONS: dict[str, str] = {"Options": "flightcache.demos."}


def test_no_two_classes_share_a_name() -> None:
    """A class name says which class it is: no two modules define one of the same name."""
    names = class_names()
    for name, package in CONVENTIONS.items():
        names[name] = [m for m in names.get(name, []) if not m.startswith(package)]
    clashes = {name: where for name, where in names.items() if len(where) > 1}
    assert clashes == {}
