"""Typed results: small frozen dataclasses with the official SDK's class and attribute names.

``chatnb.CommunicationUserIdentifier``, ``ChatMessage``, ``ChatParticipant``... have the names and
attributes of their ``azure.communication.chat`` / ``azure.communication.identity`` counterparts, so code
written for the official SDK reads the same. Differences: every timestamp is a tz-aware UTC ``datetime``
(``AccessToken.expires_on`` too, where the official SDK gives a raw string or an int), and collections
inside models are tuples. Each model parses the wire JSON in a ``_from_wire`` classmethod; DataFrames are
built straight from the JSON by :mod:`chatnb.frames` instead.

>>> from chatnb import ChatParticipant, CommunicationUserIdentifier
>>> ChatParticipant(CommunicationUserIdentifier("8:acs:r_u"), display_name="Jack")
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

from ._time import parse_rfc3339
from .errors import ChatError

__all__ = [
    "AccessToken",
    "ChatAttachment",
    "ChatMessage",
    "ChatMessageContent",
    "ChatMessageReadReceipt",
    "ChatMessageType",
    "ChatParticipant",
    "ChatRetentionPolicy",
    "ChatThreadItem",
    "ChatThreadProperties",
    "CommunicationIdentifier",
    "CommunicationIdentifierKind",
    "CommunicationTokenScope",
    "CommunicationUserIdentifier",
    "CreateChatThreadResult",
    "SendChatMessageResult",
    "UnknownIdentifier",
    "as_identifier",
    "identifier_from_raw_id",
]

_ACS_USER_PREFIXES = ("8:acs:", "8:dod-acs:", "8:gcch-acs:", "8:spool:")


class _CaseInsensitiveEnum(str, Enum):
    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.lower() or member.name.lower() == value.lower():
                    return member
        return None

    def __str__(self) -> str:
        return str(self.value)


class CommunicationIdentifierKind(_CaseInsensitiveEnum):
    """The kind of a communication identifier."""

    UNKNOWN = "unknown"
    COMMUNICATION_USER = "communication_user"
    PHONE_NUMBER = "phone_number"
    MICROSOFT_TEAMS_USER = "microsoft_teams_user"
    MICROSOFT_TEAMS_APP = "microsoft_teams_app"


class CommunicationTokenScope(_CaseInsensitiveEnum):
    """Scopes of an access token (``"chat"`` is the one chat needs)."""

    CHAT = "chat"
    VOIP = "voip"
    CHAT_JOIN = "chat.join"
    CHAT_JOIN_LIMITED = "chat.join.limited"
    VOIP_JOIN = "voip.join"


class ChatMessageType(_CaseInsensitiveEnum):
    """Types of chat messages; system messages are ``topicUpdated``, ``participantAdded/Removed``."""

    TEXT = "text"
    HTML = "html"
    TOPIC_UPDATED = "topicUpdated"
    PARTICIPANT_ADDED = "participantAdded"
    PARTICIPANT_REMOVED = "participantRemoved"


@dataclass(frozen=True, slots=True)
class CommunicationUserIdentifier:
    """An ACS user, ``8:acs:<resource>_<user>``.

    >>> CommunicationUserIdentifier("8:acs:r_u").raw_id
    '8:acs:r_u'
    """

    id: str
    kind: ClassVar[CommunicationIdentifierKind] = CommunicationIdentifierKind.COMMUNICATION_USER

    @property
    def raw_id(self) -> str:
        """The identifier's raw id (for an ACS user, its id)."""
        return self.id

    @property
    def properties(self) -> dict[str, str]:
        """``{"id": ...}``, as in the official SDK."""
        return {"id": self.id}

    def _to_wire(self) -> dict[str, Any]:
        return {"rawId": self.id, "communicationUser": {"id": self.id}}


@dataclass(frozen=True, slots=True)
class UnknownIdentifier:
    """An identifier of a kind chatnb does not model (phone number, Teams user...), kept by its raw id."""

    identifier: str
    kind: ClassVar[CommunicationIdentifierKind] = CommunicationIdentifierKind.UNKNOWN

    @property
    def raw_id(self) -> str:
        return self.identifier

    @property
    def properties(self) -> dict[str, str]:
        return {}

    def _to_wire(self) -> dict[str, Any]:
        return {"rawId": self.identifier}


