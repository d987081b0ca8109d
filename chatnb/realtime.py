"""Real-time notifications in a notebook kernel: the emulator's push stream, or polling against real ACS.

:class:`RealtimeNotifications` is the engine behind ``ChatClient.start_realtime_notifications()``,
``on()``, ``off()``, ``stop_realtime_notifications()`` and ``events()``. It feeds registered handlers
(plain functions or coroutine functions) and ``async for`` iterators from one of two sources:

- **push** (:class:`EventStream`): the emulator's Server-Sent Events stream
  (``GET /chatnb/events?api-version=2024-03-07`` with the user's bearer token). After a drop it reconnects
  with bounded exponential backoff and jitter, waiting at least what the server asked for (the
  ``Retry-After`` of a 429/503, else the stream's ``retry:`` field), sends ``Last-Event-ID`` and gets
  what it missed; events are de-duplicated by id, so a handler sees every event
  once, in order. The token comes from the credential on every (re)connect, so a refreshed token is
  picked up.
- **poll** (:class:`~chatnb._polling.Poller`): the real service has no push channel for Python, so the
  engine lists the user's threads, their new messages (``startTime``), read receipts and properties every
  ``poll_interval`` seconds and diffs them into the same events. **Typing indicators are not available in
  this mode** (the REST API cannot read them); the engine says so once, in a log warning.

``mode="auto"`` (the default) uses push when the endpoint serves the stream (the emulator) and polls
otherwise; ``mode="push"`` / ``mode="poll"`` force one. A handler that raises is logged and reported with
a :class:`RealtimeWarning` (once per handler); it never stops the stream.

>>> engine = RealtimeNotifications(emu.endpoint, credential)
>>> engine.on("chatMessageReceived", lambda e: print(e.sender_display_name, e.message))
>>> await engine.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Literal

import httpx

from ._stream import STREAM_API_VERSION, EventStream, SSEDecoder, SSEMessage
from .errors import StreamUnavailable
from .events import (
    EVENT_NAMES,
    Event,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
)

__all__ = [
    "STREAM_API_VERSION",
    "EventIterator",
    "EventStream",
    "Handler",
    "RealtimeNotifications",
    "RealtimeWarning",
    "SSEDecoder",
    "SSEMessage",
    "StreamUnavailable",
]

log = logging.getLogger("chatnb.realtime")

Handler = Callable[[Any], "Awaitable[object] | object"]
Mode = Literal["auto", "push", "poll"]


class RealtimeWarning(UserWarning):
    """Something went wrong in real-time notifications that the stream survived (a failing handler)."""


# -- the engine --------------------------------------------------------------------------------------

_END = object()


class RealtimeNotifications:
    """Handlers and iterators fed by the push stream or the poller (see the module docstring).

    Args:
        endpoint: the ACS (or emulator) endpoint.
        credential: a ``CommunicationTokenCredential`` or a token string.
        mode: ``"auto"``, ``"push"`` or ``"poll"``.
        poll_interval: seconds between polling rounds.
        connection_verify, transport: TLS trust (as the clients' ``connection_verify``) and an optional
            ``httpx.AsyncBaseTransport``.
        timeout: seconds a request of the poller may take in all, and the stream from a connect to its
            ``realTimeNotificationConnected`` event (the clients pass their ``timeout``).
    """

    def __init__(
        self,
        endpoint: str,
        credential: object,
        *,
        mode: Mode = "auto",
        poll_interval: float = 1.0,
        connection_verify: bool | str | ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.timeout = timeout
        self.mode: Mode = "auto"
        self.poll_interval = 1.0
        self.configure(mode, poll_interval)
        self.connection_verify = connection_verify
        self.transport = transport
        self.active_mode: Literal["push", "poll"] | None = None
        self.connected = False
        self.error: BaseException | None = None
        self._handlers: dict[str, list[Handler]] = {}
        self._reported: set[int] = set()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[object]]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._source: Any = None
        self._stopping: asyncio.Task[None] | None = None
        self.starts = 0
        """How many times the engine was started."""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RealtimeNotifications {state} mode={self.active_mode or self.mode} {self.endpoint}>"

    def configure(self, mode: Mode | None = None, poll_interval: float | None = None) -> None:
        """Set the mode and poll interval used by the next start (``None`` keeps the current one).

        Raises:
            ValueError: for an unknown mode or a poll interval that is not a positive number.
        """
        if mode is not None:
            if mode not in ("auto", "push", "poll"):
                raise ValueError(f"mode must be 'auto', 'push' or 'poll', not {mode!r}")
            self.mode = mode
        if poll_interval is not None:
            number = isinstance(poll_interval, int | float) and not isinstance(poll_interval, bool)
            if not number or poll_interval <= 0:
                raise ValueError("poll_interval must be a positive number of seconds")
            self.poll_interval = float(poll_interval)

    # -- handlers ---------------------------------------------------------------------------------

    def on(self, event_name: str, handler: Handler) -> None:
        """Call ``handler(event)`` for every ``event_name`` event (a JavaScript SDK event name).

        Raises:
            ValueError: for an unknown event name.
            TypeError: if ``handler`` is not callable.
        """
        if event_name not in EVENT_NAMES:
            raise ValueError(f"unknown event {event_name!r}; known events: {', '.join(EVENT_NAMES)}")
        if not callable(handler):
            raise TypeError("handler must be callable")
        handlers = self._handlers.setdefault(event_name, [])
        if handler not in handlers:
            self._handlers[event_name] = [*handlers, handler]

    def off(self, event_name: str, handler: Handler | None = None) -> None:
        """Stop calling ``handler`` (every handler of ``event_name`` if ``None``).

        Raises:
            ValueError: for an unknown event name.
        """
        if event_name not in EVENT_NAMES:
            raise ValueError(f"unknown event {event_name!r}; known events: {', '.join(EVENT_NAMES)}")
        if handler is None:
            self._handlers.pop(event_name, None)
        else:
            self._handlers[event_name] = [h for h in self._handlers.get(event_name, []) if h != handler]

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, RealTimeNotificationConnected):
            self.connected = True
            if self._ready is not None:
                self._ready.set()
        elif isinstance(event, RealTimeNotificationDisconnected):
            self.connected = False
        for handler in self._handlers.get(event.kind, ()):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._report(handler, event, exc)
        for loop, queue in list(self._subscribers):
            _put(loop, queue, event)

    def _report(self, handler: Handler, event: Event, exc: Exception) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        log.error("handler %s failed on %s event", name, event.kind, exc_info=exc)
        if id(handler) in self._reported:
            return
        self._reported.add(id(handler))
        with contextlib.suppress(Exception):  # warnings turned into errors must not stop the stream
            warnings.warn(
                f"the {event.kind} handler {name} raised {type(exc).__name__}: {exc} (further failures of "
                "this handler are only logged); the event stream goes on",
                RealtimeWarning,
                stacklevel=2,
            )

    # -- running ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the source (stream or poller) is running."""
        return self._task is not None and not self._task.done()

    def idle_handlers(self) -> bool:
        """Whether handlers are registered that nothing will call: the engine was never started and no
        ``events()`` iterator waits to start it."""
        return bool(self._handlers) and self.starts == 0 and not self._subscribers

    def cancel(self) -> None:
        """Cancel the running source at once, from the loop's own thread (:meth:`stop` then reports it)."""
        if self._task is not None:
            self._task.cancel()

    def schedule(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        last_event_id: str | int | None = None,
        since: datetime | None = None,
    ) -> None:
        """Start on ``loop`` (the running one) without waiting for the connection: push resumes after
        ``last_event_id`` (default: from the connection on), polling reports changes from ``since``
        (default: now)."""
        if self.running:
            return
        self.error = None
        self.starts += 1
        self._ready = asyncio.Event()
        since = since or datetime.now(timezone.utc)
        self._task = loop.create_task(self._run(last_event_id, since), name="chatnb-realtime")

    async def start(self, *, last_event_id: str | int | None = None, timeout: float = 15.0) -> None:
        """Start (if not running) and wait until connected (push) or the first poll round is done.

        Raises:
            StreamUnavailable: ``mode="push"`` on an endpoint without the stream.
            ChatError: the source failed before it connected (refused token...).
        """
        if not self.running:
            self.schedule(asyncio.get_running_loop(), last_event_id=last_event_id)
        started, task = self._ready, self._task
        if started is None or task is None:  # schedule() sets both
            raise RuntimeError("the real-time engine did not start")
        ready = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({ready, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if task.done() and self.error is not None:
            raise self.error
        if not self.connected:
            log.warning("real-time notifications are not connected yet; still trying in the background")

    async def _run(self, last_event_id: str | int | None, since: datetime) -> None:
        try:
            if self.mode != "poll":
                self._source = EventStream(
                    self.endpoint,
                    self.credential,
                    last_event_id=last_event_id,
                    connection_verify=self.connection_verify,
                    transport=self.transport,
                    timeout=self.timeout,
                )
                try:
                    self.active_mode = "push"
                    async for event in self._source:
                        await self._dispatch(event)
                    return
                except StreamUnavailable:
                    if self.mode == "push":
                        raise
                    log.info(
                        "%s serves no event stream: polling every %ss", self.endpoint, self.poll_interval
                    )
            from ._polling import Poller

            self.active_mode = "poll"
            self._source = Poller(
                self.endpoint,
                self.credential,
                interval=self.poll_interval,
                since=since,
                connection_verify=self.connection_verify,
                transport=self.transport,
                timeout=self.timeout,
            )
            async for event in self._source:
                await self._dispatch(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            log.error("real-time notifications stopped: %s", exc)
            if self.connected:
                await self._dispatch(RealTimeNotificationDisconnected(reason=f"{type(exc).__name__}: {exc}"))
            self._end_iterators()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the stream; handlers get a final ``realTimeNotificationDisconnected`` if it was connected.

        Called from a handler (inside the stream's own task), it returns at once and the stream stops
        when the handler returns. ``timeout``: seconds to wait for the source to end (``None``: as long
        as it takes).
        """
        task, self._task = self._task, None
        if task is not None and task is asyncio.current_task():
            self._task = task
            self._stopping = asyncio.get_running_loop().create_task(self.stop())
            return
        if task is not None and not task.done():
            task.cancel()
            if timeout is None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:
                await asyncio.wait({task}, timeout=timeout)
        if self.connected:
            await self._dispatch(RealTimeNotificationDisconnected(reason="stopped"))
        self._end_iterators()

    def _end_iterators(self) -> None:
        for loop, queue in list(self._subscribers):
            _put(loop, queue, _END)

    def events(self, starter: Callable[[], Awaitable[None]] | None = None) -> EventIterator:
        """Every event from now on (subscribed at this call), for ``async for``; ends when notifications
        stop or the iterator is closed (``break`` out of the loop, or ``await it.aclose()``).
        ``starter`` is awaited on the first ``__anext__`` if the engine is not running.

        Raises:
            RuntimeError: outside a running asyncio loop (use ``on()`` handlers there).
        """
        return EventIterator(self, starter)


class EventIterator:
    """An async iterator over an engine's events, subscribed from its creation."""

    def __init__(
        self, engine: RealtimeNotifications, starter: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "events() is for `async for` in a notebook cell or a coroutine; "
                "outside an asyncio loop, register handlers with on()"
            ) from None
        self._engine = engine
        self._starter = starter
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._entry = (loop, self._queue)
        engine._subscribers.append(self._entry)
        self._closed = False

    def __aiter__(self) -> EventIterator:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._starter is not None:
            starter, self._starter = self._starter, None
            if not self._engine.running:
                await starter()
        item = await self._queue.get()
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        if not isinstance(item, Event):
            raise RuntimeError(f"the event queue held a {type(item).__name__}, not an event")
        return item

    async def aclose(self) -> None:
        """Unsubscribe."""
        self._closed = True
        if self._entry in self._engine._subscribers:
            self._engine._subscribers.remove(self._entry)


def _put(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object], item: object) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        queue.put_nowait(item)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(queue.put_nowait, item)
