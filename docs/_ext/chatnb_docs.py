"""chatnb's own Sphinx pieces: the CLI reference and public names for re-exported objects.

- ``.. chatnb-cli::`` renders the ``chatnb`` command line from its argparse parser (the one
  ``chatnb --help`` prints), one section per subcommand with its usage and a table of its options, so the
  reference cannot drift from the code. The user's home folder in defaults is written ``~``.
- A ``missing-reference`` handler: autodoc writes annotations with the defining module
  (``chatnb.client.ChatThreadClient``), while the reference documents the public name
  (``chatnb.ChatThreadClient``). The handler finds the public name of the same object and links to it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__all__ = ["PUBLIC_MODULES", "CliReference", "aliases", "data_members", "homes", "setup"]

# The modules whose __all__ the API reference documents, in the order a reference is preferred.
PUBLIC_MODULES = (
    "chatnb",
    "chatnb.aio",
    "chatnb.widgets",
    "chatnb.events",
    "chatnb.realtime",
    "chatnb.eventgrid",
    "chatnb.export",
    "chatnb.emulator",
    "chatnb.location",
    "chatnb.frames",
)


def _cli_parser() -> argparse.ArgumentParser:
    from chatnb import cli

    parser: argparse.ArgumentParser = cli._parser()  # the parser `chatnb` runs with
    return parser


def _home(text: str) -> str:
    return text.replace(str(Path.home()), "~")


def _cell(text: str) -> str:
    return " ".join(_home(text).split()).replace("|", "\\|")


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, list[tuple[str, str]]]]:
    formatter = parser._get_formatter()
    groups = []
    for group in parser._action_groups:
        rows = []
        for action in group._group_actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            if action.option_strings:
                metavar = (
                    "" if action.nargs == 0 else " " + formatter._format_args(action, action.dest.upper())
                )
                flags = ", ".join(f"``{flag}{metavar}``" for flag in action.option_strings)
            else:
                flags = f"``{action.metavar or action.dest}``"
            rows.append((flags, _cell(formatter._expand_help(action) if action.help else "")))
        if rows:
            groups.append((group.title or "options", rows))
    return groups


def _table(rows: list[tuple[str, str]]) -> list[str]:
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 30 70",
        "",
        "   * - option",
        "     - what it does",
    ]
    for flags, text in rows:
        lines += [f"   * - {flags}", f"     - {text or '(no description)'}"]
    return [*lines, ""]


class CliReference(SphinxDirective):
    """``.. chatnb-cli::``: the whole ``chatnb`` command line, generated from its parser."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        saved = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "80"  # argparse wraps usage lines to the terminal's width: fit the page
        try:
            text = self._text()
        finally:
            if saved is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = saved
        return self.parse_text_to_nodes(text, allow_section_headings=True)

    def _text(self) -> str:
        parser = _cli_parser()
        lines = [_home(parser.description or ""), "", ".. code-block:: text", ""]
        lines += ["   " + line for line in _home(parser.format_usage()).strip().splitlines()]
        lines.append("")
        for _, rows in _option_rows(parser):
            lines += _table(rows)
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {choice.dest: choice.help for choice in commands._choices_actions}
        for name, sub in commands.choices.items():
            title = f"chatnb {name}"
            lines += [title, "-" * len(title), "", _cell(helps.get(name) or sub.description or ""), ""]
            if sub.description and sub.description != helps.get(name):
                lines += [_cell(sub.description), ""]
            lines += [".. code-block:: text", ""]
            lines += ["   " + line for line in _home(sub.format_usage()).strip().splitlines()]
            lines.append("")
            for title_, rows in _option_rows(sub):
                if title_ not in ("options", "optional arguments", "positional arguments"):
                    lines += [f"**{_cell(title_)}**", ""]
                lines += _table(rows)
        return "\n".join(lines)


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def homes() -> dict[str, str]:
    """Each public name of :data:`PUBLIC_MODULES` -> where its object is documented.

    An object exported by several public modules (``chatnb.emulator.LocationError`` is
    ``chatnb.location.LocationError``) is documented once, under the public module closest to where it
    is defined; the others are aliases, listed on their module's page with a link to it.
    """
    exported: dict[int, list[str]] = {}
    objects: dict[int, Any] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, (str, int, float, tuple, frozenset, dict, list, Path)) or obj is None:
                continue  # constants: documented where they are exported
            exported.setdefault(id(obj), []).append(f"{module_name}.{name}")
            objects[id(obj)] = obj
    result: dict[str, str] = {}
    for key, names in exported.items():
        defined_in = getattr(objects[key], "__module__", "") or ""

        def closeness(full: str, defined_in: str = defined_in) -> tuple[int, int]:
            module = full.rsplit(".", 1)[0]
            inside = defined_in == module or defined_in.startswith(module + ".")
            return (-len(module) if inside else 1, PUBLIC_MODULES.index(module))

        home = min(names, key=closeness)
        for name in names:
            result[name] = home
    return result


