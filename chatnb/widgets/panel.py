"""``ChatPanel``: transcript, composer, participants and event log of one user in one thread.

>>> session = chatnb.connect()
>>> jack, geeta = session.user("Jack"), session.user("Geeta")
>>> thread = jack.create_thread("Lunch", participants=[geeta])
>>> ChatPanel(jack, thread.thread_id)          # or ChatPanel(thread) for a bare thread client
"""

from __future__ import annotations

import re
from typing import Any

import ipywidgets as widgets

from . import _html
from ._live import chat_client_for, own_user_id, release_chat_client
from .chat_view import ChatView
from .composer import MessageComposer
from .event_log import EventLog
from .participants import ParticipantList

__all__ = ["ChatPanel"]


def _is_user(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("chat_client", "identifier", "thread"))


class ChatPanel(widgets.VBox):  # type: ignore[misc]
    """Everything about one user in one thread, live.

    Called as ``ChatPanel(user, thread)`` with a :class:`chatnb.User` (from ``chatnb.connect()``) and a
    thread id or thread client, or as ``ChatPanel(thread_client)``.

    Args:
        max_events: size of the event log.
        show_event_log: include the event log.
        send_read_receipts: mark others' messages read as they arrive.
        title: the heading (by default the user's name and the thread topic's first words).

    Attributes:
        view, composer, participants, event_log: the parts (:class:`ChatView`,
        :class:`MessageComposer`, :class:`ParticipantList`, :class:`EventLog` or ``None``).
    """

    def __init__(
        self,
        user_or_thread: Any,
        thread: Any = None,
        *,
        chat_client: Any = None,
        max_events: int = 200,
        show_event_log: bool = True,
        send_read_receipts: bool = True,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        user = user_or_thread if _is_user(user_or_thread) else None
        if user is not None:
            if thread is None:
                raise ValueError("ChatPanel(user, thread): give the thread (its id or a thread client)")
            thread_client = user.thread(thread) if isinstance(thread, str) else thread
            chat_client = chat_client or user.chat_client
            user_id, name, resolve = user.id, user.name, user.session.user
        else:
            if thread is not None:
                raise ValueError("ChatPanel(thread_client) takes one thread; ChatPanel(user, thread) two")
            thread_client = user_or_thread
            user_id = own_user_id(thread_client) or ""
            name = getattr(thread_client, "_default_display_name", None) or ""
            resolve = None
        self.user = user
        self.thread_client = thread_client
        self.chat_client = chat_client_for(thread_client, chat_client)
        self._released = False
        self.view = ChatView(
            thread_client,
            chat_client=self.chat_client,
            user_id=user_id,
            send_read_receipts=send_read_receipts,
        )
        self.composer = MessageComposer(thread_client, display_name=name or None)
        self.participants = ParticipantList(
            thread_client, chat_client=self.chat_client, user_id=user_id, resolve=resolve
        )
        self.event_log = (
            EventLog(self.chat_client, max_events=max_events, thread_id=thread_client.thread_id)
            if show_event_log
            else None
        )
        heading = title if title is not None else (f"{name} · chat" if name else "Chat")
        self.heading = widgets.HTML(
            f'<div class="chatnb-heading chatnb-panel-title">{_html.esc(heading)}</div>'
        )
        left = widgets.VBox([self.view, self.composer], layout=widgets.Layout(flex="2 1 0%", min_width="0"))
        right = widgets.VBox([self.participants], layout=widgets.Layout(flex="1 1 0%", min_width="0"))
        parts: list[widgets.Widget] = [self.heading, widgets.HBox([left, right])]
        if self.event_log is not None:
            parts.append(self.event_log)
        super().__init__(parts, **kwargs)
        self.layout.border = "1px solid #d0d7de"
        self.layout.padding = "6px"
        self.add_class("chatnb-panel")
        if name:
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            if slug:
                self.add_class(f"chatnb-panel-{slug}")

    def close(self) -> None:
        """Unsubscribe every part and close the widgets."""
        for part in (self.view, self.composer, self.participants, self.event_log):
            if part is not None:
                part.close()
        if not self._released:
            self._released = True
            release_chat_client(self.chat_client)
        super().close()

    def __repr__(self) -> str:
        return f"<ChatPanel {self.thread_client.thread_id}>"
