"""The documentation is complete and says what is true.

- Every public name of the modules a user imports from appears, in code, in the README, a notebook or a
  hand-written page of the site (``docs/``). The generated API reference does not count: it lists every
  name by construction.
- Every ``chatnb`` command written in the README, CONTRIBUTING.md or the site (shell blocks and inline
  code) names a subcommand that exists and options that subcommand has (checked against ``chatnb ...
  --help``); every ``make`` target named exists; every extra in a ``pip install '.[...]'`` is one of
  ``pyproject.toml``'s; every repository path named in a shell block exists.

The Python blocks of the README run in ``tests/test_examples.py``.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The modules a user imports from: those of the API reference (docs/api/index.rst) but the plumbing
# behind them, which is in the reference and need not be in the prose.
PLUMBING = ("chatnb.location", "chatnb.frames")


def reference_modules() -> list[str]:
    text = (DOCS / "api" / "index.rst").read_text(encoding="utf-8")
    return re.findall(r"^   (chatnb[\w.]*)$", text, re.MULTILINE)


PUBLIC_MODULES = [name for name in reference_modules() if name not in PLUMBING]
FENCE = re.compile(r"^(```+|~~~+)([^\n]*)\n(.*?)^\1", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
SHELL = ("bash", "sh", "console", "shell")


def hand_written_pages() -> list[Path]:
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    for path in sorted(DOCS.rglob("*")):
        parts = path.relative_to(DOCS).parts
        if parts[0] in ("_build", "api", "notebooks", "_templates") or path.suffix not in (".md", ".rst"):
            continue
        pages.append(path)
    return pages


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_in_markdown(text: str) -> list[str]:
    """The code of a Markdown text: its fenced blocks and its inline code spans (roles included)."""
    blocks = [match.group(3) for match in FENCE.finditer(text)]
    rest = FENCE.sub("", text)
    return blocks + INLINE.findall(rest)


@functools.cache
def documented_code() -> str:
    fragments = []
    for page in hand_written_pages():
        fragments += code_in_markdown(page.read_text(encoding="utf-8"))
    for path in notebooks():
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            fragments += [source] if cell["cell_type"] == "code" else code_in_markdown(source)
    return "\n".join(fragments)


def public_names() -> list[tuple[str, str]]:
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names += [(module_name, name) for name in module.__all__]
    return names


def test_the_pages_are_found() -> None:
    assert {"chatnb", "chatnb.aio", "chatnb.widgets", "chatnb.emulator", "chatnb.eventgrid"} <= set(
        PUBLIC_MODULES
    )
    found = {path.relative_to(ROOT).as_posix() for path in hand_written_pages()}
    assert {"README.md", "docs/index.md", "docs/how-to/point-at-real-acs.md", "docs/guide/events.md"} <= found
    assert not any(name.startswith("docs/api/") for name in found)
    assert len(notebooks()) >= 4


@pytest.mark.parametrize(("module", "name"), [pytest.param(m, n, id=f"{m}.{n}") for m, n in public_names()])
def test_every_public_name_is_documented(module: str, name: str) -> None:
    assert re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", documented_code()), (
        f"{module}.{name} is in no code of the README, a notebook or a page of docs/ (the API reference "
        "does not count): show it where a user would look for it"
    )


# -- commands ------------------------------------------------------------------------------------------------


def shell_blocks(text: str) -> list[str]:
    blocks = [m.group(3) for m in FENCE.finditer(text) if m.group(2).strip().lower() in SHELL]
    return [block.replace("\\\n", " ") for block in blocks]


def command_texts() -> list[tuple[str, str]]:
    """(page, a line of a shell block or an inline code span) that runs chatnb, make or pip."""
    found = []
    for page in hand_written_pages():
        text = page.read_text(encoding="utf-8")
        where = page.relative_to(ROOT).as_posix()
        for block in shell_blocks(text):
            for line in block.splitlines():
                line = re.sub(r"(^|\s)#.*", "", line).strip()
                if line:
                    found.append((where, line))
        for span in INLINE.findall(FENCE.sub("", text)):
            if re.match(r"(chatnb|make) [a-z-]", span):
                found.append((where, span))
    return found


CHATNB_CALL = re.compile(r"(?:^|[\s(;&|`\"'])chatnb((?:\s+[^\s;&|)\"'`<>]+)*)")


@functools.cache
def chatnb_help(*command: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "chatnb", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"chatnb {' '.join(command)} --help: {run.stderr.strip()}"
    return run.stdout


def chatnb_calls() -> list[tuple[str, str, list[str]]]:
    calls = []
    for where, line in command_texts():
        for match in CHATNB_CALL.finditer(line):
            words = match.group(1).split()
            if words and not words[0].startswith(("=", ".", "/")):
                calls.append((where, line, words))
    return calls


def test_the_documented_commands_are_found() -> None:
    subcommands = {words[0] for _, _, words in chatnb_calls()}
    assert {"serve", "status", "stop", "connection-string", "users", "export", "compact"} <= subcommands


@pytest.mark.parametrize(
    ("where", "line", "words"),
    [pytest.param(*call, id=f"{call[0]}: {call[1][:60]}") for call in chatnb_calls()],
)
def test_documented_chatnb_commands_exist(where: str, line: str, words: list[str]) -> None:
    if words[0].startswith("-"):
        subcommand: tuple[str, ...] = ()
        options = words
    else:
        assert re.search(rf"\b{re.escape(words[0])}\b", chatnb_help()), f"{where}: no `chatnb {words[0]}`"
        subcommand, options = (words[0],), words[1:]
        help_text = chatnb_help(*subcommand)
    help_text = chatnb_help(*subcommand)
    for option in options:
        if option.startswith("--"):
            flag = option.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), (
                f"{where}: `chatnb {' '.join(subcommand)}` has no {flag} (in: {line})"
            )


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, re.MULTILINE))


def extras() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([a-z][\w-]*) = \[", section, re.MULTILINE))


def test_documented_make_targets_extras_and_paths_exist() -> None:
    targets, known_extras = make_targets(), extras()
    checked = 0
    for where, line in command_texts():
        for target in re.findall(r"(?:^|[;&|]\s*)make ([a-z][\w-]*)", line):
            assert target in targets, f"{where}: no make target {target!r} (in: {line})"
            checked += 1
        for group in re.findall(r"\.\[([\w,-]+)\]", line):
            for extra in group.split(","):
                assert extra in known_extras, f"{where}: no extra {extra!r} in pyproject.toml (in: {line})"
                checked += 1
        for path in re.findall(r"(?<![\w./-])((?:tests|scripts|bench|notebooks|docs)/[\w./-]+)", line):
            assert (ROOT / path).exists(), f"{where}: no {path} in the repository (in: {line})"
            checked += 1
    assert checked >= 10
