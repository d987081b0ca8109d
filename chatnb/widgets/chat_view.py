"""``ChatView``: a thread's transcript as chat bubbles, updated live.

>>> view = ChatView(thread)            # loads the latest messages, then follows real-time events
>>> view                                # own messages right, others left, system messages centred

Received messages appear, edits and deletions change their bubble in place, a typing indicator shows
who is typing (for 8 seconds after their last notification, as the JavaScript UI library does), and your
latest message says whether (and by whom) it was read. Content is escaped unless the message type is
``html``, which is sanitised (:mod:`chatnb.widgets._html`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import ipywidgets as widgets

from ..events import Event
from . import _html
from ._describe import participant_names
from ._live import (
    Subscription,
    Throttle,
    call,
    chat_client_for,
    describe_error,
    is_async_client,
    own_user_id,
    own_user_id_async,
    raw_id,
    release_chat_client,
)

__all__ = ["ChatView", "TranscriptItem"]

TYPING_SHOWN_S = 8.0
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


@dataclass(frozen=True, slots=True)
class TranscriptItem:
    """A bubble (or a centred system line) of the transcript."""

    id: str
    type: str
    sender_id: str
    sender_name: str
    content: str
    created_on: datetime | None
    edited_on: datetime | None = None
    deleted_on: datetime | None = None
    system: bool = False

    @property
    def key(self) -> tuple[int, str]:
        """Chronological sort key: ACS message ids are creation times in milliseconds."""
        if self.id.isdigit():
            return int(self.id), self.id
        ms = int(self.created_on.timestamp() * 1000) if self.created_on else 0
        return ms, self.id


def _system_text(kind: str, content: Any, names: dict[str, str]) -> str:
    def who(value: Any) -> str:
        rid = raw_id(value)
        return getattr(value, "display_name", None) or names.get(rid) or rid or "someone"

    if kind == "topicUpdated":
        return (
            f"{who(getattr(content, 'initiator', None))} set the topic to “{getattr(content, 'topic', '')}”"
        )
    people = participant_names(getattr(content, "participants", ())) or "someone"
    if kind == "participantAdded":
        return f"{people} joined the chat"
    if kind == "participantRemoved":
        return f"{people} left the chat"
    return kind


class ChatView(widgets.VBox):  # type: ignore[misc]
    """The transcript of ``thread_client``'s thread, live.

    Args:
        thread_client: a :class:`chatnb.ChatThreadClient`.
        chat_client: whose real-time events to follow (by default one shared per credential).
        user_id: who "me" is (own messages go right); read from the access token by default.
        max_messages: how many of the latest messages to load and keep.
        send_read_receipts: mark others' messages read as they arrive (as a visible chat would).

    Attributes:
        items: the transcript, oldest first (:class:`TranscriptItem`).
        typing: display names of who is typing now.
    """

    def __init__(
        self,
        thread_client: Any,
        *,
        chat_client: Any = None,
        user_id: str | None = None,
        max_messages: int = 200,
        send_read_receipts: bool = False,
        **kwargs: Any,
    ) -> None:
        self.thread_client = thread_client
        self.thread_id = str(thread_client.thread_id)
        self.user_id = user_id or own_user_id(thread_client) or ""
        self.max_messages = max_messages
        self.send_read_receipts = send_read_receipts
        self._lock = threading.RLock()
        self._items: dict[str, TranscriptItem] = {}
        self._names: dict[str, str] = {}
        self._read: dict[str, tuple[int, str]] = {}  # reader id -> key of the latest message they read
        self._typing: dict[str, tuple[str, float]] = {}  # sender id -> (name, shown until)
        self.error: str | None = None
        self.html = widgets.HTML(value="")
        self.html.add_class("chatnb-transcript-html")
        self.typing_html = widgets.HTML(value='<div class="chatnb-typing"></div>')
        self.typing_html.add_class("chatnb-typing-indicator")
        super().__init__([widgets.HTML(_html.style_tag()), self.html, self.typing_html], **kwargs)
        self.add_class("chatnb-chat-view")
        self._throttle = Throttle(self._render, 0.05)
        self.chat_client = chat_client_for(thread_client, chat_client)
        self.subscription = Subscription(self.chat_client, self._on_event, _VIEW_EVENTS)
        self.load_task = self._load()

    # -- initial load -----------------------------------------------------------------------------

    def _load(self) -> Any:
        """Read the latest messages and receipts (a task for an async client)."""
        if is_async_client(self.thread_client):
            return asyncio.ensure_future(self._load_async())
        try:
            messages = []
            for message in self.thread_client.iter_messages():
                messages.append(message)
                if len(messages) >= self.max_messages:
                    break
            receipts = list(self.thread_client.iter_read_receipts())
        except Exception as exc:
            self._load_failed(exc)
            return None
        self._loaded(messages, receipts)
        return None

    async def _load_async(self) -> None:
        if not self.user_id:
            self.user_id = await own_user_id_async(self.thread_client) or ""
        try:
            messages = []
            async for message in self.thread_client.iter_messages():
                messages.append(message)
                if len(messages) >= self.max_messages:
                    break
            receipts = [r async for r in self.thread_client.iter_read_receipts()]
        except Exception as exc:
            self._load_failed(exc)
            return
        self._loaded(messages, receipts)

    def _load_failed(self, exc: Exception) -> None:
        self.error = "Could not load the messages. " + describe_error(exc)
        self._throttle.flush()

    def _loaded(self, messages: list[Any], receipts: list[Any]) -> None:
        with self._lock:
            for message in reversed(messages):  # oldest first, so names are known before they are used
                item = self._from_message(message)
                self._items.setdefault(item.id, item)
            for receipt in receipts:
                self._note_read(raw_id(receipt.sender), receipt.chat_message_id)
            self._trim()
        self._throttle.flush()

    def _from_message(self, m: Any) -> TranscriptItem:
        kind = str(m.type)
        sender = raw_id(m.sender)
        if m.sender_display_name and sender:
            self._names.setdefault(sender, m.sender_display_name)
        system = kind not in ("text", "html", "richtext/html")
        content = m.content
        if system:
            for p in getattr(content, "participants", ()) or ():
                if p.display_name:
                    self._names[raw_id(p)] = p.display_name
            text = _system_text(kind, content, self._names)
        else:
            text = getattr(content, "message", None) or ""
        return TranscriptItem(
            id=str(m.id),
            type=kind,
            sender_id=sender,
            sender_name=m.sender_display_name or self._names.get(sender, ""),
            content=text,
            created_on=m.created_on,
            edited_on=m.edited_on,
            deleted_on=m.deleted_on,
            system=system,
        )

    # -- live -------------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if getattr(event, "thread_id", None) != self.thread_id:
            return
        kind = event.kind
        ev: Any = event
        with self._lock:
            if kind == "chatMessageReceived":
                sender = raw_id(ev.sender)
                if ev.sender_display_name:
                    self._names[sender] = ev.sender_display_name
                self._typing.pop(sender, None)
                item = TranscriptItem(
                    ev.id, ev.type, sender, ev.sender_display_name or "", ev.message or "", ev.created_on
                )
                self._items.setdefault(item.id, item)
                self._trim()
                mark_read = self.send_read_receipts and sender != self.user_id
            else:
                mark_read = False
                self._apply(kind, ev)
        self._throttle()
        if mark_read:
            call(
                self.thread_client.send_read_receipt,
                ev.id,
                on_done=lambda _: None,
                on_error=self._receipt_failed,
            )

    def _apply(self, kind: str, ev: Any) -> None:
        if kind == "chatMessageEdited" and ev.id in self._items:
            self._items[ev.id] = replace(self._items[ev.id], content=ev.message or "", edited_on=ev.edited_on)
        elif kind == "chatMessageDeleted" and ev.id in self._items:
            self._items[ev.id] = replace(self._items[ev.id], content="", deleted_on=ev.deleted_on)
        elif kind == "typingIndicatorReceived":
            sender = raw_id(ev.sender)
            if sender and sender != self.user_id:
                name = ev.sender_display_name or self._names.get(sender) or "Someone"
                self._typing[sender] = (name, time.monotonic() + TYPING_SHOWN_S)
                self._later(TYPING_SHOWN_S + 0.05)
        elif kind == "readReceiptReceived":
            self._note_read(raw_id(ev.sender), ev.chat_message_id)
        elif kind in ("participantsAdded", "participantsRemoved"):
            people = ev.participants_added if kind == "participantsAdded" else ev.participants_removed
            for p in people:
                if p.display_name:
                    self._names[raw_id(p)] = p.display_name
            verb = "joined the chat" if kind == "participantsAdded" else "left the chat"
            when = ev.added_on if kind == "participantsAdded" else ev.removed_on
            self._system(ev, f"{participant_names(people) or 'someone'} {verb}", when)
        elif kind == "chatThreadPropertiesUpdated" and ev.topic is not None:
            by = ev.updated_by
            name = (by.display_name if by else None) or self._names.get(raw_id(by), "") or "someone"
            self._system(ev, f"{name} set the topic to “{ev.topic}”", ev.updated_on)
        elif kind == "chatThreadDeleted":
            self._system(ev, "The thread was deleted", ev.deleted_on)

    def _system(self, ev: Any, text: str, when: datetime | None) -> None:
        key = f"event-{ev.event_id or len(self._items)}"
        self._items.setdefault(key, TranscriptItem(key, "system", "", "", text, when, system=True))
        self._trim()

    def _note_read(self, reader: str, message_id: str) -> None:
        if not reader or reader == self.user_id:
            return
        item = self._items.get(message_id)
        key = item.key if item else (int(message_id) if message_id.isdigit() else 0, message_id)
        if key > self._read.get(reader, (-1, "")):
            self._read[reader] = key

    def _receipt_failed(self, exc: Exception) -> None:
        self.error = "Could not send a read receipt. " + describe_error(exc)
        self._throttle()

    def _trim(self) -> None:
        if len(self._items) > self.max_messages:
            for item in self.items[: len(self._items) - self.max_messages]:
                del self._items[item.id]

    def _later(self, delay: float) -> None:
        try:
            asyncio.get_running_loop().call_later(delay, self._throttle)
        except RuntimeError:
            timer = threading.Timer(delay, self._throttle)
            timer.daemon = True
            timer.start()

    # -- reading and rendering --------------------------------------------------------------------

    @property
    def items(self) -> list[TranscriptItem]:
        with self._lock:
            return sorted(self._items.values(), key=lambda i: i.key)

    @property
    def typing(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return sorted(name for name, until in self._typing.values() if until > now)

    def read_by(self, message_id: str) -> list[str]:
        """Display names (or ids) of the others who have read ``message_id``."""
        with self._lock:
            item = self._items.get(message_id)
            if item is None:
                return []
            return sorted(self._names.get(r, r) for r, key in self._read.items() if key >= item.key)

    def refresh(self) -> None:
        """Re-render now."""
        self._throttle.flush()

    def _render(self) -> None:
        items = self.items
        own = [i for i in items if i.sender_id == self.user_id and not i.system and not i.deleted_on]
        latest_own = own[-1].id if own else None
        parts = [self._bubble(i, latest_own) for i in reversed(items)]  # column-reverse: newest first
        if self.error:
            parts.insert(0, f'<div class="chatnb-status chatnb-status-error">{_html.esc(self.error)}</div>')
        if not items and not self.error:
            parts.append('<div class="chatnb-empty">No messages yet.</div>')
        self.html.value = f'<div class="chatnb-transcript">{"".join(parts)}</div>'
        names = self.typing
        text = ""
        if names:
            text = f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} typing…"
        self.typing_html.value = f'<div class="chatnb-typing">{_html.esc(text)}</div>'

    def _bubble(self, item: TranscriptItem, latest_own: str | None) -> str:
        attrs = f'data-id="{_html.esc(item.id)}"'
        if item.system:
            return f'<div class="chatnb-msg chatnb-system" {attrs}>{_html.esc(item.content)}</div>'
        side = "chatnb-own" if item.sender_id == self.user_id else "chatnb-other"
        classes = f"chatnb-msg {side}"
        meta = [item.sender_name or item.sender_id, _html.format_time(item.created_on)]
        if item.deleted_on:
            classes += " chatnb-deleted"
            body = "This message was deleted"
        else:
            body = _html.render_content(item.content, item.type)
            if item.edited_on:
                classes += " chatnb-edited"
                meta.append("edited")
        readers = self.read_by(item.id) if side == "chatnb-own" else []
        if readers:
            classes += " chatnb-read"
        receipt = ""
        if item.id == latest_own:
            state = f"Read by {', '.join(readers)}" if readers else "Sent"
            receipt = f'<div class="chatnb-receipt">{_html.esc(state)}</div>'
        meta_html = _html.esc(" · ".join(m for m in meta if m))
        return (
            f'<div class="{classes}" {attrs}><div class="chatnb-meta">{meta_html}</div>'
            f'<div class="chatnb-bubble">{body}</div>{receipt}</div>'
        )

    def close(self) -> None:
        """Unsubscribe and close the widget."""
        if self.subscription.close():
            release_chat_client(self.chat_client)
        super().close()

    def __repr__(self) -> str:
        return f"<ChatView {self.thread_id} {len(self._items)} items>"
