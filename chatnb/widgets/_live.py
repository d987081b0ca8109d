"""Plumbing shared by the widgets: real-time subscriptions, calls to sync or async clients, throttled
re-rendering, and blocking waits that let a notebook kernel's loop turn.

Handlers registered with ``ChatClient.on()`` run on the kernel's event loop (a sync client in a notebook),
on the loop of an async client, or on a background thread (a sync client where no loop runs, as in a
script or a test). The widgets therefore only ever *set traits* from handlers (never ``with output:``),
guard their state with a lock, and coalesce re-renders (:class:`Throttle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ..events import EVENT_NAMES

__all__ = [
    "EVENT_NAMES",
    "Subscription",
    "Throttle",
    "call",
    "chat_client_for",
    "describe_error",
    "own_user_id",
    "raw_id",
    "run_blocking",
]

T = TypeVar("T")

# Chat clients made for thread clients handed to widgets on their own, one per credential, so that every
# widget of one user shares one event stream.
_CLIENTS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_CLIENTS_LOCK = threading.Lock()


def raw_id(value: object) -> str:
    """The raw id of an identifier, participant, user or id string (``""`` for ``None``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    for attr in ("raw_id", "id"):
        inner = getattr(value, attr, None)
        if isinstance(inner, str):
            return inner
    identifier = getattr(value, "identifier", None)
    if identifier is not None:
        return raw_id(identifier)
    return str(value)


def own_user_id(client: Any) -> str | None:
    """The ACS user a client acts as, read from its access token (``None`` if it cannot be told)."""
    from .._polling import user_of_token

    credential = getattr(client, "credential", None)
    try:
        token = credential.get_token() if credential is not None else None
    except Exception:
        return None
    if inspect.isawaitable(token):  # an async credential: the caller should pass the user
        with contextlib.suppress(Exception):
            token.close()  # type: ignore[attr-defined]
        return None
    try:
        return user_of_token(str(getattr(token, "token", token)))
    except ValueError:
        return None


def is_async_client(client: Any) -> bool:
    """Whether ``client`` is one of :mod:`chatnb.aio`'s clients (its methods are coroutines)."""
    return inspect.iscoroutinefunction(
        getattr(client, "list_participants", None)
    ) or inspect.iscoroutinefunction(getattr(client, "list_chat_threads", None))


def chat_client_for(thread_client: Any, chat_client: Any = None) -> Any:
    """The ``ChatClient`` whose real-time events a widget of ``thread_client`` follows.

    ``chat_client`` if given; otherwise one chat client per credential, made on first use with the thread
    client's endpoint and TLS settings, so a user's widgets share one event stream.
    """
    if chat_client is not None:
        return chat_client
    credential = thread_client.credential
    with _CLIENTS_LOCK:
        existing = _CLIENTS.get(credential)
        if existing is not None:
            return existing
        if is_async_client(thread_client):
            from ..aio import ChatClient as AsyncChatClient

            made: Any = AsyncChatClient(
                thread_client.endpoint, credential, connection_verify=thread_client.connection_verify
            )
        else:
            from ..client import ChatClient

            made = ChatClient(
                thread_client.endpoint, credential, connection_verify=thread_client.connection_verify
            )
        _CLIENTS[credential] = made
        return made


def call(
    fn: Callable[..., Any],
    *args: Any,
    on_done: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    **kwargs: Any,
) -> asyncio.Task[Any] | None:
    """Call ``fn``; hand its result to ``on_done`` (or its exception to ``on_error``).

    A sync client's method completes before this returns (``None``); an async client's coroutine is
    scheduled on the running loop and its task returned.
    """
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        on_error(exc)
        return None
    if not inspect.isawaitable(result):
        on_done(result)
        return None

    async def finish(awaitable: Awaitable[Any]) -> None:
        try:
            value = await awaitable
        except Exception as exc:
            on_error(exc)
        else:
            on_done(value)

    return asyncio.ensure_future(finish(result))


def describe_error(exc: BaseException) -> str:
    """One readable line for an exception (its class and message, no traceback)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else repr(exc)}"


class Subscription:
    """Handlers registered on a chat client's real-time events; :meth:`close` removes them."""

    def __init__(
        self, chat_client: Any, handler: Callable[[Any], None], names: tuple[str, ...] = EVENT_NAMES
    ):
        self.chat_client = chat_client
        self.names = tuple(names)
        self._handler = handler
        for name in self.names:
            chat_client.on(name, handler)
        self.start_task: asyncio.Future[Any] | None = None
        started = chat_client.start_realtime_notifications()
        if inspect.isawaitable(started):
            self.start_task = asyncio.ensure_future(started)

    def close(self) -> None:
        for name in self.names:
            with contextlib.suppress(Exception):
                self.chat_client.off(name, self._handler)


class Throttle:
    """Call ``fn`` at most once per ``interval`` seconds; requests in between are coalesced into one
    trailing call, made on the requesting loop (``call_later``) or, with no loop, on a timer thread."""

    def __init__(self, fn: Callable[[], None], interval: float = 0.1) -> None:
        self._fn = fn
        self.interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._pending = False

    def __call__(self) -> None:
        with self._lock:
            if self._pending:
                return
            delay = self._last + self.interval - time.monotonic()
            if delay > 0:
                self._pending = True
            else:
                self._last = time.monotonic()
        if delay <= 0:
            self._fn()
            return
        try:
            asyncio.get_running_loop().call_later(delay, self._fire)
        except RuntimeError:
            timer = threading.Timer(delay, self._fire)
            timer.daemon = True
            timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._pending:
                return
            self._pending = False
            self._last = time.monotonic()
        self._fn()

    def flush(self) -> None:
        """Call ``fn`` now (a pending trailing call is dropped)."""
        with self._lock:
            self._pending = False
            self._last = time.monotonic()
        self._fn()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code and return its result.

    With no event loop running in this thread, ``asyncio.run``. In a notebook cell (the kernel's loop
    is running in this thread), the loop itself must turn while we wait, so that the events being waited
    for are delivered: only here, and only then, is ``nest_asyncio2`` applied, to that loop.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    return loop.run_until_complete(coro)
