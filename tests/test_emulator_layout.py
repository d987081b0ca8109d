"""The emulator package's shape: no import cycles, no function-level imports of chatnb modules, no client
imports, an ``__all__`` in every module, modules of at most 400 lines, no private names across modules.

Read from the source with :mod:`ast`, so a cycle hidden in a function or behind ``TYPE_CHECKING`` counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.imports import (
    EMULATOR_SHARES,
    FUNCTION,
    ROOT,
    Import,
    all_imports,
    find_cycle,
    graph,
    parse,
)

PACKAGE = ROOT / "chatnb" / "emulator"
MAX_LINES = 400


def modules() -> dict[str, list[Import]]:
    """The imports of each emulator module."""
    return all_imports("chatnb.emulator")


def test_no_import_cycles_inside_the_emulator() -> None:
    inside = {
        name: {m for m in targets if m.startswith("chatnb.emulator")}
        for name, targets in graph(modules(), lazy=True).items()
    }
    cycle = find_cycle(inside)
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_function_level_imports_of_chatnb() -> None:
    late = [str(i) for items in modules().values() for i in items if i.how == FUNCTION]
    assert late == []


def test_the_emulator_imports_nothing_of_the_client() -> None:
    outside = {
        str(i)
        for items in modules().values()
        for i in items
        if not i.module.startswith("chatnb.emulator")
        and not any(i.module == s or i.module.startswith(s + ".") for s in EMULATOR_SHARES)
    }
    assert outside == set()


def test_no_private_name_crosses_a_module() -> None:
    private = [
        f"{i}: {n}"
        for items in modules().values()
        for i in items
        for n in i.names
        if n.startswith("_") and n != "__version__"
    ]
    assert private == []


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_module_has_an_all_and_at_most_400_lines(path: Path) -> None:
    """(ruff's RUF022 keeps each ``__all__`` sorted.)"""
    tree = parse(path)
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
