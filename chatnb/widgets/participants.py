"""``ParticipantList``: who is in a thread, live, with add and remove controls.

>>> people = ParticipantList(user, thread_id)     # names typed in the box become users of the session
>>> people                         # one row per participant with a Remove button; an Add box below
>>> people.add("8:acs:...", display_name="Geeta")            # the same from code

An anywidget (``chatnb.js``): the list is one trait (a few rows, changed rarely), the buttons and the
box are drawn by the browser, so re-rendering opens no widgets at all (the ipywidgets version leaked
three per participant on every render). Add and remove run on the widget's worker, off the kernel loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import traitlets as t

from ..events import Event
from ..models import ChatParticipant, CommunicationUserIdentifier
from . import _html
from ._base import ChatWidget
from ._live import Subscription, chat_client_for, describe_error, own_user_id_async, raw_id
from ._target import resolve_target
from ._worker import Job, Worker

__all__ = ["ParticipantList"]

HERE = Path(__file__).parent


class ParticipantList(ChatWidget):
    """The participants of a thread, updated on ``participantsAdded`` / ``participantsRemoved`` events.

    Args:
        target: a thread client; or a chat client or ``session.user(...)`` followed by ``thread``.
        chat_client: whose real-time events to follow (the user's, or one shared per credential).
        user_id: who "me" is (marked "you"; removing yourself leaves the thread).
        resolve: turns what is typed in the Add box into a participant when it is not an ACS id (for a
            user, ``session.user``: people are added by name). Without it, the box takes a raw id.

    Attributes:
        participants: ``{raw id: display name}``.
    """

    _esm = HERE / "chatnb.js"
    snapshot_kind = "participants"
    _kind = t.Unicode("participants").tag(sync=True)
    people = t.List(t.Dict()).tag(sync=True)  # [{"id", "name", "you"}], you first, then by name
    status = t.Dict().tag(sync=True)  # {"kind": "ok" | "error" | "busy", "text"}
    placeholder = t.Unicode("Name or 8:acs:… id").tag(sync=True)

    def __init__(
        self,
        target: Any,
        thread: Any = None,
        *,
        chat_client: Any = None,
        user_id: str | None = None,
        resolve: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        found = resolve_target("ParticipantList", target, thread, chat_client=chat_client)
        self.thread_client = found.thread_client
        self.thread_id = str(found.thread_id)
        self.user_id = user_id or found.user_id
        self.resolve = resolve or found.resolve
        self._lock = threading.RLock()
        self._people: dict[str, str] = {}
        super().__init__(**kwargs)
        self.add_class("chatnb-participants")
        self._worker = Worker(self.thread_client)
        self.on_msg(self._on_front_end)
        self.chat_client = chat_client_for(self.thread_client, found.chat_client)
        self.subscription = Subscription(
            self.chat_client, self.handle_event, ("participantsAdded", "participantsRemoved")
        )
        self.load_job = self.reload()

    # -- data -------------------------------------------------------------------------------------

    @property
    def participants(self) -> dict[str, str]:
        with self._lock:
            return dict(self._people)

    def reload(self) -> Job:
        """Read the participant list from the service."""
        if self._worker.is_async:

            async def fetch() -> list[Any]:
                if not self.user_id:
                    self.user_id = await own_user_id_async(self.thread_client) or ""
                return [p async for p in self.thread_client.iter_participants()]

            return self._worker.run(fetch, on_done=self._set, on_error=self._list_failed)
        return self._worker.run(
            lambda: list(self.thread_client.iter_participants()),
            on_done=self._set,
            on_error=self._list_failed,
        )

    def _list_failed(self, exc: Exception) -> None:
        self._show("Could not list the participants. " + describe_error(exc), "error")

    def _set(self, people: list[Any]) -> None:
        with self._lock:
            self._people = {raw_id(p): p.display_name or "" for p in people}
            self._publish()

    def _publish(self) -> None:
        rows = sorted(self._people.items(), key=lambda kv: (kv[0] != self.user_id, kv[1].lower(), kv[0]))
        self.people = [{"id": rid, "name": name, "you": rid == self.user_id} for rid, name in rows]

    def handle_event(self, event: Event) -> None:
        """What the list does with a real-time event (its subscription calls this)."""
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
            self._publish()

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

    def add(self, who: Any, *, display_name: str | None = None) -> Job | None:
        """Add a participant: an ACS id, a name (with ``resolve``), a user or a ``ChatParticipant``.
        Errors are shown in the widget; ``None`` if ``who`` could not be made a participant."""
        try:
            participant = self._participant(who, display_name)
        except Exception as exc:
            self._show("Not added. " + describe_error(exc), "error")
            return None
        label = participant.display_name or raw_id(participant)
        self._show(f"Adding {label}…", "busy")

        def done(refused: Any) -> Any:
            if refused:
                self._show("Not added. " + "; ".join(describe_error(e) for _, e in refused), "error")
                return refused
            with self._lock:
                self._people[raw_id(participant)] = participant.display_name or ""
                self._publish()
            self._show(f"Added {label}.", "ok")
            return refused

        return self._worker.run(
            self.thread_client.add_participants,
            [participant],
            on_done=done,
            on_error=lambda exc: self._show("Not added. " + describe_error(exc), "error"),
        )

    def remove(self, who: Any) -> Job:
        """Remove a participant (an id, a user or a participant); removing yourself leaves the thread."""
        rid = raw_id(getattr(who, "identifier", who))
        name = self.participants.get(rid) or rid

        def done(_: Any) -> None:
            with self._lock:
                self._people.pop(rid, None)
                self._publish()
            self._show(f"Removed {name}.", "ok")

        return self._worker.run(
            self.thread_client.remove_participant,
            CommunicationUserIdentifier(rid),
            on_done=done,
            on_error=lambda exc: self._show(f"Could not remove {name}. " + describe_error(exc), "error"),
        )

    def _on_front_end(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("op") == "add":
            self.add(str(content.get("text", "")))
        elif content.get("op") == "remove" and content.get("id"):
            self.remove(str(content["id"]))

    def _show(self, text: str, kind: str) -> None:
        self.status = {"kind": kind, "text": text}

    # -- static rendering and lifecycle -----------------------------------------------------------

    def refresh(self) -> None:
        """Publish the list again (it is published on every change anyway)."""
        with self._lock:
            self._publish()

    def snapshot_body(self) -> str:
        items = "".join(
            f"<li>{_html.esc(p['name'] or '(no name)')}{' (you)' if p['you'] else ''}</li>"
            for p in self.people
        )
        return f"<ul>{items}</ul>" if items else "<p><i>No participants listed.</i></p>"

    def snapshot_title(self) -> str:
        return f"Participants ({len(self.people)}) · a static snapshot"

    def __repr__(self) -> str:
        people = len(getattr(self, "_people", {}))
        return f"<ParticipantList {getattr(self, 'thread_id', '')} {people} participants>"
