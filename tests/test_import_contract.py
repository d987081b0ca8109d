"""The import contract of the whole package, read from the source (:mod:`tests.support.imports`):

- no import cycle among chatnb's modules at module level (``TYPE_CHECKING`` blocks included);
- each function-level import of a chatnb module is listed below with its reason (:data:`LAZY`);
- only the location package and the CLI import :mod:`chatnb.emulator`;
- the emulator needs nothing of the client, not even through what it imports;
- no private name (``_x``) of a chatnb module is imported or used by another module.

The emulator's own layout (cycles inside it, no late imports, ``__all__``, sizes) is
``test_emulator_layout.py``.
"""

from __future__ import annotations

import pytest

from tests.support.imports import (
    EMULATOR_SHARES,
    FUNCTION,
    Import,
    all_imports,
    find_cycle,
    graph,
    modules,
    private_attributes,
)

#: Each function-level import of a chatnb module: ``(importer, the modules it imports late, why)``. None
#: breaks a cycle (the graph stays acyclic with them: see below); each keeps an import light.
LAZY = [
    (
        "chatnb._transport",
        ("chatnb.location",),
        "resolving the trust of a local endpoint is the only use: the sans-I/O core leaves the location's "
        "files, registry and processes unloaded until then",
    ),
    (
        "chatnb._serve_cli",
        ("chatnb.emulator", "chatnb.emulator.app", "chatnb.emulator.coverage", "chatnb.emulator.limits"),
        "only `chatnb serve` runs the emulator (Starlette, uvicorn, SQLite), its fault plan and its table "
        "of operations; status, stop, users and export load none of it",
    ),
    (
        "chatnb.cli",
        ("chatnb.export._cli",),
        "the export command's parser lives with the export package, which `import chatnb.cli` "
        "(python -m chatnb) does not load until the parser is built",
    ),
    (
        "chatnb.export._cli",
        (
            "chatnb._core",
            "chatnb.client",
            "chatnb.errors",
            "chatnb.export._common",
            "chatnb.export._compact",
            "chatnb.export._result",
            "chatnb.export._sync",
            "chatnb.location",
            "chatnb.session",
        ),
        "the parser of `chatnb export` is built for every command; what runs an export (the client, "
        "pandas) loads when one runs, so `chatnb serve` stays light",
    ),
    (
        "chatnb.realtime",
        ("chatnb._polling",),
        'the poller runs only for an endpoint without a push channel (the real service) or mode="poll"',
    ),
    (
        "chatnb.widgets._live",
        ("chatnb.aio", "chatnb.client"),
        "a widget takes either flavour's client and loads only the flavour it is given",
    ),
    (
        "chatnb.widgets._live",
        ("chatnb.credential",),
        "the one token decoder is the credential's; the widgets load the credential (and the client it "
        "needs) only when they decode a token",
    ),
]
#: Who may import the emulator: the location package (which owns where an emulator lives) and the CLI
#: (`chatnb serve`'s options live in ``chatnb._serve_cli``).
EMULATOR_IMPORTERS = ("chatnb.location", "chatnb.cli", "chatnb._serve_cli", "chatnb.__main__")


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.fixture(scope="module")
def found() -> dict[str, list[Import]]:
    return all_imports()


def test_the_package_is_read_whole(found: dict[str, list[Import]]) -> None:
    """The reader sees every module and the imports of each (a guard for the tests below)."""
    assert {"chatnb", "chatnb.cli", "chatnb.emulator.app", "chatnb.location.files"} <= set(found)
    assert any(i.module == "chatnb.emulator" for i in found["chatnb._serve_cli"])


def test_no_import_cycles_among_chatnb_modules(found: dict[str, list[Import]]) -> None:
    cycle = find_cycle(graph(found))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_lazy_imports_break_no_cycle(found: dict[str, list[Import]]) -> None:
    """Even imported at once, the lazy imports would make no cycle: they wait only to stay light."""
    cycle = find_cycle(graph(found, lazy=True))
    assert cycle is None, "import cycle through a lazy import: " + " -> ".join(cycle or [])


def test_every_function_level_import_is_listed_with_its_reason(found: dict[str, list[Import]]) -> None:
    late = {(i.importer, i.module) for items in found.values() for i in items if i.how == FUNCTION}
    listed = {(importer, module) for importer, late_ones, _ in LAZY for module in late_ones}
    assert sorted(late - listed) == [], "a function-level import without a reason in LAZY (or move it up)"
    assert sorted(listed - late) == [], "LAZY lists an import that is gone"


def test_only_the_location_package_and_the_cli_import_the_emulator(found: dict[str, list[Import]]) -> None:
    importers = sorted(
        str(i)
        for name, items in found.items()
        if not within(name, ("chatnb.emulator", *EMULATOR_IMPORTERS))
        for i in items
        if within(i.module, ("chatnb.emulator",))
    )
    assert importers == []


def test_the_emulator_needs_nothing_of_the_client(found: dict[str, list[Import]]) -> None:
    """What importing the emulator loads, directly or through what it imports, lazily or not."""
    edges = graph(found, lazy=True)
    seen: set[str] = set()
    todo = [name for name in found if within(name, ("chatnb.emulator",))]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += edges.get(name, ())
    outside = sorted(m for m in seen if not within(m, ("chatnb.emulator", *EMULATOR_SHARES)))
    assert outside == []


def test_no_private_name_crosses_a_module(found: dict[str, list[Import]]) -> None:
    """Neither ``from module import _x`` nor ``module._x`` from another module (a private module, such
    as ``from . import _core``, is its package's to import)."""
    imported = sorted(
        f"{i.importer}:{i.line} imports {i.module}.{n}"
        for items in found.values()
        for i in items
        for n in i.names
        if n.startswith("_") and not n.startswith("__")
    )
    known = modules()
    used = sorted(use for name, path in known.items() for use in private_attributes(name, path, known))
    assert imported + used == []
