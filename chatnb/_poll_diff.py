"""The sans-I/O half of the poller (:mod:`chatnb._polling`): what one thread's listings mean as events.

:class:`ThreadState` is what earlier rounds saw of a thread; :class:`Differ` compares a round's listings
(messages changed since the cursor, read receipts, properties) with it, updates it and returns the
events, each with its sort key ``(time in microseconds, sequence id)``. Nothing here sends a request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ._time import now_us, to_datetime, to_us
from .events import (
    ChatMessageDeletedEvent,
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    ChatThreadDeletedEvent,
    ChatThreadEventProperties,
    ChatThreadPropertiesUpdatedEvent,
    Event,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
    ReadReceiptReceivedEvent,
)
from .models import (
    ChatMessage,
    ChatMessageReadReceipt,
    ChatParticipant,
    ChatThreadItem,
    ChatThreadProperties,
    CommunicationUserIdentifier,
)

__all__ = ["Differ", "Keyed", "ThreadState", "us"]

SYSTEM_TYPES = ("participantAdded", "participantRemoved", "topicUpdated")
Keyed = tuple[tuple[int, int], Event]
"""An event with its sort key: (time in microseconds, sequence id)."""


def us(value: datetime | None) -> int:
    """``value`` in microseconds since the epoch (0 for ``None``)."""
    return 0 if value is None else to_us(value)


@dataclass
class ThreadState:
    """What the poller has seen of one thread."""

    id: str
    baseline_us: int  # changes before this are history, not events
    cursor_us: int  # the newest change seen (server clock)
    known: dict[str, tuple[str, int]] = field(default_factory=dict)  # message id -> (version, updated)
    flags: dict[str, tuple[bool, int, bool]] = field(
        default_factory=dict
    )  # id -> (received, edited, deleted)
    receipts: dict[str, tuple[str, int]] = field(default_factory=dict)  # reader -> (message id, read_on)
    properties: tuple[str, tuple[tuple[str, str], ...]] | None = None
    properties_at: float = 0.0
    created_us: int | None = None  # set when the poller reported the thread's creation
    joining: bool = False  # added to an older thread: its participantAdded message moves the baseline
    deleted: bool = False

    def copy(self) -> ThreadState:
        """A copy a failed round cannot touch (the values of the dicts are immutable)."""
        return replace(self, known=dict(self.known), flags=dict(self.flags), receipts=dict(self.receipts))

    def remember_properties(
        self, props: ChatThreadProperties
    ) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        """Keep ``props`` as the last properties seen (now); the previous ones (``None`` at first)."""
        previous = self.properties
        self.properties = (props.topic, tuple(sorted((props.metadata or {}).items())))
        self.properties_at = time.monotonic()
        return previous


class Differ:
    """Turns listings into the events of the user ``me`` (see the module docstring).

    Args:
        me: the polling user (every event's ``recipient``).
        overlap_us: how far each round re-reads before its cursor (late commits, clock skew).
    """

    def __init__(self, me: CommunicationUserIdentifier, overlap_us: int) -> None:
        self.me = me
        self.overlap_us = overlap_us

    def messages(self, state: ThreadState, messages: list[ChatMessage]) -> tuple[list[Keyed], bool]:
        """The events of a thread's messages changed since the cursor, and whether the topic changed."""
        out: list[Keyed] = []
        messages.sort(key=lambda m: int(m.sequence_id or 0))
        if state.joining:
            state.joining = False
            self._find_join(state, messages)
        topic_changed = False
        for message in messages:
            updated = max(us(message.created_on), us(message.edited_on), us(message.deleted_on))
            state.cursor_us = max(state.cursor_us, updated)
            previous = state.known.get(message.id)
            if previous is not None and previous[0] == message.version:
                continue
            state.known[message.id] = (message.version, updated)
            if str(message.type) in SYSTEM_TYPES:
                event = self._system_event(state, message)
                if event is not None:
                    topic_changed |= isinstance(event, ChatThreadPropertiesUpdatedEvent)
                    out.append(((us(message.created_on), int(message.sequence_id or 0)), event))
            else:
                out += self._message_events(state, message)
        floor = state.cursor_us - 2 * self.overlap_us
        state.known = {k: v for k, v in state.known.items() if v[1] >= floor}
        state.flags = {k: v for k, v in state.flags.items() if k in state.known}
        return out, topic_changed

    def _find_join(self, state: ThreadState, messages: list[ChatMessage]) -> None:
        for message in reversed(messages):
            content = message.content
            if (
                str(message.type) == "participantAdded"
                and content is not None
                and any(p.identifier == self.me for p in content.participants)
            ):
                state.baseline_us = max(state.baseline_us, us(message.created_on))
                return

    def _message_events(self, state: ThreadState, m: ChatMessage) -> list[Keyed]:
        received, edited_us, deleted = state.flags.get(m.id, (False, 0, False))
        seq = int(m.sequence_id or 0)
        created, edited, removed = us(m.created_on), us(m.edited_on), us(m.deleted_on)
        common: dict[str, Any] = {
            "thread_id": state.id,
            "recipient": self.me,
            "id": m.id,
            "type": str(m.type),
            "created_on": m.created_on,
            "sender": m.sender,
            "sender_display_name": m.sender_display_name,
            "metadata": m.metadata or None,
        }
        text = None if m.content is None else m.content.message
        out: list[Keyed] = []
        if not received and created >= state.baseline_us:
            received = True
            version = m.id if (edited or removed) else m.version
            event_id = f"poll:{state.id}:{m.id}:received"
            event: Event = ChatMessageReceivedEvent(
                **common, event_id=event_id, version=version, message=text
            )
            out.append(((created, seq), event))
        if edited and edited > edited_us and not removed:
            edited_us = edited
            if edited >= state.baseline_us:
                event_id = f"poll:{state.id}:{m.id}:{m.version}"
                event = ChatMessageEditedEvent(
                    **common, event_id=event_id, version=m.version, message=text, edited_on=m.edited_on
                )
                out.append(((edited, seq), event))
        if removed and not deleted:
            deleted = True
            if removed >= state.baseline_us:
                event_id = f"poll:{state.id}:{m.id}:deleted"
                event = ChatMessageDeletedEvent(
                    **common, event_id=event_id, version=m.version, deleted_on=m.deleted_on
                )
                out.append(((removed, seq), event))
        state.flags[m.id] = (received, edited_us, deleted)
        return out

    def _system_event(self, state: ThreadState, m: ChatMessage) -> Event | None:
        created = us(m.created_on)
        if created < state.baseline_us or m.content is None:
            return None
        if (
            state.created_us is not None
            and int(m.sequence_id or 0) <= 2
            and created - state.created_us < 5_000_000
        ):
            return None  # the creation's own system messages: chatThreadCreated said it all
        initiator = m.content.initiator
        by = None if initiator is None else ChatParticipant(initiator)
        common: dict[str, Any] = {
            "thread_id": state.id,
            "recipient": self.me,
            "event_id": f"poll:{state.id}:{m.id}",
            "version": m.version,
        }
        if str(m.type) == "participantAdded":
            return ParticipantsAddedEvent(
                **common, added_on=m.created_on, added_by=by, participants_added=m.content.participants
            )
        if str(m.type) == "participantRemoved":
            return ParticipantsRemovedEvent(
                **common, removed_on=m.created_on, removed_by=by, participants_removed=m.content.participants
            )
        metadata = dict(state.properties[1]) if state.properties else None
        return ChatThreadPropertiesUpdatedEvent(
            **common,
            updated_on=m.created_on,
            updated_by=by,
            properties=ChatThreadEventProperties(m.content.topic, metadata or None),
        )

    def receipts(self, state: ThreadState, receipts: list[ChatMessageReadReceipt]) -> list[Keyed]:
        """The events of each reader's latest receipt, when it changed."""
        out: list[Keyed] = []
        for receipt in receipts:
            if receipt.sender is None:
                continue
            reader = receipt.sender.raw_id
            seen = (receipt.chat_message_id, us(receipt.read_on))
            if state.receipts.get(reader) == seen:
                continue
            state.receipts[reader] = seen
            if seen[1] >= state.baseline_us:
                event = ReadReceiptReceivedEvent(
                    thread_id=state.id,
                    recipient=self.me,
                    event_id=f"poll:{state.id}:read:{reader}:{receipt.chat_message_id}",
                    sender=receipt.sender,
                    chat_message_id=receipt.chat_message_id,
                    read_on=receipt.read_on,
                )
                out.append(((seen[1], 0), event))
        return out

    def properties(self, state: ThreadState, props: ChatThreadProperties, topic_changed: bool) -> list[Keyed]:
        """The event of a properties change no system message told (metadata only), if any."""
        previous = state.remember_properties(props)
        if previous is None or previous == state.properties or topic_changed:
            return []  # first look, no change, or already reported from the topicUpdated message
        now = now_us()
        event = ChatThreadPropertiesUpdatedEvent(
            thread_id=state.id,
            recipient=self.me,
            event_id=f"poll:{state.id}:properties:{now}",
            updated_on=to_datetime(now),
            properties=ChatThreadEventProperties(props.topic, props.metadata or None),
        )
        return [((now, 0), event)]

    def thread_deleted(self, item: ChatThreadItem) -> Event:
        """The event of a thread the listing shows deleted."""
        return ChatThreadDeletedEvent(
            thread_id=item.id,
            recipient=self.me,
            event_id=f"poll:{item.id}:deleted",
            deleted_on=item.deleted_on,
        )

    def removed(self, thread_id: str, at_us: int) -> Keyed:
        """The event of the user's own removal from a thread (it left the listing: who did it is unknown)."""
        event = ParticipantsRemovedEvent(
            thread_id=thread_id,
            recipient=self.me,
            event_id=f"poll:{thread_id}:removed:{at_us}",
            removed_on=to_datetime(at_us),
            participants_removed=(ChatParticipant(self.me),),
        )
        return ((at_us, 0), event)
