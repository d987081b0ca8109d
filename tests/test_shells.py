"""The two flavours of the I/O shells: the same API in ``chatnb`` and ``chatnb.aio``, the sync one
generated from the async one, and clear errors when the flavours are mixed up."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

import chatnb
import chatnb.aio
from tests.support.tokens import fake_jwt

ROOT = Path(__file__).resolve().parents[1]
ENDPOINT = "https://acs.example.test"
TOKEN = fake_jwt(seconds=3600)
TWINS = ["ChatClient", "ChatThreadClient", "CommunicationIdentityClient", "CommunicationTokenCredential"]


def load_unasync() -> types.ModuleType:
    """A fresh copy of ``scripts/unasync.py`` (tests may change its ``ROOT``)."""
    spec = importlib.util.spec_from_file_location("unasync_under_test", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def shape(function: Any) -> list[tuple[str, Any, Any]]:
    """What a caller sees of a signature: names, kinds and defaults (not the annotations, which name
    each flavour's own types)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def members(cls: type) -> dict[str, Any]:
    return {name: value for name, value in inspect.getmembers(cls) if not name.startswith("_")}


@pytest.mark.parametrize("name", TWINS)
def test_each_sync_class_has_an_async_twin_with_the_same_signatures(name: str) -> None:
    sync, async_ = getattr(chatnb, name), getattr(chatnb.aio, name)
    assert shape(sync.__init__) == shape(async_.__init__)
    sync_members, async_members = members(sync), members(async_)
    assert set(sync_members) == set(async_members)  # both ways
    for member, value in sync_members.items():
        twin = async_members[member]
        assert isinstance(value, property) == isinstance(twin, property), member
        if callable(value):
            assert shape(value) == shape(twin), member
            assert bool(inspect.getdoc(value)) and bool(inspect.getdoc(twin)), (
                f"{name}.{member} has no docstring"
            )


def test_export_history_has_the_same_signature_in_both_flavours() -> None:
    assert shape(chatnb.export_history) == shape(chatnb.aio.export_history)
    assert inspect.iscoroutinefunction(chatnb.aio.export_history)
    assert not inspect.iscoroutinefunction(chatnb.export_history)


def test_every_async_name_has_a_sync_twin() -> None:
    assert set(chatnb.aio.__all__) <= set(chatnb.__all__)
    for name in chatnb.aio.__all__:
        assert getattr(chatnb, name) is not getattr(chatnb.aio, name)


def test_the_generated_sync_files_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/unasync.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_names_a_stale_file_and_shows_the_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unasync = load_unasync()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # ruff's settings
    for conversion in unasync.CONVERSIONS:
        for relative in (conversion.source, conversion.target):
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / relative, tmp_path / relative)
    stale = tmp_path / "chatnb" / "identity.py"
    stale.write_text(stale.read_text().replace('"""A new user."""', '"""A user."""'))
    setattr(unasync, "ROOT", tmp_path)  # noqa: B010 - a module loaded from a file: mypy cannot see ROOT
    assert unasync.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "chatnb/identity.py is stale: run `python scripts/unasync.py`" in out
    assert '-        """A user."""' in out and '+        """A new user."""' in out
    assert "client.py" not in out  # the others are current
    assert unasync.main([]) == 0 and '"""A new user."""' in stale.read_text()  # regenerated
    assert unasync.main(["--check"]) == 0


def test_the_token_rules() -> None:
    unasync = load_unasync()
    source = (
        "import asyncio\n"
        "import time\n"
        "from ..models import X\n"
        "from ._credential import CommunicationTokenCredential\n"
        "async def f(self) -> AsyncIterator[int]:\n"
        "    async with self.http as http:\n"
        "        async for item in aiter(http):\n"
        "            await asyncio.sleep(await self.delay())\n"
        "    await anext(pages)\n"
        "    await response.aclose()\n"
        '    """See :class:`chatnb.aio.ChatClient`: ``await thread.list_messages()``."""\n'
        '    return f"<aio.ChatClient {x}>"\n'
    )
    assert unasync.convert_text(source, unasync.AIO_IMPORTS) == (
        "import time\n"
        "from .models import X\n"
        "from .credential import CommunicationTokenCredential\n"
        "def f(self) -> Iterator[int]:\n"
        "    with self.http as http:\n"
        "        for item in iter(http):\n"
        "            time.sleep(self.delay())\n"
        "    next(pages)\n"
        "    response.close()\n"
        '    """See :class:`chatnb.ChatClient`: ``thread.list_messages()``."""\n'
        '    return f"<ChatClient {x}>"\n'
    )