def _attribute_doc(name: str, obj: Any, package: str) -> str:
    """The doc comment or docstring of a module-level ``name`` bound to ``obj`` under ``package``."""
    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    for module_name, module in sorted(sys.modules.items()):
        if not (module_name == package or module_name.startswith(package + ".")) or module is None:
            continue
        if vars(module).get(name, _MISSING) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except PycodeError:
            continue
        lines = docs.get(("", name))
        if lines:
            return "\n".join(lines).strip()
    return ""


_MISSING = object()


def data_members() -> dict[str, list[tuple[str, str]]]:
    """For each public module: its exported names that are neither classes, functions nor modules, with
    their doc (the constants and type aliases, which autosummary does not list for a package)."""
    result: dict[str, list[tuple[str, str]]] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        found = []
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
                continue
            doc = _attribute_doc(name, obj, module_name.split(".")[0])
            if not doc:
                doc = f"``{_short_repr(obj)}``"
            found.append((name, doc))
        result[module_name] = found
    return result


def _short_repr(obj: Any) -> str:
    text = _home(repr(obj).replace("typing.", ""))
    return text if len(text) <= 120 else text[:117] + "..."


def aliases() -> dict[str, str]:
    """The public names that are not their object's documented home -> the home."""
    return {name: home for name, home in homes().items() if name != home}


_HOMES_BY_ID: dict[int, str] = {}


def _home_of(obj: Any) -> str | None:
    if not _HOMES_BY_ID:
        for name, home in homes().items():
            module_name, attr = name.rsplit(".", 1)
            _HOMES_BY_ID[id(getattr(importlib.import_module(module_name), attr))] = home
    return _HOMES_BY_ID.get(id(obj))


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _public_name(target: str) -> str | None:
    """The documented name of ``target`` (a dotted path under chatnb, maybe a member), if it has one."""
    parts = target.split(".")
    for cut in range(len(parts), 1, -1):
        home = _home_of(_resolve(".".join(parts[:cut])))
        if home is not None:
            return ".".join([home, *parts[cut:]])
    return None


def _missing_reference(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """Link a defining-module path to the public page; leave private names as plain code."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("chatnb"):
        return None
    public = _public_name(target)
    if public is not None and public != target:
        domain = env.get_domain("py")
        found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], public, node, contnode)
        if found is not None:
            return found
    if public is None:
        return contnode  # a private or helper module's name, not in the documented API: shown, not linked
    return None


def _public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Bases shown on a class page: a private base is replaced by its own public bases."""
    shown: list[type] = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        private = base.__module__.startswith("chatnb") and (
            base.__name__.startswith("_") or _home_of(base) is None
        )
        if private:
            pending[:0] = [b for b in base.__bases__ if b is not object]
        elif base not in shown:
            shown.append(base)
    bases[:] = shown or [object]  # Sphinx writes "Bases:" even for an empty list


def _skip_foreign_methods(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Methods a class inherits from another library (traitlets, ipywidgets, tuple) are not listed."""
    if callable(obj) and not isinstance(obj, type):
        module = getattr(obj, "__module__", None) or ""
        if not module.startswith("chatnb"):
            return True
    return None


def _no_widget_state(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Leave out the notebooks' saved widget state: with no widget manager loaded (the snapshots are
    shown instead) it is dead weight, half a megabyte on the live chat tutorial."""
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [
            script
            for script in scripts
            if getattr(script, "attributes", {}).get("type") != "application/vnd.jupyter.widget-state+json"
        ]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("chatnb-cli", CliReference)
    app.connect("missing-reference", _missing_reference)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-skip-member", _skip_foreign_methods)
    app.connect("html-page-context", _no_widget_state)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
