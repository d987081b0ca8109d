"""The emulator package's shape: no import cycles, no function-level imports of chatnb modules, no client
imports, an ``__all__`` in every module, modules of at most 400 lines, no private names across modules.

Read from the source with :mod:`ast`, so a cycle hidden in a function or behind ``TYPE_CHECKING`` counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chatnb" / "emulator"
# pure helpers the emulator shares with the client; nothing else of chatnb
# Pure helpers the emulator shares with the client; chatnb.location owns the files of a location and
# the registry of running emulators, and imports neither the emulator nor the client.
SHARED = {"chatnb._time", "chatnb._signing", "chatnb.location"}
MAX_LINES = 400


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def imported(tree: ast.Module) -> list[tuple[str, list[str], bool]]:
    """``(absolute module, names, at module level)`` of every import in ``tree`` (in functions too)."""
    found: list[tuple[str, list[str], bool]] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, [], not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.extend(resolve(child, not in_function))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    walk(tree, False)
    return found


def resolve(node: ast.ImportFrom, at_top: bool) -> list[tuple[str, list[str], bool]]:
    names = [alias.name for alias in node.names]
    if node.level == 0:
        return [(node.module or "", names, at_top)]
    base = ".".join([*["chatnb", "emulator"][: 3 - node.level], *([node.module] if node.module else [])])
    if node.module is None:  # "from . import chat" imports modules
        return [(f"{base}.{name}", [], at_top) for name in names]
    return [(base, names, at_top)]


def test_no_import_cycles_inside_the_emulator() -> None:
    trees = modules()
    graph = {
        name: {m.rsplit(".", 1)[1] for m, _, _ in imported(tree) if m.startswith("chatnb.emulator.")}
        for name, tree in trees.items()
    }
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_function_level_imports_of_chatnb() -> None:
    late = [
        f"{name}: {module}"
        for name, tree in modules().items()
        for module, _, at_top in imported(tree)
        if not at_top and module.startswith("chatnb")
    ]
    assert late == []


def test_the_emulator_imports_nothing_of_the_client() -> None:
    outside = {
        f"{name}: {module}"
        for name, tree in modules().items()
        for module, _, _ in imported(tree)
        if module.startswith("chatnb") and not module.startswith("chatnb.emulator") and module not in SHARED
    }
    assert outside == set()


def test_no_private_name_crosses_a_module() -> None:
    private = [
        f"{name}: {module}.{n}"
        for name, tree in modules().items()
        for module, names, _ in imported(tree)
        if module.startswith("chatnb")
        for n in names
        if n.startswith("_") and n != "__version__"
    ]
    assert private == []


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_module_has_an_all_and_at_most_400_lines(path: Path) -> None:
    """(ruff's RUF022 keeps each ``__all__`` sorted.)"""
    tree = ast.parse(path.read_text())
    declared = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    assert len(declared) == 1, f"{path.name} has no __all__"
    assert ast.literal_eval(declared[0]), f"{path.name}: __all__ is empty"
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines"
