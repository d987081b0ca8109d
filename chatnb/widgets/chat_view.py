"""``ChatView``: a thread's transcript, live, with the whole history a scroll away.

>>> view = ChatView(thread)            # or ChatView(user, thread_id), ChatView(chat_client, thread_id)
>>> view                                # the latest messages; scroll up (or "Load older") for the rest
>>> await view.load_older()             # the same from code; view.items holds what is loaded

An anywidget (``chatnb.js``): the kernel sends one small message per change (:mod:`._transcript`) and
the browser patches its DOM in place. Own messages are on the right and marked "You"; consecutive messages
of a sender are grouped under one name and initials avatar; days are separated; times are the reader's.
Your own messages can be edited and deleted from the transcript (hover or focus a bubble: Edit, Delete; or
Enter / Delete on a focused message). A read receipt goes out for the newest message the reader has
actually seen in the browser (coalesced, off the kernel's loop), and your latest message says who has
seen it. Messages from a :class:`MessageComposer` followed with :meth:`follow` show as they are sent:
"Sending…", then sent, or "Not sent" with a Retry button.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import traitlets as t

from ..events import Event
from . import _html
from ._base import ChatWidget
from ._history import History
from ._live import Subscription, chat_client_for, describe_error, own_user_id_async, raw_id
from ._outbox import Outbox
from ._own import OwnMessages
from ._target import resolve_target
from ._transcript import SYSTEM, Transcript, TranscriptItem, item_from_event
from ._worker import Job, Worker, emit

__all__ = ["ChatView", "TranscriptItem"]

HERE = Path(__file__).parent
TYPING_SHOWN_S = 8.0
"""How long "… is typing" shows after the last notification (as the ACS UI library does)."""
FIRST_WINDOW = 60
"""How many messages a newly opened view gets; older ones come as the reader scrolls."""
SNAPSHOT_MESSAGES = 30
_VIEW_EVENTS = (
    "chatMessageReceived",
    "chatMessageEdited",
    "chatMessageDeleted",
    "typingIndicatorReceived",
    "readReceiptReceived",
    "participantsAdded",
    "participantsRemoved",
    "chatThreadPropertiesUpdated",
    "chatThreadDeleted",
)


class ChatView(OwnMessages, ChatWidget):
    """The transcript of a thread, live.

    Args:
        target: a thread client; or a chat client or ``session.user(...)`` followed by ``thread`` (an id
            or a thread client).
        chat_client: whose real-time events to follow (the user's, or one shared per credential).
        user_id: who "me" is; by default the user, or read from the access token.
        max_messages: how many of the latest messages to open with (one page); older ones load on demand.
        send_read_receipts: send read receipts for the messages the reader sees in the browser.
        title: a heading above the transcript (also its accessible name).

    Attributes:
        items: the messages loaded, oldest first (:class:`TranscriptItem`).
        typing: display names of who is typing now.
        receipts_sent: how many read receipts this view sent.
    """

    _esm = HERE / "chatnb.js"
    _kind = t.Unicode("view").tag(sync=True)
    snapshot_kind = "view"
    user_id = t.Unicode("").tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    typing = t.List(t.Unicode()).tag(sync=True)
    receipts = t.Dict().tag(sync=True)  # reader id -> {"n": name, "k": key of the latest message read}
    status = t.Unicode("loading").tag(sync=True)  # "loading" | "ready"
    error = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        target: Any,
        thread: Any = None,
        *,
        chat_client: Any = None,
        user_id: str | None = None,
        max_messages: int = 50,
        send_read_receipts: bool = False,
        title: str = "",
        **kwargs: Any,
    ) -> None:
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError("max_messages must be a positive integer")
        found = resolve_target("ChatView", target, thread, chat_client=chat_client)
        self.thread_client = found.thread_client
        self.thread_id = str(found.thread_id)
        self.send_read_receipts = send_read_receipts
        self.receipts_sent = 0
        self._transcript = Transcript(user_id or found.user_id)
        self._names: dict[str, str] = {}
        self._typing: dict[str, tuple[str, float]] = {}  # sender id -> (name, shown until)
        self._typing_timer: threading.Timer | None = None
        self._receipt_key: tuple[int, str] = (-1, "")
        self._receipt_want: str | None = None
        self._receipt_busy = False
        self._outboxes: list[Outbox] = []
        self._closed = False
        super().__init__(user_id=self._transcript.user_id, title=title, **kwargs)
        self.add_class("chatnb-chat-view")
        self._worker = Worker(self.thread_client)
        self._history = History(self.thread_client, self._worker, max_messages)
        self.on_msg(self._on_front_end)
        self.chat_client = chat_client_for(self.thread_client, found.chat_client)
        self.subscription = Subscription(self.chat_client, self.handle_event, _VIEW_EVENTS)
        if not self._transcript.user_id and self._worker.is_async:  # read from the async credential first
            self._worker.run(own_user_id_async, self.thread_client, on_done=self._set_me)
        self.load_job = self._history.open(self._opened, self._open_failed)

    def _set_me(self, user_id: str | None) -> None:
        with self._transcript.lock:
            self._transcript.user_id = self.user_id = user_id or ""

    # -- reading ----------------------------------------------------------------------------------

    @property
    def items(self) -> list[TranscriptItem]:
        return self._transcript.items()

    @property
    def has_older(self) -> bool:
        """Whether the service holds older messages than those loaded."""
        return not self._history.complete

    def read_by(self, message_id: str) -> list[str]:
        """Display names (or ids) of the others who have read ``message_id``."""
        item = self._transcript.get(message_id)
        if item is None:
            return []
        me = self._transcript.user_id
        return sorted(
            r["n"] or rid for rid, r in self.receipts.items() if rid != me and r["k"] >= item.key[0]
        )

    # -- history ----------------------------------------------------------------------------------

    def _opened(self, page: list[Any], receipts: list[Any], people: list[Any]) -> None:
        with self._transcript.lock:
            for p in people:
                if p.display_name:
                    self._names[raw_id(p)] = p.display_name
            for item in self._history.items(page, self._names):
                self._transcript.add_missing(item)
            for receipt in receipts:
                self._note_read(raw_id(receipt.sender), receipt.chat_message_id)
            self.status = "ready"
            self._send_window(None)

    def _open_failed(self, exc: Exception) -> None:
        self.status = "ready"
        self.error = "Could not load the messages. " + describe_error(exc)

    def load_older(self) -> Job:
        """Fetch the next older page from the service into :attr:`items` (a :class:`Job`; its result is
        the number of messages added, 0 at the start of the thread)."""
        return self._history.older(self._older_page, self._older_failed)

    def _older_failed(self, exc: Exception) -> None:
        self.error = "Could not load older messages. " + describe_error(exc)

    def _older_page(self, page: list[Any]) -> int:
        added = 0
        with self._transcript.lock:
            for item in self._history.items(page, self._names):
                added += self._transcript.add_missing(item) is not None
        return added

    def load_all(self, timeout: float = 300.0) -> int:
        """Load every older message down to the first one; how many were added.

        Raises:
            RuntimeError: over an async client (``await view.load_older()`` until ``not view.has_older``).
        """
        if self._worker.is_async:
            raise RuntimeError("load_all() waits; over an async client await view.load_older() instead")
        added = 0
        while self.has_older:
            added += int(self.load_older().result(timeout))
        return added

    def _send_window(self, view: str | None) -> None:
        with self._transcript.lock:
            messages = self._transcript.latest(FIRST_WINDOW)
            more = len(self._transcript) > len(messages) or not self._history.complete
            op: dict[str, Any] = {"op": "reset", "messages": messages, "more": more, "status": self.status}
            if view:
                op["to"] = view
            emit(self, op)

    def _send_older(self, view: str, key: tuple[int, str], n: int, failed: bool = False) -> None:
        with self._transcript.lock:
            messages, held_more = self._transcript.before(key, n)
            if len(messages) < n and not self._history.complete and not failed:
                self.load_older().future.add_done_callback(
                    lambda page: self._send_older(view, key, n, failed=page.exception() is not None)
                )
                return
            more = held_more or not self._history.complete
            op = {"op": "older", "to": view, "messages": messages, "more": more}
            if failed:  # said in the error line; the reader may scroll up again to retry
                op["failed"] = True
            emit(self, op)

    # -- live -------------------------------------------------------------------------------------

    def _emit(self, op: dict[str, Any] | None) -> None:
        if op is not None and not self._closed:
            emit(self, op)

    def handle_event(self, event: Event) -> None:
        """What the view does with a real-time event (its subscription calls this)."""
        if getattr(event, "thread_id", None) != self.thread_id:
            return
        kind = event.kind
        ev: Any = event
        with self._transcript.lock:
            if kind == "chatMessageReceived":
                sender = raw_id(ev.sender)
                if ev.sender_display_name:
                    self._names[sender] = ev.sender_display_name
                if self._typing.pop(sender, None) is not None:
                    self._show_typing()
                pending = None
                if sender == self._transcript.user_id and ev.id not in self._transcript:
                    pending = self._pending_for(ev.message or "")
                if pending is not None:
                    self._emit(self._transcript.replace(pending, item_from_event(ev)))
                else:
                    self._emit(self._transcript.add_missing(item_from_event(ev)))
            elif kind == "chatMessageEdited":
                self._emit(self._transcript.update(ev.id, content=ev.message or "", edited_on=ev.edited_on))
            elif kind == "chatMessageDeleted":
                self._emit(self._transcript.update(ev.id, content="", deleted_on=ev.deleted_on, status=""))
            elif kind == "typingIndicatorReceived":
                self._note_typing(ev)
            elif kind == "readReceiptReceived":
                self._note_read(raw_id(ev.sender), ev.chat_message_id)
            else:
                self._system_event(kind, ev)

    def _system_event(self, kind: str, ev: Any) -> None:
        if kind in ("participantsAdded", "participantsRemoved"):
            people = ev.participants_added if kind == "participantsAdded" else ev.participants_removed
            for p in people:
                if p.display_name:
                    self._names[raw_id(p)] = p.display_name
            names = ", ".join(p.display_name or raw_id(p) for p in people) or "someone"
            verb = "joined the chat" if kind == "participantsAdded" else "left the chat"
            self._system(ev, f"{names} {verb}", ev.added_on if kind == "participantsAdded" else ev.removed_on)
        elif kind == "chatThreadPropertiesUpdated" and ev.topic is not None:
            by = ev.updated_by
            name = (by.display_name if by else None) or self._names.get(raw_id(by), "") or "someone"
            self._system(ev, f"{name} set the topic to “{ev.topic}”", ev.updated_on)
        elif kind == "chatThreadDeleted":
            self._system(ev, "The thread was deleted", ev.deleted_on)

    def _system(self, ev: Any, text: str, when: datetime | None) -> None:
        key = f"event-{ev.event_id or len(self._transcript)}"
        when = when or datetime.now(timezone.utc)
        self._emit(self._transcript.add_missing(TranscriptItem(key, SYSTEM, "", "", text, when, system=True)))

    def _note_typing(self, ev: Any) -> None:
        sender = raw_id(ev.sender)
        if not sender or sender == self._transcript.user_id:
            return
        name = ev.sender_display_name or self._names.get(sender) or "Someone"
        self._typing[sender] = (name, time.monotonic() + TYPING_SHOWN_S)
        self._show_typing()

    def _show_typing(self) -> None:
        now = time.monotonic()
        with self._transcript.lock:
            self._typing = {k: v for k, v in self._typing.items() if v[1] > now}
            names = sorted(name for name, _ in self._typing.values())
            if names != self.typing:
                self.typing = names
            if self._typing and self._typing_timer is None and not self._closed:
                wait = min(until for _, until in self._typing.values()) - now + 0.05
                self._typing_timer = threading.Timer(wait, self._typing_expired)
                self._typing_timer.daemon = True
                self._typing_timer.start()

    def _typing_expired(self) -> None:
        self._typing_timer = None
        self._show_typing()

    def _note_read(self, reader: str, message_id: str) -> None:
        if not reader or reader == self._transcript.user_id:
            return
        item = self._transcript.get(message_id)
        key = item.key[0] if item else (int(message_id) if message_id.isdigit() else 0)
        if key > self.receipts.get(reader, {}).get("k", -1):
            name = self._names.get(reader, "")
            self.receipts = {**self.receipts, reader: {"n": name, "k": key}}

    # -- actions from the browser (or from code) --------------------------------------------------

    def _on_front_end(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        op = content.get("op")
        if op == "hello":
            self._send_window(str(content.get("view", "")))
        elif op == "older":
            key = (int(content.get("k", 0)), str(content.get("id", "")))
            self._send_older(str(content.get("view", "")), key, max(1, min(int(content.get("n", 100)), 500)))
        elif op == "seen" and self.send_read_receipts:
            self.mark_seen(str(content.get("id", "")))
        elif op == "edit":
            try:
                self.edit(str(content.get("id", "")), str(content.get("text", "")))
            except ValueError as exc:
                self.error = str(exc)
        elif op == "delete":
            self.delete(str(content.get("id", "")))
        elif op == "retry":
            for outbox in self._outboxes:
                outbox.retry(str(content.get("id", "")))

    def mark_seen(self, message_id: str) -> bool:
        """Send a read receipt for ``message_id`` unless one went out for it or a newer message (what the
        browser asks for as the reader sees messages). Receipts are coalesced: while one is being sent,
        later requests collapse into one for the newest. ``True`` if it was queued."""
        item = self._transcript.get(message_id)
        if item is None or item.system or item.status or item.sender_id == self._transcript.user_id:
            return False
        with self._transcript.lock:
            if item.key <= self._receipt_key:
                return False
            self._receipt_key, self._receipt_want = item.key, item.id
            if self._receipt_busy:
                return True
            self._receipt_busy = True
        self._next_receipt()
        return True

    def _next_receipt(self, _: Any = None) -> None:
        with self._transcript.lock:
            want, self._receipt_want = self._receipt_want, None
            if want is None or self._closed:
                self._receipt_busy = False
                return
            self.receipts_sent += 1
        self._worker.run(
            self.thread_client.send_read_receipt,
            want,
            on_done=self._next_receipt,
            on_error=self._receipt_failed,
        )

    def _receipt_failed(self, exc: Exception) -> None:
        self.error = "Could not send a read receipt. " + describe_error(exc)
        self._next_receipt()

    # -- static rendering and lifecycle -----------------------------------------------------------

    def snapshot_body(self) -> str:
        """The latest messages as static HTML (what the notebook shows without a kernel)."""
        items = self._transcript.items()
        me = self._transcript.user_id
        rows = []
        for item in items[-SNAPSHOT_MESSAGES:]:
            side = (
                "chatnb-system" if item.system else "chatnb-own" if item.sender_id == me else "chatnb-other"
            )
            name = "" if item.system else f"<b>{_html.esc(item.sender_name or item.sender_id)}</b> "
            if item.deleted_on:
                body = "<i>This message was deleted</i>"
            else:
                body = (
                    _html.esc(item.content) if item.system else _html.render_content(item.content, item.type)
                )
            edited = " <small>(edited)</small>" if item.edited_on and not item.deleted_on else ""
            rows.append(
                f'<div class="chatnb-snapshot-msg {side}">{name}{_html.time_tag(item.created_on)}{edited}'
                f"<div>{body}</div></div>"
            )
        if not rows:
            rows.append("<p><i>No messages yet.</i></p>")
        return f'<div role="log" aria-label="Messages">{"".join(rows)}</div>'

    def snapshot_title(self) -> str:
        shown = min(len(self._transcript), SNAPSHOT_MESSAGES)
        what = self.title or "Chat"
        return f"{what} · the latest {shown} of {len(self._transcript)} messages loaded (a static snapshot)"

    def close(self) -> None:
        """Unsubscribe, stop the worker and close the widget."""
        self._closed = True
        timer = getattr(self, "_typing_timer", None)
        if timer is not None:
            timer.cancel()
        for outbox in getattr(self, "_outboxes", ()):
            outbox.unlisten(self._outgoing)
        super().close()

    def __repr__(self) -> str:
        return f"<ChatView {self.thread_id} {len(self._transcript)} messages>"
