"""Waiting on a condition, for what has no event a test could wait on (a file another process writes, a
process's state, a log record, an engine's flag): checked every ``interval`` until true, or the test fails.
And :func:`clock_tick`, for a test that needs a moment strictly between two stamps.

The sleeps here are the polling interval, not a guess of how long something takes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from chatnb._time import now_us, to_datetime

__all__ = ["async_wait_until", "clock_tick", "wait_until"]


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.01
) -> None:
    """Wait for ``condition()`` to be truthy (checked every ``interval`` s) or fail naming ``what``."""
    for _ in _checks(condition, what, timeout):
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.01
) -> None:
    """:func:`wait_until` for a coroutine: the event loop runs while it waits."""
    for _ in _checks(condition, what, timeout):
        await asyncio.sleep(interval)


def _checks(condition: Callable[[], object], what: str, timeout: float) -> Iterator[None]:
    """One item each time ``condition()`` is still false; the test fails once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        yield


def clock_tick() -> datetime:
    """The wall clock once it has moved on: strictly after every time stamped before the call (UTC).

    The emulator stamps with the same clock (``chatnb._time.now_us``, microseconds), so the moment returned
    is after all it stamped before the call and not after anything it stamps next. It spins for a
    microsecond at most, instead of sleeping "long enough" for the clock to move.
    """
    start = now_us()
    while (now := now_us()) <= start:
        pass
    return to_datetime(now)
