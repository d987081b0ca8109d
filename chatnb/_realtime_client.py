"""The real-time methods of ``ChatClient`` (sync and async), as in the JavaScript SDK.

>>> chat.on("chatMessageReceived", lambda e: print(e.sender_display_name, e.message))
>>> chat.start_realtime_notifications()          # sync client; ``await`` it on chatnb.aio.ChatClient
>>> async for event in chat.events():            # in a cell: every event from now on
...     print(event.kind)
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
import threading
from datetime import datetime, timezone
from typing import Any

import httpx

from ._stream import STREAM_API_VERSION, SSEDecoder
from .realtime import EventIterator, Handler, Mode, RealtimeNotifications

__all__ = ["AsyncRealtimeMixin", "SyncRealtimeMixin", "probe_stream_position"]


def probe_stream_position(engine: RealtimeNotifications, verify: Any, timeout: float = 5.0) -> str | None:
    """The emulator journal position a stream opened now would start from (sync, one short request), or
    ``None`` when the endpoint has no stream or does not answer (the engine then finds out itself)."""
    credential: Any = engine.credential
    result = credential if isinstance(credential, str) else credential.get_token()
    token = result if isinstance(result, str) else getattr(result, "token", "")
    url = f"{engine.endpoint.rstrip('/')}/chatnb/events?api-version={STREAM_API_VERSION}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    try:
        with (
            httpx.Client(verify=verify, timeout=timeout) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                return None
            decoder = SSEDecoder()
            for chunk in response.iter_text():
                for message in decoder.feed(chunk):
                    if message.event == "realTimeNotificationConnected":
                        return message.id
    except (httpx.HTTPError, TypeError, AttributeError):
        return None
    return None


class _Common:
    endpoint: str
    credential: Any
    connection_verify: Any
    _realtime: RealtimeNotifications | None = None

    def _engine(self, mode: Mode | None = None, poll_interval: float | None = None) -> RealtimeNotifications:
        engine = self._realtime
        if engine is None:
            transport = getattr(self, "transport", None)
            engine = self._realtime = RealtimeNotifications(
                self.endpoint,
                self.credential,
                verify=self.connection_verify,
                transport=transport if isinstance(transport, httpx.AsyncBaseTransport) else None,
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

        Raises:
            ValueError: for an unknown event name. TypeError: if ``handler`` is not callable.
        """
        self._engine().on(event_name, handler)

    def off(self, event_name: str, handler: Handler | None = None) -> None:
        """Stop calling ``handler`` for ``event_name`` (every handler of it if ``None``)."""
        self._engine().off(event_name, handler)

    @property
    def realtime(self) -> RealtimeNotifications:
        """The real-time engine: ``.active_mode`` (``"push"``/``"poll"``), ``.connected``, ``.error``."""
        return self._engine()


class AsyncRealtimeMixin(_Common):
    """Real-time notifications of :class:`chatnb.aio.ChatClient`."""

    async def start_realtime_notifications(
        self, *, mode: Mode | None = None, poll_interval: float | None = None
    ) -> None:
        """Start receiving events; returns once connected (push) or the first poll round is done.

        Args:
            mode: ``"auto"`` (push where the emulator's stream answers, else polling), ``"push"``,
                ``"poll"``.
            poll_interval: seconds between polling rounds (default 1).

        Raises:
            StreamUnavailable: ``mode="push"`` on an endpoint without the stream.
            AuthenticationError, ForbiddenError: the token is refused.
        """
        await self._engine(mode, poll_interval).start()

    async def stop_realtime_notifications(self) -> None:
        """Stop receiving events (handlers stay registered)."""
        if self._realtime is not None:
            await self._realtime.stop()

    def events(self) -> EventIterator:
        """Every event from now on, for ``async for`` (starts notifications if needed)."""
        engine = self._engine()
        return engine.events(starter=self.start_realtime_notifications)

    async def close(self) -> None:
        await self.stop_realtime_notifications()
        await super().close()  # type: ignore[misc]


class SyncRealtimeMixin(_Common):
    """Real-time notifications of :class:`chatnb.ChatClient` (see the module docstring for threads)."""

    _rt_loop: asyncio.AbstractEventLoop | None = None
    _rt_thread: threading.Thread | None = None
    _rt_stopping: asyncio.Task[None] | None = None

    def start_realtime_notifications(
        self, *, mode: Mode | None = None, poll_interval: float | None = None, timeout: float = 15.0
    ) -> None:
        """Start receiving events (see :meth:`chatnb.aio.ChatClient.start_realtime_notifications`).

        In a notebook cell this returns at once and the stream runs on the kernel's loop; elsewhere a
        background thread runs it and this returns once connected.
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
            position = (
                None if engine.mode == "poll" else probe_stream_position(engine, self.connection_verify)
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
        task = engine._task
        if task is not None:
            task.cancel()  # at once; the stop below only reports it

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
        self.stop_realtime_notifications()
        super().close()  # type: ignore[misc]
