"""The event log's model: a bounded, thread-safe table of events with counters to wait on, and its HTML.

Handlers add rows from whatever thread delivers events (the kernel's loop, or a background thread); waiters
are woken from there. Nothing here touches a widget.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..events import Event
from . import _html
from ._describe import describe_event
from ._live import EVENT_NAMES

__all__ = ["NOISY", "EventRow", "EventTable", "Match", "matcher", "row_wire", "rows_html", "who"]

NOISY = frozenset({"readReceiptReceived", "typingIndicatorReceived"})
"""Events the log collects but shows only when asked (``show_noisy``)."""


@dataclass(frozen=True, slots=True)
class EventRow:
    """One logged event and what the table shows of it."""

    seq: int
    received_at: datetime
    kind: str
    thread_id: str
    sender_id: str
    sender_display_name: str
    message_id: str
    summary: str
    event_id: str
    event: Event


class Match:
    """A row filter: an event name (or names, or any) and an optional predicate on the event."""

    def __init__(
        self, event_type: str | Iterable[str] | None = None, predicate: Callable[[Event], bool] | None = None
    ) -> None:
        if isinstance(event_type, str):
            kinds: frozenset[str] | None = frozenset({event_type})
        else:
            kinds = None if event_type is None else frozenset(event_type)
        for kind in kinds or ():
            if kind not in EVENT_NAMES:
                raise ValueError(f"unknown event {kind!r}; known events: {', '.join(EVENT_NAMES)}")
        self.kinds = kinds
        self.predicate = predicate

    def __call__(self, row: EventRow) -> bool:
        return (self.kinds is None or row.kind in self.kinds) and (
            self.predicate is None or bool(self.predicate(row.event))
        )


def matcher(event_type: str | Iterable[str] | None, predicate: Callable[[Event], bool] | None) -> Match:
    """A :class:`Match` (kept as a function for readability at call sites)."""
    return Match(event_type, predicate)


@dataclass
class _Waiter:
    n: int
    match: Match
    count: int
    wake: Callable[[], None]
    done: bool = field(default=False)


class EventTable:
    """The last ``max_events`` events (thread-safe), with counters that :meth:`EventLog.wait_for` uses.

    Counts run from creation or the last :meth:`clear`, and are exact even after old rows were dropped.
    """

    def __init__(self, max_events: int = 200) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ValueError("max_events must be a positive integer")
        self.max_events = max_events
        self._rows: deque[EventRow] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._seq = 0
        self.received = 0  # since creation or the last clear
        self._by_kind: Counter[str] = Counter()  # likewise, per event name
        self._waiters: list[_Waiter] = []

    def add(self, event: Event, *, thread_id: str | None = None) -> EventRow | None:
        """Log ``event`` (``None`` and nothing logged if it belongs to another thread than ``thread_id``)."""
        info = describe_event(event)
        if thread_id is not None and info["thread_id"] not in ("", thread_id):
            return None
        with self._lock:
            self._seq += 1
            row = EventRow(seq=self._seq, received_at=datetime.now(timezone.utc), event=event, **info)
            self._rows.append(row)
            self.received += 1
            self._by_kind[row.kind] += 1
            woken = []
            for waiter in self._waiters:
                if not waiter.done and waiter.match(row):
                    waiter.count += 1
                    if waiter.count >= waiter.n:
                        waiter.done = True
                        woken.append(waiter)
            self._waiters = [w for w in self._waiters if not w.done]
        for waiter in woken:
            waiter.wake()
        return row

    def rows(self, match: Match | None = None) -> list[EventRow]:
        """The rows held, newest first (only those ``match`` accepts, if given)."""
        with self._lock:
            rows = list(reversed(self._rows))
        return rows if match is None else [r for r in rows if match(r)]

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.received = 0
            self._by_kind.clear()
            for waiter in self._waiters:
                waiter.count = 0

    def __len__(self) -> int:
        return len(self._rows)

    def watch(self, n: int, match: Match, wake: Callable[[], None]) -> _Waiter:
        """Call ``wake`` once ``n`` matching events were received since the last clear (now, if so).

        Events matched by name are counted exactly; with a predicate, those received before this call
        are counted among the rows still held.
        """
        with self._lock:
            if match.predicate is not None:
                count = sum(1 for r in self._rows if match(r))
            elif match.kinds is None:
                count = self.received
            else:
                count = sum(self._by_kind[k] for k in match.kinds)
            waiter = _Waiter(n, match, count, wake)
            waiter.done = waiter.count >= n
            if not waiter.done:
                self._waiters.append(waiter)
        if waiter.done:
            wake()
        return waiter

    def unwatch(self, waiter: _Waiter) -> None:
        with self._lock:
            waiter.done = True
            if waiter in self._waiters:
                self._waiters.remove(waiter)


def who(row: EventRow) -> str:
    """Who an event is from: the display name, else the end of the raw id (the whole id is long)."""
    rid = row.sender_id
    return row.sender_display_name or (f"…{rid[-8:]}" if len(rid) > 12 else rid)


def row_wire(row: EventRow) -> dict[str, object]:
    """A row as the event log's front end gets it (times in ms since the epoch; it formats them)."""
    return {
        "seq": row.seq,
        "at": int(row.received_at.timestamp() * 1000),
        "kind": row.kind,
        "from": who(row),
        "sum": row.summary,
    }


def rows_html(rows: list[EventRow], limit: int) -> str:
    """The rows as a static table (at most ``limit``), every value escaped, times in UTC."""
    if not rows:
        return "<p><i>No events yet.</i></p>"
    body = "".join(
        f'<tr class="chatnb-event-row" data-kind="{_html.esc(r.kind)}">'
        f"<td>{_html.time_tag(r.received_at, '%H:%M:%S UTC')}</td><td><code>{_html.esc(r.kind)}</code></td>"
        f"<td>{_html.esc(who(r))}</td><td>{_html.esc(r.summary)}</td></tr>"
        for r in rows[:limit]
    )
    return (
        "<table><thead><tr><th>time</th><th>event</th><th>from</th><th>details</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
