"""``timeout(seconds)``: an ``async with`` block cancelled once ``seconds`` have passed, shared by the
client and the emulator.

It is :func:`asyncio.timeout` where Python has it (3.11 and newer) and async-timeout's on Python 3.10.
Both cancel the running task itself, so a cancellation from outside that comes just as the awaited thing
completes is never lost, as it can be with :func:`asyncio.wait_for` before Python 3.12 (its inner task
completes, and the caller goes on as if it had not been cancelled: a poller being stopped polled on).
Either raises :class:`asyncio.TimeoutError` when the time is up.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - Python 3.10
    from async_timeout import timeout

__all__ = ["timeout"]
