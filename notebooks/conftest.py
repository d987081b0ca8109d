"""nbval over the notebooks: each notebook runs in a fresh kernel on a fresh emulator.

``pytest`` collects the notebooks with ``--nbval`` (``addopts`` in ``pyproject.toml``); this file adds
what nbval itself does not:

- the sanitize rules in ``nbval_sanitize.cfg`` (unless ``--nbval-sanitize-with`` names others);
- for each notebook, a new temporary folder that is the kernel's ``CHATNB_HOME`` and ``TMPDIR`` (so the
  notebook's own temporary emulator and files land there), and no
  ``COMMUNICATION_SERVICES_CONNECTION_STRING`` (the committed outputs are the emulator's, so nbval checks
  against the emulator even on a machine set up for real ACS);
- afterwards, every emulator with its location in that folder is stopped (the notebook normally stops
  its own in its last cell), and the folder is removed;
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

from chatnb.location import stop_all

HERE = Path(__file__).resolve().parent
SANITIZE = HERE / "nbval_sanitize.cfg"
CONNECTION_STRING_ENV = "COMMUNICATION_SERVICES_CONNECTION_STRING"
KERNEL_ENV = ("CHATNB_HOME", "TMPDIR", CONNECTION_STRING_ENV)

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
    saved = {name: os.environ.get(name) for name in KERNEL_ENV}
    os.environ["CHATNB_HOME"] = os.environ["TMPDIR"] = str(home)
    os.environ.pop(CONNECTION_STRING_ENV, None)
    try:
        yield  # nbval starts the notebook's kernel here, with this environment
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.hookimpl(hookwrapper=True)  # after nbval's own teardown, which shuts the kernel down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    key = _notebook_key(item)
    if key is None or (nextitem is not None and _notebook_key(nextitem) == key):
        return
    home = _homes.pop(key, None)
    if home is not None:
        stop_all(under=home)  # what the notebook left running (it normally stops its emulator itself)
        shutil.rmtree(home, ignore_errors=True)
