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
    "is_async_client",
    "own_user_id",
    "own_user_id_async",
    "raw_id",
    "release_chat_client",
    "run_blocking",
]

T = TypeVar("T")

# Chat clients made for thread clients handed to widgets on their own: one per credential, so that a
# user's widgets share one event stream, counted so that the last widget to close stops and closes it.
_SHARED: dict[int, list[Any]] = {}  # id(client) -> [client, credential, widgets using it]
_BY_CREDENTIAL: dict[int, Any] = {}  # id(credential) -> client
_SHARED_LOCK = threading.Lock()


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


def _user_of(token: Any) -> str | None:
    from .._polling import user_of_token

    try:
        return user_of_token(str(getattr(token, "token", token)))
    except ValueError:
        return None


def own_user_id(client: Any) -> str | None:
    """The ACS user a sync client acts as, read from its access token (``None`` if it cannot be told,
    as for an async client: see :func:`own_user_id_async`)."""
    credential = getattr(client, "credential", None)
    try:
        token = credential.get_token() if credential is not None else None
    except Exception:
        return None
    if inspect.isawaitable(token):
        with contextlib.suppress(Exception):
            token.close()  # type: ignore[attr-defined]
        return None
    return None if token is None else _user_of(token)


async def own_user_id_async(client: Any) -> str | None:
    """:func:`own_user_id` for a client of either kind, awaiting an async credential."""
    credential = getattr(client, "credential", None)
    try:
        token = credential.get_token() if credential is not None else None
        if inspect.isawaitable(token):
            token = await token
    except Exception:
        return None
    return None if token is None else _user_of(token)


def is_async_client(client: Any) -> bool:
    """Whether ``client`` is one of :mod:`chatnb.aio`'s clients (its methods are coroutines)."""
    return inspect.iscoroutinefunction(
        getattr(client, "list_participants", None)
    ) or inspect.iscoroutinefunction(getattr(client, "list_chat_threads", None))


def chat_client_for(thread_client: Any, chat_client: Any = None) -> Any:
    """The ``ChatClient`` whose real-time events a widget follows; pair with :func:`release_chat_client`.

    ``chat_client`` if given; otherwise one chat client per credential, made on first use with the thread
    client's endpoint and TLS settings, so a user's widgets share one event stream.
    """
    with _SHARED_LOCK:
        if chat_client is None:
            credential = thread_client.credential
            chat_client = _BY_CREDENTIAL.get(id(credential))
            if chat_client is None:
                chat_client = _make_chat_client(thread_client)
                _BY_CREDENTIAL[id(credential)] = chat_client
                _SHARED[id(chat_client)] = [chat_client, credential, 0]
        entry = _SHARED.get(id(chat_client))
        if entry is not None:
            entry[2] += 1
        return chat_client


def _make_chat_client(thread_client: Any) -> Any:
    if is_async_client(thread_client):
        from ..aio import ChatClient as AsyncChatClient

        return AsyncChatClient(
            thread_client.endpoint,
            thread_client.credential,
            connection_verify=thread_client.connection_verify,
        )
    from ..client import ChatClient

    return ChatClient(
        thread_client.endpoint, thread_client.credential, connection_verify=thread_client.connection_verify
    )


def release_chat_client(chat_client: Any) -> None:
    """A widget is done with ``chat_client``: stop and close it if it was made by
    :func:`chat_client_for` and no other widget uses it (clients you passed in are left alone)."""
    with _SHARED_LOCK:
        entry = _SHARED.get(id(chat_client))
        if entry is None or entry[0] is not chat_client:
            return
        entry[2] -= 1
        if entry[2] > 0:
            return
        del _SHARED[id(chat_client)]
        _BY_CREDENTIAL.pop(id(entry[1]), None)
    closed = chat_client.close()  # stops real-time notifications too
    if inspect.isawaitable(closed):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            closed.close()  # type: ignore[attr-defined]
            return
        _keep(asyncio.ensure_future(closed))


_BACKGROUND: set[asyncio.Future[Any]] = set()


def _keep(future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Hold a reference to a background task until it is done (the loop only keeps weak ones)."""
    _BACKGROUND.add(future)
    future.add_done_callback(_BACKGROUND.discard)
    return future


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

    task = asyncio.ensure_future(finish(result))
    _keep(task)
    return task


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
        self.closed = False
        for name in self.names:
            chat_client.on(name, handler)
        self.start_task: asyncio.Future[Any] | None = None
        started = chat_client.start_realtime_notifications()
        if inspect.isawaitable(started):
            self.start_task = asyncio.ensure_future(started)

    def close(self) -> bool:
        """Remove the handlers; ``True`` the first time, ``False`` if already closed."""
        if self.closed:
            return False
        self.closed = True
        for name in self.names:
            with contextlib.suppress(Exception):
                self.chat_client.off(name, self._handler)
        return True


class Throttle:
    """Call ``fn`` at most once per ``interval`` seconds; requests in between are coalesced into one
    trailing call, made on the requesting loop (``call_later``) or, with no loop, on a timer thread."""

    def __init__(self, fn: Callable[[], None], interval: float = 0.1) -> None:
        self._render = fn
        self.interval = interval
        self._lock = threading.Lock()
        self._running = threading.RLock()  # one render at a time: the last one to run saw the latest state
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

    def _fn(self) -> None:
        with self._running:
            self._render()

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

    The loop iteration that is running this cell was started by the unpatched ``_run_once``, which
    counted the callbacks it will still pop before the nested run could consume some of them; topping
    the ready queue back up with no-op callbacks keeps that outer iteration from popping an empty queue
    (``IndexError: pop from an empty deque``, which kills the kernel).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    ready = getattr(loop, "_ready", None)
    expected = len(ready) if ready is not None else 0
    try:
        return loop.run_until_complete(coro)
    finally:
        if ready is not None:
            for _ in range(expected - len(ready)):
                loop.call_soon(_nothing)


def _nothing() -> None:
    """A placeholder callback (see :func:`run_blocking`)."""
