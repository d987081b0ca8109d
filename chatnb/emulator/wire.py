"""JSON shapes of the ACS Chat and Identity wire protocol, rendered from store rows and parsed from bodies.

Rendering follows what the official SDKs need (see ``shared/reference/wire-requirements.md``): every
identifier carries both ``rawId`` and ``communicationUser.id``; timestamps are UTC with a ``Z``; ids,
``sequenceId`` and ``version`` are strings.

Parsing applies the service's size limits. Documented ones: a message is at most 28 KB ("Message Size",
the service-limits page), counted here in UTF-8 bytes over everything a message stores (content, sender
display name, metadata keys and values); thread and participant metadata at most 1 KB each (the
2025-03-15 swagger). Topics and display names have no documented limit; the emulator caps a topic at
:data:`MAX_TOPIC_CHARS` characters (the limit Microsoft Graph documents for a Teams chat topic) and a
display name at :data:`MAX_NAME_CHARS`.
"""

from __future__ import annotations

from typing import Any

from .._time import format_rfc3339, parse_rfc3339_us
from .errors import BadRequest, NotImplementedFeature
from .records import Message, Participant, Thread

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_NAME_CHARS",
    "MAX_TOPIC_CHARS",
    "check_message_size",
    "identifier",
    "message_json",
    "parse_content",
    "parse_identifier",
    "parse_metadata",
    "parse_name",
    "parse_participant",
    "parse_time",
    "parse_topic",
    "participant_json",
    "thread_item_json",
    "thread_json",
]

MAX_MESSAGE_BYTES = 28 * 1024
MAX_METADATA_BYTES = 1024
MAX_TOPIC_CHARS = 250
MAX_NAME_CHARS = 256

_EPOCH_TEXT = "1970-01-01T00:00:00Z"


def identifier(user_id: str) -> dict[str, Any]:
    return {"rawId": user_id, "kind": "communicationUser", "communicationUser": {"id": user_id}}


def parse_identifier(value: Any, target: str) -> str:
    """The user id in a ``CommunicationIdentifierModel``.

    Raises:
        BadRequest: if it is not an object naming an ACS communication user.
        NotImplementedFeature: for a Teams user or app (501: Teams interoperability is not emulated).
    """
    if not isinstance(value, dict):
        raise BadRequest(f"{target} must be a CommunicationIdentifierModel object.", target=target)
    user = value.get("communicationUser")
    raw = value.get("rawId")
    if isinstance(user, dict):
        user_id = user.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise BadRequest(f"{target}.communicationUser.id must be a string.", target=target)
        if raw is not None and raw != user_id:
            raise BadRequest(f"{target}.rawId does not match communicationUser.id.", target=target)
        return user_id
    if isinstance(raw, str) and raw.startswith("8:acs:"):
        return raw
    teams = [k for k in ("microsoftTeamsUser", "microsoftTeamsApp") if k in value]
    if teams or str(raw or "").startswith("8:orgid:"):
        raise NotImplementedFeature(
            f"{target} is a {(teams or ['microsoftTeamsUser'])[0]} identifier: the chatnb emulator does not "
            "implement Teams interoperability; use communication users (8:acs:...).",
            target=target,
        )
    if "phoneNumber" in value:
        raise BadRequest(
            f"{target} is a phoneNumber identifier; chat threads have communication users.", target=target
        )
    raise BadRequest(f"{target} does not name a communication user.", target=target)


def parse_time(value: Any, target: str) -> int:
    if not isinstance(value, str):
        raise BadRequest(f"{target} must be an RFC 3339 date-time string.", target=target)
    try:
        return parse_rfc3339_us(value)
    except ValueError:
        raise BadRequest(f"{target} is not an RFC 3339 date-time: {value[:64]!r}.", target=target) from None


def _utf8_size(*texts: str | None) -> int:
    return sum(len(t.encode("utf-8")) for t in texts if t)


