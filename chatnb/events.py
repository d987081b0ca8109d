"""Real-time chat events: frozen dataclasses named and shaped like the JavaScript SDK's, in snake_case.

Each event class has ``kind`` (also ``event_type``), the JavaScript event name (``"chatMessageReceived"``,
``"participantsAdded"``...) that :meth:`ChatClient.on` takes, and ``event_id``: the emulator journal id of
a pushed event, the Event Grid id of a delivered one, a stable synthetic key for a polled one, ``None`` for
connection events. Identifiers are :class:`~chatnb.models.CommunicationUserIdentifier`, people in thread
events :class:`~chatnb.models.ChatParticipant`, times tz-aware UTC ``datetime``.

>>> ev = parse_event("chatMessageReceived", {"threadId": "19:t@thread.v2", "id": "1", "message": "hi"})
>>> ev.kind, ev.thread_id, ev.message
('chatMessageReceived', '19:t@thread.v2', 'hi')

:func:`parse_event` reads the emulator's stream payloads (``GET /chatnb/events``);
:func:`chatnb.eventgrid.parse_event_grid` turns Event Grid deliveries into the same classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from ._time import parse_rfc3339
from .models import (
    ChatParticipant,
    CommunicationIdentifier,
    CommunicationUserIdentifier,
    identifier_from_raw_id,
)

__all__ = [
    "CHAT_EVENT_NAMES",
    "EVENT_NAMES",
    "ChatEvent",
    "ChatMessageDeletedEvent",
    "ChatMessageEditedEvent",
    "ChatMessageReceivedEvent",
    "ChatThreadCreatedEvent",
    "ChatThreadDeletedEvent",
    "ChatThreadEventProperties",
    "ChatThreadPropertiesUpdatedEvent",
    "Event",
    "ParticipantsAddedEvent",
    "ParticipantsRemovedEvent",
    "ReadReceiptReceivedEvent",
    "RealTimeNotificationConnected",
    "RealTimeNotificationDisconnected",
    "TypingIndicatorReceivedEvent",
    "parse_event",
    "parse_identifier",
    "parse_metadata",
    "parse_participant",
    "parse_participants",
    "parse_text",
    "parse_time",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event: ``kind`` is the JavaScript SDK's event name."""

    kind: ClassVar[str] = ""
    event_id: str | None = None

    @property
    def event_type(self) -> str:
        """The JavaScript SDK's event name (the same as ``kind``)."""
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., field: value, ...}``, shallow (for logs and DataFrames)."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True, slots=True, kw_only=True)
class RealTimeNotificationConnected(Event):
    """The event stream (re)connected; ``last_event_id`` is where it resumed. ``journal_gap`` says the
    server no longer held some of the events asked for (they are lost to this subscriber)."""

    kind: ClassVar[str] = "realTimeNotificationConnected"
    last_event_id: str | None = None
    mode: str = "push"
    journal_gap: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RealTimeNotificationDisconnected(Event):
    """The event stream dropped (``reason``) or was stopped; a drop is followed by a reconnect."""

    kind: ClassVar[str] = "realTimeNotificationDisconnected"
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatEvent(Event):
    """Base of the chat events: the thread, and the user the event was delivered to."""

    thread_id: str
    recipient: CommunicationIdentifier | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageEvent(ChatEvent):
    id: str
    type: str = "text"
    version: str = ""
    created_on: datetime | None = None
    sender: CommunicationIdentifier | None = None
    sender_display_name: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageReceivedEvent(_MessageEvent):
    """A message was sent to the thread: ``id`` is the message id, ``message`` its content."""

    kind: ClassVar[str] = "chatMessageReceived"
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageEditedEvent(_MessageEvent):
    """A message was edited: ``message`` is the new content, ``version`` the new version."""

    kind: ClassVar[str] = "chatMessageEdited"
    message: str | None = None
    edited_on: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageDeletedEvent(_MessageEvent):
    """A message was deleted."""

    kind: ClassVar[str] = "chatMessageDeleted"
    deleted_on: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingIndicatorReceivedEvent(ChatEvent):
    """Someone is typing (push mode only: the polling mode cannot see typing)."""

    kind: ClassVar[str] = "typingIndicatorReceived"
    sender: CommunicationIdentifier | None = None
    sender_display_name: str | None = None
    version: str = ""
    received_on: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadReceiptReceivedEvent(ChatEvent):
    """``sender`` read the thread up to message ``chat_message_id``."""

    kind: ClassVar[str] = "readReceiptReceived"
    sender: CommunicationIdentifier | None = None
    sender_display_name: str | None = None
    chat_message_id: str = ""
    read_on: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChatThreadEventProperties:
    """A thread's properties as thread events carry them."""

    topic: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _ThreadEvent(ChatEvent):
    version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatThreadCreatedEvent(_ThreadEvent):
    """A thread was created with the subscriber in it."""

    kind: ClassVar[str] = "chatThreadCreated"
    created_on: datetime | None = None
    created_by: ChatParticipant | None = None
    properties: ChatThreadEventProperties = ChatThreadEventProperties()
    participants: tuple[ChatParticipant, ...] = ()

    @property
    def topic(self) -> str | None:
        return self.properties.topic


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatThreadPropertiesUpdatedEvent(_ThreadEvent):
    """A thread's topic or metadata changed; ``properties`` are the new ones."""

    kind: ClassVar[str] = "chatThreadPropertiesUpdated"
    updated_on: datetime | None = None
    updated_by: ChatParticipant | None = None
    properties: ChatThreadEventProperties = ChatThreadEventProperties()

    @property
    def topic(self) -> str | None:
        return self.properties.topic


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatThreadDeletedEvent(_ThreadEvent):
    """A thread was deleted."""

    kind: ClassVar[str] = "chatThreadDeleted"
    deleted_on: datetime | None = None
    deleted_by: ChatParticipant | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantsAddedEvent(_ThreadEvent):
    """Participants were added to a thread."""

    kind: ClassVar[str] = "participantsAdded"
    added_on: datetime | None = None
    added_by: ChatParticipant | None = None
    participants_added: tuple[ChatParticipant, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantsRemovedEvent(_ThreadEvent):
    """Participants were removed from (or left) a thread."""

    kind: ClassVar[str] = "participantsRemoved"
    removed_on: datetime | None = None
    removed_by: ChatParticipant | None = None
    participants_removed: tuple[ChatParticipant, ...] = ()


_CHAT_CLASSES: tuple[type[ChatEvent], ...] = (
    ChatMessageReceivedEvent,
    ChatMessageEditedEvent,
    ChatMessageDeletedEvent,
    TypingIndicatorReceivedEvent,
    ReadReceiptReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadPropertiesUpdatedEvent,
    ChatThreadDeletedEvent,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
)
CHAT_EVENT_NAMES: tuple[str, ...] = tuple(cls.kind for cls in _CHAT_CLASSES)
"""The chat event names, in the JavaScript SDK's spelling."""
EVENT_NAMES: tuple[str, ...] = (
    *CHAT_EVENT_NAMES,
    RealTimeNotificationConnected.kind,
    RealTimeNotificationDisconnected.kind,
)
"""Every name :meth:`ChatClient.on` accepts."""


# -- parsing -------------------------------------------------------------------------------------


def parse_identifier(value: Any) -> CommunicationIdentifier | None:
    """An identifier from ``{rawId, communicationUser: {id}}``, ``{id: ...}`` or a raw id string."""
    if isinstance(value, str):
        return identifier_from_raw_id(value) if value else None
    if not isinstance(value, dict):
        return None
    user = value.get("communicationUser")
    if isinstance(user, dict) and isinstance(user.get("id"), str):
        return CommunicationUserIdentifier(user["id"])
    raw = value.get("rawId")
    if isinstance(raw, str) and raw:
        return identifier_from_raw_id(raw)
    inner = value.get("id")
    return parse_identifier(inner) if inner is not None else None


def parse_participant(value: Any) -> ChatParticipant | None:
    """A participant from a ``ChatParticipant`` body, an Event Grid participant or member, or a bare
    identifier (``createdBy`` and friends)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        ident = parse_identifier(value)
        return None if ident is None else ChatParticipant(ident)
    source = next(
        (
            value[k]
            for k in ("communicationIdentifier", "participantCommunicationIdentifier", "memberId", "id")
            if value.get(k)
        ),
        value,
    )
    ident = parse_identifier(source)
    if ident is None:
        return None
    name = value.get("displayName")
    share = parse_time(value.get("shareHistoryTime"))
    if share is not None and share.timestamp() == 0:  # the service's "everything" placeholder
        share = None
    metadata = value.get("metadata")
    return ChatParticipant(
        ident,
        name if isinstance(name, str) else None,
        share,
        metadata if isinstance(metadata, dict) and metadata else None,
    )


def parse_participants(value: Any) -> tuple[ChatParticipant, ...]:
    """The participants of a JSON list (items that are not participants are left out)."""
    if not isinstance(value, list):
        return ()
    return tuple(p for p in (parse_participant(v) for v in value) if p is not None)


def parse_time(value: Any) -> datetime | None:
    """A datetime from an RFC 3339 string (a ``ValueError`` if it is not one); ``None`` for the rest."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_rfc3339(value)
    return None


def parse_text(value: Any) -> str | None:
    """``value`` as a string (``None`` stays ``None``)."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def parse_metadata(value: Any) -> dict[str, str] | None:
    """A non-empty JSON object as a dict of strings, else ``None``."""
    if not isinstance(value, dict) or not value:
        return None
    return {str(k): str(v) for k, v in value.items()}


def _properties(data: dict[str, Any]) -> ChatThreadEventProperties:
    props = data.get("properties")
    props = props if isinstance(props, dict) else {}
    return ChatThreadEventProperties(parse_text(props.get("topic")), parse_metadata(props.get("metadata")))


def parse_event(name: str, data: dict[str, Any] | str, *, event_id: str | int | None = None) -> Event:
    """The event named ``name`` (a JavaScript SDK event name) with payload ``data``.

    ``data`` is the emulator stream's camelCase JSON object (or its text).

    Raises:
        ValueError: for an unknown event name or a payload that is not a JSON object.
    """
    if isinstance(data, str):
        data = json.loads(data) if data.strip() else {}
    if not isinstance(data, dict):
        raise ValueError(f"the payload of a {name!r} event must be a JSON object")
    eid = None if event_id is None else str(event_id)
    if name == RealTimeNotificationConnected.kind:
        last = data.get("lastEventId")
        return RealTimeNotificationConnected(event_id=eid, last_event_id=parse_text(last))
    if name == RealTimeNotificationDisconnected.kind:
        return RealTimeNotificationDisconnected(event_id=eid, reason=str(data.get("reason", "")))
    if name not in CHAT_EVENT_NAMES:
        raise ValueError(f"unknown event {name!r}; known events: {', '.join(EVENT_NAMES)}")
    common: dict[str, Any] = {
        "event_id": eid,
        "thread_id": str(data.get("threadId", "")),
        "recipient": parse_identifier(data.get("recipient")),
    }
    if name in ("chatMessageReceived", "chatMessageEdited", "chatMessageDeleted"):
        common.update(
            id=str(data.get("id", "")),
            type=str(data.get("type", "text")),
            version=parse_text(data.get("version")) or "",
            created_on=parse_time(data.get("createdOn")),
            sender=parse_identifier(data.get("sender")),
            sender_display_name=parse_text(data.get("senderDisplayName")),
            metadata=parse_metadata(data.get("metadata")),
        )
        if name == "chatMessageReceived":
            return ChatMessageReceivedEvent(**common, message=parse_text(data.get("message")))
        if name == "chatMessageEdited":
            return ChatMessageEditedEvent(
                **common, message=parse_text(data.get("message")), edited_on=parse_time(data.get("editedOn"))
            )
        return ChatMessageDeletedEvent(**common, deleted_on=parse_time(data.get("deletedOn")))
    if name == "typingIndicatorReceived":
        return TypingIndicatorReceivedEvent(
            **common,
            sender=parse_identifier(data.get("sender")),
            sender_display_name=parse_text(data.get("senderDisplayName")),
            version=parse_text(data.get("version")) or "",
            received_on=parse_time(data.get("receivedOn")),
        )
    if name == "readReceiptReceived":
        return ReadReceiptReceivedEvent(
            **common,
            sender=parse_identifier(data.get("sender")),
            sender_display_name=parse_text(data.get("senderDisplayName")),
            chat_message_id=str(data.get("chatMessageId", "")),
            read_on=parse_time(data.get("readOn")),
        )
    common["version"] = parse_text(data.get("version")) or ""
    if name == "chatThreadCreated":
        return ChatThreadCreatedEvent(
            **common,
            created_on=parse_time(data.get("createdOn")),
            created_by=parse_participant(data.get("createdBy")),
            properties=_properties(data),
            participants=parse_participants(data.get("participants")),
        )
    if name == "chatThreadPropertiesUpdated":
        return ChatThreadPropertiesUpdatedEvent(
            **common,
            updated_on=parse_time(data.get("updatedOn")),
            updated_by=parse_participant(data.get("updatedBy")),
            properties=_properties(data),
        )
    if name == "chatThreadDeleted":
        return ChatThreadDeletedEvent(
            **common,
            deleted_on=parse_time(data.get("deletedOn")),
            deleted_by=parse_participant(data.get("deletedBy")),
        )
    if name == "participantsAdded":
        return ParticipantsAddedEvent(
            **common,
            added_on=parse_time(data.get("addedOn")),
            added_by=parse_participant(data.get("addedBy")),
            participants_added=parse_participants(data.get("participantsAdded")),
        )
    return ParticipantsRemovedEvent(
        **common,
        removed_on=parse_time(data.get("removedOn")),
        removed_by=parse_participant(data.get("removedBy")),
        participants_removed=parse_participants(data.get("participantsRemoved")),
    )
