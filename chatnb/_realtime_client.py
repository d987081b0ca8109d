"""The real-time methods of ``ChatClient`` (sync and async), as in the JavaScript SDK.

>>> chat.on("chatMessageReceived", lambda e: print(e.sender_display_name, e.message))
>>> chat.start_realtime_notifications()          # sync client; ``await`` it on chatnb.aio.ChatClient
>>> events = chat.events()                       # in a cell: every event from now on
>>> thread.send_message("Pizza at 12?")
SendChatMessageResult(id='...')
>>> async for event in events:                   # until the message has come back as an event
...     if event.kind == "chatMessageReceived":
...         break
Jack Pizza at 12?
>>> chat.stop_realtime_notifications()

Where the handlers run:

- async client: on the running loop, in a task; ``await start_realtime_notifications()`` returns once
  connected.
- sync client called from a thread with a running asyncio loop (a notebook cell): the stream is a task on
  that loop, so handlers run on the kernel's loop between cells, where touching widgets is safe. The
  call returns at once; the stream's position is taken first (one short request), so nothing sent after
  the call is missed even though the connection completes after the cell. A failure to connect is then
  logged and kept in ``chat.realtime.error``.
- sync client in a plain script: a daemon thread with its own loop runs the stream and the handlers; the
  call returns once connected.

See :mod:`chatnb.realtime` for push versus polling (real ACS: no typing indicators) and error handling.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
import warnings
from datetime import datetime, timezone
from typing import Any

import httpx

from ._core import attempt_budget
from ._deadline import deadline
from ._sender import Sender
from ._stream import STREAM_API_VERSION, SSEDecoder, stream_request
from .errors import ChatError
from .realtime import EventIterator, Handler, Mode, RealtimeNotifications

__all__ = ["AsyncRealtimeMixin", "RealtimeMixin", "probe_stream_position"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_REMINDER = (
    "{client}.on(): handlers are called only while real-time notifications run, and they were not "
    "started: call {client}.start_realtime_notifications() (after on(), so that no event is missed)"
)


def probe_stream_position(sender: Sender, endpoint: str, timeout: float = 5.0) -> str | None:
    """The emulator journal position a stream opened now would start from (one short request through
    the client's own sender: its connections, TLS trust, transport and credential), or ``None`` when the
    endpoint has no stream or does not answer within ``timeout`` seconds in all (a stream of keep-alives
    only included: the engine then finds out itself)."""
    url = f"{endpoint.rstrip('/')}/chatnb/events?api-version={STREAM_API_VERSION}"
    request = stream_request(url, None)
    request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    end = time.monotonic() + timeout
    try:
        with deadline(timeout), sender.stream(request) as response:
            if response.status_code != 200:
                return None
            decoder = SSEDecoder()
            for chunk in response.iter_text():
                for message in decoder.feed(chunk):
                    if message.event == "realTimeNotificationConnected":
                        return message.id
                if time.monotonic() > end:  # a transport of the caller's, which the deadline cannot cut
                    return None
    except (ChatError, httpx.HTTPError):  # no answer (or a refused token): the engine finds out itself
        return None
    return None


def _outside() -> int:
    """The ``stacklevel`` of the first frame outside chatnb (the user's ``close()`` or ``with``)."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return max(level, 1)


class _Common:
    endpoint: str
    credential: Any
    connection_verify: Any
    timeout: httpx.Timeout
    _realtime: RealtimeNotifications | None = None
    _reminder: str = ""  # "": not armed; "armed"; "done" (warned, or no longer needed)

    def _engine(self, mode: Mode | None = None, poll_interval: float | None = None) -> RealtimeNotifications:
        engine = self._realtime
        if engine is None:
            transport = getattr(self, "transport", None)
            engine = self._realtime = RealtimeNotifications(
                self.endpoint,
                self.credential,
                connection_verify=self.connection_verify,
                transport=transport if isinstance(transport, httpx.AsyncBaseTransport) else None,
                timeout=attempt_budget(self.timeout),
            )
        if not engine.running:
            engine.configure(mode, poll_interval)
        return engine

    def on(self, event_name: str, handler: Handler) -> None:
        """Call ``handler(event)`` (a function or a coroutine function) for every ``event_name`` event:
        ``"chatMessageReceived"``, ``"chatMessageEdited"``, ``"chatMessageDeleted"``,
        ``"typingIndicatorReceived"``, ``"readReceiptReceived"``, ``"chatThreadCreated"``,
        ``"chatThreadPropertiesUpdated"``, ``"chatThreadDeleted"``, ``"participantsAdded"``,
        ``"participantsRemoved"``, ``"realTimeNotificationConnected"``,
        ``"realTimeNotificationDisconnected"``.

        Handlers run only while real-time notifications run: register them, then call
        :meth:`start_realtime_notifications` (in the same cell, so that no event is missed). If that
        does not follow (by the end of the cell, or before the client is closed), a ``UserWarning``
        says so, once per client.

        Raises:
            ValueError: for an unknown event name. TypeError: if ``handler`` is not callable.
        """
        self._engine().on(event_name, handler)
        self._arm_reminder()

    def off(self, event_name: str, handler: Handler | None = None) -> None:
        """Stop calling ``handler`` for ``event_name`` (every handler of it if ``None``)."""
        self._engine().off(event_name, handler)

    @property
    def realtime(self) -> RealtimeNotifications:
        """The real-time engine: ``.active_mode`` (``"push"``/``"poll"``), ``.connected``, ``.error``."""
        return self._engine()

    def _arm_reminder(self) -> None:
        if self._reminder:
            return
        self._reminder = "armed"
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a script: close() reminds
            return
        # two turns of the loop: a start scheduled right after on() (asyncio.ensure_future) runs first
        loop.call_soon(loop.call_soon, self._remind)

    def _remind(self) -> None:
        engine = self._realtime
        if self._reminder != "armed" or engine is None:
            return
        self._reminder = "done"
        if engine.idle_handlers():
            warnings.warn(_REMINDER.format(client=type(self).__name__), UserWarning, stacklevel=_outside())


class AsyncRealtimeMixin(_Common):
    """Real-time notifications of :class:`chatnb.aio.ChatClient`."""

    async def start_realtime_notifications(
        self, *, mode: Mode | None = None, poll_interval: float | None = None, timeout: float = 15.0
    ) -> None:
        """Start receiving events; returns once connected (push) or the first poll round is done, or
        after ``timeout`` seconds (it goes on trying in the background).

        Args:
            mode: ``"auto"`` (push where the emulator's stream answers, else polling), ``"push"``,
                ``"poll"``.
            poll_interval: seconds between polling rounds (default 1).
            timeout: seconds to wait for the connection.

        Raises:
            StreamUnavailable: ``mode="push"`` on an endpoint without the stream.
            AuthenticationError, ForbiddenError: the token is refused.
        """
        await self._engine(mode, poll_interval).start(timeout=timeout)

    async def stop_realtime_notifications(self, timeout: float = 10.0) -> None:
        """Stop receiving events (handlers stay registered), waiting at most ``timeout`` seconds for
        the source to end."""
        if self._realtime is not None:
            await self._realtime.stop(timeout)

    def events(self) -> EventIterator:
        """Every event from now on, for ``async for`` (starts notifications if needed)."""
        engine = self._engine()
        return engine.events(starter=self.start_realtime_notifications)

    async def close(self) -> None:
        """Stop real-time notifications and close the connections."""
        self._remind()
        await self.stop_realtime_notifications()
        await super().close()  # type: ignore[misc]


class RealtimeMixin(_Common):
    """Real-time notifications of :class:`chatnb.ChatClient` (see the module docstring for threads)."""

    _sender: Sender
    _rt_loop: asyncio.AbstractEventLoop | None = None
    _rt_thread: threading.Thread | None = None
    _rt_stopping: asyncio.Task[None] | None = None

    def start_realtime_notifications(
        self, *, mode: Mode | None = None, poll_interval: float | None = None, timeout: float = 15.0
    ) -> None:
        """Start receiving events (see :meth:`chatnb.aio.ChatClient.start_realtime_notifications`).

        In a notebook cell this returns at once and the stream runs on the kernel's loop; elsewhere a
        background thread runs it and this returns once connected (or after ``timeout`` seconds).
        """
        engine = self._engine(mode, poll_interval)
        if engine.running:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        since = datetime.now(timezone.utc)
        if running is not None:
            probe = min(5.0, timeout)
            position = (
                None if engine.mode == "poll" else probe_stream_position(self._sender, self.endpoint, probe)
            )
            engine.schedule(running, last_event_id=position, since=since)
            self._rt_loop, self._rt_thread = running, None
            return
        if self._rt_thread is not None:  # stopped from one of its own handlers
            self._stop_thread()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="chatnb-realtime", daemon=True)
        thread.start()
        self._rt_loop, self._rt_thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(engine.start(timeout=timeout), loop).result(timeout + 5)
        except BaseException:
            self._stop_thread()
            raise

    def stop_realtime_notifications(self, timeout: float = 10.0) -> None:
        """Stop receiving events (handlers stay registered). In a notebook cell the final
        ``realTimeNotificationDisconnected`` is delivered right after the cell."""
        engine, loop = self._realtime, self._rt_loop
        if engine is None or loop is None:
            return
        if self._rt_thread is not None:
            if threading.current_thread() is self._rt_thread:  # from a handler: stop after it returns
                asyncio.run_coroutine_threadsafe(engine.stop(), loop)
                return
            if not loop.is_closed():
                asyncio.run_coroutine_threadsafe(engine.stop(), loop).result(timeout)
            self._stop_thread(timeout)
            return
        self._rt_loop = None
        engine.cancel()  # at once; the stop below only reports it

        def finish() -> None:
            self._rt_stopping = loop.create_task(engine.stop())

        if not loop.is_closed():
            loop.call_soon_threadsafe(finish)

    def _stop_thread(self, timeout: float = 10.0) -> None:
        loop, thread = self._rt_loop, self._rt_thread
        self._rt_loop = self._rt_thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    def events(self) -> EventIterator:
        """Every event from now on, for ``async for`` in a notebook cell (starts notifications if needed).

        Raises:
            RuntimeError: outside a running asyncio loop (use :meth:`on` there).
        """
        engine = self._engine()
        iterator = engine.events()
        if not engine.running:
            self.start_realtime_notifications()
        return iterator

    def close(self) -> None:
        """Stop real-time notifications and close the connections."""
        self._remind()
        self.stop_realtime_notifications()
        super().close()  # type: ignore[misc]
