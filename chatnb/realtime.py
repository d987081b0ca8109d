"""Real-time notifications in a notebook kernel: the emulator's push stream, or polling against real ACS.

:class:`RealtimeNotifications` is the engine behind ``ChatClient.start_realtime_notifications()``,
``on()``, ``off()``, ``stop_realtime_notifications()`` and ``events()``. It feeds registered handlers
(plain functions or coroutine functions) and ``async for`` iterators from one of two sources:

- **push** (:class:`EventStream`): the emulator's Server-Sent Events stream
  (``GET /chatnb/events?api-version=2024-03-07`` with the user's bearer token). After a drop it reconnects
  with bounded exponential backoff and jitter (waiting at least the ``Retry-After`` of a 429/503), sends
  ``Last-Event-ID`` and gets what it missed; events are de-duplicated by id, so a handler sees every event
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
import random
import ssl
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import httpx

from ._core import normalize_endpoint, parse_retry_after, resolve_verify
from .errors import ChatError, error_from_response
from .events import (
    EVENT_NAMES,
    Event,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
    parse_event,
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
    "bearer_token",
    "make_http_client",
]

log = logging.getLogger("chatnb.realtime")

STREAM_API_VERSION = "2024-03-07"
Handler = Callable[[Any], "Awaitable[object] | object"]
Mode = Literal["auto", "push", "poll"]


class RealtimeWarning(UserWarning):
    """Something went wrong in real-time notifications that the stream survived (a failing handler)."""


class StreamUnavailable(ChatError):
    """The endpoint serves no chatnb event stream (it is not the emulator): poll instead."""


# -- Server-Sent Events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched SSE event: its type (``"message"`` by default), data and the last event id."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """An incremental ``text/event-stream`` decoder following the WHATWG HTML rules.

    Lines end in CRLF, LF or CR; ``:`` starts a comment; a blank line dispatches the event (not when it
    has no data); ``id`` persists across events (and is ignored if it contains NUL); ``retry`` sets
    :attr:`retry` (milliseconds). A partial event at the end of the stream is dropped.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, text: str) -> list[SSEMessage]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        self._buffer += text
        out: list[SSEMessage] = []
        start = 0
        buf = self._buffer
        while True:
            cr, lf = buf.find("\r", start), buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            if buf[end] == "\r":
                if end + 1 == len(buf):  # CR at the end: wait to see whether LF follows
                    break
                nxt = end + 2 if buf[end + 1] == "\n" else end + 1
            else:
                nxt = end + 1
            message = self._line(buf[start:end])
            if message is not None:
                out.append(message)
            start = nxt
        self._buffer = buf[start:]
        return out

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self.last_event_id)
            self._data, self._event = [], ""
            return message
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry" and value.isdigit():
            self.retry = int(value)
        return None


# -- plumbing shared with the poller ---------------------------------------------------------------


async def bearer_token(credential: object) -> str:
    """The current access token of ``credential``: a token string, or anything with ``get_token()``
    (sync or async) returning a string or an object with ``.token``; a sync one runs in a thread, since
    it may call a token refresher."""
    if isinstance(credential, str):
        return credential
    get = getattr(credential, "get_token", None)
    if get is None:
        raise TypeError(f"credential must have get_token(), not {type(credential).__name__}")
    if inspect.iscoroutinefunction(get):
        result = await get()
    else:
        result = await asyncio.to_thread(get)
        if inspect.isawaitable(result):
            result = await result
    token = result if isinstance(result, str) else getattr(result, "token", None)
    if not isinstance(token, str):
        raise TypeError("credential.get_token() returned no token")
    return token