CommunicationIdentifier = CommunicationUserIdentifier | UnknownIdentifier


def identifier_from_raw_id(raw_id: str) -> CommunicationIdentifier:
    """The identifier a raw id names: an ACS user for ``8:acs:...``, otherwise an unknown one."""
    if not isinstance(raw_id, str):
        raise TypeError(f"a raw id is a string, not {type(raw_id).__name__}")
    if raw_id.startswith(_ACS_USER_PREFIXES):
        return CommunicationUserIdentifier(raw_id)
    return UnknownIdentifier(raw_id)


def as_identifier(value: object) -> CommunicationIdentifier:
    """``value`` as an identifier: one of ours, a user id string, or an official-SDK identifier.

    Raises:
        TypeError: for anything else.
        ValueError: for an empty id.
    """
    if isinstance(value, (CommunicationUserIdentifier, UnknownIdentifier)):
        if not value.raw_id:
            raise ValueError("an identifier needs a non-empty id")
        return value
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("an identifier needs a non-empty id")
        return identifier_from_raw_id(value)
    raw = getattr(value, "raw_id", None)
    if isinstance(raw, str) and raw:
        props = getattr(value, "properties", None)
        if isinstance(props, Mapping) and isinstance(props.get("id"), str) and "user_id" not in props:
            return CommunicationUserIdentifier(props["id"])
        return identifier_from_raw_id(raw)
    raise TypeError(f"expected a CommunicationUserIdentifier or a user id string, not {type(value).__name__}")


def _identifier(value: Any) -> CommunicationIdentifier | None:
    if not isinstance(value, dict):
        return None
    user = value.get("communicationUser")
    if isinstance(user, dict) and isinstance(user.get("id"), str):
        return CommunicationUserIdentifier(user["id"])
    raw = value.get("rawId")
    return identifier_from_raw_id(raw) if isinstance(raw, str) else None


def _time(value: Any) -> datetime | None:
    return parse_rfc3339(value) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token and its expiry (a tz-aware UTC ``datetime``).

    Unpacks like ``azure.core.credentials.AccessToken``: ``token, expires_on = access_token``. Its repr
    never shows the token.
    """

    token: str = field(repr=False)
    expires_on: datetime

    def __iter__(self) -> Iterator[Any]:
        return iter((self.token, self.expires_on))


@dataclass(frozen=True, slots=True)
class ChatRetentionPolicy:
    """When the service deletes a thread (API 2025-03-15): ``kind`` ``"threadCreationDate"`` with
    ``delete_thread_after_days`` (1-90), or ``"none"``."""

    kind: str = "none"
    delete_thread_after_days: int | None = None

    @classmethod
    def thread_creation_date(cls, delete_thread_after_days: int) -> ChatRetentionPolicy:
        return cls("threadCreationDate", delete_thread_after_days)

    @classmethod
    def _from_wire(cls, body: Any) -> ChatRetentionPolicy | None:
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            return None
        days = body.get("deleteThreadAfterDays")
        return cls(body["kind"], days if isinstance(days, int) else None)

    def _to_wire(self) -> dict[str, Any]:
        if self.kind == "threadCreationDate":
            return {"kind": self.kind, "deleteThreadAfterDays": self.delete_thread_after_days}
        return {"kind": self.kind}


@dataclass(frozen=True)
class ChatParticipant:
    """A thread participant; ``identifier`` may also be given as a user id string."""

    identifier: CommunicationIdentifier
    display_name: str | None = None
    share_history_time: datetime | None = None
    metadata: dict[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "identifier", as_identifier(self.identifier))
        if self.display_name is not None and not isinstance(self.display_name, str):
            raise TypeError("display_name must be a string")
        if self.share_history_time is not None and not isinstance(self.share_history_time, datetime):
            raise TypeError("share_history_time must be a datetime")

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatParticipant:
        ident = _identifier(body.get("communicationIdentifier")) or UnknownIdentifier("")
        return cls(ident, body.get("displayName"), _time(body.get("shareHistoryTime")), body.get("metadata"))


@dataclass(frozen=True, slots=True)
class ChatThreadProperties:
    """A thread's properties; ``metadata`` and ``retention_policy`` come with API 2025-03-15."""

    id: str
    topic: str
    created_on: datetime | None
    created_by: CommunicationIdentifier | None
    deleted_on: datetime | None = None
    metadata: dict[str, str] | None = None
    retention_policy: ChatRetentionPolicy | None = None

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatThreadProperties:
        return cls(
            id=body["id"],
            topic=body.get("topic", ""),
            created_on=_time(body.get("createdOn")),
            created_by=_identifier(body.get("createdByCommunicationIdentifier")),
            deleted_on=_time(body.get("deletedOn")),
            metadata=body.get("metadata"),
            retention_policy=ChatRetentionPolicy._from_wire(body.get("retentionPolicy")),
        )