# -- mixing the flavours up ----------------------------------------------------------------------------


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"value": [], "id": "19:t@thread.v2", "topic": "ok"})


async def test_a_sync_client_given_to_the_async_export_is_a_type_error_naming_the_fix(tmp_path: Path) -> None:
    needs = r"chatnb\.aio\.export_history needs a chatnb\.aio client"
    with (
        chatnb.ChatClient(ENDPOINT, TOKEN, transport=httpx.MockTransport(ok)) as chat,
        pytest.raises(TypeError, match=needs) as info,
    ):
        await chatnb.aio.export_history(chat, tmp_path / "out", progress=False)
    assert "chatnb.export_history(...) without await" in str(info.value)
    assert not (tmp_path / "out").exists()  # refused before anything was made


async def test_an_async_client_given_to_the_sync_export_is_a_type_error_naming_the_fix(
    tmp_path: Path,
) -> None:
    async with chatnb.aio.ChatClient(ENDPOINT, TOKEN, transport=httpx.MockTransport(ok)) as chat:
        thread = chat.get_chat_thread_client("19:t@thread.v2")
        with pytest.raises(TypeError, match=r"chatnb\.export_history needs a sync chatnb client") as info:
            chatnb.export_history(thread, tmp_path / "out", progress=False)
    assert "await chatnb.aio.export_history(...)" in str(info.value)
    assert not (tmp_path / "out").exists()


async def test_an_async_credential_given_to_a_sync_client_is_a_type_error() -> None:
    credential = chatnb.aio.CommunicationTokenCredential(TOKEN)
    with pytest.raises(TypeError, match="a sync client needs a sync credential") as info:
        chatnb.ChatClient(ENDPOINT, credential)
    assert "chatnb.CommunicationTokenCredential" in str(info.value)
    with pytest.raises(TypeError, match="a sync client needs a sync credential"):
        chatnb.ChatThreadClient(ENDPOINT, credential, "19:t@thread.v2")

    async def refresh() -> str:
        return TOKEN

    with pytest.raises(TypeError, match="coroutine function"):
        chatnb.CommunicationTokenCredential(TOKEN, token_refresher=refresh)


async def test_a_sync_credential_is_asked_off_the_event_loop_by_an_async_client() -> None:
    asked_in: list[threading.Thread] = []
    refreshed_in: list[threading.Thread] = []

    class Recording(chatnb.CommunicationTokenCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> chatnb.AccessToken:
            asked_in.append(threading.current_thread())
            return super().get_token(*scopes, **kwargs)

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return ok(request)

    async with chatnb.aio.ChatClient(
        ENDPOINT, Recording(TOKEN), transport=httpx.MockTransport(handler)
    ) as chat:
        await chat.list_chat_threads()
        await chat.get_chat_thread_client("19:t@thread.v2").get_properties()
    assert seen == [f"Bearer {TOKEN}"] * 2
    assert len(asked_in) == 2 and threading.current_thread() not in asked_in

    def refresher() -> str:
        refreshed_in.append(threading.current_thread())
        return fake_jwt(seconds=7200)

    async with chatnb.aio.CommunicationTokenCredential(
        fake_jwt(seconds=60), token_refresher=refresher
    ) as cred:
        await cred.get_token()
    assert len(refreshed_in) == 1 and refreshed_in[0] is not threading.current_thread()


async def test_a_blocking_sync_credential_does_not_stall_the_loop() -> None:
    release = threading.Event()

    class Slow:
        def get_token(self) -> str:
            release.wait(5)
            return TOKEN

    async with chatnb.aio.ChatClient(ENDPOINT, Slow(), transport=httpx.MockTransport(ok)) as chat:
        listing = asyncio.ensure_future(chat.list_chat_threads())
        for _ in range(3):  # the loop goes on while get_token() blocks its worker thread
            await asyncio.sleep(0)  # one turn of the loop each: what is under test, not a wait
        assert not listing.done()
        release.set()
        assert (await listing).empty
