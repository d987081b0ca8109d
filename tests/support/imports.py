"""The imports of chatnb's modules, read from the source with :mod:`ast`, for the import-contract tests.

Every import is found wherever it is written: at module level, under ``if TYPE_CHECKING:``, in a
function (a lazy import), and the names a package maps to its modules for PEP 562 (``lazy_attributes``).
"""

from __future__ import annotations

import ast
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EMULATOR_SHARES",
    "FUNCTION",
    "NAME_MAP",
    "ROOT",
    "TOP",
    "TYPE_CHECKING",
    "Import",
    "all_imports",
    "find_cycle",
    "graph",
    "imports",
    "modules",
    "parse",
    "private_attributes",
]

ROOT = Path(__file__).resolve().parents[2]
#: What the emulator may load outside itself: pure helpers it shares with the client, and the location
#: package (the files of a location and the registry of running emulators; it imports neither).
EMULATOR_SHARES = ("chatnb._time", "chatnb._timeout", "chatnb._signing", "chatnb.location")


def parse(path: Path) -> ast.Module:
    """The syntax tree of the file at ``path``, with the garbage collector paused while it is built.

    CPython 3.11 keeps the depth counter of its AST construction in state shared by all threads
    (python/cpython#106905; per call from 3.12). A collection during the construction runs finalizers,
    which can let another thread of the suite (a test's emulator formatting a traceback, which parses
    too) build a tree of its own meanwhile, and the construction then fails with "SystemError: AST
    constructor recursion depth mismatch". Without a collection no Python code runs in between.
    """
    source = path.read_text()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, str(path))
    finally:
        if enabled:
            gc.enable()


#: Where an import is written: at module level, under ``if TYPE_CHECKING:`` (never run), in a function
#: (run on first call), or in a package's PEP 562 name map (run on first use of the name).
TOP, TYPE_CHECKING, FUNCTION, NAME_MAP = "module level", "TYPE_CHECKING", "function", "name map"


@dataclass(frozen=True)
class Import:
    """One import statement's view of one imported module."""

    importer: str  # the module that imports
    module: str  # the module imported (absolute)
    names: tuple[str, ...]  # the names taken from it (``from module import a, b``); () for ``import module``
    line: int
    how: str = TOP

    @property
    def lazy(self) -> bool:
        """Imported on first use, not when the importer is."""
        return self.how in (FUNCTION, NAME_MAP)

    def __str__(self) -> str:
        names = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.importer}:{self.line} imports {self.module}{names} [{self.how}]"


def modules(package: str = "chatnb") -> dict[str, Path]:
    """``{module name: file}`` of every module of ``package`` (a folder under the repository root)."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: Iterable[str]) -> list[Import]:
    """Every import of chatnb modules in module ``name`` (file ``path``); ``known``: the module names,
    to tell ``from package import submodule`` from ``from module import name``."""
    known = set(known)
    package = _package(name, path)
    tree = parse(path)
    found: list[Import] = []

    def add(module: str, names: tuple[str, ...], line: int, how: str) -> None:
        if module != "chatnb" and not module.startswith("chatnb."):
            return
        submodules = tuple(n for n in names if f"{module}.{n}" in known)
        for sub in submodules:  # "from . import chat": the submodule is what is imported
            found.append(Import(name, f"{module}.{sub}", (), line, how))
        if not names or len(submodules) < len(names):
            found.append(Import(name, module, tuple(n for n in names if n not in submodules), line, how))

    def walk(nodes: Iterable[ast.AST], how: str) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, (), node.lineno, how)
            elif isinstance(node, ast.ImportFrom):
                add(_absolute(node, package), tuple(a.name for a in node.names), node.lineno, how)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and how == TOP:
                walk(node.body, TYPE_CHECKING)
                walk(node.orelse, how)
                continue
            inner = FUNCTION if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else how
            walk(ast.iter_child_nodes(node), inner)

    walk(tree.body, TOP)
    found += _name_maps(name, package, tree, known)
    return found


def private_attributes(name: str, path: Path, known: Iterable[str]) -> list[str]:
    """``module:line uses other._x``: each private attribute of another chatnb module that module ``name``
    reaches through that module (``from . import _core`` ... ``_core._text``)."""
    known = set(known)
    package = _package(name, path)
    tree = parse(path)
    aliases: dict[str, str] = {}  # local name -> the chatnb module bound to it
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and (alias.asname or "." not in alias.name):
                    aliases[alias.asname or alias.name] = alias.name
    return [
        f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and aliases.get(node.value.id, name) != name
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute name of the module ``node`` imports from, in ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    return ".".join([*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])])


def _name_maps(name: str, package: str, tree: ast.Module, known: set[str]) -> Iterator[Import]:
    """The modules of the ``{name: module}`` dict a package gives ``lazy_attributes`` (PEP 562)."""
    dicts = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and ast.unparse(call.func).endswith("lazy_attributes")):
            continue
        mapping = call.args[2] if len(call.args) > 2 else None
        if not isinstance(mapping, ast.Name) or mapping.id not in dicts:
            continue
        for value in dicts[mapping.id].values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                relative = value.value.lstrip(".")
                level = len(value.value) - len(relative)
                node = ast.ImportFrom(module=relative or None, names=[], level=level)
                yield Import(name, _absolute(node, package), (), value.lineno, NAME_MAP)


def all_imports(package: str = "chatnb") -> dict[str, list[Import]]:
    """``{module: its imports of chatnb modules}`` for every module of ``package``."""
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items() if name.startswith(package)}


def graph(found: dict[str, list[Import]], *, lazy: bool = False) -> dict[str, set[str]]:
    """``{module: the chatnb modules it imports}``: at module level (``TYPE_CHECKING`` blocks included),
    and with ``lazy`` the lazy imports too."""
    return {
        name: {i.module for i in items if (lazy or not i.lazy) and i.module != name}
        for name, items in found.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """An import cycle of ``edges`` as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = "done"
        return None

    for name in sorted(edges):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None
