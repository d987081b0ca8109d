"""Shared fixtures: a real emulator on a free loopback port, and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatnb.emulator import Emulator

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