def parse_metadata(value: Any, target: str, max_bytes: int | None = None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequest(f"{target} must be an object of string values.", target=target)
    if max_bytes is not None:
        size = sum(_utf8_size(k, v) for k, v in value.items())
        if size > max_bytes:
            raise BadRequest(f"{target} is {size} bytes; at most {max_bytes} are allowed.", target=target)
    return value


def parse_topic(value: Any) -> str:
    """A thread topic: a non-empty string of at most :data:`MAX_TOPIC_CHARS` characters.

    Raises:
        BadRequest: if it is missing, not a string, blank or too long.
    """
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("topic is required and must be a non-empty string.", target="topic")
    if len(value) > MAX_TOPIC_CHARS:
        raise BadRequest(
            f"topic is {len(value)} characters; at most {MAX_TOPIC_CHARS} are allowed.",
            code="TopicTooLong",
            target="topic",
        )
    return value


def parse_name(value: Any, target: str) -> str | None:
    """A display name: ``None`` or a string of at most :data:`MAX_NAME_CHARS` characters.

    Raises:
        BadRequest: if it is not a string or too long.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{target} must be a string.", target=target)
    if len(value) > MAX_NAME_CHARS:
        raise BadRequest(
            f"{target} is {len(value)} characters; at most {MAX_NAME_CHARS} are allowed.",
            code="DisplayNameTooLong",
            target=target,
        )
    return value


def parse_content(value: Any) -> str:
    """A message's content: a non-empty string (its size counts in :func:`check_message_size`).

    Raises:
        BadRequest: if it is not a string or empty.
    """
    if not isinstance(value, str):
        raise BadRequest("content must be a string.", target="content")
    if not value:
        raise BadRequest("content must not be empty.", target="content")
    return value


def check_message_size(
    content: str | None, display_name: str | None, metadata: dict[str, str] | None
) -> None:
    """Check that a message stays within the service's 28 KB, in UTF-8 bytes over all it stores.

    Raises:
        BadRequest: ``MessageTooLarge`` if content, sender display name and metadata exceed it.
    """
    pairs = (metadata or {}).items()
    size = _utf8_size(content, display_name) + sum(_utf8_size(k, v) for k, v in pairs)
    if size > MAX_MESSAGE_BYTES:
        raise BadRequest(
            f"The message is {size} bytes (content, sender display name and metadata); at most "
            f"{MAX_MESSAGE_BYTES} (28 KB) are allowed.",
            code="MessageTooLarge",
            target="content",
        )


def parse_participant(value: Any, target: str, *, with_metadata: bool) -> Participant:
    if not isinstance(value, dict):
        raise BadRequest(f"{target} must be a ChatParticipant object.", target=target)
    if "communicationIdentifier" not in value:
        raise BadRequest(f"{target}.communicationIdentifier is required.", target=target)
    user_id = parse_identifier(value["communicationIdentifier"], f"{target}.communicationIdentifier")
    name = parse_name(value.get("displayName"), f"{target}.displayName")
    share = value.get("shareHistoryTime")
    share_us = None if share is None else parse_time(share, f"{target}.shareHistoryTime")
    metadata = (
        parse_metadata(value.get("metadata"), f"{target}.metadata", MAX_METADATA_BYTES)
        if with_metadata
        else None
    )
    return Participant(user_id, name, share_us, metadata)


def participant_json(p: Participant | dict[str, Any]) -> dict[str, Any]:
    if isinstance(p, dict):  # the stored form inside system messages and events
        p = Participant(p["id"], p.get("displayName"), p.get("shareHistoryTime"), p.get("metadata"))
    out: dict[str, Any] = {"communicationIdentifier": identifier(p.user_id)}
    if p.display_name is not None:
        out["displayName"] = p.display_name
    out["shareHistoryTime"] = (
        _EPOCH_TEXT if p.share_history_time is None else format_rfc3339(p.share_history_time)
    )
    if p.metadata:
        out["metadata"] = p.metadata
    return out


def message_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "type": m.type,
        "sequenceId": str(m.seq),
        "version": m.version,
        "createdOn": format_rfc3339(m.created_on),
    }
    if m.system is not None:
        content: dict[str, Any] = {"initiatorCommunicationIdentifier": identifier(m.system["initiator"])}
        if "topic" in m.system:
            content["topic"] = m.system["topic"]
        if "participants" in m.system:
            content["participants"] = [participant_json(p) for p in m.system["participants"]]
        out["content"] = content
    elif m.deleted_on is None:
        out["content"] = {"message": m.content}
    if m.sender_display_name is not None:
        out["senderDisplayName"] = m.sender_display_name
    if m.sender_id is not None:
        out["senderCommunicationIdentifier"] = identifier(m.sender_id)
    if m.edited_on is not None:
        out["editedOn"] = format_rfc3339(m.edited_on)
    if m.deleted_on is not None:
        out["deletedOn"] = format_rfc3339(m.deleted_on)
    if m.metadata:
        out["metadata"] = m.metadata
    return out


def thread_json(t: Thread, *, modern: bool) -> dict[str, Any]:
    """``ChatThreadProperties``; ``modern`` adds the 2025-03-15 fields."""
    out: dict[str, Any] = {
        "id": t.id,
        "topic": t.topic,
        "createdOn": format_rfc3339(t.created_on),
        "createdByCommunicationIdentifier": identifier(t.created_by),
    }
    if t.deleted_on is not None:
        out["deletedOn"] = format_rfc3339(t.deleted_on)
    if modern:
        out["metadata"] = t.metadata or {}
        out["retentionPolicy"] = t.retention or {"kind": "none"}
    return out


def thread_item_json(t: Thread) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "topic": t.topic,
        "lastMessageReceivedOn": format_rfc3339(t.last_message_on),
    }
    if t.deleted_on is not None:
        out["deletedOn"] = format_rfc3339(t.deleted_on)
    return out
