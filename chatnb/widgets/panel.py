"""``ChatPanel``: transcript, composer, participants and event log of one user in one thread.

>>> session = chatnb.connect()
>>> jack, geeta = session.user("Jack"), session.user("Geeta")
>>> thread = jack.create_thread("Lunch", participants=[geeta])
>>> ChatPanel(jack, thread.thread_id)          # or ChatPanel(thread_client), ChatPanel(chat_client, id)

The panel is an ipywidgets ``Box`` laid out by ``chat.css``: the transcript and composer beside the
participants, the event log below; below about 700 px of width (a CSS container query on the panel, so
it works in a narrow notebook, a side panel or two panels side by side) everything stacks in one column
and the event log starts collapsed. The composer's messages show on the transcript with their status.
"""

from __future__ import annotations

import re
from typing import Any

import ipywidgets as widgets

from . import _html
from ._base import close_widget
from ._live import chat_client_for, release_chat_client
from ._target import resolve_target
from .chat_view import ChatView
from .composer import MessageComposer
from .event_log import EventLog
from .participants import ParticipantList

__all__ = ["ChatPanel"]


def _box(children: list[widgets.Widget], css_class: str) -> widgets.Box:
    box = widgets.VBox(children)
    box.add_class(css_class)
    return box


class ChatPanel(widgets.Box):  # type: ignore[misc]
    """Everything about one user in one thread, live.

    Called as ``ChatPanel(user, thread)`` with a :class:`chatnb.User` (from ``chatnb.connect()``) and a
    thread id or thread client, ``ChatPanel(chat_client, thread)``, or ``ChatPanel(thread_client)``.

    Args:
        max_events: size of the event log.
        show_event_log: include the event log.
        send_read_receipts: send read receipts for the messages seen in the browser.
        title: the heading (by default the user's name).

    Attributes:
        view: the transcript, a :class:`ChatView`.
        composer: the :class:`MessageComposer`.
        participants: the :class:`ParticipantList`.
        event_log: the :class:`EventLog`, or ``None`` without ``show_event_log``.
    """

    def __init__(
        self,
        target: Any,
        thread: Any = None,
        *,
        chat_client: Any = None,
        max_events: int = 200,
        show_event_log: bool = True,
        send_read_receipts: bool = True,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        found = resolve_target("ChatPanel", target, thread, chat_client=chat_client)
        self.user = found.user
        self.thread_client = thread_client = found.thread_client
        name = found.display_name or ""
        self.heading = title if title is not None else (f"{name} · chat" if name else "Chat")
        self.chat_client = chat_client_for(thread_client, found.chat_client)
        parts: list[Any] = []
        try:
            self.view = ChatView(
                thread_client,
                chat_client=self.chat_client,
                user_id=found.user_id,
                send_read_receipts=send_read_receipts,
                title=self.heading,
            )
            parts.append(self.view)
            self.composer = MessageComposer(thread_client, display_name=name or None)
            parts.append(self.composer)
            self.composer.show_status = False  # each message's status shows on its bubble
            self.view.follow(self.composer.outbox)
            self.participants = ParticipantList(
                thread_client, chat_client=self.chat_client, user_id=found.user_id, resolve=found.resolve
            )
            parts.append(self.participants)
            self.event_log = (
                EventLog(self.chat_client, max_events=max_events, thread_id=thread_client.thread_id)
                if show_event_log
                else None
            )
        except BaseException:
            for part in parts:
                part.close()
            release_chat_client(self.chat_client)
            raise
        cells: list[widgets.Widget] = [
            _box([self.view, self.composer], "chatnb-panel-main"),
            _box([self.participants], "chatnb-panel-side"),
        ]
        if self.event_log is not None:
            self.event_log.add_class("chatnb-panel-log")
            cells.append(self.event_log)
        self._released = False
        super().__init__([_box(cells, "chatnb-panel-grid")], **kwargs)
        self.add_class("chatnb-panel")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        if slug:
            self.add_class(f"chatnb-panel-{slug}")

    def snapshot(self) -> str:
        """The static HTML snapshot: the transcript and the participants as they are now."""
        events = (
            "" if self.event_log is None else f"<p><i>Event log: {len(self.event_log.table)} events.</i></p>"
        )
        body = (
            self.view.snapshot_body()
            + f"<p><b>Participants</b></p>{self.participants.snapshot_body()}"
            + events
        )
        return _html.snapshot("panel", f"{self.view.snapshot_title()}", body)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.view.wait_loaded()
        self.participants.wait_loaded()
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data["text/html"] = self.snapshot()
        return data, metadata

    def close(self) -> None:
        """Unsubscribe every part and close the widgets (the layout boxes too)."""
        for name in ("view", "composer", "participants", "event_log"):
            part = getattr(self, name, None)
            if part is not None:
                part.close()
        if not getattr(self, "_released", True):
            self._released = True
            release_chat_client(self.chat_client)
        for box in list(self.children):
            for cell in box.children:
                if isinstance(cell, widgets.Box):
                    close_widget(cell)
            close_widget(box)
        layout = self._trait_values.get("layout")
        super().close()
        if layout is not None:
            layout.close()

    def __repr__(self) -> str:
        thread_client = getattr(self, "thread_client", None)
        return f"<ChatPanel {getattr(thread_client, 'thread_id', '')}>"