@dataclass(frozen=True, slots=True)
class ChatThreadItem:
    """A thread as ``list_chat_threads`` lists it."""

    id: str
    topic: str
    deleted_on: datetime | None = None
    last_message_received_on: datetime | None = None

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatThreadItem:
        return cls(
            body["id"],
            body.get("topic", ""),
            _time(body.get("deletedOn")),
            _time(body.get("lastMessageReceivedOn")),
        )


@dataclass(frozen=True, slots=True)
class ChatAttachment:
    """An attachment of a message (images and files, sent by Teams interop)."""

    id: str
    attachment_type: str
    name: str | None = None
    url: str | None = None
    preview_url: str | None = None

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatAttachment:
        return cls(
            body.get("id", ""),
            body.get("attachmentType", ""),
            body.get("name"),
            body.get("url"),
            body.get("previewUrl"),
        )


@dataclass(frozen=True, slots=True)
class ChatMessageContent:
    """A message's content: ``message`` for text/html, ``topic`` / ``participants`` + ``initiator``
    for system messages."""

    message: str | None = None
    topic: str | None = None
    participants: tuple[ChatParticipant, ...] = ()
    initiator: CommunicationIdentifier | None = None
    attachments: tuple[ChatAttachment, ...] = ()

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatMessageContent:
        return cls(
            body.get("message"),
            body.get("topic"),
            tuple(ChatParticipant._from_wire(p) for p in body.get("participants") or ()),
            _identifier(body.get("initiatorCommunicationIdentifier")),
            tuple(ChatAttachment._from_wire(a) for a in body.get("attachments") or ()),
        )


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A chat message. ``type`` is a :class:`ChatMessageType` (or the raw string for an unknown type);
    ``sequence_id`` and ``version`` are strings, as the service sends them."""

    id: str
    type: ChatMessageType | str
    sequence_id: str
    version: str
    content: ChatMessageContent | None
    sender_display_name: str | None
    created_on: datetime | None
    sender: CommunicationIdentifier | None
    deleted_on: datetime | None = None
    edited_on: datetime | None = None
    metadata: dict[str, str] | None = None

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatMessage:
        raw_type = body.get("type", "")
        try:
            type_: ChatMessageType | str = ChatMessageType(raw_type)
        except ValueError:
            type_ = raw_type
        content = body.get("content")
        return cls(
            id=body["id"],
            type=type_,
            sequence_id=str(body.get("sequenceId", "")),
            version=str(body.get("version", "")),
            content=ChatMessageContent._from_wire(content) if content else None,
            sender_display_name=body.get("senderDisplayName"),
            created_on=_time(body.get("createdOn")),
            sender=_identifier(body.get("senderCommunicationIdentifier")),
            deleted_on=_time(body.get("deletedOn")),
            edited_on=_time(body.get("editedOn")),
            metadata=body.get("metadata"),
        )


@dataclass(frozen=True, slots=True)
class ChatMessageReadReceipt:
    """Who read which message when."""

    sender: CommunicationIdentifier | None
    chat_message_id: str
    read_on: datetime | None

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatMessageReadReceipt:
        return cls(
            _identifier(body.get("senderCommunicationIdentifier")),
            body.get("chatMessageId", ""),
            _time(body.get("readOn")),
        )


@dataclass(frozen=True)
class CreateChatThreadResult:
    """``chat_thread`` and the ``(participant, error)`` pairs the service refused (``None`` if none)."""

    chat_thread: ChatThreadProperties
    errors: list[tuple[ChatParticipant | None, ChatError]] | None = None


@dataclass(frozen=True, slots=True)
class SendChatMessageResult:
    """The id of a sent message."""

    id: str