def make_http_client(
    endpoint: str,
    verify: bool | str | ssl.SSLContext | None,
    transport: httpx.AsyncBaseTransport | None,
    read_timeout: float | None = 30.0,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` trusting what the chatnb clients trust (the emulator's CA by default)."""
    return httpx.AsyncClient(
        verify=resolve_verify(normalize_endpoint(endpoint), verify),
        transport=transport,
        timeout=httpx.Timeout(10.0, read=read_timeout),
    )


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """``initial * 2**attempt`` capped at ``maximum``, with jitter (50-100 % of it)."""
    delay: float = min(maximum, initial * (2.0 ** min(attempt, 30)))
    return delay * (0.5 + random.random() / 2)


# -- push: the emulator's event stream -------------------------------------------------------------


class EventStream:
    """The emulator's event stream as an async iterator of events, surviving drops.

    Yields :class:`RealTimeNotificationConnected` on every (re)connection and
    :class:`RealTimeNotificationDisconnected` on every drop, and each chat event once, in journal order.

    Args:
        endpoint: the emulator's endpoint.
        credential: a ``CommunicationTokenCredential`` (or token string); asked on every connect.
        last_event_id: resume after this journal id (``None``: from now).
        verify, transport: TLS trust and an optional ``httpx.AsyncBaseTransport``.
        backoff: initial and maximum reconnect delay, in seconds.
        read_timeout: seconds without a byte (the emulator sends a heartbeat every 15 s) before the
            connection is considered dead.

    Raises (from iteration):
        StreamUnavailable: the endpoint serves no event stream.
        AuthenticationError / ForbiddenError: the token is refused again and again, or lacks chat scope.
    """

    def __init__(
        self,
        endpoint: str,
        credential: object,
        *,
        last_event_id: str | int | None = None,
        verify: bool | str | ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: tuple[float, float] = (0.2, 10.0),
        read_timeout: float = 45.0,
        max_auth_failures: int = 3,
    ) -> None:
        self.url = f"{normalize_endpoint(endpoint)}/chatnb/events?api-version={STREAM_API_VERSION}"
        self._endpoint = endpoint
        self._credential = credential
        self._verify = verify
        self._transport = transport
        self._backoff = backoff
        self._read_timeout = read_timeout
        self._max_auth_failures = max_auth_failures
        self.last_event_id: int | None = None if last_event_id is None else int(last_event_id)
        self.connected = False
        self.reconnects = 0
        self.duplicates = 0

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Event, None]:
        attempt = auth_failures = 0
        async with make_http_client(
            self._endpoint, self._verify, self._transport, self._read_timeout
        ) as http:
            while True:
                reason = "the server ended the stream"
                delay: float | None = None
                try:
                    headers = {
                        "Authorization": f"Bearer {await bearer_token(self._credential)}",
                        "Accept": "text/event-stream",
                        "Cache-Control": "no-cache",
                    }
                    if self.last_event_id is not None:
                        headers["Last-Event-ID"] = str(self.last_event_id)
                    async with http.stream("GET", self.url, headers=headers) as response:
                        status = response.status_code
                        content_type = response.headers.get("content-type", "")
                        if status == 200 and content_type.startswith("text/event-stream"):
                            auth_failures = 0
                            async for event in self._read(response):
                                if isinstance(event, RealTimeNotificationConnected):
                                    attempt = 0
                                yield event
                        else:
                            await response.aread()
                            reason = f"HTTP {status}"
                            if status == 401:
                                auth_failures += 1
                                if auth_failures >= self._max_auth_failures:
                                    raise error_from_response(response)
                            elif status == 403:
                                raise error_from_response(response)
                            elif status in (429, 503) or status >= 500:
                                delay = parse_retry_after(response.headers)
                            else:
                                raise StreamUnavailable(
                                    f"{self._endpoint} serves no event stream (HTTP {status})"
                                )
                except httpx.TransportError as exc:
                    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                except httpx.StreamError as exc:  # pragma: no cover - httpx misuse guard
                    reason = repr(exc)
                if self.connected:
                    self.connected = False
                    yield RealTimeNotificationDisconnected(reason=reason)
                # A Retry-After is a minimum: a server answering 503 with "Retry-After: 0" again and again
                # must not turn the reconnect loop into a busy loop.
                delay = max(delay or 0.0, backoff_delay(attempt, *self._backoff))
                log.log(
                    logging.INFO if attempt == 0 else logging.DEBUG,
                    "event stream: %s; retry in %.2fs",
                    reason,
                    delay,
                )
                attempt += 1
                self.reconnects += 1
                await asyncio.sleep(delay)

    async def _read(self, response: httpx.Response) -> AsyncIterator[Event]:
        decoder = SSEDecoder()
        gap = False
        async for chunk in response.aiter_text():
            for message in decoder.feed(chunk):
                if message.event == "journalGap":
                    gap = True
                    log.warning(
                        "event stream: the server no longer holds some missed events: %s", message.data
                    )
                    continue
                if message.event == RealTimeNotificationConnected.kind:
                    resumed = message.id if message.id and message.id.isdigit() else None
                    if resumed is not None:
                        self.last_event_id = int(resumed)  # below ours only if the journal was reset
                    self.connected = True
                    yield RealTimeNotificationConnected(last_event_id=resumed, mode="push", journal_gap=gap)
                    continue
                event_id = int(message.id) if message.id and message.id.isdigit() else None
                if event_id is not None:
                    if self.last_event_id is not None and event_id <= self.last_event_id:
                        self.duplicates += 1
                        continue
                    self.last_event_id = event_id
                try:
                    yield parse_event(message.event, message.data, event_id=event_id)
                except ValueError as exc:
                    log.debug("event stream: skipping %s event: %s", message.event, exc)


# -- the engine --------------------------------------------------------------------------------------

_END = object()


class RealtimeNotifications:
    """Handlers and iterators fed by the push stream or the poller (see the module docstring).

    Args:
        endpoint: the ACS (or emulator) endpoint.
        credential: a ``CommunicationTokenCredential`` or a token string.
        mode: ``"auto"``, ``"push"`` or ``"poll"``.
        poll_interval: seconds between polling rounds.
        verify, transport: TLS trust and an optional ``httpx.AsyncBaseTransport``.
    """

    def __init__(
        self,
        endpoint: str,
        credential: object,
        *,
        mode: Mode = "auto",
        poll_interval: float = 1.0,
        verify: bool | str | ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.mode: Mode = "auto"
        self.poll_interval = 1.0
        self.configure(mode, poll_interval)
        self.verify = verify
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
        return self._task is not None and not self._task.done()

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
        assert self._ready is not None and self._task is not None
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait({ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._task.done() and self.error is not None:
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
                    verify=self.verify,
                    transport=self.transport,
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
                verify=self.verify,
                transport=self.transport,
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

    async def stop(self) -> None:
        """Stop the stream; handlers get a final ``realTimeNotificationDisconnected`` if it was connected.

        Called from a handler (inside the stream's own task), it returns at once and the stream stops
        when the handler returns.
        """
        task, self._task = self._task, None
        if task is not None and task is asyncio.current_task():
            self._task = task
            self._stopping = asyncio.get_running_loop().create_task(self.stop())
            return
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        assert isinstance(item, Event)
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
