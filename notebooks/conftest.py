"""nbval over the notebooks: each notebook runs in a fresh kernel on a fresh emulator.

``pytest`` collects the notebooks with ``--nbval`` (``addopts`` in ``pyproject.toml``); this file adds
what nbval itself does not:

- the sanitize rules in ``nbval_sanitize.cfg`` (unless ``--nbval-sanitize-with`` names others);
- for each notebook, a new temporary ``CHATNB_HOME`` in the kernel's environment (so its first cell
  starts a new emulator there) and no ``COMMUNICATION_SERVICES_CONNECTION_STRING`` (the committed
  outputs are the emulator's, so nbval checks against the emulator even on a machine set up for real
  ACS);
- afterwards, the emulator process of that ``CHATNB_HOME`` is stopped if the notebook did not get to its
  last cell, and the directory is removed;
- matplotlib's font cache is built before the kernels start, so that no notebook prints "Matplotlib is
  building the font cache" on a fresh machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatnb.emulator import stop_announced

HERE = Path(__file__).resolve().parent
SANITIZE = HERE / "nbval_sanitize.cfg"
CONNECTION_STRING_ENV = "COMMUNICATION_SERVICES_CONNECTION_STRING"

_homes: dict[str, Path] = {}


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if getattr(option, "nbval_sanitize_with", "unset") is None:
        option.nbval_sanitize_with = str(SANITIZE)
    if getattr(option, "nbval", False):
        with contextlib.suppress(ImportError):
            import matplotlib.font_manager  # noqa: F401  (builds the font cache once)


def _notebook_key(item: pytest.Item) -> str | None:
    parent = item.parent
    if parent is None or not str(parent.path).endswith(".ipynb"):
        return None
    return str(parent.path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    key = _notebook_key(item)
    if key is None or key in _homes:
        yield
        return
    home = Path(tempfile.mkdtemp(prefix="chatnb-nbval-"))
    _homes[key] = home
    saved = {name: os.environ.get(name) for name in ("CHATNB_HOME", CONNECTION_STRING_ENV)}
    os.environ["CHATNB_HOME"] = str(home)
    os.environ.pop(CONNECTION_STRING_ENV, None)
    try:
        yield  # nbval starts the notebook's kernel here, with this environment
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop_emulator(home: Path) -> None:
    """Stop the emulator a notebook left running in ``home`` (it normally stops it itself)."""
    stop_announced(home / "emulator")


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    key = _notebook_key(item)
    if key is None or (nextitem is not None and _notebook_key(nextitem) == key):
        return
    home = _homes.pop(key, None)
    if home is not None:
        _stop_emulator(home)
        shutil.rmtree(home, ignore_errors=True)
