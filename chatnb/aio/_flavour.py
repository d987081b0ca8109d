"""What the async flavour does its own way; the sync twin is :mod:`chatnb._flavour` (hand-written too).

The shells (``chatnb/aio/_sender.py``, ``_client.py``, ``_identity.py``, ``_credential.py`` and
``chatnb/export/_aio.py``) are written once, async, and ``scripts/unasync.py`` generates their sync
twins. What cannot be said with the same words in both flavours lives here and in :mod:`chatnb._flavour`,
under the same names: locks, background work, work handed to a thread, how a credential is asked for its
token, which clients a function accepts, and how an attempt is held to its deadline (here
:func:`chatnb._timeout.bounded`; the sync flavour bounds each socket operation: :mod:`chatnb._deadline`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import httpx

from .._timeout import bounded
from .._tokens import token_getter, token_text, wrap_credential
from .._transport import deadline_message

__all__ = [
    "Ahead",
    "Background",
    "Lock",
    "Prefetcher",
    "as_credential",
    "bearer_token",
    "call_refresher",
    "check_refresher",
    "default_transport",
    "offload",
    "offload_whole",
    "require_client",
    "run_concurrently",
    "within",
]

T = TypeVar("T")

Lock = asyncio.Lock
"""The lock of a credential's refresh: held across ``await``, so only one refresh runs."""


async def offload(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread, so that blocking work does not stall the event loop."""
    return await asyncio.to_thread(function, *args)


async def offload_whole(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a worker thread, which is never left running on its own: when the
    awaiting task is cancelled, the cancellation waits for the call to end (the export's writes)."""
    future = asyncio.ensure_future(asyncio.to_thread(function, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.gather(future, return_exceptions=True)
        raise


async def run_concurrently(
    function: Callable[[Any], Coroutine[Any, Any, None]],
    items: Iterable[Any],
    limit: int,
    on_stop: Callable[[], None],
) -> None:
    """``await function(item)`` for every item, at most ``limit`` at once (in tasks), in order of start.

    The first exception of any call stops the others: ``on_stop()`` is called, the other tasks are
    cancelled and awaited, and the exception is raised.
    """
    pending = iter(list(items))

    async def worker() -> None:
        for item in pending:
            await function(item)

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, limit))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        on_stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def call_refresher(refresher: Callable[[], Any]) -> Any:
    """What a token refresher returns: a coroutine function is awaited; a plain callable (which may
    block: it usually asks the identity service) runs in a worker thread."""
    if inspect.iscoroutinefunction(refresher):
        return await refresher()
    result = await asyncio.to_thread(refresher)
    if inspect.isawaitable(result):
        result = await result
    return result


async def within(
    seconds: float | None, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """``await function(*args, **kwargs)`` (one attempt: connect, send, read the answer), ended after
    ``seconds`` (``None``: no deadline).

    Raises:
        httpx.ReadTimeout: once the deadline passes (what was running is cancelled).
    """
    if seconds is None:
        return await function(*args, **kwargs)
    try:
        return await bounded(seconds, function(*args, **kwargs))
    except asyncio.TimeoutError:
        raise httpx.ReadTimeout(deadline_message(seconds)) from None


def default_transport(verify: bool | ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport of an async client, poller or stream: httpx's own (:func:`within` bounds it)."""
    return None


def check_refresher(refresher: object) -> None:
    """Check a credential's ``token_refresher``: here any callable will do (a coroutine function too)."""


async def bearer_token(credential: object) -> str:
    """The current access token of ``credential``: a token string, or anything with ``get_token()``
    returning a string or an object with ``.token``. An async ``get_token`` is awaited; a sync one runs
    in a worker thread, since it may call a blocking token refresher.

    Raises:
        TypeError: if ``credential`` has no ``get_token()`` or it returns no token.
        ValueError: for a token a header cannot carry (the message does not show it).
    """
    if isinstance(credential, str):
        return token_text(credential)
    get = token_getter(credential)
    if inspect.iscoroutinefunction(get):
        result = await get()
    else:
        result = await asyncio.to_thread(get)
        if inspect.isawaitable(result):
            result = await result
    return token_text(result)


def as_credential(credential: object, wrap: Callable[[str], Any]) -> Any:
    """An async client's ``credential`` argument: a token string wrapped with ``wrap``, or a credential
    (async, or sync: its ``get_token()`` then runs in a worker thread).

    Raises:
        TypeError: for anything else.
    """
    return wrap_credential(credential, wrap)


def require_client(client: object, function: str) -> None:
    """Check that ``function`` (``"export_history"``...) of :mod:`chatnb.aio` was given an async client.

    Raises:
        TypeError: for a sync chatnb client, naming the fix.
    """
    close = getattr(client, "close", None)
    if close is not None and not inspect.iscoroutinefunction(close):
        name = type(client).__name__
        raise TypeError(
            f"chatnb.aio.{function} needs a chatnb.aio client, not the sync chatnb.{name}: call "
            f"chatnb.{function}(...) without await, or pass a chatnb.aio.{name}"
        )


class Background:
    """One background job of an object (a credential's proactive refresh): a task on the running loop.

    ``start()`` creates the task when a loop is running (else on a later ``start()``), ``sleep()`` is the
    job's interruptible wait, ``stop()`` cancels it and waits for it to end.
    """

    def __init__(self, job: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._job = job
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a loop yet: the next start() (from a coroutine) creates the task
            return
        self._task = loop.create_task(self._job(), name=self._name)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Ahead:
    """Work started ahead of need (the export's next page): its ``result()``, or ``cancel()`` it."""

    def __init__(self, task: asyncio.Future[Any]) -> None:
        self._task = task

    async def result(self) -> Any:
        return await self._task

    async def cancel(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Prefetcher:
    """Starts work ahead of need on the event loop: ``async with Prefetcher() as ahead: ahead.start(...)``."""

    async def __aenter__(self) -> Prefetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def start(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Ahead:
        """Run ``function(*args)`` (a coroutine function) in a task."""
        return Ahead(asyncio.ensure_future(function(*args)))
