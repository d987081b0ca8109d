"""``await bounded(seconds, awaitable)``: ``awaitable``, cancelled once ``seconds`` have passed, shared by
the client, the emulator and the widgets.

A cancellation from outside is never lost, whatever comes in the same turn of the loop: the awaited
answer (:func:`asyncio.wait_for` before Python 3.12 returns the answer and drops the cancellation) or the
deadline (``async-timeout`` on Python 3.10 turns the cancellation into its ``TimeoutError``). Either way a
poller or a stream being stopped would go on. From Python 3.11 it is :func:`asyncio.timeout`, which
counts cancellations; on 3.10 the awaitable runs in a task of its own that is watched with
:func:`asyncio.wait`, which lets a cancellation through whatever else is ready.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["bounded"]

T = TypeVar("T")


async def bounded(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, cancelled after ``seconds``.

    Raises:
        asyncio.TimeoutError: once ``seconds`` have passed (what was awaited is cancelled).
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await _bounded_in_a_task(seconds, awaitable)  # pragma: no cover - Python 3.10


async def _bounded_in_a_task(seconds: float, awaitable: Awaitable[T]) -> T:
    inner = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({inner}, timeout=seconds)
    except asyncio.CancelledError:
        # cancelled from outside: even if the answer came in the same turn, it is dropped (as a task
        # cancelled just after its answer would drop it) and the cancellation goes on
        await _cancel(inner)
        raise
    if not done:
        await _cancel(inner)
        raise asyncio.TimeoutError
    return inner.result()


async def _cancel(inner: asyncio.Future[T]) -> None:
    """Cancel ``inner`` and let its own clean-up run; an error it ended with is taken (not reported as
    never retrieved): what matters to the caller is the cancellation or the deadline."""
    inner.cancel()
    await asyncio.wait({inner})
    if not inner.cancelled():
        inner.exception()
