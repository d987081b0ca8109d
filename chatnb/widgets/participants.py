"""``ParticipantList``: who is in a thread, live, with add and remove controls.

>>> people = ParticipantList(thread, resolve=session.user)    # names typed in the box become users
>>> people                         # one row per participant with a Remove button; an Add row below
>>> people.add("8:acs:...", display_name="Geeta")            # the same from code
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..events import Event
from ..models import ChatParticipant, CommunicationUserIdentifier
from . import _html
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
from .composer import SETTLE_S, ComposerText, when_settled

__all__ = ["ParticipantList"]


class ParticipantList(widgets.VBox):  # type: ignore[misc]
    """The participants of ``thread_client``'s thread, updated on ``participantsAdded`` /
    ``participantsRemoved`` events.

    Args:
        thread_client: a :class:`chatnb.ChatThreadClient`.
        chat_client: whose real-time events to follow (by default one shared per credential).
        user_id: who "me" is (marked "you"; removing yourself leaves the thread).
        resolve: turns what is typed in the Add box into a participant: called with the text when it is
            not an ACS id (for example ``session.user`` to add people by name). Without it, the box takes
            a raw id (``8:acs:...``).

    Attributes:
        participants: ``{raw id: display name}``.
    """

    def __init__(
        self,
        thread_client: Any,
        *,
        chat_client: Any = None,
        user_id: str | None = None,
        resolve: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.thread_client = thread_client
        self.thread_id = str(thread_client.thread_id)
        self.user_id = user_id or own_user_id(thread_client) or ""
        self.resolve = resolve
        self._lock = threading.Lock()
        self._people: dict[str, str] = {}
        self.heading = widgets.HTML()
        self.heading.add_class("chatnb-participants-heading")
        self.rows = widgets.VBox()
        self.rows.add_class("chatnb-participant-rows")
        self.add_field = ComposerText(
            placeholder="name or 8:acs:… id", continuous_update=True, layout=widgets.Layout(width="200px")
        )
        self.add_field.add_class("chatnb-participant-input")
        self.add_button = widgets.Button(description="Add", icon="user-plus")
        self.add_button.add_class("chatnb-participant-add")
        self.status = widgets.HTML(value='<div class="chatnb-status"></div>')
        self.status.add_class("chatnb-participants-status")
        self._remove_buttons: dict[str, widgets.Button] = {}
        super().__init__(
            [
                widgets.HTML(_html.style_tag()),
                self.heading,
                self.rows,
                widgets.HBox([self.add_field, self.add_button]),
                self.status,
            ],
            **kwargs,
        )
        self.add_class("chatnb-participants")
        self._throttle = Throttle(self._render, 0.05)
        self.add_button.on_click(lambda _: when_settled(self.add_field, SETTLE_S, self._add_from_field))
        self.add_field.on_msg(self._on_field_msg)
        self.chat_client = chat_client_for(thread_client, chat_client)
        self.subscription = Subscription(
            self.chat_client, self._on_event, ("participantsAdded", "participantsRemoved")
        )
        self.load_task = self.reload()

    # -- data -------------------------------------------------------------------------------------

    @property
    def participants(self) -> dict[str, str]:
        with self._lock:
            return dict(self._people)

    def reload(self) -> Any:
        """Read the participant list from the service (a task for an async client)."""
        if is_async_client(self.thread_client):

            async def gather() -> None:
                if not self.user_id:
                    self.user_id = await own_user_id_async(self.thread_client) or ""
                try:
                    self._set([p async for p in self.thread_client.iter_participants()])
                except Exception as exc:
                    self._show("Could not list the participants. " + describe_error(exc), "error")

            return asyncio.ensure_future(gather())
        try:
            self._set(list(self.thread_client.iter_participants()))
        except Exception as exc:
            self._show("Could not list the participants. " + describe_error(exc), "error")
        return None

    def _set(self, people: list[Any]) -> None:
        with self._lock:
            self._people = {raw_id(p): p.display_name or "" for p in people}
        self._throttle.flush()

    def _on_event(self, event: Event) -> None:
        if getattr(event, "thread_id", None) != self.thread_id:
            return
        ev: Any = event
        with self._lock:
            if event.kind == "participantsAdded":
                for p in ev.participants_added:
                    self._people[raw_id(p)] = p.display_name or self._people.get(raw_id(p), "")
            else:
                for p in ev.participants_removed:
                    self._people.pop(raw_id(p), None)
        self._throttle()

    # -- actions ----------------------------------------------------------------------------------

    def _participant(self, who: Any, display_name: str | None) -> ChatParticipant:
        if isinstance(who, ChatParticipant):
            return who
        if isinstance(who, str):
            text = who.strip()
            if not text:
                raise ValueError("type a name or an ACS user id to add")
            if ":" not in text:
                if self.resolve is None:
                    raise ValueError(f"{text!r} is not an ACS user id (8:acs:...)")
                return self._participant(self.resolve(text), display_name or text)
            return ChatParticipant(CommunicationUserIdentifier(text), display_name=display_name)
        identifier = getattr(who, "identifier", who)
        name = display_name or getattr(who, "display_name", None) or getattr(who, "name", None)
        return ChatParticipant(identifier, display_name=name)

    def add(self, who: Any, *, display_name: str | None = None) -> Any:
        """Add a participant: an ACS id, a name (with ``resolve``), a user or a ``ChatParticipant``.
        Errors are shown in the status line."""
        try:
            participant = self._participant(who, display_name)
        except Exception as exc:
            self._show("Not added. " + describe_error(exc), "error")
            return None

        def done(refused: Any) -> None:
            if refused:
                self._show("Not added. " + "; ".join(describe_error(e) for _, e in refused), "error")
                return
            with self._lock:
                self._people[raw_id(participant)] = participant.display_name or ""
            self.add_field.value = ""
            self._show(f"Added {participant.display_name or raw_id(participant)}.", "ok")
            self._throttle()

        return call(
            self.thread_client.add_participants,
            [participant],
            on_done=done,
            on_error=lambda exc: self._show("Not added. " + describe_error(exc), "error"),
        )

    def remove(self, who: Any) -> Any:
        """Remove a participant (an id, a user or a participant); removing yourself leaves the thread."""
        rid = raw_id(getattr(who, "identifier", who))
        name = self.participants.get(rid) or rid

        def done(_: Any) -> None:
            with self._lock:
                self._people.pop(rid, None)
            self._show(f"Removed {name}.", "ok")
            self._throttle()

        return call(
            self.thread_client.remove_participant,
            CommunicationUserIdentifier(rid),
            on_done=done,
            on_error=lambda exc: self._show(f"Could not remove {name}. " + describe_error(exc), "error"),
        )

    def _add_from_field(self) -> None:
        self.add(self.add_field.value)

    def _on_field_msg(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("event") == "submit":  # Enter in the Add box, once its text has arrived
            when_settled(self.add_field, SETTLE_S, self._add_from_field)

    def _show(self, text: str, kind: str) -> None:
        self.status.value = f'<div class="chatnb-status chatnb-status-{kind}">{_html.esc(text)}</div>'

    # -- rendering --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-render now."""
        self._throttle.flush()

    def remove_button(self, user_id: str) -> widgets.Button:
        """The Remove button of ``user_id``'s row.

        Raises:
            KeyError: if ``user_id`` is not listed.
        """
        if user_id not in self._remove_buttons:
            self._throttle.flush()  # a row added since the last render
        return self._remove_buttons[user_id]

    def _render(self) -> None:
        people = sorted(
            self.participants.items(), key=lambda kv: (kv[0] != self.user_id, kv[1].lower(), kv[0])
        )
        self.heading.value = f'<div class="chatnb-heading">Participants ({len(people)})</div>'
        rows, buttons = [], {}
        for rid, name in people:
            you = " (you)" if rid == self.user_id else ""
            label = widgets.HTML(
                f'<div class="chatnb-people" data-id="{_html.esc(rid)}">'
                f'<span class="chatnb-person-name">{_html.esc(name or "(no name)")}{you}</span> '
                f'<span class="chatnb-person-id">{_html.esc(rid[-12:])}</span></div>'
            )
            button = self._remove_buttons.get(rid)
            if button is None:
                button = widgets.Button(
                    description="",
                    icon="sign-out" if you else "user-times",
                    layout=widgets.Layout(width="34px", min_width="34px"),
                    tooltip="leave the thread" if you else f"remove {name or rid}",
                )
                button.add_class("chatnb-participant-remove")
                button.on_click(lambda _, rid=rid: self.remove(rid))
            buttons[rid] = button
            row = widgets.HBox([button, label])
            row.add_class("chatnb-participant")
            rows.append(row)
        for rid, button in self._remove_buttons.items():
            if rid not in buttons:
                button.close()
        old_rows = self.rows.children
        self._remove_buttons = buttons
        self.rows.children = rows
        for row in old_rows:
            row.children[1].close()
            row.close()

    def close(self) -> None:
        """Unsubscribe and close the widget."""
        if self.subscription.close():
            release_chat_client(self.chat_client)
        super().close()

    def __repr__(self) -> str:
        return f"<ParticipantList {self.thread_id} {len(self._people)} participants>"
