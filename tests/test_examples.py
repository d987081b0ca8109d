"""The examples run: every ``>>>`` example in chatnb's docstrings, and every Python block of the README.

Docstrings run against a real emulator, the way a notebook runs them.

Each docstring with examples is one test. Its examples run in order in one namespace: the module's own
names and chatnb's public ones (as after ``from chatnb import *``; ``chatnb.aio``'s for the async
modules), plus a live scene on an in-memory emulator (``endpoint``, ``connection_string``, ``session``,
``jack``/``jill``/``geeta`` and their ``credential``, ``token``, ``chat``, ``thread``, ``thread_id``...;
the chatnb.aio flavour of the clients for the async modules). As in a notebook cell, an event loop is
running and ``await``, ``async for`` and ``async with`` work at the top level; ``print`` and an
expression's value are the output. An example that shows an output must produce it (doctest's rules, with
``...`` matching anything and whitespace normalised); one that shows none must run without raising.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import doctest
import importlib
import inspect
import io
import json
import pkgutil
import re
import traceback
import types
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import chatnb
import chatnb.aio
from chatnb.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
CHECKER = doctest.OutputChecker()
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[types.ModuleType]:
    found = [chatnb]
    for info in pkgutil.walk_packages(chatnb.__path__, "chatnb."):
        if info.name.endswith("__main__"):
            continue
        found.append(importlib.import_module(info.name))
    return found


def _docstrings() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    for module in _modules():
        for test in finder.find(module, module.__name__):
            if test.examples:
                tests.setdefault(test.name, test)
    return sorted(tests.values(), key=lambda t: t.name)


DOCSTRINGS = _docstrings()


def _is_async(name: str) -> bool:
    return ".aio" in name or "._aio" in name or name.startswith("chatnb.realtime")


# -- the scene ---------------------------------------------------------------------------------------------


def _event_grid_body(thread_id: str, user_id: str) -> str:
    """A webhook delivery: Event Grid's validation event, then a message received in a thread."""
    return json.dumps(
        [
            {
                "id": "1",
                "topic": "/subscriptions/x",
                "subject": "",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": "2024-05-01T12:00:00Z",
                "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
                "dataVersion": "1",
            },
            {
                "id": "2",
                "topic": "/subscriptions/x/providers/Microsoft.Communication/communicationServices/acs",
                "subject": f"thread/{thread_id}/sender/{user_id}",
                "eventType": "Microsoft.Communication.ChatMessageReceivedInThread",
                "eventTime": "2024-05-01T12:00:01Z",
                "data": {
                    "messageBody": "Pizza?",
                    "messageId": "1714564801000",
                    "senderCommunicationIdentifier": {"rawId": user_id, "communicationUser": {"id": user_id}},
                    "senderDisplayName": "Jack",
                    "composeTime": "2024-05-01T12:00:01Z",
                    "type": "Text",
                    "version": 1714564801000,
                    "threadId": thread_id,
                    "transactionId": "t",
                },
                "dataVersion": "1.0",
            },
        ]
    )


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def scene(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Names the examples use, bound to live objects (sync flavour); closed afterwards."""
    monkeypatch.setenv("CHATNB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COMMUNICATION_SERVICES_CONNECTION_STRING", emu.connection_string)
    monkeypatch.chdir(tmp_path)
    session = chatnb.connect()
    jack, jill, geeta = session.user("Jack"), session.user("Jill"), session.user("Geeta")
    thread = jack.create_thread("Lunch", participants=[jill, geeta])
    thread.send_message("Pizza?")
    token = jack.credential.get_token().token
    names = {
        **{name: getattr(chatnb, name) for name in chatnb.__all__},
        "chatnb": chatnb,
        "emu": emu,
        "emulator": emu,
        "endpoint": emu.endpoint,
        "connection_string": emu.connection_string,
        "session": session,
        "jack": jack,
        "jill": jill,
        "geeta": geeta,
        "user": jack,
        "other_id": geeta.identifier,
        "token": token,
        "credential": jack.credential,
        "fetch": lambda: session.identity_client.get_token(jack.identifier, ["chat"]),
        "chat": jack.chat_client,
        "chat_client": jack.chat_client,
        "thread": thread,
        "thread_id": thread.thread_id,
        "yesterday": datetime.now(timezone.utc) - timedelta(days=1),
        "body": _event_grid_body(thread.thread_id, jack.id),
        "location": tmp_path / "location",
        "path": tmp_path / "seeded.sqlite3",
        "resource_id": "00000000-0000-4000-8000-000000000000",
        "t0": 1_700_000_000_000_000,
    }
    yield names
    session.close()


async def _async_flavour(names: dict[str, Any]) -> dict[str, Any]:
    """The chatnb.aio clients for the same users and thread (made on the running loop)."""
    jack = names["jack"]
    credential = chatnb.aio.CommunicationTokenCredential(names["token"], token_refresher=names["fetch"])
    chat = chatnb.aio.ChatClient(names["endpoint"], credential)
    return {
        **names,
        **{name: getattr(chatnb.aio, name) for name in chatnb.aio.__all__},
        "credential": credential,
        "chat": chat,
        "chat_client": chat,
        "thread": chat.get_chat_thread_client(names["thread_id"]),
        "identity": chatnb.aio.CommunicationIdentityClient.from_connection_string(names["connection_string"]),
        "user": jack.identifier,
    }


# -- running examples as cells -------------------------------------------------------------------------------


async def _run_cell(source: str, namespace: dict[str, Any], filename: str, mode: str = "single") -> str:
    """Run ``source`` as an interactive cell: top-level await works; in "single" mode (one statement, as
    a ``>>>`` example is) an expression's value is displayed."""
    code = compile(source, filename, mode, flags=FLAGS, dont_inherit=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = types.FunctionType(code, namespace)()
        if inspect.iscoroutine(result):
            await result
    await asyncio.sleep(0)  # as between two cells: the loop runs what the cell scheduled
    return out.getvalue()


def _failure(test: doctest.DocTest, example: doctest.Example, message: str) -> str:
    line = (test.lineno or 0) + example.lineno + 1
    return f"{test.name} (line {line} of {test.filename}):\n>>> {example.source.rstrip()}\n{message}"


# What a docstring calls by a name the scene gives another meaning elsewhere.
OVERRIDES: dict[str, list[str]] = {
    "chatnb.emulator.seed": ["user"],  # the store takes raw ids: the sender is Jack's id
}


async def _run_docstring(test: doctest.DocTest, names: dict[str, Any]) -> None:
    namespace = {**test.globs, **(await _async_flavour(names) if _is_async(test.name) else names)}
    for name in OVERRIDES.get(test.name, []):
        namespace[name] = names["jack"].id
    namespace["__name__"] = "__doctest__"
    try:
        for example in test.examples:
            try:
                got = await _run_cell(example.source, namespace, f"<{test.name}>")
            except Exception as exc:
                if example.exc_msg is None:
                    raise AssertionError(_failure(test, example, f"raised {exc!r}")) from exc
                got_exc = traceback.format_exception_only(type(exc), exc)[-1]
                if not CHECKER.check_output(example.exc_msg, got_exc, OPTIONS):
                    raise AssertionError(_failure(test, example, f"raised {got_exc}")) from exc
                continue
            if example.exc_msg is not None:
                raise AssertionError(_failure(test, example, f"expected {example.exc_msg.strip()}"))
            if example.want and not CHECKER.check_output(example.want, got, OPTIONS):
                expected = example.want.rstrip()
                raise AssertionError(_failure(test, example, f"expected:\n{expected}\ngot:\n{got.rstrip()}"))
    finally:
        await _close(namespace, test.globs)


async def _close(namespace: dict[str, Any], module_globals: dict[str, Any]) -> None:
    """Close what the examples opened (clients, widgets, notifications), newest first."""
    for name, value in reversed(list(namespace.items())):
        if name in module_globals and module_globals[name] is value:
            continue
        if isinstance(value, type) or not type(value).__module__.startswith("chatnb"):
            continue
        close = getattr(value, "aclose", None) or getattr(value, "close", None)
        if close is None or not callable(close):
            continue
        with contextlib.suppress(Exception):
            result = close()
            if inspect.isawaitable(result):
                await result


def test_the_package_has_examples() -> None:
    examples = sum(len(t.examples) for t in DOCSTRINGS)
    assert len(DOCSTRINGS) >= 40 and examples >= 100, (len(DOCSTRINGS), examples)


@pytest.mark.parametrize("test", [pytest.param(t, id=t.name) for t in DOCSTRINGS])
def test_docstring_examples_run(test: doctest.DocTest, scene: dict[str, Any]) -> None:
    asyncio.run(_run_docstring(test, scene))


# -- the README ---------------------------------------------------------------------------------------------


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def run_blocks(path: Path, namespace: dict[str, Any]) -> None:
    """Run a page's Python blocks in order in one namespace, as a reader pastes them into a notebook."""
    blocks = python_blocks(path)
    assert blocks, f"no Python block in {path}"
    where = path.relative_to(ROOT)

    async def run_all() -> None:
        try:
            for number, block in enumerate(blocks, 1):
                try:
                    await _run_cell(block, namespace, f"<{where} block {number}>", mode="exec")
                except Exception as exc:
                    message = f"{where}, Python block {number}:\n{block}\nraised {exc!r}"
                    raise AssertionError(message) from exc
        finally:
            await _close(namespace, {})

    asyncio.run(run_all())


def test_readme_python_blocks_run_in_order(scene: dict[str, Any]) -> None:
    """The names a block takes as given (``endpoint``, ``connection_string``) are the emulator's; a block
    may use what an earlier one defined."""
    assert len(python_blocks(ROOT / "README.md")) >= 3
    namespace = {"endpoint": scene["endpoint"], "connection_string": scene["connection_string"]}
    run_blocks(ROOT / "README.md", namespace)
    frame = namespace["thread"].list_messages()
    assert frame.loc[frame.type == "text", "content"].tolist() == ["Pizza?"]
    assert not chatnb.read_export("archive/").empty  # the export of the last block


# The site's pages whose Python blocks run offline as they are (the how-to pages show placeholders for a
# real resource or a storage account, and the official SDKs).
RUNNABLE_PAGES = [
    "docs/index.md",
    "docs/install.md",
    "docs/guide/clients.md",
    "docs/guide/events.md",
    "docs/guide/widgets.md",
    "docs/guide/export.md",
    "docs/emulator/index.md",
    "docs/emulator/event-grid.md",
    "docs/emulator/entra-and-clock.md",
]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_the_guides_python_blocks_run(page: str, scene: dict[str, Any]) -> None:
    """The names a page takes as given (``session``, ``chat``, ``jack``...) are the scene's."""
    run_blocks(ROOT / page, {name: scene[name] for name in ("session", "chat", "jack", "endpoint")})


@pytest.mark.parametrize(
    ("text", "failure"),
    [
        pytest.param(">>> 1 + 1\n2\n>>> await asyncio.sleep(0, 'x')\n'x'\n", None, id="outputs-and-await"),
        pytest.param(">>> 1 + 1\n3\n", "expected:\n3\ngot:\n2", id="wrong-output"),
        pytest.param(">>> {}['k']\nTraceback (most recent call last):\nKeyError: 'k'\n", None, id="raises"),
        pytest.param(
            ">>> 1\nTraceback (most recent call last):\nKeyError: 'k'\n", "expected KeyError", id="no-raise"
        ),
        pytest.param(">>> x = 1\n>>> undefined\n", "raised NameError", id="error"),
    ],
)
def test_the_runner_compares_what_an_example_shows(text: str, failure: str | None) -> None:
    """The runner is not vacuous: a wrong output, a missing exception or an error fails the docstring."""
    test = doctest.DocTestParser().get_doctest(text, {"asyncio": asyncio}, "sample", "sample.py", 0)
    if failure is None:
        asyncio.run(_run_docstring(test, {}))
    else:
        with pytest.raises(AssertionError, match=re.escape(failure)):
            asyncio.run(_run_docstring(test, {}))
