"""The shared fixtures (one definition each): a real emulator on a free loopback port, a clean
environment, raw wire access and its users, an identity client, event actors, widget test rigs.

What they are built from lives in ``tests/support/``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import chatnb
from chatnb.emulator import Emulator
from tests.support.events import Actor
from tests.support.widgets import Chat, FrontEnd
from tests.support.wire import User, Wire

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants (``@pytest.mark.slow``) run only with ``make test-long`` (CHATNB_LONG=1) or ``-m``."""
    if os.environ.get("CHATNB_LONG") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


# The parts that need an extra the lean venvs of `.ci/run` (Python 3.10 and 3.13) leave out: with their
# marker deselected (-m "not sdk and not e2e") their modules are not even imported.
_NEEDS_EXTRA = {
    "test_sdk_python.py": "sdk",
    "test_sdk_js.py": "sdk",
    "test_sdk_entra.py": "sdk",
    "test_e2e_browser.py": "e2e",
}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    marker = _NEEDS_EXTRA.get(collection_path.name)
    if marker is not None and f"not {marker}" in (config.getoption("markexpr") or ""):
        return True
    return None


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's chatnb or ACS settings."""
    for name in list(os.environ):
        if name.startswith("CHATNB_") or name == "COMMUNICATION_SERVICES_CONNECTION_STRING":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One in-memory emulator for the session, HTTPS on a free loopback port."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that need an empty store."""
    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="session")
def reference() -> Path:
    """``shared/reference``: the ACS specifications and recorded real-service traffic."""
    if not REFERENCE.is_dir():
        pytest.fail(f"reference material missing at {REFERENCE}")
    return REFERENCE


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``CHATNB_HOME`` of the test's own (not created: chatnb makes it)."""
    monkeypatch.setenv("CHATNB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- raw wire access ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wire(emulator: Emulator) -> Iterator[Wire]:
    """Raw HTTP to the session's emulator: signed Identity calls, Bearer Chat calls."""
    with Wire(emulator) as w:
        yield w


@pytest.fixture
def alice(wire: Wire) -> User:
    """A new user with a chat token."""
    return wire.new_user()


@pytest.fixture
def bob(wire: Wire) -> User:
    """Another new user with a chat token."""
    return wire.new_user()


# -- clients ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(emulator: Emulator) -> Iterator[chatnb.CommunicationIdentityClient]:
    """chatnb's sync identity client of the session's emulator."""
    with chatnb.CommunicationIdentityClient.from_connection_string(emulator.connection_string) as client:
        yield client


@pytest.fixture
async def actors(emulator: Emulator) -> AsyncIterator[tuple[Actor, Actor, Actor]]:
    """Ann, Bob and Cy: new users making raw (async) Chat calls."""
    a, b, c = Actor(emulator, "Ann"), Actor(emulator, "Bob"), Actor(emulator, "Cy")
    yield a, b, c
    for actor in (a, b, c):
        await actor.aclose()


# -- widgets ------------------------------------------------------------------------------------------


@pytest.fixture
def chat(emulator: Emulator, home: Path) -> Iterator[Chat]:
    """Jack and Geeta in a new thread, through ``chatnb.connect``; their streams stopped afterwards."""
    session = chatnb.connect(emulator.connection_string)
    jack, geeta = session.user("Jack"), session.user("Geeta")
    thread = jack.create_thread("Widgets", participants=[geeta])
    yield Chat(session, jack, geeta, thread.thread_id)
    for user in session.users.values():
        user.chat_client.stop_realtime_notifications()
    session.close()


@pytest.fixture
def front(monkeypatch: pytest.MonkeyPatch) -> FrontEnd:
    """The stand-in browser, recording every widget made during the test."""
    return FrontEnd().install(monkeypatch)
