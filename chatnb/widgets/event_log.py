"""``EventLog``: a live, bounded table of a chat client's real-time events, newest first.

>>> log = EventLog(jack.chat_client)          # subscribes and starts real-time notifications
>>> log                                        # the table, with a type filter, Pause and Clear
>>> thread.send_message("hi")
>>> log.wait_for(1, event_type="chatMessageReceived", timeout=10)   # blocks until it arrived
>>> log.to_dataframe()

Events are kept in an :class:`EventTable` (bounded, thread-safe) that the widget renders into an ``HTML``
widget's value: handlers never write to an ``Output`` widget, so nothing lands in the wrong cell when
cells are queued with "Run All".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..events import Event
from . import _html
from ._live import (
    EVENT_NAMES,
    Subscription,
    Throttle,
    chat_client_for,
    is_async_client,
    release_chat_client,
    run_blocking,
)
from ._table import EventRow, EventTable, Match, matcher, rows_html

__all__ = ["EVENT_COLUMNS", "EventLog", "EventRow", "EventTable"]

EVENT_COLUMNS: dict[str, str] = {
    "received_at": "datetime64[ns, UTC]",
    "kind": "string",
    "thread_id": "string",
    "sender_id": "string",
    "sender_display_name": "string",
    "message_id": "string",
    "summary": "string",
    "event_id": "string",
    "event": "object",
}
"""Columns and dtypes of :meth:`EventLog.to_dataframe`."""


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class EventLog(widgets.VBox):  # type: ignore[misc]
    """A live table of ``chat_client``'s real-time events, newest first, with a type filter, Pause
    (the table stops moving; events are still collected) and Clear.

    Args:
        chat_client: a :class:`chatnb.ChatClient` (or :class:`chatnb.aio.ChatClient`); its real-time
            notifications are started.
        max_events: how many events the log keeps (older ones are dropped).
        thread_id: only log events of this thread (connection events are always logged).
        events: the event names to subscribe to (all by default).
        show_rows: how many rows the table shows at most.

    ``log.wait_for(n)`` blocks until ``n`` events (of ``event_type``, accepted by ``predicate``) were
    received since the log was created or cleared, and returns the latest ``n`` of them. Over an async
    client, ``wait_for`` is a coroutine (``await log.wait_for(n)``); ``wait_for_async`` always is.
    """

    def __init__(
        self,
        chat_client: Any,
        *,
        max_events: int = 200,
        thread_id: str | None = None,
        events: Iterable[str] = EVENT_NAMES,
        show_rows: int = 100,
        **kwargs: Any,
    ) -> None:
        self.table = EventTable(max_events)
        self.thread_id = thread_id
        self.show_rows = show_rows
        self._async = is_async_client(chat_client)
        self.filter = widgets.Dropdown(
            options=[("all events", "")] + [(name, name) for name in EVENT_NAMES],
            value="",
            description="Show",
            layout=widgets.Layout(width="250px"),
        )
        self.filter.add_class("chatnb-event-filter")
        self.pause_button = widgets.ToggleButton(value=False, description="Pause", icon="pause")
        self.pause_button.add_class("chatnb-event-pause")
        self.clear_button = widgets.Button(description="Clear", icon="trash")
        self.clear_button.add_class("chatnb-event-clear")
        self.counter = widgets.HTML()
        self.counter.add_class("chatnb-event-count")
        self.table_html = widgets.HTML()
        self.table_html.add_class("chatnb-event-table")
        header = widgets.HBox([self.filter, self.pause_button, self.clear_button, self.counter])
        super().__init__([widgets.HTML(_html.style_tag()), header, self.table_html], **kwargs)
        self.add_class("chatnb-event-log")
        self._throttle = Throttle(self._render, 0.1)
        self.filter.observe(lambda _: self._throttle.flush(), "value")
        self.pause_button.observe(self._on_pause, "value")
        self.clear_button.on_click(lambda _: self.clear())
        self._render()
        self.chat_client = chat_client_for(None, chat_client)
        self.subscription = Subscription(chat_client, self._on_event, tuple(events))

    # -- live -------------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if self.table.add(event, thread_id=self.thread_id) is not None and not self.paused:
            self._throttle()

    def _on_pause(self, change: dict[str, Any]) -> None:
        self.pause_button.description = "Resume" if change["new"] else "Pause"
        self.pause_button.icon = "play" if change["new"] else "pause"
        self._throttle.flush()

    @property
    def paused(self) -> bool:
        """Whether the table is frozen (events are still collected)."""
        return bool(self.pause_button.value)

    @paused.setter
    def paused(self, value: bool) -> None:
        self.pause_button.value = bool(value)

    def clear(self) -> None:
        """Empty the log (and restart the counts :meth:`wait_for` waits on)."""
        self.table.clear()
        self._throttle.flush()

    def close(self) -> None:
        """Unsubscribe and close the widget."""
        if self.subscription.close():
            release_chat_client(self.chat_client)
        super().close()

    def _render(self) -> None:
        kind = self.filter.value
        rows = self.table.rows(matcher(kind, None) if kind else None)
        total = len(self.table)
        shown = f"{len(rows)} of {total}" if kind else str(total)
        state = " · paused" if self.paused else ""
        self.counter.value = f'<span class="chatnb-count">{shown} events{state}</span>'
        if self.paused:
            return
        self.table_html.value = rows_html(rows, self.show_rows)

    def refresh(self) -> None:
        """Re-render the table now."""
        self._throttle.flush()

    # -- reading ----------------------------------------------------------------------------------

    @property
    def rows(self) -> list[EventRow]:
        """The events held, newest first."""
        return self.table.rows()

    def to_dataframe(self) -> pd.DataFrame:
        """The events held as a DataFrame, oldest first; columns :data:`EVENT_COLUMNS`."""
        rows = list(reversed(self.table.rows()))
        data = {name: [getattr(r, name) for r in rows] for name in EVENT_COLUMNS}
        frame = pd.DataFrame(data, columns=list(EVENT_COLUMNS))
        for name, dtype in EVENT_COLUMNS.items():
            frame[name] = frame[name].astype(dtype)
        result: pd.DataFrame = frame
        return result

    # -- waiting ----------------------------------------------------------------------------------

    async def wait_for_async(
        self,
        n: int = 1,
        *,
        event_type: str | Iterable[str] | None = None,
        predicate: Callable[[Event], bool] | None = None,
        timeout: float = 30.0,
    ) -> list[Event]:
        """Wait until ``n`` matching events were received since the log was created or cleared; the
        latest ``n`` of them (oldest first).

        Raises:
            ValueError: for ``n < 1`` or an unknown event name.
            TimeoutError: if they did not arrive within ``timeout`` seconds.
        """
        match = self._match(n, event_type, predicate)
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def wake() -> None:
            def settle() -> None:
                if not done.done():
                    done.set_result(None)

            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                settle()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(settle)

        waiter = self.table.watch(n, match, wake)
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(self._timeout_message(n, waiter.count, event_type, timeout)) from None
        finally:
            self.table.unwatch(waiter)
        self._throttle.flush()
        return [r.event for r in reversed(self.table.rows(match)[:n])]

    def wait_for(
        self,
        n: int = 1,
        *,
        event_type: str | Iterable[str] | None = None,
        predicate: Callable[[Event], bool] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Block until ``n`` matching events were received since the log was created or cleared; the
        latest ``n`` of them (oldest first). See :meth:`wait_for_async` (what this returns over an async
        client, to ``await``).

        In a notebook cell the kernel's event loop is running, and it is what delivers the events: the
        wait lets it turn (with ``nest_asyncio2``, applied to that loop on first use). Elsewhere it waits
        on a thread event.

        Raises:
            ValueError: for ``n < 1`` or an unknown event name.
            TimeoutError: if they did not arrive within ``timeout`` seconds.
        """
        if self._async:
            return self.wait_for_async(n, event_type=event_type, predicate=predicate, timeout=timeout)
        if not _loop_running():
            return self._wait_threaded(n, event_type, predicate, timeout)
        return run_blocking(
            self.wait_for_async(n, event_type=event_type, predicate=predicate, timeout=timeout)
        )

    def _wait_threaded(
        self,
        n: int,
        event_type: str | Iterable[str] | None,
        predicate: Callable[[Event], bool] | None,
        timeout: float,
    ) -> list[Event]:
        match = self._match(n, event_type, predicate)
        arrived = threading.Event()
        waiter = self.table.watch(n, match, arrived.set)
        try:
            if not arrived.wait(timeout):
                raise TimeoutError(self._timeout_message(n, waiter.count, event_type, timeout))
        finally:
            self.table.unwatch(waiter)
        self._throttle.flush()
        return [r.event for r in reversed(self.table.rows(match)[:n])]

    @staticmethod
    def _match(n: int, event_type: Any, predicate: Callable[[Event], bool] | None) -> Match:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError("n must be a positive integer")
        return matcher(event_type, predicate)

    @staticmethod
    def _timeout_message(n: int, got: int, event_type: Any, timeout: float) -> str:
        what = f"{event_type} events" if isinstance(event_type, str) else "events"
        return f"waited {timeout:g} s for {n} {what}, {got} arrived"

    def __repr__(self) -> str:
        return f"<EventLog {len(self.table)} events>"
