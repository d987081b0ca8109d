"""``EventLog``: a live, bounded table of a chat client's real-time events, newest first.

>>> log = EventLog(jack)                      # a user, a chat client, or a thread client (its thread)
>>> log                                        # the table: type filter, Pause, Clear
>>> thread.send_message("hi")
>>> log.wait_for(1, event_type="chatMessageReceived", timeout=10)   # blocks until it arrived
>>> log.to_dataframe()

An anywidget (``chatnb.js``): each event adds one small row message; filtering, pausing and clearing
resend at most ``show_rows`` rows. Read receipts and typing notifications are collected (and counted in
``to_dataframe``) but hidden from the table unless "receipts and typing" is ticked (``show_noisy``).

Where ``print`` output goes: a handler registered with ``chat_client.on(...)`` runs when the event
arrives, and the kernel sends whatever it prints to the cell that is running *then* (or the last one that
ran), not to the cell that registered it. To watch events, use an ``EventLog``; to print from a handler,
print into an ``ipywidgets.Output`` shown where you want it (``out.append_stdout(text)``, safe from any
thread, rather than ``with out:``). The widgets themselves never print.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import traitlets as t

from .._timeout import bounded
from ..events import Event
from ._base import ChatWidget
from ._live import EVENT_NAMES, Subscription, chat_client_for, is_async_client, run_blocking
from ._table import NOISY, EventRow, EventTable, Match, matcher, row_wire, rows_html
from ._target import resolve_target
from ._worker import emit

__all__ = ["EVENT_COLUMNS", "EventLog", "EventRow", "EventTable"]

HERE = Path(__file__).parent
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


class EventLog(ChatWidget):
    """A live table of real-time events, newest first, with a type filter, Pause (the table stops
    moving; events are still collected) and Clear.

    Args:
        target: a chat client (its events), a ``session.user(...)`` (the user's), or a thread client
            (its thread's, through the chat client shared per credential); its real-time notifications
            are started.
        thread_id: only log events of this thread (connection events are always logged).
        max_events: how many events the log keeps (older ones are dropped).
        events: the event names to subscribe to (all by default).
        show_rows: how many rows the table shows at most.
        show_noisy: show read receipt and typing rows (hidden by default; they are still collected).

    ``log.wait_for(n)`` blocks until ``n`` events (of ``event_type``, accepted by ``predicate``) were
    received since the log was created or cleared, and returns the latest ``n`` of them. Over an async
    client, ``wait_for`` is a coroutine (``await log.wait_for(n)``); ``wait_for_async`` always is.
    """

    _esm = HERE / "chatnb.js"
    snapshot_kind = "events"
    _kind = t.Unicode("events").tag(sync=True)
    kind_filter = t.Unicode("").tag(sync=True)
    show_noisy = t.Bool(False).tag(sync=True)
    paused = t.Bool(False).tag(sync=True)
    total = t.Int(0).tag(sync=True)
    event_names = t.List(t.Unicode(), default_value=list(EVENT_NAMES)).tag(sync=True)

    def __init__(
        self,
        target: Any,
        *,
        max_events: int = 200,
        thread_id: str | None = None,
        events: Iterable[str] = EVENT_NAMES,
        show_rows: int = 100,
        show_noisy: bool = False,
        **kwargs: Any,
    ) -> None:
        found = resolve_target("EventLog", target, need_thread=False)
        names = tuple(events)
        for name in names:
            matcher(name, None)  # unknown names: ValueError now, before any widget exists
        self.table = EventTable(max_events)
        self.thread_id = thread_id or found.thread_id
        self.show_rows = show_rows
        self._lock = threading.RLock()
        super().__init__(show_noisy=show_noisy, **kwargs)
        self.add_class("chatnb-event-log")
        chat_client = found.chat_client
        self._async = is_async_client(chat_client if chat_client is not None else found.thread_client)
        self.chat_client = chat_client_for(found.thread_client, chat_client)
        self.on_msg(self._on_front_end)
        self.observe(self._on_view_change, ["kind_filter", "show_noisy", "paused"])
        self.subscription = Subscription(self.chat_client, self.handle_event, names)

    # -- live -------------------------------------------------------------------------------------

    def _shown(self, row: EventRow) -> bool:
        if self.kind_filter:
            return row.kind == self.kind_filter
        return self.show_noisy or row.kind not in NOISY

    def handle_event(self, event: Event) -> None:
        """Log ``event`` (its subscription calls this) and add its row to the table unless paused."""
        with self._lock:
            row = self.table.add(event, thread_id=self.thread_id)
            if row is None:
                return
            self.total = len(self.table)
            if not self.paused and self._shown(row):
                emit(self, {"op": "row", "row": row_wire(row), "keep": self.show_rows})

    def _on_view_change(self, change: dict[str, Any]) -> None:
        if not self.paused:
            self._send_rows()

    def _send_rows(self) -> None:
        with self._lock:
            rows = [r for r in self.table.rows() if self._shown(r)][: self.show_rows]
            emit(self, {"op": "rows", "rows": [row_wire(r) for r in rows]})

    def _on_front_end(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("op") == "hello":
            self._send_rows()
        elif content.get("op") == "clear":
            self.clear()

    def clear(self) -> None:
        """Empty the log (and restart the counts :meth:`wait_for` waits on)."""
        with self._lock:
            self.table.clear()
            self.total = 0
            self._send_rows()

    def refresh(self) -> None:
        """Send the table again."""
        self._send_rows()

    def snapshot_title(self) -> str:
        return f"Event log · {len(self.table)} events (a static snapshot)"

    def snapshot_body(self) -> str:
        return rows_html([r for r in self.table.rows() if self._shown(r)], self.show_rows)

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
            await bounded(timeout, done)
        except asyncio.TimeoutError:
            raise TimeoutError(self._timeout_message(n, waiter.count, event_type, timeout)) from None
        finally:
            self.table.unwatch(waiter)
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
        return f"<EventLog {len(getattr(self, 'table', ()))} events>"
